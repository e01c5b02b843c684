"""Attention against PyTorch's kernels and modules, in both notations, and its symmetries."""

import math

import pytest
import torch
import torch.nn.functional as F

from vislearn.attention import (
    LearnedPositionEncoding,
    MultiHeadAttention,
    causal_mask,
    multi_head_attention,
    relative_position_bias,
    scaled_dot_product_attention,
    self_attention,
    sinusoidal_position_encoding,
    sinusoidal_position_encoding_2d,
)
from vislearn.testing import assert_close, make_generator, random_mask, random_tensor


def qkv(g, lead, n, m, d, d_v, device, dtype=torch.float32, requires_grad=False):
    """Random queries ``(*lead, n, d)``, keys ``(*lead, m, d)`` and values ``(*lead, m, d_v)``."""
    shapes = [(*lead, n, d), (*lead, m, d), (*lead, m, d_v)]
    return [
        random_tensor(s, g, dtype=dtype, device=device, requires_grad=requires_grad) for s in shapes
    ]


def lecture_params(g, d, d_q, d_v, device, dtype=torch.float32):
    """``omega_q, beta_q, omega_k, beta_k, omega_v, beta_v`` for inputs of ``d`` features."""
    shapes = [(d_q, d), (d_q,), (d_q, d), (d_q,), (d_v, d), (d_v,)]
    return [random_tensor(s, g, scale=0.5, dtype=dtype, device=device) for s in shapes]


# --- scaled_dot_product_attention ------------------------------------------------------------


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)], ids=str)
@pytest.mark.parametrize(("n", "m"), [(5, 5), (4, 7)])
def test_sdpa_matches_torch(device, lead, n, m):
    g = make_generator(n * m + len(lead))
    q, k, v = qkv(g, lead, n, m, d=8, d_v=6, device=device)
    expected = F.scaled_dot_product_attention(q, k, v)
    assert_close(
        scaled_dot_product_attention(q, k, v), expected, inputs=f"lead={lead}, N={n}, M={m}"
    )


def test_sdpa_bool_and_additive_masks_match_torch(device):
    g = make_generator(1)
    q, k, v = qkv(g, (2, 3), n=6, m=9, d=8, d_v=5, device=device)
    bool_mask = random_mask((2, 1, 6, 9), g, keep=0.6, device=device)  # broadcast over heads
    bool_mask[..., 0] = True  # every query keeps a key
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask)
    assert_close(scaled_dot_product_attention(q, k, v, bool_mask), expected, inputs="bool mask")

    additive = random_tensor((6, 9), g, scale=2.0, device=device)
    additive[0, 3] = float("-inf")
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
    assert_close(scaled_dot_product_attention(q, k, v, additive), expected, inputs="additive")


def test_sdpa_weights_are_a_distribution_over_the_allowed_keys(device):
    g = make_generator(2)
    q, k, v = qkv(g, (2,), n=5, m=7, d=4, d_v=3, device=device)
    mask = random_mask((2, 5, 7), g, device=device)
    mask[..., 2] = True
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert weights.shape == (2, 5, 7)
    assert (weights[~mask] == 0).all()
    assert_close(weights.sum(-1), torch.ones(2, 5, device=device))
    assert_close(out, weights @ v)


def test_sdpa_fully_masked_query_gives_zeros_and_finite_gradients(device):
    g = make_generator(3)
    q, k, v = qkv(g, (), n=3, m=4, d=4, d_v=2, device=device, requires_grad=True)
    mask = torch.tensor([[True, False, True, True], [False] * 4, [True] * 4], device=device)
    out = scaled_dot_product_attention(q, k, v, mask)
    assert (out[1] == 0).all()
    additive = torch.zeros(3, 4, device=device).masked_fill(~mask, float("-inf"))
    assert_close(scaled_dot_product_attention(q, k, v, additive), out)
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_sdpa_rejects_mismatched_shapes_and_integer_masks():
    q, k, v = torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(5, 2)
    with pytest.raises(ValueError, match="same size"):
        scaled_dot_product_attention(q, torch.zeros(5, 3), v)
    with pytest.raises(ValueError, match="5 keys but 6 values"):
        scaled_dot_product_attention(q, k, torch.zeros(6, 2))
    with pytest.raises(TypeError, match="boolean or floating point"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 5, dtype=torch.long))


def test_sdpa_gradcheck(device):
    g = make_generator(4)
    q, k, v = qkv(g, (2,), 3, 4, 3, 2, device, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True]] * 3, device=device)
    torch.autograd.gradcheck(lambda *t: scaled_dot_product_attention(*t, mask), (q, k, v))
    bias = random_tensor((3, 4), g, dtype=torch.float64, device=device, requires_grad=True)
    torch.autograd.gradcheck(scaled_dot_product_attention, (q, k, v, bias))  # a learned bias


def test_causal_mask():
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)


# --- the lecture's notation ------------------------------------------------------------------


