"""Convolution as a matrix, and the multiply-add counts of standard and depthwise separable
convolutions, against PyTorch's own layers."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vislearn.conv import (
    DepthwiseSeparableConv2d,
    conv1d_as_matrix,
    conv2d_as_matrix,
    conv_macs,
    count_macs,
    depthwise_separable_macs,
)
from vislearn.testing import assert_close, make_generator, random_tensor

DTYPES = [torch.float64, torch.float32]


@pytest.fixture(autouse=True)
def _quiet_even_same_padding():
    """PyTorch warns that 'same' padding of an even kernel copies the input; expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same'")
        yield


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("padding", ["same", "valid", 2])
def test_conv1d_matrix_equals_conv1d(device, dtype, kernel_size, padding):
    g = make_generator(kernel_size)
    n = 11
    kernel = random_tensor((kernel_size,), g, dtype=dtype, device=device)
    x = random_tensor((3, n), g, dtype=dtype, device=device)  # three signals
    W = conv1d_as_matrix(kernel, n, padding)
    expected = F.conv1d(x[:, None], kernel[None, None], padding=padding)[:, 0]  # (3, n_out)
    assert W.device.type == device.type and W.dtype == dtype
    assert_close(x @ W.T, expected, inputs=f"K={kernel_size}, n={n}, padding={padding!r}")


def test_conv1d_matrix_is_banded_toeplitz(device):
    kernel = torch.tensor([1.0, 2.0, 3.0], device=device)
    W = conv1d_as_matrix(kernel, 5)
    expected = torch.tensor(
        [
            [2.0, 3.0, 0.0, 0.0, 0.0],
            [1.0, 2.0, 3.0, 0.0, 0.0],
            [0.0, 1.0, 2.0, 3.0, 0.0],
            [0.0, 0.0, 1.0, 2.0, 3.0],
            [0.0, 0.0, 0.0, 1.0, 2.0],
        ],
        device=device,
    )
    assert_close(W, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_shape", [(3, 3), (1, 1), (2, 2), (2, 5), (4, 3), (5, 5)])
@pytest.mark.parametrize("image_shape", [(6, 9), (7, 4), (5, 5)])
def test_conv2d_matrix_equals_conv2d(device, dtype, kernel_shape, image_shape):
    g = make_generator(sum(kernel_shape) * 31 + sum(image_shape))
    height, width = image_shape
    kernel = random_tensor(kernel_shape, g, dtype=dtype, device=device)
    x = random_tensor((2, height, width), g, dtype=dtype, device=device)  # two images
    W = conv2d_as_matrix(kernel, height, width)
    assert W.shape == (height * width, height * width)
    expected = F.conv2d(x[:, None], kernel[None, None], padding="same")[:, 0]  # (2, H, W)
    actual = (x.reshape(2, -1) @ W.T).reshape(2, height, width)  # row-major flattening
    assert_close(actual, expected, inputs=f"kernel {kernel_shape}, image {image_shape}")


@pytest.mark.parametrize("padding", ["valid", 1])
def test_conv2d_matrix_other_paddings(device, padding):
    g = make_generator(7)
    kernel = random_tensor((3, 2), g, dtype=torch.float64, device=device)
    x = random_tensor((5, 6), g, dtype=torch.float64, device=device)
    expected = F.conv2d(x[None, None], kernel[None, None], padding=padding)[0, 0]
    W = conv2d_as_matrix(kernel, 5, 6, padding)
    assert_close((W @ x.reshape(-1)).reshape(expected.shape), expected)


def test_conv_matrices_are_differentiable_in_the_kernel(device):
    g = make_generator(3)
    kernel = random_tensor((3, 3), g, dtype=torch.float64, device=device, requires_grad=True)
    x = random_tensor((4, 5), g, dtype=torch.float64, device=device)
    torch.autograd.gradcheck(lambda k: conv2d_as_matrix(k, 4, 5) @ x.reshape(-1), (kernel,))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="padding"):
        conv1d_as_matrix(torch.ones(3), 5, padding="full")
    with pytest.raises(ValueError, match="1-D"):
        conv1d_as_matrix(torch.ones(3, 3), 5)
    with pytest.raises(ValueError, match="2-D"):
        conv2d_as_matrix(torch.ones(3), 5, 5)
    with pytest.raises(ValueError, match="groups"):
        conv_macs(4, 4, 3, 6, 8, groups=4)


