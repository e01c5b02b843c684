r"""Attention without the ``N x M`` matrix: exact blockwise attention and linear attention.

**Memory-efficient exact attention** (Rabe & Staats, 2021; the algorithm of FlashAttention,
Dao et al., 2022). Softmax attention for one query :math:`\mathbf{q}` over keys
:math:`\mathbf{k}_1, \dots, \mathbf{k}_M` and values :math:`\mathbf{v}_1, \dots,
\mathbf{v}_M` is

.. math::  \mathbf{o} = \frac{\sum_m e^{s_m - m^\star} \mathbf{v}_m}{\sum_m e^{s_m - m^\star}},
           \qquad s_m = \mathbf{q}^T\mathbf{k}_m / \sqrt{d} + \text{mask}_m, \quad
           m^\star = \max_m s_m .

Numerator and denominator are sums over the keys, so they can be accumulated one block of
keys at a time. The only difficulty is the shift :math:`m^\star`, which is not known until
every key has been seen. Keep a *running* maximum :math:`m`, denominator :math:`\ell` and
numerator :math:`\mathbf{a}`; a new block :math:`\mathcal{B}` of scores updates them as

.. math::  m' = \max\big(m, \max_{j \in \mathcal{B}} s_j\big), \qquad
           \ell' = e^{m - m'} \ell + \sum_{j \in \mathcal{B}} e^{s_j - m'}, \qquad
           \mathbf{a}' = e^{m - m'} \mathbf{a} + \sum_{j \in \mathcal{B}} e^{s_j - m'}
           \mathbf{v}_j ,

rescaling what was summed under the old shift by :math:`e^{m - m'} \le 1`. After the last
block :math:`\mathbf{o} = \mathbf{a} / \ell` exactly, and every exponent was :math:`\le 0`
on the way, so nothing overflows. Queries are independent of each other, so they can be
taken in blocks too, and the logits are held one ``(..., B_q, B)`` block at a time instead
of ``(..., N, M)``: the memory beyond the output is :math:`O(B_q B)`, the output's
:math:`O(N d_v)`.

**Training memory.** Autograd through that loop would save every block's probabilities for
the backward pass: :math:`O(NM)` memory again. :func:`memory_efficient_attention` is
therefore a :class:`torch.autograd.Function` that saves only the inputs, the output
:math:`\mathbf{o}` and the log-sum-exp :math:`L = m + \log \ell` of each query, and in the
backward pass recomputes each block's probabilities :math:`p_j = e^{s_j - L}` (the
FlashAttention backward). With :math:`\mathbf{g} = \partial\mathcal{L}/\partial\mathbf{o}`
and :math:`\delta = \mathbf{g}^T\mathbf{o}`,

.. math::  \frac{\partial\mathcal{L}}{\partial \mathbf{v}_j} \mathrel{+}= p_j \mathbf{g},
           \qquad
           \frac{\partial\mathcal{L}}{\partial s_j} = p_j\,(\mathbf{g}^T\mathbf{v}_j - \delta),
           \qquad
           \frac{\partial\mathcal{L}}{\partial \mathbf{q}} = \sum_j
           \frac{\partial\mathcal{L}}{\partial s_j} \frac{\mathbf{k}_j}{\sqrt d}, \qquad
           \frac{\partial\mathcal{L}}{\partial \mathbf{k}_j} \mathrel{+}=
           \frac{\partial\mathcal{L}}{\partial s_j} \frac{\mathbf{q}}{\sqrt d},

(the middle one is the softmax's Jacobian, :math:`\sum_j p_j (\mathbf{g}^T\mathbf{v}_j) =
\mathbf{g}^T\mathbf{o} = \delta`), so training also needs only :math:`O(N d)` memory beyond
one block. The price is computing the logits twice. The backward is not itself
differentiable (no second derivatives).

**Linear attention** (Katharopoulos et al., 2020) replaces :math:`e^{\mathbf{q}^T\mathbf{k}}`
by a kernel :math:`\phi(\mathbf{q})^T\phi(\mathbf{k})` with a positive feature map
:math:`\phi(x) = \mathrm{elu}(x) + 1`, so the sums over keys factor out of the query:

.. math::  \mathbf{o}_n = \frac{\sum_m \phi(\mathbf{q}_n)^T\phi(\mathbf{k}_m)\,\mathbf{v}_m^T}
           {\sum_m \phi(\mathbf{q}_n)^T\phi(\mathbf{k}_m)}
           = \frac{\phi(\mathbf{q}_n)^T \mathbf{S}}{\phi(\mathbf{q}_n)^T \mathbf{z}}, \qquad
           \mathbf{S} = \sum_m \phi(\mathbf{k}_m)\mathbf{v}_m^T, \quad
           \mathbf{z} = \sum_m \phi(\mathbf{k}_m),

:math:`O(N d\, d_v)` time and :math:`O(d\, d_v)` extra memory instead of :math:`O(N M d)` and
:math:`O(NM)`. It is a *different* model, not an approximation that converges to softmax
attention: its weights are not a softmax of any scores.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vislearn.attention import check_qkv

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_NEG_INF = float("-inf")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 and bfloat16 are computed in float32 (as :mod:`vislearn.softmax` does)."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def _spans(size: int, block: int | None) -> list[slice]:
    """``[0:block], [block:2 block], ...`` covering ``range(size)``; one span if ``block`` is
    None."""
    if block is None or block >= size:
        return [slice(0, size)]
    return [slice(start, min(start + block, size)) for start in range(0, size, block)]


def _broadcasts_to(shape: torch.Size, target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` without enlarging it."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


def _mask_block(mask: torch.Tensor, rows: slice, cols: slice) -> tuple[Any, ...]:
    """The index of block ``[rows, cols]`` in a mask broadcastable to ``(..., N, M)``: an axis
    of size 1 (broadcast) is taken whole."""
    return (
        Ellipsis,
        rows if mask.shape[-2] != 1 else slice(None),
        cols if mask.shape[-1] != 1 else slice(None),
    )


def _add_mask_(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply a boolean (True = may attend) or additive mask block to ``scores`` in place."""
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill_(~mask, _NEG_INF)
    return scores.add_(mask.to(scores.dtype))


