"""The reference softmax kernels against torch.softmax and their documented edge cases."""

import pytest
import torch

from vislearn.softmax import masked_softmax, naive_softmax, softmax
from vislearn.testing import assert_close, make_generator, random_mask, random_shape, random_tensor

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def torch_softmax(x, dim):
    """torch.softmax, computed in float32 for float16/bfloat16 as the reference does."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(x.float(), dim=dim).to(x.dtype)
    return torch.softmax(x, dim=dim)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_softmax_matches_torch_on_every_axis(device, dtype, seed):
    g = make_generator(seed)
    shape = random_shape(g, ndim=3)
    x = random_tensor(shape, g, scale=5.0, dtype=dtype, device=device)
    for dim in range(-3, 3):
        expected = torch_softmax(x, dim)
        assert_close(softmax(x, dim=dim), expected, inputs=f"shape {shape}, dim={dim}")


def test_softmax_survives_logits_that_overflow_the_naive_formula(device):
    x = torch.tensor([[1e4, 1e4 - 1.0, 0.0], [-1e4, 0.0, 3.0]], device=device)
    assert torch.isnan(naive_softmax(x)).any(), "the naive formula should overflow here"
    assert_close(softmax(x), torch.softmax(x, dim=-1))


def test_softmax_gradient_matches_torch(device):
    g = make_generator(0)
    x = random_tensor((4, 7), g, scale=3.0, dtype=torch.float64, device=device, requires_grad=True)
    torch.autograd.gradcheck(lambda t: softmax(t, dim=0), (x,))
    upstream = random_tensor((4, 7), g, dtype=torch.float64, device=device)
    (grad,) = torch.autograd.grad(softmax(x, dim=0), x, upstream)
    (expected,) = torch.autograd.grad(torch.softmax(x, dim=0), x, upstream)
    assert_close(grad, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_softmax_matches_softmax_over_the_kept_positions(device, dtype):
    g = make_generator(1)
    x = random_tensor((6, 5, 9), g, scale=4.0, dtype=dtype, device=device)
    mask = random_mask((6, 5, 9), g, device=device)
    mask[..., 0] = True  # at least one kept position per row
    expected = torch_softmax(x.masked_fill(~mask, float("-inf")), dim=-1)
    weights = masked_softmax(x, mask, dim=-1)
    assert_close(weights, expected)
    assert (weights[~mask] == 0).all()


def test_masked_softmax_broadcasts_the_mask_and_respects_dim(device):
    g = make_generator(2)
    x = random_tensor((3, 4, 5), g, device=device)
    mask = random_mask((4, 1), g, device=device)  # broadcast over batch and the last axis
    mask[0] = True
    weights = masked_softmax(x, mask, dim=1)
    expected = torch.softmax(x.masked_fill(~mask, float("-inf")), dim=1)
    assert_close(weights, expected)


def test_fully_masked_slice_gives_zeros_and_finite_gradients(device):
    x = torch.randn(2, 4, device=device, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, False], [False] * 4], device=device)
    weights = masked_softmax(x, mask)
    assert (weights[1] == 0).all()
    assert_close(weights[0].sum(), torch.tensor(1.0, dtype=torch.float64, device=device))
    weights.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_masked_softmax_rejects_a_non_boolean_mask():
    with pytest.raises(TypeError, match="boolean"):
        masked_softmax(torch.zeros(3), torch.ones(3))
