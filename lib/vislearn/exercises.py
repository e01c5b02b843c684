"""Checks for the coding exercises of the book's chapters.

Each ``check_*`` function takes the reader's function, runs it on random cases drawn with
:mod:`vislearn.testing`, compares it with the ``vislearn`` reference or with a property the
answer must have, and prints one line: ``✓`` and what was verified, or ``✗`` and what is
wrong (which input, which shape, which property), never the expected values. It returns
whether the code passed and never raises, so a chapter notebook with an exercise not yet
done still runs to its end. The exercises themselves are in the chapters; their solutions
are on the solutions site (``make solutions-book``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from vislearn.attention import relative_position_bias, sinusoidal_position_encoding_2d
from vislearn.gnn import GINLayer
from vislearn.graphs import grid_graph, laplacian, to_dense_adjacency
from vislearn.lifting import FourierFeatures, mpjpe, procrustes_align
from vislearn.mae import patch_targets
from vislearn.testing import assert_close, make_generator, random_tensor, report_check
from vislearn.vit import attention_rollout

__all__ = [
    "check_fourier_features",
    "check_gin_layer",
    "check_grid_mask",
    "check_log_softmax",
    "check_norm_pix_targets",
    "check_polynomial_filter",
    "check_relative_position_bias",
    "check_rigid_mpjpe",
    "check_rollout_with_discard",
    "check_sincos_2d",
    "check_sliding_window_mask",
]


def _reported(name: str) -> Callable[[Callable], Callable[[Callable], bool]]:
    """A check as the reader calls it: ``check(answer)`` returns what it verified or raises
    ``AssertionError`` saying what is wrong; the decorated function prints that as one line
    under ``name`` and returns whether it passed (:func:`vislearn.testing.report_check`)."""

    def decorate(check: Callable[[Callable], str]) -> Callable[[Callable], bool]:
        @functools.wraps(check, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        def run(answer: Callable) -> bool:
            return report_check(name, lambda: check(answer))

        return run

    return decorate


def _is_close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    try:
        assert_close(actual, expected)
    except AssertionError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Conventions
# ---------------------------------------------------------------------------------------------


@_reported("log_softmax")
def check_log_softmax(log_softmax: Callable) -> str:
    """``log_softmax(x, dim)``: finite and exact for logits of any size."""
    g = make_generator(11)
    cases = [((4, 7), -1, 1.0), ((5, 3, 6), 1, 3.0), ((3, 8), -1, 1e4), ((6,), 0, 500.0)]
    for shape, dim, scale in cases:
        x = random_tensor(shape, g, scale=scale)
        case = f"x of shape {shape} with entries of size ~{scale:g}, dim={dim}"
        out = log_softmax(x, dim)
        if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
            raise AssertionError(f"NaN or infinite values for {case}: subtract the maximum")
        assert_close(out, torch.log_softmax(x, dim), name="log_softmax", inputs=case)
    return f"matches torch.log_softmax on {len(cases)} cases, logits up to 1e4 included"


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------


@_reported("relative_position_bias")
def check_relative_position_bias(bias: Callable) -> str:
    """``bias(table, num_queries, num_keys)`` -> ``(..., N, M)`` with ``B[n, m] = table[m - n +
    N - 1]``."""
    g = make_generator(12)
    for queries, keys, heads in [(4, 4, None), (3, 6, None), (5, 2, 3)]:
        size = queries + keys - 1
        table = random_tensor((size,) if heads is None else (heads, size), g)
        case = f"a table of shape {tuple(table.shape)}, {queries} queries, {keys} keys"
        out = bias(table, queries, keys)
        expected = relative_position_bias(table, queries, keys)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            diagonals = out[..., 1:, 1:] - out[..., :-1, :-1]
            if diagonals.abs().max() > 0:
                raise AssertionError(
                    f"for {case}: entries along a diagonal differ, but B[n, m] may depend "
                    "only on the offset m - n"
                )
            flipped = relative_position_bias(table.flip(-1), queries, keys)
            if queries == keys and _is_close(out, flipped):
                raise AssertionError(
                    f"for {case}: the offsets run the wrong way: table[0] is the offset "
                    "-(N - 1), the key N - 1 places before the query"
                )
        assert_close(out, expected, name="the bias", inputs=case)
    return "Toeplitz, and the right offset in every entry, for 3 tables (per head too)"


@_reported("sliding_window_mask")
def check_sliding_window_mask(window_mask: Callable) -> str:
    """``window_mask(n, window)`` -> boolean ``(n, n)``: query ``t`` sees keys ``t - window + 1
    .. t``."""
    for n, window in [(6, 1), (7, 3), (5, 5), (4, 9)]:
        case = f"n={n}, window={window}"
        mask = window_mask(n, window)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise AssertionError(f"for {case}: expected a boolean tensor (True = may attend)")
        if mask.shape != (n, n):
            raise AssertionError(f"for {case}: expected shape {(n, n)}, got {tuple(mask.shape)}")
        query, key = torch.arange(n)[:, None], torch.arange(n)[None, :]
        if (mask & (key > query)).any():
            raise AssertionError(f"for {case}: a query may attend to a later key (the future)")
        if not mask.diagonal().all():
            raise AssertionError(f"for {case}: a query must attend to itself")
        seen = mask.sum(dim=1)
        expected = torch.clamp(query[:, 0] + 1, max=window)
        if not torch.equal(seen, expected):
            row = int((seen != expected).nonzero()[0])
            raise AssertionError(
                f"for {case}: query {row} may attend to {int(seen[row])} keys; with a window "
                f"of {window} it should see itself and the {window - 1} keys before it, as "
                "far as they exist"
            )
        allowed = mask.nonzero()
        if (allowed[:, 0] - allowed[:, 1] >= window).any():
            raise AssertionError(f"for {case}: a key outside the window is allowed")
    return "causal, and each query sees exactly the last `window` keys, for 4 sizes"


# ---------------------------------------------------------------------------------------------
# Vision Transformer
# ---------------------------------------------------------------------------------------------


@_reported("sincos_2d")
def check_sincos_2d(encoding: Callable) -> str:
    """``encoding(height, width, dim)`` -> ``(H*W, D)``, as
    :func:`vislearn.attention.sinusoidal_position_encoding_2d`."""
    for height, width, dim in [(4, 4, 16), (3, 5, 8), (2, 7, 32)]:
        case = f"a {height} x {width} grid, dim={dim}"
        out = encoding(height, width, dim)
        expected = sinusoidal_position_encoding_2d(height, width, dim)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            by_row = out.view(height, width, dim)
            if height > 1 and width > 1:
                first, second = by_row[:, :, : dim // 2], by_row[:, :, dim // 2 :]
                if (first[:, 1:] - first[:, :-1]).abs().max() > 1e-6:
                    raise AssertionError(
                        f"for {case}: the first half of the channels changes along a row of "
                        "patches; it should encode the patch's row index only"
                    )
                if (second[1:] - second[:-1]).abs().max() > 1e-6:
                    raise AssertionError(
                        f"for {case}: the second half of the channels changes down a column; "
                        "it should encode the patch's column index only"
                    )
        assert_close(out, expected, name="the encoding", inputs=case)
    return "the row in the first half of the channels, the column in the second, 3 grids"


@_reported("rollout_with_discard")
def check_rollout_with_discard(rollout: Callable) -> str:
    """``rollout(maps, discard_ratio)`` -> ``(B, T, T)``: attention rollout that zeroes the
    smallest ``discard_ratio`` of each fused layer's ``T x T`` weights first."""
    g = make_generator(13)
    for layers, batch, heads, tokens, ratio in [(2, 1, 2, 5, 0.0), (3, 2, 4, 7, 0.5),
                                                 (1, 3, 1, 4, 0.9)]:  # fmt: skip
        maps = [random_tensor((batch, heads, tokens, tokens), g).softmax(-1)
                for _ in range(layers)]  # fmt: skip
        case = f"{layers} layers of shape {(batch, heads, tokens, tokens)}, ratio {ratio}"
        out = rollout(maps, ratio)
        if isinstance(out, torch.Tensor) and out.shape == (batch, tokens, tokens):
            sums = out.sum(dim=-1)
            if (sums - 1).abs().max() > 1e-4:
                raise AssertionError(
                    f"for {case}: the rows sum to values between {sums.min():.3f} and "
                    f"{sums.max():.3f}; each row of the result should be a distribution"
                )
            if ratio > 0 and _is_close(out, attention_rollout(maps)):
                raise AssertionError(f"for {case}: nothing was discarded")
        assert_close(out, attention_rollout(maps, discard_ratio=ratio), name="rollout",
                     inputs=case)  # fmt: skip
    return "rows sum to one, and the right weights are dropped, for 3 stacks of maps"


