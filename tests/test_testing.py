"""The grading helpers must fail on wrong answers, with messages that say what is wrong."""

import pytest
import torch

from vislearn.testing import assert_close, make_generator, random_shape, random_tensor


def test_assert_close_accepts_rounding_differences(device):
    x = torch.rand(5, 3, device=device)
    assert_close(x * 3 / 3, x)


@pytest.mark.parametrize(
    ("actual", "message"),
    [
        (torch.ones(3, 2), "expected shape (2, 3), got (3, 2)"),
        (torch.ones(2, 3, dtype=torch.float64), "expected dtype torch.float32"),
        (torch.full((2, 3), float("nan")), "NaN or infinite"),
        (torch.ones(2, 3) * 1.01, "largest error is 0.01"),
        ([[1.0] * 3] * 2, "expected a tensor, got list"),
    ],
)
def test_assert_close_explains_each_kind_of_failure(actual, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assert_close(actual, torch.ones(2, 3), inputs="x of shape (2, 3)")


def test_assert_close_reports_the_device_mismatch():
    meta = torch.ones(2, device="meta")
    with pytest.raises(AssertionError, match="input's device"):
        assert_close(meta, torch.ones(2))


def test_random_cases_are_reproducible_and_shapes_distinct(device):
    shape = random_shape(make_generator(3), ndim=4)
    assert len(set(shape)) == 4
    a = random_tensor(shape, make_generator(3), device=device)
    b = random_tensor(shape, make_generator(3), device=device)
    assert torch.equal(a, b) and a.device.type == device.type
