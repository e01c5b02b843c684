r"""Softmax, the normalisation at the heart of attention.

For a vector of logits :math:`\mathbf{z}`,

.. math::  \mathrm{softmax}(\mathbf{z})_i = \frac{e^{z_i}}{\sum_j e^{z_j}}
           = \frac{e^{z_i - m}}{\sum_j e^{z_j - m}}, \qquad m = \max_j z_j .

The two forms are equal in exact arithmetic; only the second is safe in floating point,
because :math:`e^{z}` overflows float32 once :math:`z > 88.7` (float16: :math:`z > 11.1`).
After subtracting the maximum every exponent is at most :math:`e^0 = 1` and the
denominator is at least 1.
"""

from __future__ import annotations

import torch

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def naive_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The textbook formula ``exp(x) / sum(exp(x))``: overflows for large logits.

    Kept only to show why :func:`softmax` subtracts the maximum.
    """
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


class _StableSoftmax(torch.autograd.Function):
    r"""``exp(z - m) / sum(exp(z - m))`` along ``dim``, with one full-size buffer.

    The forward pass exponentiates and normalises in place, so it needs no more memory than
    its output (as PyTorch's fused kernel); the backward pass needs only that output:
    for :math:`\mathbf{y} = \mathrm{softmax}(\mathbf{z})` and an upstream gradient
    :math:`\mathbf{g}`, :math:`\partial L / \partial \mathbf{z}
    = \mathbf{y} \odot (\mathbf{g} - \langle \mathbf{g}, \mathbf{y} \rangle)`.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, dim: int) -> torch.Tensor:
        m = z.amax(dim=dim, keepdim=True)
        # All -inf slice: shift by 0 so that exp gives zeros instead of exp(-inf + inf) = NaN.
        m.masked_fill_(m == float("-inf"), 0.0)
        y = z - m  # the only full-size buffer: it becomes the output
        y.exp_()
        total = y.sum(dim=dim, keepdim=True)
        total.masked_fill_(total == 0, 1.0)
        y.div_(total)
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(dim=ctx.dim, keepdim=True)), None


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax of ``x`` along ``dim``, any shape, device and dtype.

    float16 and bfloat16 inputs are computed in float32 and rounded back once. A slice
    whose logits are all ``-inf`` (nothing to attend to) returns zeros, not NaN.
    Differentiable (twice, too: the backward pass is made of differentiable operations).
    """
    if x.dtype in _LOW_PRECISION:
        return _StableSoftmax.apply(x.float(), dim).to(x.dtype)
    return _StableSoftmax.apply(x, dim)


def masked_softmax(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``x`` along ``dim`` over the positions where ``mask`` is True.

    ``mask`` is boolean and broadcastable to ``x``; True means "may be attended to" (the
    convention of :func:`torch.nn.functional.scaled_dot_product_attention`). Masked
    positions get weight exactly 0, and a slice that is masked everywhere returns all
    zeros: there is nothing to attend to, so no weight is given out.
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor (True = keep), got dtype {mask.dtype}")
    return softmax(x.masked_fill(~mask, float("-inf")), dim=dim)