@pytest.mark.parametrize("lead", [(), (2,)], ids=str)
def test_lecture_self_attention_is_batch_first_sdpa_transposed(device, lead):
    """Sa[X] = V Softmax[K^T Q / sqrt(D_q)] is SDPA on the rows X^T, transposed."""
    g = make_generator(5)
    D, N, D_q, D_v = 6, 5, 4, 3
    X = random_tensor((*lead, D, N), g, device=device)  # tokens are columns
    omega_q, beta_q, omega_k, beta_k, omega_v, beta_v = params = lecture_params(
        g, D, D_q, D_v, device
    )
    Sa, A = self_attention(X, *params, return_weights=True)  # (D_v, N), (N keys, N queries)
    assert Sa.shape == (*lead, D_v, N) and A.shape == (*lead, N, N)
    assert_close(A.sum(-2), torch.ones(*lead, N, device=device), name="column sums")

    x = X.mT  # batch-first: tokens are rows, (N, D)
    q, k, v = (
        F.linear(x, w, b) for w, b in [(omega_q, beta_q), (omega_k, beta_k), (omega_v, beta_v)]
    )
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)  # (N, D_v), (N, N)
    assert_close(Sa, out.mT, name="Sa[X]")
    assert_close(A, weights.mT, name="attention matrix")
    assert_close(Sa, F.scaled_dot_product_attention(q, k, v).mT, name="Sa[X] vs torch")

    unscaled = self_attention(X, *params, scale=False)
    assert_close(unscaled, F.scaled_dot_product_attention(q, k, v, scale=1.0).mT, name="unscaled")


def test_lecture_self_attention_gradcheck(device):
    g = make_generator(6)
    X = random_tensor((4, 5), g, dtype=torch.float64, device=device, requires_grad=True)
    params = [p.requires_grad_() for p in lecture_params(g, 4, 3, 2, device, torch.float64)]
    torch.autograd.gradcheck(self_attention, (X, *params))


@pytest.mark.parametrize("seed", range(5))
def test_self_attention_is_permutation_equivariant(device, seed):
    """Sa[X P] = Sa[X] P for every permutation matrix P; adding positions breaks it."""
    g = make_generator(seed)
    D, N = 8, 7
    X = random_tensor((D, N), g, device=device)
    params = lecture_params(g, D, d_q=4, d_v=5, device=device)
    P = torch.eye(N, device=device)[:, torch.randperm(N, generator=g).to(device)]  # (N, N)
    assert not torch.equal(P, torch.eye(N, device=device))
    assert_close(self_attention(X @ P, *params), self_attention(X, *params) @ P)

    E = sinusoidal_position_encoding(N, D, device=device).T  # (D, N), the lecture's X + P
    with_positions = self_attention(X @ P + E, *params)
    permuted = self_attention(X + E, *params) @ P
    assert (with_positions - permuted).abs().max() > 1e-2


# --- multi-head attention --------------------------------------------------------------------


def torch_mha_like(mha, dim, num_heads, context_dim=None):
    """A torch.nn.MultiheadAttention holding the same weights as our ``mha``."""
    kdim = context_dim or dim
    ref = torch.nn.MultiheadAttention(dim, num_heads, batch_first=True, kdim=kdim, vdim=kdim)
    with torch.no_grad():
        if context_dim is None:
            ref.in_proj_weight.copy_(
                torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight])
            )
        else:  # separate weights when the key and value features differ from the query's
            ref.q_proj_weight.copy_(mha.q_proj.weight)
            ref.k_proj_weight.copy_(mha.k_proj.weight)
            ref.v_proj_weight.copy_(mha.v_proj.weight)
        ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.to(mha.out_proj.weight.device)


def test_mha_matches_torch_self_attention(device):
    torch.manual_seed(0)
    B, N, D, h = 3, 6, 16, 4
    mha = MultiHeadAttention(D, h).to(device)
    ref = torch_mha_like(mha, D, h)
    x = random_tensor((B, N, D), make_generator(7), device=device)
    out, weights = mha(x, return_weights=True)
    expected, expected_weights = ref(x, x, x, average_attn_weights=False)
    assert_close(out, expected, name="output")
    assert_close(weights, expected_weights, name="weights (B, h, N, N)")


def test_mha_masks_match_torch_with_the_opposite_convention(device):
    """torch.nn.MultiheadAttention's boolean masks say True = may NOT attend."""
    torch.manual_seed(1)
    B, N, D, h = 2, 5, 12, 3
    g = make_generator(8)
    mha = MultiHeadAttention(D, h).to(device)
    ref = torch_mha_like(mha, D, h)
    x = random_tensor((B, N, D), g, device=device)

    allowed = causal_mask(N, device)  # (N, N)
    out = mha(x, mask=allowed)
    expected, _ = ref(x, x, x, attn_mask=~allowed)
    assert_close(out, expected, name="causal mask")

    padding = torch.tensor([[False] * N, [False] * 3 + [True] * 2], device=device)  # (B, M)
    out = mha(x, mask=~padding[:, None, None, :])  # (B, 1, 1, M): the same for every query
    expected, _ = ref(x, x, x, key_padding_mask=padding)
    assert_close(out, expected, name="key padding")

    additive = random_tensor((N, N), g, device=device)
    assert_close(mha(x, mask=additive), ref(x, x, x, attn_mask=additive)[0], name="additive")


