"""Comparisons and random cases shared by the unit tests, the chapters' checks and the
assignments' visible and hidden tests.

Failures are explained in plain words: which output, which input shape, how far off and
where, so that a student knows what to fix without seeing the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

# (rtol, atol) per dtype: loose enough for any correct order of floating-point operations
# (and for float16/bfloat16 kernels that do not upcast), tight enough that a wrong axis, a
# missing scale or a dropped term fails by orders of magnitude. float32's atol of 1e-5 (as
# torch.testing's) leaves room for a blockwise or otherwise reordered sum over many keys:
# 1e-6 failed a correct blockwise attention (an error of 1.6e-6 on a weight of 0.022).
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (5e-3, 1e-3),
    torch.bfloat16: (3e-2, 1e-2),
}


def tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` for comparing results computed in ``dtype``."""
    if dtype not in TOLERANCES:
        raise ValueError(f"no tolerance defined for dtype {dtype}")
    return TOLERANCES[dtype]


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device.type}"
    return type(x).__name__


def assert_close(
    actual: object,
    expected: torch.Tensor,
    *,
    name: str = "output",
    inputs: str = "",
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Raise ``AssertionError`` with a readable message unless ``actual`` matches ``expected``.

    Checks, in order: that ``actual`` is a tensor; its shape, dtype and device; NaN/inf
    where the expected values are finite; then ``|actual - expected| <= atol + rtol *
    |expected|`` element by element, with the dtype's :data:`TOLERANCES` by default.
    ``inputs`` describes the case (e.g. ``"x of shape (3, 5), dim=0"``) for the message.
    """
    case = f" for {inputs}" if inputs else ""
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{name}{case}: expected a tensor, got {_describe(actual)}")
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{name}{case}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
        )
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{name}{case}: expected dtype {expected.dtype}, got {actual.dtype}")
    if actual.device.type != expected.device.type:
        raise AssertionError(
            f"{name}{case}: expected the result on {expected.device.type} (the input's device), "
            f"got it on {actual.device.type}"
        )
    default_rtol, default_atol = tolerances(expected.dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    bad_nan = (~torch.isfinite(a)) & torch.isfinite(e)
    if bad_nan.any():
        index = tuple(int(i) for i in bad_nan.nonzero()[0])
        raise AssertionError(
            f"{name}{case}: {int(bad_nan.sum())} value(s) are NaN or infinite where finite "
            f"values were expected, first at index {index} (got {a[index].item()})"
        )
    same_nonfinite = (~torch.isfinite(e)) & ((a == e) | (a.isnan() & e.isnan()))
    error = torch.where(same_nonfinite, torch.zeros_like(a), (a - e).abs())
    allowed = atol + rtol * e.abs()
    too_far = (error > allowed) & ~same_nonfinite
    if too_far.any():
        # The message names where and what the result is, never the reference's value there
        # (an error and the result together would give it away).
        index = tuple(int(i) for i in too_far.nonzero()[0])
        ratio = (error / allowed).max().item()
        how = "slightly (at most 10 times the tolerance)" if ratio <= 10 else "far beyond it"
        raise AssertionError(
            f"{name}{case}: {int(too_far.sum())} of {e.numel()} values are off by more than "
            f"the tolerance (atol={atol:g} + rtol={rtol:g} * |reference|), {how}; the first is "
            f"at index {index}, where yours is {a[index].item():.6g}"
        )


def assert_loadable(weights: object, model: torch.nn.Module, *, name: str = "weights") -> None:
    """Raise ``AssertionError`` unless ``weights`` fits ``model.state_dict()`` exactly.

    ``weights`` must be a mapping from the model's keys (none missing, none extra) to
    tensors of the same shape and dtype, with finite values: what a training exercise
    returns before the grader loads it into the reference architecture. (``load_state_dict``
    alone would convert a wrong dtype and accept NaN.)
    """
    expected = model.state_dict()
    if not isinstance(weights, Mapping):
        raise AssertionError(f"{name}: expected a dict of tensors, got {_describe(weights)}")
    missing = [key for key in expected if key not in weights]
    extra = [key for key in weights if key not in expected]
    if missing or extra:
        raise AssertionError(
            f"{name}: the keys differ from the model's: missing {missing[:5]}, "
            f"unexpected {[str(k)[:60] for k in extra[:5]]}"
        )
    for key, reference in expected.items():
        value = weights[key]
        if not isinstance(value, torch.Tensor):
            raise AssertionError(f"{name}[{key!r}]: expected a tensor, got {_describe(value)}")
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise AssertionError(
                f"{name}[{key!r}]: expected shape {tuple(reference.shape)} and dtype "
                f"{reference.dtype}, got {tuple(value.shape)} and {value.dtype}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise AssertionError(f"{name}[{key!r}]: NaN or infinite values")


def _shapes(inputs: Sequence[object]) -> str:
    return ", ".join(str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__
                     for x in inputs)  # fmt: skip


def assert_modules_match(
    modules: Sequence[torch.nn.Module],
    references: Sequence[torch.nn.Module],
    make_inputs: Callable[[int], Sequence[object]],
    generator: torch.Generator,
    *,
    name: str,
    calls: int = 6,
) -> None:
    """Raise ``AssertionError`` unless every call of every module matches its reference.

    ``modules[i]`` is what a student built (or the grader's stand-in for it) holding the same
    parameters as ``references[i]``, e.g. after ``load_state_dict(reference.state_dict())``.
    Each module is called ``calls`` times (at least 5), the calls of all modules in an order
    drawn from ``generator``, each on fresh inputs ``make_inputs(step)`` (their sizes may
    change from call to call). Before each call the pair is put in ``train()`` or ``eval()``
    mode, and the call runs with or without autograd (with, on a module's first call), both
    drawn from ``generator``. Every call's output is compared; for a call with autograd, so
    are the gradients *of that same output* (for an upstream gradient drawn from
    ``generator``) wrt the inputs that require grad and wrt every parameter, matched by name.
    A module that keeps anything from one call to the next (a cache, a counter, a parameter
    changed in place) fails here, even when its first calls are right.
    """
    if calls < 5:
        raise ValueError(f"calls={calls}: compare at least 5 calls of each module")
    order = [i for i in range(len(modules)) for _ in range(calls)]
    order = [order[j] for j in torch.randperm(len(order), generator=generator).tolist()]
    made = [0] * len(modules)
    for step, i in enumerate(order):
        module, reference = modules[i], references[i]
        made[i] += 1
        training = bool(torch.randint(2, (), generator=generator))
        autograd = made[i] == 1 or bool(torch.randint(4, (), generator=generator) > 0)
        module.train(training)
        reference.train(training)
        inputs = list(make_inputs(step))
        case = (f"call {made[i]} of module {i + 1} of {len(modules)}, in "
                f"{'train' if training else 'eval'} mode, {'with' if autograd else 'without'} "
                f"autograd, inputs of shapes {_shapes(inputs)}")  # fmt: skip
        with torch.set_grad_enabled(autograd):
            out, expected = module(*inputs), reference(*inputs)
        assert_close(out, expected, name=name, inputs=case)
        if autograd:
            _assert_gradients(module, reference, inputs, out, expected, generator, name, case)


def _assert_gradients(module, reference, inputs, out, expected, generator, name, case) -> None:
    """The gradients of ``out`` and of ``expected`` wrt the inputs that require grad and every
    parameter, for the same upstream gradient, are close."""
    params, reference_params = dict(module.named_parameters()), dict(reference.named_parameters())
    if sorted(params) != sorted(reference_params):
        raise AssertionError(
            f"{name}: parameters {sorted(params)}, expected {sorted(reference_params)}"
        )
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    upstream = random_tensor(
        expected.shape, generator, dtype=expected.dtype, device=expected.device
    )
    wrt = [*leaves, *params.values()]
    grads = torch.autograd.grad(out, wrt, upstream, allow_unused=True)
    expected_grads = torch.autograd.grad(
        expected,
        [*leaves, *(reference_params[key] for key in params)],
        upstream,
        allow_unused=True,
    )
    labels = [f"input {i}" for i in range(len(leaves))] + list(params)
    for label, x, grad, expected_grad in zip(labels, wrt, grads, expected_grads, strict=True):
        grad = torch.zeros_like(x) if grad is None else grad
        expected_grad = torch.zeros_like(x) if expected_grad is None else expected_grad
        assert_close(grad, expected_grad, name=f"the gradient of {name} wrt {label}", inputs=case)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator: cases drawn from it are identical on every device."""
    return torch.Generator().manual_seed(seed)


def random_shape(
    generator: torch.Generator, ndim: int, low: int = 2, high: int = 9
) -> tuple[int, ...]:
    """A shape of ``ndim`` distinct sizes in ``[low, high)``.

    Distinct sizes make a reduction over the wrong axis, or a transpose that should not be
    there, fail with a shape error or a wrong value instead of passing by symmetry.
    """
    if high - low < ndim:
        raise ValueError(f"cannot draw {ndim} distinct sizes from [{low}, {high})")
    sizes = torch.randperm(high - low, generator=generator)[:ndim] + low
    return tuple(int(s) for s in sizes)


def random_tensor(
    shape: Sequence[int],
    generator: torch.Generator,
    *,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    requires_grad: bool = False,
) -> torch.Tensor:
    """Standard normal entries times ``scale``, drawn on the CPU then moved to ``device``."""
    x = torch.randn(tuple(shape), generator=generator, dtype=torch.float64) * scale
    return x.to(device=device, dtype=dtype).requires_grad_(requires_grad)


def random_mask(
    shape: Sequence[int],
    generator: torch.Generator,
    *,
    keep: float = 0.7,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A boolean mask (True = keep) with each entry kept with probability ``keep``."""
    return (torch.rand(tuple(shape), generator=generator) < keep).to(device)


def report_check(name: str, check: Callable[[], str]) -> bool:
    """Run ``check`` (it raises ``AssertionError`` saying what is wrong, or returns what it
    verified) and print one line for a reader: ``✓ name: what was verified`` or
    ``✗ name: what is wrong``. Returns whether it passed; never raises, so that a notebook
    with an exercise not yet done still runs to its end.

    For the exercises of the book: the checks compare the reader's code with a reference or a
    property on random cases and say what is wrong without printing the expected values.
    """
    try:
        verified = check()
    except NotImplementedError:
        print(f"✗ {name}: not written yet (replace `raise NotImplementedError` with your code)")
        return False
    except AssertionError as failure:
        print(f"✗ {name}: {failure}")
        return False
    except Exception as failure:  # the reader's code crashed: say how, in one line
        print(f"✗ {name}: your code raised {type(failure).__name__} ({failure})")
        return False
    print(f"✓ {name}: {verified}")
    return True