class _MemoryEfficientAttention(torch.autograd.Function):
    """Blockwise forward with a running-max softmax, blockwise backward by recomputation.

    All tensors arrive broadcast to common leading dims ``(...,)`` (as views) and in the
    compute dtype; gradients are reduced to the original shapes by the caller's autograd
    (``expand`` and ``to`` are differentiable).
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,  # (..., N, d)
        k: torch.Tensor,  # (..., M, d)
        v: torch.Tensor,  # (..., M, d_v)
        mask: torch.Tensor | None,  # broadcastable to (..., N, M), at least 2-D
        block_size: int,
        query_block_size: int | None,
    ) -> torch.Tensor:
        scale = q.shape[-1] ** -0.5
        n, m_keys = q.shape[-2], k.shape[-2]
        out = q.new_empty((*q.shape[:-1], v.shape[-1]))  # (..., N, d_v)
        lse = q.new_empty((*q.shape[:-1], 1))  # (..., N, 1): log-sum-exp of each query's row
        for rows in _spans(n, query_block_size):
            q_rows = q[..., rows, :] * scale  # (..., n_q, d)
            running_max = torch.full_like(lse[..., rows, :], _NEG_INF)  # (..., n_q, 1)
            denominator = torch.zeros_like(running_max)  # (..., n_q, 1)
            accumulator = torch.zeros_like(out[..., rows, :])  # (..., n_q, d_v)
            for cols in _spans(m_keys, block_size):
                scores = q_rows @ k[..., cols, :].mT  # (..., n_q, b)
                if mask is not None:
                    _add_mask_(scores, mask[_mask_block(mask, rows, cols)])
                new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
                # While a row has seen only -inf, shift by 0: exp(-inf - 0) = 0, not NaN.
                shift = new_max.masked_fill(new_max == _NEG_INF, 0.0)  # (..., n_q, 1)
                probs = scores.sub_(shift).exp_()  # (..., n_q, b), unnormalised, each <= 1
                rescale = (running_max - shift).exp_()  # (..., n_q, 1), e^{m - m'} <= 1
                denominator.mul_(rescale).add_(probs.sum(dim=-1, keepdim=True))
                accumulator.mul_(rescale).add_(probs @ v[..., cols, :])
                running_max = new_max
            empty = denominator == 0  # fully masked queries: output 0, as the naive kernel
            out[..., rows, :] = accumulator / denominator.masked_fill(empty, 1.0)
            # log-sum-exp for the backward; +inf for an empty row makes its p = e^{s - L} = 0.
            lse[..., rows, :] = (running_max + denominator.log()).masked_fill_(empty, float("inf"))
        ctx.save_for_backward(q, k, v, mask, out, lse)
        ctx.block_sizes = (block_size, query_block_size)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, mask, out, lse = ctx.saved_tensors
        block_size, query_block_size = ctx.block_sizes
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
        scale = q.shape[-1] ** -0.5
        grad_out = grad_out.to(out.dtype)
        delta = (grad_out * out).sum(dim=-1, keepdim=True)  # (..., N, 1): g^T o per query
        grad_q = torch.zeros_like(q)  # (..., N, d)
        grad_k = torch.zeros_like(k)  # (..., M, d)
        grad_v = torch.zeros_like(v)  # (..., M, d_v)
        grad_mask = torch.zeros_like(mask) if need_mask else None
        for rows in _spans(q.shape[-2], query_block_size):
            q_rows = q[..., rows, :] * scale  # (..., n_q, d)
            g_rows = grad_out[..., rows, :]  # (..., n_q, d_v)
            for cols in _spans(k.shape[-2], block_size):
                k_cols, v_cols = k[..., cols, :], v[..., cols, :]  # (..., b, d), (..., b, d_v)
                scores = q_rows @ k_cols.mT  # (..., n_q, b)
                if mask is not None:
                    block = _mask_block(mask, rows, cols)
                    _add_mask_(scores, mask[block])
                probs = scores.sub_(lse[..., rows, :]).exp_()  # (..., n_q, b): the softmax
                if need_v:
                    grad_v[..., cols, :] += probs.mT @ g_rows
                # dL/ds = p * (g^T v - delta), computed in the buffer of g^T v.
                grad_scores = (g_rows @ v_cols.mT).sub_(delta[..., rows, :]).mul_(probs)
                if need_q:
                    grad_q[..., rows, :] += grad_scores @ k_cols
                if need_k:
                    grad_k[..., cols, :] += grad_scores.mT @ q_rows
                if need_mask:
                    target = grad_mask[block]
                    target += grad_scores.sum_to_size(target.shape)
        grad_q.mul_(scale)
        return (
            grad_q if need_q else None,
            grad_k if need_k else None,
            grad_v if need_v else None,
            grad_mask,
            None,
            None,
        )


def memory_efficient_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    block_size: int = 128,
    query_block_size: int | None = 512,
) -> torch.Tensor:
    r"""Exact softmax attention, computed over blocks of keys with a running-max softmax.

    .. math::  \mathrm{softmax}\!\left(\frac{\mathbf{q}\mathbf{k}^T}{\sqrt{d}}
               + \text{mask}\right) \mathbf{v},

    equal, to rounding, to :func:`vislearn.attention.scaled_dot_product_attention`, with the
    same arguments and conventions, but the logits are held for one block of ``block_size``
    keys at a time (see the module's docstring for the algorithm). Differentiable: the
    backward pass recomputes the logits block by block instead of storing them, so neither
    inference nor training ever holds an ``N x M`` matrix. float16 and bfloat16 inputs are
    computed in float32 and the output rounded once.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``. The leading dims of ``q``, ``k``, ``v`` broadcast.
        mask: broadcastable to ``(..., N, M)``. Boolean: True where query ``n`` may attend to
            key ``m``. Floating point: added to the logits (``-inf`` forbids); it receives a
            gradient if it requires one (a learned bias). A query that may attend to no key
            gets a zero output.
        block_size: keys per block.
        query_block_size: queries per block; None: all queries at once. The logits are
            held ``query_block_size x block_size`` at a time (``N x block_size`` with None).
            The default block of 8 heads, 512 queries and 128 keys, 2 MiB in float32, stays
            in a CPU core's cache between the passes over it; on a GPU, where each block
            costs kernel launches, larger blocks (or None) are faster.

    Returns:
        ``(..., N, d_v)`` in the dtype of ``q``.
    """
    check_qkv(q, k, v)
    if block_size < 1 or (query_block_size is not None and query_block_size < 1):
        raise ValueError("block sizes must be positive")
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    n, m = q.shape[-2], k.shape[-2]
    dtype = _compute_dtype(q.dtype)
    # Views (expand) and casts; autograd sums and casts the gradients back to the inputs.
    q_ = q.to(dtype).expand(*lead, n, q.shape[-1])  # (..., N, d)
    k_ = k.to(dtype).expand(*lead, m, k.shape[-1])  # (..., M, d)
    v_ = v.to(dtype).expand(*lead, m, v.shape[-1])  # (..., M, d_v)
    if mask is not None:
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(f"mask must be boolean or floating point, got dtype {mask.dtype}")
        if not _broadcasts_to(mask.shape, (*lead, n, m)):
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the logits' shape "
                f"{(*lead, n, m)}"
            )
        mask = mask.reshape((1,) * (2 - mask.dim()) + mask.shape)  # at least (rows, cols)
        if mask.is_floating_point():
            mask = mask.to(dtype)
    out = _MemoryEfficientAttention.apply(q_, k_, v_, mask, block_size, query_block_size)
    return out.to(q.dtype)


FeatureMap = str | Callable[[torch.Tensor], torch.Tensor]


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\phi(x) = \mathrm{elu}(x) + 1`, positive everywhere (Katharopoulos et al.,
    2020): :math:`e^x` for :math:`x \le 0`, :math:`x + 1` above."""
    return F.elu(x) + 1.0


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: FeatureMap = "elu",
    *,
    causal: bool = False,
    eps: float = 1e-6,
    chunk_size: int = 128,
) -> torch.Tensor:
    r"""Linear attention (Katharopoulos et al., 2020): kernelised attention in ``O(N)``.

    .. math::  \mathbf{o}_n = \frac{\phi(\mathbf{q}_n)^T \sum_m \phi(\mathbf{k}_m)
               \mathbf{v}_m^T}{\phi(\mathbf{q}_n)^T \sum_m \phi(\mathbf{k}_m) + \varepsilon},
               \qquad \phi(x) = \mathrm{elu}(x) + 1,

    with the sums over every key, or over :math:`m \le n` if ``causal``. This is **not**
    softmax attention: the weight of key :math:`m` is :math:`\phi(\mathbf{q}_n)^T
    \phi(\mathbf{k}_m)` normalised, not :math:`e^{\mathbf{q}_n^T\mathbf{k}_m/\sqrt d}`
    normalised, so the outputs differ (and, as in the paper, the logits are not scaled by
    :math:`1/\sqrt d`). The :math:`\varepsilon` of the authors' code only guards against a
    denominator that underflows to zero.

    Non-causal: ``S = phi(k)^T v`` ``(..., d, d_v)`` and ``z = sum_m phi(k_m)`` once, then
    each query reads them: ``O(N d d_v)`` time, no ``N x M`` matrix. Causal: the prefix sums
    are carried from one chunk of ``chunk_size`` positions to the next, and inside a chunk
    the (lower-triangular) weights are formed explicitly; memory ``O(N d + chunk_size^2 +
    d d_v)`` per sequence, without the ``(N, d, d_v)`` tensor a plain cumulative sum would
    need. Autograd differentiates both forms.

    Args:
        q: ``(..., N, d)``; k: ``(..., M, d)``; v: ``(..., M, d_v)``. Causal needs ``N == M``.
        feature_map: ``"elu"`` or a function ``(..., d) -> (..., d')`` with positive values.
        causal: query ``n`` sees keys ``m <= n`` only.
        eps: added to the denominator.
        chunk_size: positions per chunk in the causal form.

    Returns:
        ``(..., N, d_v)`` in the dtype of ``q``.
    """
    check_qkv(q, k, v)
    if feature_map == "elu":
        phi = elu_feature_map
    elif callable(feature_map):
        phi = feature_map
    else:
        raise ValueError(f"feature_map must be 'elu' or a function, got {feature_map!r}")
    dtype = _compute_dtype(q.dtype)
    phi_q = phi(q.to(dtype))  # (..., N, d')
    phi_k = phi(k.to(dtype))  # (..., M, d')
    v = v.to(dtype)  # (..., M, d_v)
    if not causal:
        state = phi_k.mT @ v  # (..., d', d_v): S = sum_m phi(k_m) v_m^T
        normaliser = phi_k.sum(dim=-2).unsqueeze(-1)  # (..., d', 1): z = sum_m phi(k_m)
        out = (phi_q @ state) / (phi_q @ normaliser + eps)  # (..., N, d_v)
        return out.to(q.dtype)

    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys, got {q.shape[-2]} and {k.shape[-2]}"
        )
    lead = torch.broadcast_shapes(phi_q.shape[:-2], phi_k.shape[:-2], v.shape[:-2])
    state = phi_q.new_zeros((*lead, phi_k.shape[-1], v.shape[-1]))  # (..., d', d_v)
    normaliser = phi_q.new_zeros((*lead, phi_k.shape[-1], 1))  # (..., d', 1)
    outputs = []
    for span in _spans(q.shape[-2], chunk_size):
        fq, fk, vc = phi_q[..., span, :], phi_k[..., span, :], v[..., span, :]
        weights = (fq @ fk.mT).tril()  # (..., c, c): phi(q_n)^T phi(k_m) for m <= n in chunk
        numerator = fq @ state + weights @ vc  # (..., c, d_v): earlier chunks + this one
        denominator = fq @ normaliser + weights.sum(dim=-1, keepdim=True)  # (..., c, 1)
        outputs.append(numerator / (denominator + eps))
        state = state + fk.mT @ vc  # not in place: autograd needs each chunk's state
        normaliser = normaliser + fk.sum(dim=-2).unsqueeze(-1)
    return torch.cat(outputs, dim=-2).to(q.dtype)  # (..., N, d_v)


