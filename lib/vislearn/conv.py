r"""Convolution as hard-coded attention, and what depthwise separable convolution saves.

**Convolution is multiplication by a fixed matrix.** A 1-D convolution layer (in deep
learning this is a *cross-correlation*: the kernel is not flipped) with kernel
:math:`\mathbf{w} \in \mathbb{R}^K` and zero padding :math:`p` on the left maps a signal
:math:`\mathbf{x} \in \mathbb{R}^N` to

.. math::  y_i = \sum_{k=0}^{K-1} w_k \, x_{i + k - p}
           = \sum_{j=0}^{N-1} W_{ij} x_j, \qquad
           W_{ij} = \begin{cases} w_{j - i + p} & 0 \le j - i + p < K \\
                                  0 & \text{otherwise,} \end{cases}

so :math:`\mathbf{y} = \mathbf{W}\mathbf{x}` with a *banded Toeplitz* matrix
:math:`\mathbf{W}`: output :math:`i` "attends" to the :math:`K` inputs around it with
weights that depend only on the offset :math:`j - i`, never on the data. Attention
replaces this fixed matrix by one computed from the input.

In 2-D, with kernel :math:`\mathbf{w} \in \mathbb{R}^{k_h \times k_w}` and an
:math:`H \times W` image flattened row by row (``x.reshape(-1)``), the same reasoning on
each axis gives a *block-Toeplitz matrix with Toeplitz blocks*,

.. math::  \mathbf{W}_{2\mathrm{D}} = \sum_{a=0}^{k_h-1} \mathbf{S}_a \otimes \mathbf{T}_a,

where :math:`\mathbf{T}_a` is the 1-D matrix of kernel row :math:`a` acting along a row of
the image and :math:`\mathbf{S}_a` is the 1-D matrix of the one-hot kernel
:math:`\mathbf{e}_a` acting along the columns (it selects the image row :math:`a - p_h`
above or below). This uses :math:`\operatorname{vec}(\mathbf{A}\mathbf{X}\mathbf{B}^T) =
(\mathbf{A} \otimes \mathbf{B}) \operatorname{vec}(\mathbf{X})` for row-major
:math:`\operatorname{vec}`.

**Padding.** ``"same"`` follows PyTorch: the total padding :math:`K - 1` is split as
:math:`\lfloor (K-1)/2 \rfloor` on the left (top) and the rest on the right (bottom), so an
even kernel gets one more zero on the right. ``"valid"`` pads nothing; an integer pads
that many zeros on both sides.

**Cost.** For an :math:`M \times N` image, a :math:`D \times D` kernel, :math:`K` input
channels and :math:`J` output channels (the lecture's letters), a standard convolution
computes, for each of the :math:`M N` positions and each of the :math:`J` output channels,
a sum over :math:`D^2 K` products:

.. math::  \mathrm{MACs}_{\text{conv}} = M N D^2 K J .

A depthwise separable convolution first convolves each of the :math:`K` input channels
with its own :math:`D \times D` kernel (:math:`M N D^2 K` MACs), then mixes channels with
a :math:`1 \times 1` convolution :math:`K \to J` (:math:`M N K J` MACs):

.. math::  \mathrm{MACs}_{\text{sep}} = M N D^2 K + M N K J = M N (D^2 + J) K ,

the lecture's :math:`\mathcal{O}(M N (D^2 + J) K)`. The ratio is
:math:`\mathrm{MACs}_{\text{sep}} / \mathrm{MACs}_{\text{conv}} = 1/J + 1/D^2`.

A multiply-add (MAC) is one multiplication and one addition; a FLOP count such as
:class:`torch.utils.flop_counter.FlopCounterMode` reports two FLOPs per MAC. Bias
additions are not counted, and the multiplications by padded zeros are (a convolution
kernel performs them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

Padding = str | int


def _pads(kernel_size: int, padding: Padding) -> tuple[int, int]:
    """Zeros added ``(before, after)`` one axis for a kernel of ``kernel_size`` taps."""
    if padding == "same":
        total = kernel_size - 1
        return total // 2, total - total // 2
    if padding == "valid":
        return 0, 0
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding, padding
    raise ValueError(f"padding must be 'same', 'valid' or an int >= 0, got {padding!r}")


def conv1d_as_matrix(kernel: torch.Tensor, n: int, padding: Padding = "same") -> torch.Tensor:
    r"""The matrix :math:`\mathbf{W}` with ``W @ x == F.conv1d(x[None, None], kernel[None,
    None], padding=padding)[0, 0]`` for every signal ``x`` of length ``n``.

    :math:`W_{ij} = w_{j - i + p}` inside the band :math:`0 \le j - i + p < K` and 0
    outside, with :math:`p` the left padding (see the module docstring). The result has
    shape ``(n_out, n)``: ``(n, n)`` for ``"same"``, ``(n - K + 1, n)`` for ``"valid"``,
    ``(n + 2p - K + 1, n)`` for an integer ``p``. It lives on ``kernel``'s device, has its
    dtype, and is differentiable with respect to ``kernel``.
    """
    if kernel.ndim != 1:
        raise ValueError(f"kernel must be 1-D (K,), got shape {tuple(kernel.shape)}")
    k = kernel.shape[0]
    before, after = _pads(k, padding)
    n_out = n + before + after - k + 1
    if n_out < 1:
        raise ValueError(f"a kernel of {k} taps does not fit a signal of length {n}")
    i = torch.arange(n_out, device=kernel.device)[:, None]  # (n_out, 1) output index
    j = torch.arange(n, device=kernel.device)[None, :]  # (1, n)     input index
    tap = j - i + before  # (n_out, n) which kernel tap links output i to input j
    inside = (tap >= 0) & (tap < k)  # (n_out, n) the band
    w = kernel[tap.clamp(0, k - 1)]  # (n_out, n)
    return torch.where(inside, w, torch.zeros_like(w))


def conv2d_as_matrix(
    kernel: torch.Tensor, height: int, width: int, padding: Padding = "same"
) -> torch.Tensor:
    r"""The matrix acting on a row-major flattened ``height x width`` image as
    ``F.conv2d(x[None, None], kernel[None, None], padding=padding)`` does.

    Built as :math:`\sum_a \mathbf{S}_a \otimes \mathbf{T}_a` (module docstring): a block
    Toeplitz matrix of :math:`\text{height}_\text{out} \times \text{height}` blocks, each
    the banded 1-D matrix of one kernel row. Shape ``(H_out W_out, H W)``, i.e.
    ``(H W, H W)`` for ``"same"``; ``y.reshape(H_out, W_out)`` recovers the image.
    """
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D (kh, kw), got shape {tuple(kernel.shape)}")
    kh, _ = kernel.shape
    eye = torch.eye(kh, dtype=kernel.dtype, device=kernel.device)  # (kh, kh) one-hot kernels
    blocks = [
        torch.kron(
            conv1d_as_matrix(eye[a], height, padding),  # (H_out, H): picks input row r + a - p_h
            conv1d_as_matrix(kernel[a], width, padding),  # (W_out, W): kernel row a along a row
        )  # (H_out W_out, H W)
        for a in range(kh)
    ]
    return torch.stack(blocks).sum(dim=0)


def conv_macs(
    height: int,
    width: int,
    kernel_size: int,
    in_channels: int,
    out_channels: int,
    groups: int = 1,
) -> int:
    r"""Multiply-adds of one ``kernel_size x kernel_size`` convolution of one image with
    ``"same"`` padding and stride 1: :math:`M N D^2 (K / g) J`.

    ``height`` = :math:`M`, ``width`` = :math:`N`, ``kernel_size`` = :math:`D`,
    ``in_channels`` = :math:`K`, ``out_channels`` = :math:`J`, ``groups`` = :math:`g`
    (each output channel sees :math:`K / g` input channels). With ``groups=1`` this is the
    lecture's :math:`M N D^2 J K`; a depthwise convolution is ``groups = in_channels =
    out_channels``, costing :math:`M N D^2 K`.
    """
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels and out_channels")
    return height * width * kernel_size**2 * (in_channels // groups) * out_channels


def depthwise_separable_macs(
    height: int, width: int, kernel_size: int, in_channels: int, out_channels: int
) -> int:
    r"""Multiply-adds of :class:`DepthwiseSeparableConv2d` on one image:
    :math:`M N D^2 K + M N K J = M N (D^2 + J) K`.

    The first term is the depthwise :math:`D \times D` convolution of the :math:`K` input
    channels, the second the :math:`1 \times 1` pointwise convolution :math:`K \to J`.
    Their sum is exactly the lecture's :math:`M N (D^2 + J) K` with :math:`K` the input and
    :math:`J` the output channels.
    """
    depthwise = conv_macs(height, width, kernel_size, in_channels, in_channels, in_channels)
    pointwise = conv_macs(height, width, 1, in_channels, out_channels)
    return depthwise + pointwise


class DepthwiseSeparableConv2d(nn.Module):
    r"""A :math:`D \times D` depthwise convolution followed by a :math:`1 \times 1`
    pointwise convolution (Chollet, 2017; Howard et al., 2017).

    Input ``(B, K, M, N)``, output ``(B, J, M, N)`` with ``K = in_channels``,
    ``J = out_channels`` and ``"same"`` padding. It has :math:`D^2 K + K J` weights
    (plus biases) where a full convolution has :math:`D^2 K J`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True
    ) -> None:
        super().__init__()
        # One D x D filter per input channel: groups=in_channels, weight (K, 1, D, D).
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding="same", groups=in_channels, bias=bias
        )
        # Mix the channels at each pixel: weight (J, K, 1, 1).
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, K, M, N)
        x = self.depthwise(x)  # (B, K, M, N): each channel filtered on its own
        return self.pointwise(x)  # (B, J, M, N): channels mixed pixel by pixel


def count_macs(fn: Callable[..., object], *args: object) -> int:
    """Multiply-adds that ``fn(*args)`` performs, measured with PyTorch's FLOP counter.

    :class:`~torch.utils.flop_counter.FlopCounterMode` intercepts every operation that
    runs (convolutions, matrix products, attention) and counts two FLOPs per MAC, so this
    returns its total divided by two. ``fn`` can be a module or any function.
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() // 2
