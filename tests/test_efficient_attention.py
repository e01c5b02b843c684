"""Blockwise exact attention against the naive kernel (values and gradients), and linear
attention against a direct evaluation of its own formula."""

import pytest
import torch

from vislearn.attention import causal_mask, scaled_dot_product_attention
from vislearn.efficient_attention import linear_attention, memory_efficient_attention
from vislearn.testing import assert_close, make_generator, random_mask, random_tensor


def qkv(g, lead, n, m, d, d_v, device, dtype=torch.float64, scale=1.0):
    """Queries ``(*lead, n, d)``, keys ``(*lead, m, d)``, values ``(*lead, m, d_v)``, all
    requiring gradients."""
    shapes = [(*lead, n, d), (*lead, m, d), (*lead, m, d_v)]
    scales = [scale, scale, 1.0]
    return [
        random_tensor(s, g, scale=c, dtype=dtype, device=device, requires_grad=True)
        for s, c in zip(shapes, scales, strict=True)
    ]


def assert_same_values_and_gradients(q, k, v, mask=None, inputs="", **blocks):
    """memory_efficient_attention equals the naive kernel, and so do the gradients with
    respect to q, k, v (and an additive mask that requires grad) for a random upstream."""
    out = memory_efficient_attention(q, k, v, mask, **blocks)
    expected = scaled_dot_product_attention(q, k, v, mask)
    assert_close(out, expected, inputs=inputs)
    wrt = [q, k, v] + ([mask] if mask is not None and mask.requires_grad else [])
    upstream = torch.randn(expected.shape, dtype=expected.dtype, generator=make_generator(9))
    upstream = upstream.to(expected.device)
    grads = torch.autograd.grad(out, wrt, upstream)
    expected_grads = torch.autograd.grad(expected, wrt, upstream)
    for name, grad, expected_grad in zip("qkvm", grads, expected_grads, strict=False):
        assert_close(grad, expected_grad, name=f"d loss / d {name}", inputs=inputs)


# --- memory_efficient_attention ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "block_size", "query_block_size"),
    [(37, 37, 8, None), (37, 37, 16, 5), (13, 50, 7, None), (50, 13, 64, 16), (1, 9, 1, 1)],
)
def test_equals_naive_attention_for_any_sizes_and_blocks(
    device, n, m, block_size, query_block_size
):
    # Odd N, N != M, block sizes that do not divide N or M, blocks larger than the input.
    g = make_generator(n + m)
    q, k, v = qkv(g, (2, 3), n, m, d=8, d_v=5, device=device)
    blocks = {"block_size": block_size, "query_block_size": query_block_size}
    assert_same_values_and_gradients(q, k, v, inputs=f"N={n}, M={m}, {blocks}", **blocks)


@pytest.mark.parametrize("lead", [(), (4,), (2, 3, 2)], ids=str)
def test_any_leading_dims_and_broadcasting(device, lead):
    g = make_generator(len(lead))
    q, k, v = qkv(g, lead, n=11, m=19, d=4, d_v=6, device=device)
    assert_same_values_and_gradients(q, k, v, inputs=f"lead={lead}", block_size=4)
    # Keys and values shared by every head: leading dims broadcast, gradients are summed.
    q, k, v = qkv(g, (2, 3), n=9, m=10, d=4, d_v=3, device=device)
    k_shared = k[:, :1].detach().requires_grad_()
    v_shared = v[:1].detach().requires_grad_()
    assert_same_values_and_gradients(q, k_shared, v_shared, inputs="broadcast", block_size=3)


def test_boolean_mask_with_fully_masked_queries(device):
    g = make_generator(1)
    q, k, v = qkv(g, (2, 3), n=17, m=23, d=8, d_v=5, device=device)
    mask = random_mask((2, 1, 17, 23), g, keep=0.5, device=device)  # broadcast over heads
    mask[0, :, 4] = False  # query 4 of sequence 0 may attend to nothing
    mask[1, :, :, 8:] = False  # sequence 1: keys 8.. are padding (whole later blocks masked)
    out = memory_efficient_attention(q, k, v, mask, block_size=4)
    assert (out[0, :, 4] == 0).all(), "a fully masked query must give zeros"
    assert_same_values_and_gradients(q, k, v, mask, inputs="bool mask", block_size=4)
    assert_same_values_and_gradients(
        q, k, v, mask[0, 0], inputs="(N, M) bool mask", block_size=5, query_block_size=3
    )


def test_additive_masks_and_their_gradient(device):
    g = make_generator(2)
    q, k, v = qkv(g, (2, 3), n=12, m=21, d=8, d_v=4, device=device)
    bias = random_tensor((3, 12, 21), g, scale=2.0, dtype=torch.float64, device=device)
    bias[1, 5] = float("-inf")  # a fully masked query through the additive mask
    bias[0, :, 3] = float("-inf")
    assert_same_values_and_gradients(q, k, v, bias, inputs="additive mask", block_size=5)
    # A learned bias (as in relative position biases) gets its gradient, summed over the
    # dims it is broadcast along: here over batch and queries.
    learned = random_tensor((3, 1, 21), g, dtype=torch.float64, device=device).requires_grad_()
    assert_same_values_and_gradients(
        q, k, v, learned, inputs="learned bias", block_size=4, query_block_size=5
    )


