r"""Attention, from the lecture's matrices to batched multi-head modules.

The lecture writes a set of :math:`N` tokens as the **columns** of
:math:`\mathbf{X} \in \mathbb{R}^{D \times N}` and forms queries, keys and values by affine
maps,

.. math::  \mathbf{Q}[\mathbf{X}] = \boldsymbol\beta_q \mathbf{1}^T
           + \boldsymbol\Omega_q \mathbf{X}, \quad
           \mathbf{K}[\mathbf{X}] = \boldsymbol\beta_k \mathbf{1}^T
           + \boldsymbol\Omega_k \mathbf{X}, \quad
           \mathbf{V}[\mathbf{X}] = \boldsymbol\beta_v \mathbf{1}^T
           + \boldsymbol\Omega_v \mathbf{X},

.. math::  \mathbf{Sa}[\mathbf{X}] = \mathbf{V}[\mathbf{X}] \,
           \mathrm{Softmax}\!\left[\frac{\mathbf{K}[\mathbf{X}]^T \mathbf{Q}[\mathbf{X}]}
           {\sqrt{D_q}}\right],

with the softmax over the keys (the rows) separately for each query (each column):
:math:`a[\mathbf{x}_m, \mathbf{x}_n] = \mathrm{softmax}_m[\mathbf{k}_\bullet^T \mathbf{q}_n]`.
:func:`self_attention` is that formula verbatim. The rest of the module is batch-first, as
PyTorch code is: tokens are the **rows** of ``(B, N, D)`` tensors, every matrix above is
transposed, and the softmax runs over the last axis.

Masks follow :func:`torch.nn.functional.scaled_dot_product_attention`: a boolean mask is
True where a query may attend to a key; a floating-point mask is added to the logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vislearn.softmax import softmax


def self_attention(
    X: torch.Tensor,
    omega_q: torch.Tensor,
    beta_q: torch.Tensor,
    omega_k: torch.Tensor,
    beta_k: torch.Tensor,
    omega_v: torch.Tensor,
    beta_v: torch.Tensor,
    scale: bool = True,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Self-attention in the lecture's notation: tokens are the columns of ``X``.

    .. math::  \mathbf{Sa}[\mathbf{X}] = \mathbf{V}[\mathbf{X}] \,
               \mathrm{Softmax}\!\left[\mathbf{K}[\mathbf{X}]^T \mathbf{Q}[\mathbf{X}]
               / \sqrt{D_q}\right]

    Args:
        X: the tokens, ``(D, N)``; leading batch axes ``(..., D, N)`` are allowed.
        omega_q, beta_q: query map, ``(D_q, D)`` and ``(D_q,)``; likewise ``omega_k, beta_k``
            (``(D_q, D)``, ``(D_q,)``) and ``omega_v, beta_v`` (``(D_v, D)``, ``(D_v,)``).
        scale: divide the logits by :math:`\sqrt{D_q}` (the lecture's slide omits it).
        return_weights: also return the attention matrix.

    Returns:
        ``Sa[X]`` of shape ``(D_v, N)``; with ``return_weights`` also the attention matrix
        ``Softmax[K^T Q]`` of shape ``(N, N)``, indexed ``[key m, query n]``: each column
        sums to one.
    """
    Q = beta_q[:, None] + omega_q @ X  # (D_q, N)
    K = beta_k[:, None] + omega_k @ X  # (D_q, N)
    V = beta_v[:, None] + omega_v @ X  # (D_v, N)
    logits = K.mT @ Q  # (N keys, N queries): entry [m, n] is k_m^T q_n
    if scale:
        logits = logits / math.sqrt(Q.shape[-2])
    weights = softmax(logits, dim=-2)  # over the keys, for each query (column)
    out = V @ weights  # (D_v, N)
    return (out, weights) if return_weights else out


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Raise a clear error unless ``q (..., N, d)``, ``k (..., M, d)`` and ``v (..., M, d_v)``
    fit together: queries and keys of one size, one value per key."""
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"queries and keys need the same size, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"got {k.shape[-2]} keys but {v.shape[-2]} values")


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Batch-first attention that materialises the ``N x M`` attention matrix.

    .. math::  \mathrm{Attention}(\mathbf{q}, \mathbf{k}, \mathbf{v})
               = \mathrm{softmax}\!\left(\frac{\mathbf{q}\mathbf{k}^T}{\sqrt{d}}
               + \text{mask}\right) \mathbf{v},

    the lecture's :math:`\mathbf{Sa}` transposed, with the softmax over the keys (last axis).
    This is the "teaching" kernel: it costs :math:`O(NM)` memory for the weights, unlike the
    fused :func:`torch.nn.functional.scaled_dot_product_attention`, which it matches.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``.
        mask: broadcastable to the logits' shape ``(..., N, M)``. Boolean: True where query
            ``n`` may attend to key ``m``. Floating point: added to the logits (``-inf``
            forbids). A query that may attend to no key gets all-zero weights and hence a
            zero output, not the NaN of a plain softmax over ``-inf`` logits.
        return_weights: also return the attention weights.

    Returns:
        ``(..., N, d_v)``, and with ``return_weights`` the weights ``(..., N, M)``, whose
        rows sum to one (or to zero for a fully masked query).
    """
    check_qkv(q, k, v)
    # Scaling q costs N*d multiplications, scaling the logits N*M.
    logits = (q * q.shape[-1] ** -0.5) @ k.mT  # (..., N, M)
    if mask is not None:  # in place is safe: the matmul's backward needs q and k, not logits
        if mask.dtype == torch.bool:
            logits.masked_fill_(~mask, float("-inf"))
        elif mask.is_floating_point():
            logits.add_(mask)
        else:
            raise TypeError(f"mask must be boolean or floating point, got dtype {mask.dtype}")
    weights = softmax(logits, dim=-1)  # (..., N, M)
    out = weights @ v  # (..., N, d_v)
    return (out, weights) if return_weights else out


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(n, n)`` mask, True on and below the diagonal: query ``t`` sees keys ``<= t``."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def relative_position_bias(table: torch.Tensor, num_queries: int, num_keys: int) -> torch.Tensor:
    r"""The additive attention bias of a learned relative position table (Shaw et al., 2018;
    T5): :math:`B[n, m] = b[m - n]`, one learned number per offset between key and query.

    ``table`` ``(..., num_queries + num_keys - 1)`` holds the offsets
    :math:`-(N - 1), \dots, M - 1` in that order; returns ``(..., N, M)``, to be added to the
    logits ``q k^T / sqrt(d)`` (pass it as a floating-point ``mask``). Like a convolution's
    weights, the bias depends only on the offset: the matrix is Toeplitz.
    """
    if table.shape[-1] != num_queries + num_keys - 1:
        raise ValueError(
            f"a table for {num_queries} queries and {num_keys} keys needs "
            f"{num_queries + num_keys - 1} offsets, got {table.shape[-1]}"
        )
    query = torch.arange(num_queries, device=table.device)[:, None]  # (N, 1)
    key = torch.arange(num_keys, device=table.device)[None, :]  # (1, M)
    return table[..., key - query + num_queries - 1]  # (..., N, M)


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, N, h*d) -> (B, h, N, d)``."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