# =============================================================================================
# Measuring memory
# =============================================================================================


class _TensorMemoryTracker(TorchDispatchMode):
    """Counts the bytes of every tensor storage that PyTorch operators create while active,
    and frees them when the storage dies (storages keep their Python object for life, so a
    ``weakref.finalize`` on it runs exactly then)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._live.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs)) if _has_storage(t)}
        for t in tree_leaves(out):
            if not _has_storage(t):
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in self._live or key in inputs:  # a view or an in-place result
                continue
            nbytes = storage.nbytes()
            self._live.add(key)
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key, nbytes)
        return out


def _has_storage(x: object) -> bool:
    return isinstance(x, torch.Tensor) and x.layout == torch.strided


def peak_tensor_memory(fn: Callable[..., object], *args: object, **kwargs: object) -> int:
    """The most bytes of tensors that ``fn(*args, **kwargs)`` holds at any moment: the peak,
    during the call, of the total size of the tensors created by PyTorch operators in it
    and still alive (including its result; the inputs are not counted).

    Measured by intercepting every operator (a :class:`TorchDispatchMode`), so it works the
    same on every device, and on CUDA it is close to ``torch.cuda.max_memory_allocated``
    without the caching allocator's rounding. It cannot see scratch memory that a fused
    kernel allocates internally and frees before returning (PyTorch's fused attention
    keeps that to small per-thread blocks). The call runs with the current autograd mode;
    a backward pass inside ``fn`` is counted too.
    """
    tracker = _TensorMemoryTracker()
    with tracker:
        result = fn(*args, **kwargs)
        del result
    return tracker.peak
