"""The student's functions as seen by the trusted side: proxies that run them in the sandbox.

A :class:`Session` owns one submission's sandbox: it starts it on first use, runs the
notebook's cells there, restarts it after a crash or a timeout (a few times), and enforces
the submission's total time budget. :meth:`Session.proxy` gives a callable that sends its
arguments to the sandbox and returns the student's output as fresh tensors; when an input
requires grad, the call is a :class:`torch.autograd.Function` whose backward pass asks the
sandbox for the vector-Jacobian product, so ``torch.autograd.grad`` in a test works as if the
student's function had run here.

Failures of the student's code become :class:`StudentFailure` with a message for the
feedback; failures of the grader itself become :class:`GraderError`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from vislearn.grader import protocol
from vislearn.grader.sandbox import STARTUP_TIMEOUT, Limits, Sandbox, SandboxError


class StudentFailure(Exception):
    """The student's code failed: raised, timed out, crashed, or is missing."""


class GraderError(Exception):
    """The grader could not run the submission (e.g. the sandbox did not start)."""


class _NotTensors(Exception):
    def __init__(self, value: object):
        super().__init__("not tensors")
        self.value = value


class Session:
    """One submission's sandbox, from its first call to :meth:`close`."""

    def __init__(
        self, argv: list[str], cwd: Path | None, limits: Limits, setup: dict, defining: dict
    ):
        """``setup`` is the harness's first message; ``defining`` maps each student function
        to the cells that should define it (for the message when it is missing)."""
        self.argv, self.cwd, self.limits, self.setup = argv, cwd, limits, setup
        self.defining = defining
        self.deadline = time.monotonic() + limits.submission_timeout
        self.events: set[str] = set()  # timeout, crash, protocol
        self.cell_errors: list[list[str]] | None = None
        self._sandbox: Sandbox | None = None
        self._starts = 0
        self._fatal: str | None = None  # why no further call is attempted

    # --- the sandbox's life ---------------------------------------------------------------

    def _fail(self, kind: str, message: str) -> StudentFailure:
        self.events.add(kind)
        if self._sandbox is not None:
            self._sandbox.kill()
            self._sandbox = None
        return StudentFailure(message)

    def _started(self) -> Sandbox:
        if self._sandbox is not None and self._sandbox.alive:
            return self._sandbox
        if self._fatal:
            raise StudentFailure(self._fatal)
        if self._starts > self.limits.max_restarts:
            restarts = self.limits.max_restarts
            self._fatal = f"not run: the sandbox was already restarted {restarts} times"
            raise StudentFailure(self._fatal)
        self._check_budget()
        self._starts += 1
        self._sandbox = sandbox = Sandbox(self.argv, self.cwd)
        start = time.monotonic() + STARTUP_TIMEOUT
        try:
            sandbox.send(self.setup, start)
            hello = sandbox.receive(start)
        except SandboxError as error:
            detail = sandbox.stderr_tail() or str(error)
            sandbox.kill()
            raise GraderError(f"the sandbox did not start: {detail}") from None
        if hello.get("op") != "hello":
            raise self._fail("protocol", "the sandbox broke the protocol")
        try:
            ready = sandbox.receive(
                min(time.monotonic() + self.limits.setup_timeout, self.deadline)
            )
        except SandboxError as error:
            if error.kind == "timeout":
                self._fatal = (f"your notebook's code did not finish within "
                               f"{self.limits.setup_timeout:g} s")  # fmt: skip
            elif error.kind == "crash":
                self._fatal = f"{error} while your notebook's code ran"
            else:
                self._fatal = str(error)
            raise self._fail(error.kind, self._fatal) from None
        errors = ready.get("errors")
        valid = isinstance(errors, list) and all(
            isinstance(e, list) and len(e) == 2 and all(isinstance(s, str) for s in e)
            for e in errors
        )
        if ready.get("op") != "ready" or not valid:
            self._fatal = "the sandbox broke the protocol"
            raise self._fail("protocol", self._fatal)
        if self.cell_errors is None:
            self.cell_errors = errors
        return sandbox

    def _check_budget(self) -> None:
        if time.monotonic() >= self.deadline:
            self.events.add("timeout")
            budget = self.limits.submission_timeout
            self._fatal = f"not run: the submission used up its time budget of {budget:g} s"
            raise StudentFailure(self._fatal)

    def request(self, message: dict, name: str) -> object:
        """Send ``message`` about function ``name``; the decoded value it returns."""
        sandbox = self._started()
        self._check_budget()
        timeout = min(self.limits.call_timeout, self.deadline - time.monotonic())
        message["cpu_seconds"] = self.limits.call_timeout * self.limits.threads + 1
        try:
            sandbox.send(message, time.monotonic() + timeout)
            reply = sandbox.receive(time.monotonic() + timeout)
        except SandboxError as error:
            if error.kind == "timeout":
                raise self._fail("timeout", f"{name} did not finish within {timeout:.3g} s "
                                 "(it was stopped)") from None  # fmt: skip
            if error.kind == "crash":
                raise self._fail("crash", f"calling {name} ended the sandbox: {error}") from None
            raise self._fail(error.kind, str(error)) from None
        try:
            if reply.get("op") != "result":
                raise protocol.ProtocolError("unexpected answer")
            if reply.get("ok") is True:
                return protocol.decode(reply["value"])
            error = str(reply.get("error", ""))[:1000]
        except (protocol.ProtocolError, KeyError) as error:
            raise self._fail("protocol", f"the sandbox sent malformed data ({error})") from None
        if reply.get("kind") == "missing":
            raise StudentFailure(self._missing(name))
        raise StudentFailure(f"{name} raised {error}")

    def _missing(self, name: str) -> str:
        cells = self.defining.get(name, ())
        raised = [f"cell '{c}' raised {e}" for c, e in (self.cell_errors or []) if c in cells]
        return f"{name} is not defined in your notebook" + (f" ({raised[0]})" if raised else "")

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None

    # --- calls ------------------------------------------------------------------------------

    def forward(self, name: str, args: tuple, kwargs: dict) -> object:
        """``name(*args, **kwargs)`` in the sandbox, with the device check on its outputs."""
        inputs = protocol.tensors_in((args, kwargs))
        message = {"op": "call", "name": name, "args": protocol.encode(args),
                   "kwargs": protocol.encode(kwargs)}  # fmt: skip
        value = self.request(message, name)
        devices = {t.device.type for t in inputs}
        if len(devices) == 1:
            (expected,) = devices
            for output in protocol.tensors_in(value):
                if output.device.type != expected:
                    raise AssertionError(
                        f"{name} returned a tensor on {output.device.type} for inputs on "
                        f"{expected}: results must stay on the input's device"
                    )
        return value

    def vjp(self, name: str, args: tuple, kwargs: dict, wrt: list[int], grads: list) -> list:
        """Gradients of ``name``'s outputs (weighted by ``grads``) wrt input tensors ``wrt``."""
        message = {"op": "vjp", "name": name, "args": protocol.encode(args),
                   "kwargs": protocol.encode(kwargs), "wrt": wrt,
                   "grads": protocol.encode(grads)}  # fmt: skip
        value = self.request(message, f"the gradient of {name}")
        inputs = protocol.tensors_in((args, kwargs))
        if not isinstance(value, list) or len(value) != len(wrt):
            raise self._fail("protocol", "the sandbox sent malformed gradients")
        for i, grad in zip(wrt, value, strict=True):
            if not isinstance(grad, torch.Tensor) or grad.shape != inputs[i].shape:
                raise StudentFailure(f"the gradient of {name} has the wrong shape")
        return [
            g.to(device=inputs[i].device, dtype=inputs[i].dtype)
            for i, g in zip(wrt, value, strict=True)
        ]

    def proxy(self, name: str):
        """A stand-in for the student's function ``name`` in the trusted namespace."""

        def student_function(*args, **kwargs):
            inputs = protocol.tensors_in((args, kwargs))
            if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
                try:
                    return _Remote.apply(self, name, args, kwargs, *inputs)
                except _NotTensors as result:
                    return result.value
            return self.forward(name, args, kwargs)

        student_function.__name__ = name
        return student_function


class _Remote(torch.autograd.Function):
    """A call of a student's function that autograd can differentiate through the sandbox."""

    @staticmethod
    def forward(ctx, session, name, args, kwargs, *inputs):
        value = session.forward(name, args, kwargs)
        if isinstance(value, torch.Tensor):
            outputs = (value,)
        elif (
            isinstance(value, (tuple, list))
            and value
            and all(isinstance(v, torch.Tensor) for v in value)
        ):
            outputs = tuple(value)
        else:
            raise _NotTensors(value)
        ctx.call = (session, name, args, kwargs)
        return outputs[0] if isinstance(value, torch.Tensor) else outputs

    @staticmethod
    def backward(ctx, *grads):
        session, name, args, kwargs = ctx.call
        needs = ctx.needs_input_grad[4:]
        wrt = [i for i, need in enumerate(needs) if need]
        found = session.vjp(name, args, kwargs, wrt, list(grads))
        result = [None] * len(needs)
        for i, grad in zip(wrt, found, strict=True):
            result[i] = grad
        return (None, None, None, None, *result)
