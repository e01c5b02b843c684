"""The grading helpers must fail on wrong answers, with messages that say what is wrong."""

import pytest
import torch

from vislearn.testing import (
    assert_close,
    assert_loadable,
    assert_modules_match,
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
        (torch.ones(2, 3) * 1.01, "6 of 6 values are off by more than the tolerance"),
        (torch.ones(2, 3) * (1 + 5e-5), "slightly"),
        (torch.ones(2, 3) * 3, "far beyond it; the first is at index (0, 0), where yours is 3"),
        ([[1.0] * 3] * 2, "expected a tensor, got list"),
    ],
)
def test_assert_close_explains_each_kind_of_failure(actual, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assert_close(actual, torch.ones(2, 3), inputs="x of shape (2, 3)")


def test_assert_close_never_states_a_reference_value():
    """A student who returns zeros learns where the values are off, never what they should be."""
    expected = torch.tensor([[0.125, -2.75], [13.5, 0.0625]])
    with pytest.raises(AssertionError) as failure:
        assert_close(torch.zeros(2, 2), expected, name="f", inputs="x")
    message = str(failure.value)
    for value in expected.flatten().tolist():
        for shown in (f"{value:g}", f"{abs(value):g}", f"{value:.3g}", f"{abs(value):.3g}"):
            assert shown not in message, (shown, message)


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


def _inputs(generator, device=None):
    def make(step):  # another batch size at every call; every other input needs no gradient
        return [random_tensor((1 + step % 4, 4), generator, dtype=torch.float64, device=device,
                              requires_grad=step % 2 == 0)]  # fmt: skip

    return make


def test_assert_modules_match_checks_outputs_and_the_gradients_of_every_parameter(device):
    reference = torch.nn.Linear(4, 3).to(device, torch.float64)
    generator = make_generator(1)
    assert_modules_match([_twin(reference)], [reference], _inputs(generator, device), generator,
                         name="layer")  # fmt: skip

    class DetachedBias(torch.nn.Linear):  # right outputs, no gradient for the bias
        def forward(self, x):
            return x @ self.weight.T + self.bias.detach()

    wrong = DetachedBias(4, 3).to(device, torch.float64)
    wrong.load_state_dict(reference.state_dict())
    with pytest.raises(AssertionError, match="gradient of layer wrt bias"):
        assert_modules_match([wrong], [reference], _inputs(generator, device), generator,
                             name="layer")  # fmt: skip


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_assert_modules_match_catches_a_module_right_for_its_first_k_calls(k):
    class RightAtFirst(torch.nn.Linear):  # a parameter changed in place after k calls
        def forward(self, x):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == k + 1:
                with torch.no_grad():
                    self.bias.add_(0.5)
            return super().forward(x)

    references = [torch.nn.Linear(4, 3).double() for _ in range(3)]
    modules = [RightAtFirst(4, 3).double() for _ in references]
    for module, reference in zip(modules, references, strict=True):
        module.load_state_dict(reference.state_dict())
    generator = make_generator(2)
    with pytest.raises(AssertionError, match=f"call {k + 1} of module"):
        assert_modules_match(modules, references, _inputs(generator), generator, name="layer")


def test_assert_modules_match_calls_each_module_in_both_modes_and_random_order():
    seen = []

    class Recording(torch.nn.Linear):
        def forward(self, x):
            seen.append((id(self), self.training, torch.is_grad_enabled(), x.shape[0]))
            return super().forward(x)

    references = [torch.nn.Linear(4, 3).double() for _ in range(2)]
    modules = [Recording(4, 3).double() for _ in references]
    for module, reference in zip(modules, references, strict=True):
        module.load_state_dict(reference.state_dict())
    generator = make_generator(3)
    assert_modules_match(modules, references, _inputs(generator), generator, name="layer", calls=6)
    assert len(seen) == 12 and {s[0] for s in seen[:6]} == {id(m) for m in modules}
    assert {s[1] for s in seen} == {True, False} and {s[2] for s in seen} == {True, False}
    assert len({s[3] for s in seen}) > 1
    with pytest.raises(ValueError, match="at least 5"):
        assert_modules_match(modules, references, _inputs(generator), generator, name="layer",
                             calls=4)  # fmt: skip


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