# ---------------------------------------------------------------------------------------------
# Masked self-supervision
# ---------------------------------------------------------------------------------------------


@_reported("norm_pix_targets")
def check_norm_pix_targets(targets: Callable) -> str:
    """``targets(images, patch_size)`` -> ``(B, N, P*P*C)``, each patch standardised."""
    g = make_generator(14)
    for shape, patch in [((2, 1, 8, 8), 2), ((3, 3, 12, 8), 4)]:
        images = random_tensor(shape, g)
        case = f"images of shape {shape}, patch size {patch}"
        out = targets(images, patch)
        expected = patch_targets(images, patch, norm_pix=True)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            if out.mean(dim=-1).abs().max() > 1e-4:
                raise AssertionError(f"for {case}: a patch's target should have mean 0")
            biased = patch_targets(images, patch)
            biased = (biased - biased.mean(-1, keepdim=True)) / (
                biased.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()  # fmt: skip
            if _is_close(out, biased):
                raise AssertionError(
                    f"for {case}: you divided by the biased standard deviation; MAE uses "
                    "the unbiased variance (torch.var's default) plus eps = 1e-6"
                )
        assert_close(out, expected, name="the targets", inputs=case)
    return "each patch standardised by its own mean and variance, 2 image batches"


@_reported("grid_mask")
def check_grid_mask(grid_mask: Callable) -> str:
    """``grid_mask(grid_h, grid_w, generator)`` -> ``(grid_h * grid_w,)``, 1 = hidden, with one
    visible patch at a random place in every 2 x 2 block (75% masked)."""
    g = make_generator(15)
    visible_at = set()
    for grid_h, grid_w in [(4, 4), (2, 6), (6, 4)] * 4:
        case = f"a {grid_h} x {grid_w} grid of patches"
        mask = grid_mask(grid_h, grid_w, g)
        if not isinstance(mask, torch.Tensor) or mask.shape != (grid_h * grid_w,):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise AssertionError(f"for {case}: expected a ({grid_h * grid_w},) tensor, got {got}")
        if not ((mask == 0) | (mask == 1)).all():
            raise AssertionError(f"for {case}: the mask should hold 0 (visible), 1 (hidden)")
        blocks = mask.view(grid_h // 2, 2, grid_w // 2, 2).permute(0, 2, 1, 3).flatten(2)
        visible = (blocks == 0).sum(dim=-1)  # (grid_h / 2, grid_w / 2)
        if not (visible == 1).all():
            raise AssertionError(
                f"for {case}: some 2 x 2 blocks have {int(visible.min())} or "
                f"{int(visible.max())} visible patches; each should have exactly one"
            )
        visible_at |= set((blocks == 0).float().argmax(dim=-1).flatten().tolist())
    if len(visible_at) < 4:
        raise AssertionError(
            f"the visible patch took only {len(visible_at)} of the 4 places in its block over "
            "12 masks: it should be drawn at random (from the generator) in every block"
        )
    return "one visible patch per 2 x 2 block, at a random place, on 12 masks"


# ---------------------------------------------------------------------------------------------
# Graphs
# ---------------------------------------------------------------------------------------------


def _test_graphs(g: torch.Generator) -> list[tuple[str, torch.Tensor, int]]:
    """Small graphs: a grid (every degree 2 to 4), a directed star and a random graph with an
    isolated node."""
    grid, _ = grid_graph(3, 4)
    star = torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]])  # every edge arrives at node 0
    pairs = torch.randint(0, 6, (2, 12), generator=g)
    pairs = pairs[:, pairs[0] != pairs[1]]
    random = torch.cat([pairs, pairs.flip(0)], dim=1).unique(dim=1)  # undirected, no
    # repeated edge; node 6 isolated
    return [("a 3 x 4 grid", grid, 12), ("a directed star", star, 5),
            ("a random graph with an isolated node", random, 7)]  # fmt: skip