def test_mha_cross_attention_matches_torch(device):
    torch.manual_seed(2)
    B, N, M, D, D_c, h = 2, 4, 7, 8, 5, 2
    g = make_generator(9)
    mha = MultiHeadAttention(D, h, context_dim=D_c).to(device)
    ref = torch_mha_like(mha, D, h, context_dim=D_c)
    x = random_tensor((B, N, D), g, device=device)
    context = random_tensor((B, M, D_c), g, device=device)
    out, weights = mha(x, context, return_weights=True)
    assert out.shape == (B, N, D) and weights.shape == (B, h, N, M)
    expected, expected_weights = ref(x, context, context, average_attn_weights=False)
    assert_close(out, expected, name="output")
    assert_close(weights, expected_weights, name="weights")


def test_functional_mha_takes_the_module_weights_and_no_biases(device):
    torch.manual_seed(3)
    mha = MultiHeadAttention(8, 2, qkv_bias=False).to(device)
    assert mha.q_proj.bias is None
    x = random_tensor((2, 3, 8), make_generator(10), device=device)
    out = multi_head_attention(
        x, None, mha.q_proj.weight, None, mha.k_proj.weight, None, mha.v_proj.weight, None,
        mha.out_proj.weight, mha.out_proj.bias, num_heads=2,
    )  # fmt: skip
    assert_close(out, mha(x))


def test_mha_rejects_heads_that_do_not_divide_dim():
    with pytest.raises(ValueError, match="divisible by num_heads=3"):
        MultiHeadAttention(8, 3)


# --- position encodings ----------------------------------------------------------------------


@pytest.mark.parametrize("dim", [8, 7])
def test_sinusoidal_encoding_follows_the_formula_interleaved(device, dim):
    pe = sinusoidal_position_encoding(50, dim, device=device)
    assert pe.shape == (50, dim) and pe.dtype == torch.float32 and pe.device.type == device.type
    for pos, i in [(0, 0), (1, 0), (3, 1), (17, 2), (49, 3)]:
        angle = pos / 10000 ** (2 * i / dim)
        assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
        if 2 * i + 1 < dim:
            assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)
    assert (pe[0, 0::2] == 0).all() and (pe[0, 1::2] == 1).all()  # interleaved sin, cos
    # Column 1 is cos(pos / base^0): a concatenated [sin | cos] layout would put sin there.
    assert_close(pe[:, 1], torch.cos(torch.arange(50.0, device=device)))
    if dim % 2:
        assert_close(
            pe[:, -1], torch.sin(torch.arange(50.0) / 10000 ** ((dim - 1) / dim)).to(device)
        )


def test_sinusoidal_encoding_2d_is_row_then_column(device):
    H, W, D = 3, 5, 12
    pe = sinusoidal_position_encoding_2d(H, W, D, device=device)
    assert pe.shape == (H * W, D)
    rows = sinusoidal_position_encoding(H, D // 2, device=device)
    cols = sinusoidal_position_encoding(W, D // 2, device=device)
    for r in range(H):
        for c in range(W):
            assert_close(pe[r * W + c], torch.cat([rows[r], cols[c]]), inputs=f"patch ({r}, {c})")
    with pytest.raises(ValueError, match="divisible by 4"):
        sinusoidal_position_encoding_2d(2, 2, 10)


def test_learned_position_encoding(device):
    torch.manual_seed(4)
    pos = LearnedPositionEncoding(256, 64).to(device)
    w = pos.weight.detach()
    assert w.abs().max() <= 0.04 and 0.015 < w.std() < 0.02
    x = random_tensor((2, 10, 64), make_generator(11), device=device)
    assert_close(pos(x), x + w[:10])
    with pytest.raises(ValueError, match="257 tokens"):
        pos(torch.zeros(1, 257, 64, device=device))


def test_relative_position_bias_depends_on_the_offset_only(device):
    g = make_generator(0)
    for queries, keys in [(4, 4), (3, 6), (6, 2)]:
        table = random_tensor((2, queries + keys - 1), g, device=device)  # one per head
        bias = relative_position_bias(table, queries, keys)  # (2, N, M)
        assert bias.shape == (2, queries, keys) and bias.device.type == device.type
        for n in range(queries):
            for m in range(keys):
                assert torch.equal(bias[:, n, m], table[:, m - n + queries - 1])
    with pytest.raises(ValueError, match="needs 7 offsets"):
        relative_position_bias(torch.zeros(6), 4, 4)