def _macs_from_hooks(module: nn.Module, x: torch.Tensor) -> int:
    """Count MACs from the layers themselves: every output value of a convolution is a sum
    of weight.shape[1] * kh * kw products (the input channels of its group times taps)."""
    total = 0

    def hook(layer, inputs, output):
        nonlocal total
        total += output.numel() * layer.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total


CASES = [  # (M, N, D, K, J): height, width, kernel size, input and output channels
    (8, 8, 3, 4, 4),
    (7, 10, 3, 16, 32),
    (9, 6, 5, 8, 3),
    (5, 5, 1, 3, 7),
    (6, 11, 7, 32, 64),
]


@pytest.mark.parametrize(("M", "N", "D", "K", "J"), CASES)
def test_conv_macs_match_the_layer(device, M, N, D, K, J):
    layer = nn.Conv2d(K, J, D, padding="same").to(device)
    x = torch.zeros(2, K, M, N, device=device)  # batch of 2
    expected = 2 * conv_macs(M, N, D, K, J)
    assert conv_macs(M, N, D, K, J) == M * N * D**2 * J * K
    assert _macs_from_hooks(layer, x) == expected
    assert count_macs(layer, x) == expected  # FlopCounterMode: FLOPs / 2


@pytest.mark.parametrize(("M", "N", "D", "K", "J"), CASES)
def test_depthwise_separable_macs_match_the_layer(device, M, N, D, K, J):
    layer = DepthwiseSeparableConv2d(K, J, D).to(device)
    x = torch.zeros(3, K, M, N, device=device)  # batch of 3
    macs = depthwise_separable_macs(M, N, D, K, J)
    assert macs == M * N * (D**2 + J) * K  # the lecture's form, K in, J out
    assert macs == conv_macs(M, N, D, K, K, groups=K) + conv_macs(M, N, 1, K, J)
    assert _macs_from_hooks(layer, x) == 3 * macs
    assert count_macs(layer, x) == 3 * macs


@pytest.mark.parametrize(("M", "N", "D", "K", "J"), CASES)
def test_depthwise_separable_module_shapes_and_parameters(device, M, N, D, K, J):
    layer = DepthwiseSeparableConv2d(K, J, D).to(device)
    x = torch.randn(2, K, M, N, device=device)
    y = layer(x)
    assert y.shape == (2, J, M, N) and y.device.type == device.type
    assert layer.depthwise.weight.shape == (K, 1, D, D)
    assert layer.pointwise.weight.shape == (J, K, 1, 1)
    weights = layer.depthwise.weight.numel() + layer.pointwise.weight.numel()
    assert weights == D**2 * K + K * J
    no_bias = DepthwiseSeparableConv2d(K, J, D, bias=False)
    assert sum(p.numel() for p in no_bias.parameters()) == D**2 * K + K * J


def test_depthwise_separable_is_depthwise_then_pointwise(device):
    g = make_generator(5)
    layer = DepthwiseSeparableConv2d(3, 5, 3).to(device=device, dtype=torch.float64)
    x = random_tensor((2, 3, 6, 7), g, dtype=torch.float64, device=device)
    dw, pw = layer.depthwise, layer.pointwise
    depthwise = F.conv2d(x, dw.weight, dw.bias, padding="same", groups=3)  # (2, 3, 6, 7)
    # The 1x1 convolution is a matrix product over channels at every pixel.
    pointwise = torch.einsum("jk,bkmn->bjmn", pw.weight[:, :, 0, 0], depthwise)
    expected = pointwise + pw.bias[None, :, None, None]
    assert_close(layer(x), expected)