@_reported("gin_layer")
def check_gin_layer(gin_layer: Callable) -> str:
    """``gin_layer(x, edge_index, mlp, eps)`` -> ``mlp((1 + eps) x_i + sum_{j -> i} x_j)``,
    as :class:`vislearn.gnn.GINLayer`."""
    g = make_generator(16)
    for (name, edge_index, n), eps in zip(_test_graphs(g), [0.0, 0.5, -0.25], strict=True):
        reference = GINLayer(5, 3, hidden_dim=6, eps=eps)
        with torch.no_grad():
            for p in reference.parameters():
                p.copy_(random_tensor(p.shape, g))
        x = random_tensor((n, 5), g)
        case = f"{name}, eps={eps}"
        out = gin_layer(x, edge_index, reference.nn, eps)
        expected = reference(x, edge_index)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            source, target = edge_index
            degree = torch.zeros(n).index_add_(0, target, torch.ones(len(target)))
            total = torch.zeros(n, 5).index_add_(0, target, x[source])
            mean = total / degree.clamp_min(1)[:, None]
            if not _is_close(out, expected) and _is_close(out, reference.nn((1 + eps) * x + mean)):
                raise AssertionError(f"for {case}: you averaged the neighbours; GIN sums them")
            outgoing = torch.zeros(n, 5).index_add_(0, source, x[target])
            if not _is_close(out, expected) and _is_close(
                out, reference.nn((1 + eps) * x + outgoing)
            ):
                raise AssertionError(
                    f"for {case}: messages flowed target -> source; node i sums its "
                    "neighbours j over the edges j -> i (edge_index is [source; target])"
                )
        assert_close(out, expected, name="the GIN layer", inputs=case)
    return "sums over incoming edges, (1 + eps) on the node itself, on 3 graphs"