def multi_head_attention(
    x: torch.Tensor,
    context: torch.Tensor | None,
    w_q: torch.Tensor,
    b_q: torch.Tensor | None,
    w_k: torch.Tensor,
    b_k: torch.Tensor | None,
    w_v: torch.Tensor,
    b_v: torch.Tensor | None,
    w_o: torch.Tensor,
    b_o: torch.Tensor | None,
    num_heads: int,
    mask: torch.Tensor | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Multi-head attention, functional: ``h`` attentions on ``D/h``-sized slices, concatenated.

    .. math::  \mathrm{MhSa}[\mathbf{X}] = \boldsymbol\Omega_o
               \big[\mathbf{Sa}_1[\mathbf{X}]; \dots; \mathbf{Sa}_h[\mathbf{X}]\big]
               + \boldsymbol\beta_o \mathbf{1}^T

    written batch-first. Weights follow :class:`torch.nn.Linear`: ``(out_features,
    in_features)``, applied as ``x @ w.T + b``; a bias may be None.

    Args:
        x: the queries' tokens ``(B, N, D)``.
        context: the keys' and values' tokens ``(B, M, D_c)``; None for self-attention
            (``context = x``).
        w_q, b_q: ``(D, D)``, ``(D,)``; ``w_k, b_k`` and ``w_v, b_v``: ``(D, D_c)``, ``(D,)``;
            ``w_o, b_o``: ``(D, D)``, ``(D,)``.
        num_heads: ``h``; must divide ``D``.
        mask: broadcastable to ``(B, h, N, M)``, as in :func:`scaled_dot_product_attention`;
            e.g. ``(N, M)`` for every sequence and head, ``(B, 1, 1, M)`` for key padding.
        return_weights: also return the attention weights.

    Returns:
        ``(B, N, D)``, and with ``return_weights`` the weights ``(B, h, N, M)``.
    """
    context = x if context is None else context
    q = _split_heads(F.linear(x, w_q, b_q), num_heads)  # (B, h, N, d)
    k = _split_heads(F.linear(context, w_k, b_k), num_heads)  # (B, h, M, d)
    v = _split_heads(F.linear(context, w_v, b_v), num_heads)  # (B, h, M, d)
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    out = out.transpose(1, 2).flatten(-2)  # (B, N, h*d): the heads concatenated
    out = F.linear(out, w_o, b_o)  # (B, N, D)
    return (out, weights) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Multi-head (self- or cross-) attention with separate query, key, value projections.

    ``forward(x)`` is self-attention; ``forward(x, context)`` lets the tokens of ``x`` attend
    to those of ``context`` (``context_dim`` features each). See :func:`multi_head_attention`.
    """

    def __init__(
        self, dim: int, num_heads: int, *, context_dim: int | None = None, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(
                f"dim={dim} must be divisible by num_heads={num_heads} (each head gets dim / "
                "num_heads features)"
            )
        context_dim = dim if context_dim is None else context_dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x (B, N, D)``, ``context (B, M, D_c)`` or None -> ``(B, N, D)``, and the weights
        ``(B, h, N, M)`` if asked."""
        return multi_head_attention(
            x,
            context,
            self.q_proj.weight,
            self.q_proj.bias,
            self.k_proj.weight,
            self.k_proj.bias,
            self.v_proj.weight,
            self.v_proj.bias,
            self.out_proj.weight,
            self.out_proj.bias,
            self.num_heads,
            mask=mask,
            return_weights=return_weights,
        )


def sinusoidal_position_encoding(
    num_positions: int,
    dim: int,
    base: float = 10000.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The fixed position encoding of Vaswani et al. (2017), rows are positions: ``(N, D)``.

    .. math::  P[\mathit{pos}, 2i] = \sin\!\big(\mathit{pos} / \mathit{base}^{2i/D}\big),
               \qquad
               P[\mathit{pos}, 2i+1] = \cos\!\big(\mathit{pos} / \mathit{base}^{2i/D}\big),

    sines and cosines interleaved; for odd ``D`` the last column is a sine. Each pair of
    columns is a rotation by an angle proportional to the position, at wavelengths from
    :math:`2\pi` to :math:`2\pi \cdot \mathit{base}`. Computed in float64, then cast to
    ``dtype`` on ``device``. In the lecture's layout, :math:`\mathbf{X} \to \mathbf{X} +
    \mathbf{P}` uses the transpose, ``(D, N)``.
    """
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (ceil(D/2),)
    angle = position / base ** (two_i / dim)  # (N, ceil(D/2))
    encoding = torch.empty(num_positions, dim, dtype=torch.float64)  # (N, D)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return encoding.to(device=device, dtype=dtype)


def sinusoidal_position_encoding_2d(
    height: int,
    width: int,
    dim: int,
    base: float = 10000.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Fixed 2D position encoding of an ``height x width`` grid of patches: ``(H*W, D)``.

    Patches are numbered row by row (row-major, as ``x.flatten(2)`` orders them). The first
    ``D/2`` channels are :func:`sinusoidal_position_encoding` of the patch's row index, the
    last ``D/2`` that of its column index, as in masked autoencoders (He et al., 2022).
    ``dim`` must be divisible by 4 so that each half holds whole sine-cosine pairs.
    """
    if dim % 4 != 0:
        raise ValueError(
            f"dim={dim} must be divisible by 4: half the channels encode the row, half the "
            "column, each as sine-cosine pairs"
        )
    rows = sinusoidal_position_encoding(height, dim // 2, base, device=device, dtype=dtype)
    cols = sinusoidal_position_encoding(width, dim // 2, base, device=device, dtype=dtype)
    rows = rows[:, None, :].expand(height, width, dim // 2)  # (H, W, D/2)
    cols = cols[None, :, :].expand(height, width, dim // 2)  # (H, W, D/2)
    return torch.cat([rows, cols], dim=-1).flatten(0, 1)  # (H*W, D)


class LearnedPositionEncoding(nn.Module):
    """A learned vector per position, added to the tokens: ``x + P[:N]``.

    Initialised from a normal distribution with standard deviation 0.02 truncated at two
    standard deviations (as BERT and ViT do).
    """

    def __init__(self, num_positions: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_positions, dim))  # (N_max, D)
        nn.init.trunc_normal_(self.weight, std=0.02, a=-0.04, b=0.04)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, N, D) -> (B, N, D)``, for ``N`` up to ``num_positions``."""
        n = x.shape[-2]
        if n > self.weight.shape[0]:
            raise ValueError(
                f"got {n} tokens, but only {self.weight.shape[0]} positions are learned"
            )
        return x + self.weight[:n]
