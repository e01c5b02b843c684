"""The grading helpers must fail on wrong answers, with messages that say what is wrong."""

import pytest
import torch

from vislearn.testing import (
    assert_close,
    assert_loadable,
    assert_module_close,
    assert_stateless,
    make_generator,
    random_shape,
    random_tensor,
)


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


def _twin(module: torch.nn.Module) -> torch.nn.Module:
    """A fresh module of the same class holding the same parameters."""
    twin = type(module)(module.in_features, module.out_features).to(module.weight)
    twin.load_state_dict(module.state_dict())
    return twin


def test_assert_module_close_checks_outputs_and_the_gradients_of_every_parameter(device):
    reference = torch.nn.Linear(4, 3).to(device, torch.float64)
    x = random_tensor((5, 4), make_generator(0), dtype=torch.float64, device=device,
                      requires_grad=True)  # fmt: skip
    assert_module_close(_twin(reference), reference, [x], make_generator(1), name="layer")

    class DetachedBias(torch.nn.Linear):  # right outputs, no gradient for the bias
        def forward(self, x):
            return x @ self.weight.T + self.bias.detach()

    wrong = DetachedBias(4, 3).to(device, torch.float64)
    wrong.load_state_dict(reference.state_dict())
    with pytest.raises(AssertionError, match="gradient of layer wrt bias"):
        assert_module_close(wrong, reference, [x], make_generator(1), name="layer")


def test_assert_stateless_catches_a_module_that_remembers_its_first_call():
    class FirstInput(torch.nn.Linear):
        def forward(self, x):
            self.first = getattr(self, "first", x)
            return super().forward(self.first)

    references = [torch.nn.Linear(4, 3) for _ in range(2)]
    generator = make_generator(2)

    def inputs(step):
        return [random_tensor((2, 4), generator)]

    assert_stateless([_twin(r) for r in references], references, inputs, generator, name="layer")
    remembering = [FirstInput(4, 3) for _ in references]
    for module, reference in zip(remembering, references, strict=True):
        module.load_state_dict(reference.state_dict())
    with pytest.raises(AssertionError, match="layer for call"):
        assert_stateless(remembering, references, inputs, generator, name="layer")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w, None),
        (lambda w: {**w, "extra": torch.ones(1)}, "unexpected \\['extra'\\]"),
        (lambda w: {"weight": w["weight"]}, "missing \\['bias'\\]"),
        (lambda w: {**w, "bias": w["bias"].double()}, "dtype torch.float32, got"),
        (lambda w: {**w, "bias": torch.full_like(w["bias"], float("nan"))}, "NaN"),
        (lambda w: list(w.values()), "expected a dict of tensors"),
    ],
)
def test_assert_loadable_accepts_only_weights_that_fit_exactly(change, message):
    model = torch.nn.Linear(4, 3)
    weights = change(dict(model.state_dict()))
    if message is None:
        assert_loadable(weights, model)
    else:
        with pytest.raises(AssertionError, match=message):
            assert_loadable(weights, model)