@_reported("polynomial_filter")
def check_polynomial_filter(graph_filter: Callable) -> str:
    """``graph_filter(x, edge_index, thetas)`` -> ``sum_k thetas[k] L^k x`` with ``L = D - A``
    (row sums: out-degrees), ``x`` ``(N, F)``."""
    g = make_generator(17)
    for (name, edge_index, n), thetas in zip(
        _test_graphs(g), [[0.5, -1.0], [1.0, 0.3, -0.2], [0.0, 0.0, 0.0, 1.0]], strict=True
    ):
        x = random_tensor((n, 3), g, dtype=torch.float64)
        case = f"{name}, thetas={thetas}"
        L = laplacian(to_dense_adjacency(edge_index, n, dtype=torch.float64))  # (N, N) D - A
        expected = sum(t * torch.linalg.matrix_power(L, k) @ x for k, t in enumerate(thetas))
        out = graph_filter(x, edge_index, thetas)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            Lt = L.mT.contiguous()
            transposed = sum(t * torch.linalg.matrix_power(Lt, k) @ x for k, t in enumerate(thetas))
            if not _is_close(out, expected) and _is_close(out, transposed):
                raise AssertionError(
                    f"for {case}: you applied L^T; on a directed graph (L x)_i sums over the "
                    "edges i -> j, the row of A, with d_i the out-degree"
                )
        assert_close(out, expected, name="g(L) x", inputs=case)
    return "sum_k theta_k L^k x from the edge list, on 3 graphs (a directed one too)"


# ---------------------------------------------------------------------------------------------
# Lifting
# ---------------------------------------------------------------------------------------------


@_reported("fourier_features")
def check_fourier_features(features: Callable) -> str:
    """``features(v, B)`` -> ``[cos(2 pi v B^T), sin(2 pi v B^T)]``, ``(..., 2m)``."""
    g = make_generator(18)
    for seed, (shape, m, sigma) in enumerate([((5, 2), 4, 0.5), ((3, 7, 2), 8, 2.0),
                                              ((6, 3), 5, 1.0)]):  # fmt: skip
        reference = FourierFeatures(shape[-1], m, sigma, seed=seed)
        v = random_tensor(shape, g)
        case = f"v of shape {shape}, B of shape {tuple(reference.B.shape)}"
        out = features(v, reference.B)
        expected = reference(v)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            if _is_close(out, expected.roll(m, dims=-1)):
                raise AssertionError(f"for {case}: the cosines come first, then the sines")
            if _is_close(out, reference(v / (2 * torch.pi))):
                raise AssertionError(f"for {case}: the angles lack the factor 2 pi")
        assert_close(out, expected, name="gamma(v)", inputs=case)
    return "[cos 2 pi B v; sin 2 pi B v] for 3 batches of points"


@_reported("rigid_mpjpe")
def check_rigid_mpjpe(error: Callable) -> str:
    """``error(pred, target, mask)`` -> ``(B,)``: MPJPE after the best rotation and
    translation (no scale), fitted and averaged over the observed points."""
    g = make_generator(19)
    for batch, n, missing in [(3, 8, 0.0), (4, 12, 0.3), (2, 5, 0.2)]:
        target = random_tensor((batch, n, 3), g, dtype=torch.float64)
        pred = 1.5 * target + 0.1 * random_tensor((batch, n, 3), g, dtype=torch.float64)
        mask = torch.rand(batch, n, generator=g) >= missing
        mask[:, :4] = True
        case = f"{batch} samples of {n} points, {int((~mask).sum())} unobserved"
        out = error(pred, target, mask)
        expected = mpjpe(procrustes_align(pred, target, mask, scale=False), target, mask)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            scaled = mpjpe(procrustes_align(pred, target, mask), target, mask)
            if _is_close(out, scaled):
                raise AssertionError(f"for {case}: you fitted the scale too (that is PA-MPJPE)")
            everywhere = mpjpe(procrustes_align(pred, target, scale=False), target, mask)
            if missing and _is_close(out, everywhere):
                raise AssertionError(f"for {case}: the alignment used the unobserved points")
        assert_close(out, expected, name="MPJPE", inputs=case)
    return "rotation and translation fitted on the observed points, no scale, 3 batches"