def test_large_logits_need_the_running_max(device):
    # Logits of order 1e3 overflow exp() even in float64 (beyond 709) unless shifted, and the
    # maximum of a row moves from block to block, so earlier sums must be rescaled.
    g = make_generator(3)
    q, k, v = qkv(g, (2,), n=33, m=40, d=8, d_v=3, device=device, scale=30.0)
    logits = q @ k.mT / 8**0.5
    assert logits.abs().max() > 1e3
    assert torch.isinf(torch.exp(logits)).any(), "the naive formula should overflow here"
    assert_same_values_and_gradients(q, k, v, inputs="logits ~ 1e3", block_size=6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_float32_and_low_precision_inputs(device, dtype):
    g = make_generator(4)
    q, k, v = (t.detach() for t in qkv(g, (2, 4), n=70, m=45, d=16, d_v=8, device=device))
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    mask = causal_mask(70, device=device)[:, :45]
    out = memory_efficient_attention(q, k, v, mask, block_size=16)
    # Reference: the naive kernel in float32 on the same (rounded) inputs, rounded once.
    expected = scaled_dot_product_attention(q.float(), k.float(), v.float(), mask).to(dtype)
    assert_close(out, expected, inputs=f"{dtype}")


def test_inputs_are_checked():
    q, k, v = torch.zeros(2, 5, 4), torch.zeros(2, 6, 4), torch.zeros(2, 6, 3)
    with pytest.raises(ValueError, match="same size"):
        memory_efficient_attention(q, torch.zeros(2, 6, 3), v)
    with pytest.raises(ValueError, match="values"):
        memory_efficient_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="broadcast"):
        memory_efficient_attention(q, k, v, torch.ones(3, 5, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean or floating"):
        memory_efficient_attention(q, k, v, torch.ones(5, 6, dtype=torch.long))


def test_training_memory_stays_blockwise_on_cuda(device):
    if device.type != "cuda":
        pytest.skip("peak memory is measured with the CUDA allocator")
    g = make_generator(5)
    n = 4096
    q, k, v = qkv(g, (1, 4), n, n, d=32, d_v=32, device=device, dtype=torch.float32)
    peaks = {}
    for name, fn in [
        ("naive", scaled_dot_product_attention),
        ("blocks", memory_efficient_attention),
    ]:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn(q, k, v).sum().backward()
        torch.cuda.synchronize(device)
        peaks[name] = torch.cuda.max_memory_allocated(device) - before
        q.grad = k.grad = v.grad = None
    logits_bytes = 4 * n * n * 4  # one (1, 4, N, N) float32 matrix
    assert peaks["naive"] >= logits_bytes
    assert peaks["blocks"] < logits_bytes / 8, peaks


# --- linear_attention -------------------------------------------------------------------------


def direct_linear_attention(q, k, v, phi, causal=False, eps=1e-6):
    """The O(N^2) form of linear attention: weights phi(q_n)^T phi(k_m), normalised."""
    weights = phi(q) @ phi(k).mT  # (..., N, M)
    if causal:
        weights = weights.tril()
    return (weights @ v) / (weights.sum(dim=-1, keepdim=True) + eps)


def elu_plus_one(x):
    return torch.nn.functional.elu(x) + 1


@pytest.mark.parametrize(("n", "m"), [(13, 13), (9, 20)])
def test_linear_attention_matches_its_quadratic_form(device, n, m):
    g = make_generator(n * m)
    q, k, v = qkv(g, (2, 3), n, m, d=6, d_v=4, device=device)
    out = linear_attention(q, k, v)
    expected = direct_linear_attention(q, k, v, elu_plus_one)
    assert_close(out, expected, inputs=f"N={n}, M={m}")
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v))
    for name, grad, expected_grad in zip("qkv", grads, expected_grads, strict=True):
        assert_close(grad, expected_grad, name=f"d loss / d {name}")


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 64])
def test_causal_linear_attention_matches_its_quadratic_form(device, chunk_size):
    g = make_generator(chunk_size)
    q, k, v = qkv(g, (2,), 23, 23, d=5, d_v=3, device=device)
    out = linear_attention(q, k, v, causal=True, chunk_size=chunk_size)
    expected = direct_linear_attention(q, k, v, elu_plus_one, causal=True)
    assert_close(out, expected, inputs=f"chunk_size={chunk_size}")
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v))
    for name, grad, expected_grad in zip("qkv", grads, expected_grads, strict=True):
        assert_close(grad, expected_grad, name=f"d loss / d {name}")
    # Causality: changing the last key and value changes only the last output.
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, -1] += 1.0
    v2[:, -1] -= 2.0
    out2 = linear_attention(q, k2, v2, causal=True, chunk_size=chunk_size)
    assert_close(out2[:, :-1], out[:, :-1].detach())


def test_linear_attention_with_a_custom_feature_map_is_not_softmax_attention(device):
    g = make_generator(7)
    q, k, v = (t.detach() for t in qkv(g, (3,), 8, 8, d=4, d_v=4, device=device))
    out = linear_attention(q, k, v, feature_map=torch.exp)
    assert_close(out, direct_linear_attention(q, k, v, torch.exp))
    # phi = exp gives weights exp(q)^T exp(k), still not the softmax of q^T k / sqrt(d).
    assert (out - scaled_dot_product_attention(q, k, v)).abs().max() > 1e-2
    with pytest.raises(ValueError, match="feature_map"):
        linear_attention(q, k, v, feature_map="relu")
    with pytest.raises(ValueError, match="as many queries as keys"):
        linear_attention(q, k[:, :5], v[:, :5], causal=True)
