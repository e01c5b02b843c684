"""The student's functions as seen by the trusted side: proxies that run them in the sandbox.

A :class:`Session` owns one submission's sandbox: it starts it on first use, runs the
notebook's cells there, restarts it after a crash or a timeout (a few times), and enforces
the submission's total time budget. :meth:`Session.proxy` gives a callable that sends its
arguments to the sandbox and returns the student's output as fresh tensors; when an input
requires grad, the call is a :class:`torch.autograd.Function` whose backward pass asks the
sandbox for the vector-Jacobian product of that very call (the sandbox keeps the call's
autograd graph; nothing runs twice), so ``torch.autograd.grad`` in a test works as if the
student's function had run here.

:meth:`Session.module_class` stands for a class of the student's that subclasses
``nn.Module``: constructing it builds the real module in the sandbox and returns a
:class:`RemoteModule`, a handle whose methods (``forward``, ``load_state_dict``,
``state_dict``, ``named_parameters``, ``train``, ``eval``, ``to``) are requests that send and
return plain tensors. Its parameters are seen here as leaf tensors, snapshots of the
sandbox's values, so that ``torch.autograd.grad(out, [x, *module.parameters()], ...)`` asks
the sandbox for the gradients wrt its parameters.

Failures of the student's code become :class:`StudentFailure` with a message for the
feedback; failures of the grader itself become :class:`GraderError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from vislearn.grader import protocol
from vislearn.grader.sandbox import STARTUP_TIMEOUT, Limits, Sandbox, SandboxError, Zygote, zygote


class StudentFailure(Exception):
    """The student's code failed: raised, timed out, crashed, or is missing."""


class GraderError(Exception):
    """The grader could not run the submission (e.g. the sandbox did not start)."""


@dataclass(frozen=True)
class Target:
    """What a request is about: a function of the notebook (``{"name": ...}``) or a module
    the sandbox built (``{"handle": ...}``), named ``label`` in messages, with its own call
    timeout if the notebook's metadata gives one."""

    label: str
    fields: dict
    timeout: float | None = None


class _NotTensors(Exception):
    def __init__(self, value: object):
        super().__init__("not tensors")
        self.value = value


class Session:
    """One submission's sandbox, from its first call to :meth:`close`."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path | None,
        limits: Limits,
        setup: dict,
        defining: dict,
        timeouts: dict[str, float] | None = None,
    ):
        """``setup`` is the harness's first message; ``defining`` maps each student function
        to the cells that should define it (for the message when it is missing);
        ``timeouts`` gives some functions a longer call timeout (e.g. training)."""
        self.argv, self.cwd, self.limits, self.setup = argv, cwd, limits, setup
        self.defining, self.timeouts = defining, timeouts or {}
        self.deadline = time.monotonic() + limits.submission_timeout
        self.events: set[str] = set()  # timeout, crash, protocol
        self.refused: list[str] = []  # what the sandbox's guard refused, in order
        self.cell_errors: list[list[str]] | None = None
        self._sandbox: Sandbox | None = None
        self._zygote: Zygote | None = None  # this thread's, for every start of the session
        self._starts = 0
        self._fatal: str | None = None  # why no further call is attempted

    # --- the sandbox's life ---------------------------------------------------------------

    def _fail(self, kind: str, message: str) -> StudentFailure:
        self.events.add(kind)
        if self._sandbox is not None:
            self._sandbox.kill()
            self._sandbox = None
        return StudentFailure(message)

    def _grader_fault(self, error: SandboxError) -> GraderError:
        """The grader's side failed (its zygote ended): not the student's fault."""
        if self._sandbox is not None:
            self._sandbox.kill()
            self._sandbox = None
        return GraderError(f"the sandbox was lost: {error}")

    def _started(self) -> Sandbox:
        if self._sandbox is not None:
            if self._sandbox.alive:
                return self._sandbox
            self._sandbox.kill()
            self._sandbox = None
        if self._fatal:
            raise StudentFailure(self._fatal)
        if self._starts > self.limits.max_restarts:
            restarts = self.limits.max_restarts
            self._fatal = f"not run: the sandbox was already restarted {restarts} times"
            raise StudentFailure(self._fatal)
        self._check_budget()
        self._starts += 1
        try:
            if self._zygote is None or not self._zygote.available:
                self._zygote = zygote(self.argv, sandboxed=self.cwd is None)
            self._sandbox = sandbox = Sandbox(self._zygote, self.cwd)
        except SandboxError as error:
            raise GraderError(f"the sandbox did not start: {error}") from None
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
            if error.kind == "infrastructure":
                raise self._grader_fault(error) from None
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
        self._note_refusals(ready)
        if self.cell_errors is None:
            self.cell_errors = errors
        return sandbox

    def _check_budget(self) -> None:
        if time.monotonic() >= self.deadline:
            self.events.add("timeout")
            budget = self.limits.submission_timeout
            self._fatal = f"not run: the submission used up its time budget of {budget:g} s"
            raise StudentFailure(self._fatal)

    def _note_refusals(self, reply: dict) -> None:
        refused = reply.get("refused", [])
        if not isinstance(refused, list) or not all(isinstance(r, str) for r in refused):
            raise self._fail("protocol", "the sandbox sent malformed data (refusals)")
        self.refused += [r[:200] for r in refused]

    def request(self, message: dict, name: str, timeout: float | None = None) -> dict:
        """Send ``message`` about ``name``; the answer, its value decoded. ``timeout``
        replaces the call timeout."""
        sandbox = self._started()
        self._check_budget()
        limit = self.limits.call_timeout if timeout is None else timeout
        timeout = min(limit, self.deadline - time.monotonic())
        message["cpu_seconds"] = limit * self.limits.threads + 1
        try:
            sandbox.send(message, time.monotonic() + timeout)
            reply = sandbox.receive(time.monotonic() + timeout)
        except SandboxError as error:
            if error.kind == "infrastructure":
                raise self._grader_fault(error) from None
            if error.kind == "timeout":
                raise self._fail("timeout", f"{name} did not finish within {timeout:.3g} s "
                                 "(it was stopped)") from None  # fmt: skip
            if error.kind == "crash":
                raise self._fail("crash", f"calling {name} ended the sandbox: {error}") from None
            raise self._fail(error.kind, str(error)) from None
        try:
            if reply.get("op") != "result":
                raise protocol.ProtocolError("unexpected answer")
            self._note_refusals(reply)
            if reply.get("ok") is True:
                graph = reply.get("graph")
                if graph is not None and (not isinstance(graph, int) or isinstance(graph, bool)):
                    raise protocol.ProtocolError("malformed call number")
                return {"value": protocol.decode(reply["value"]), "graph": graph}
            error = str(reply.get("error", ""))[:1000]
        except (protocol.ProtocolError, KeyError) as error:
            raise self._fail("protocol", f"the sandbox sent malformed data ({error})") from None
        if reply.get("kind") == "missing":
            raise StudentFailure(self._missing(name))
        if reply.get("kind") == "too large":
            raise StudentFailure(f"{name} returned {error}")
        raise StudentFailure(f"{name} raised {error}")

    def value(self, message: dict, name: str, timeout: float | None = None) -> object:
        """The decoded value that ``message`` about ``name`` returns (see :meth:`request`)."""
        return self.request(message, name, timeout)["value"]

    def _missing(self, name: str) -> str:
        cells = self.defining.get(name, ())
        raised = [f"cell '{c}' raised {e}" for c, e in (self.cell_errors or []) if c in cells]
        return f"{name} is not defined in your notebook" + (f" ({raised[0]})" if raised else "")

    def close(self) -> None:
        """End the sandbox: killed at once, as nothing in it is the grader's to wait for."""
        if self._sandbox is not None:
            self._sandbox.kill()
            self._sandbox = None

    # --- calls ------------------------------------------------------------------------------

    def target(self, name: str) -> Target:
        """The notebook's function (or class) ``name``."""
        return Target(name, {"name": name}, self.timeouts.get(name))

    def forward(self, target: Target, args: tuple, kwargs: dict, keep: bool = False) -> dict:
        """``target(*args, **kwargs)`` in the sandbox, once, in this process's grad mode, with
        the device check on its outputs: ``{"value": ..., "graph": ...}``. With ``keep`` (a
        call that autograd differentiates: :class:`_Remote`, whose forward runs without grad
        here) the call runs with grad and the sandbox keeps its autograd graph under the
        number ``graph`` (see :meth:`vjp`)."""
        inputs = protocol.tensors_in((args, kwargs))
        message = {"op": "call", **target.fields, "args": protocol.encode(args),
                   "kwargs": protocol.encode(kwargs), "keep": keep,
                   "grad": keep or torch.is_grad_enabled()}  # fmt: skip
        answer = self.request(message, target.label, target.timeout)
        value = answer["value"]
        if (reason := protocol.unsendable(value)) is not None:
            raise StudentFailure(f"{target.label} returned {reason}: return a plain torch.Tensor")
        devices = {t.device.type for t in inputs}
        if len(devices) == 1:
            (expected,) = devices
            for output in protocol.tensors_in(value):
                if output.device.type != expected:
                    raise AssertionError(
                        f"{target.label} returned a tensor on {output.device.type} for inputs "
                        f"on {expected}: results must stay on the input's device"
                    )
        return answer

    def vjp(
        self,
        target: Target,
        graph: int | None,
        inputs: list[tuple[int, torch.Tensor]],
        grads: list,
        params: dict[str, torch.Tensor] | None = None,
    ) -> list:
        """The gradients of the outputs of the call the sandbox kept as ``graph`` (weighted by
        ``grads``) wrt that call's input tensors numbered ``inputs`` (their stand-ins here,
        by number), then wrt the module parameters named in ``params`` (name -> the tensor
        standing for it here). No forward runs again: these are the gradients of the very
        outputs the call returned."""
        label = f"the gradient of {target.label}"
        if graph is None:
            raise StudentFailure(f"{label}: its output does not depend on its inputs through "
                                 "autograd")  # fmt: skip
        params = params or {}
        wrt = list(inputs)
        message = {"op": "vjp", "graph": graph, "wrt": [i for i, _ in wrt],
                   "params": list(params), "grads": protocol.encode(grads)}  # fmt: skip
        value = self.value(message, label, target.timeout)
        like = [x for _, x in wrt] + list(params.values())
        if not isinstance(value, list) or len(value) != len(like):
            raise self._fail("protocol", "the sandbox sent malformed gradients")
        for grad, x in zip(value, like, strict=True):
            if not isinstance(grad, torch.Tensor) or grad.shape != x.shape:
                raise StudentFailure(f"{label} has the wrong shape")
        return [g.to(device=x.device, dtype=x.dtype) for g, x in zip(value, like, strict=True)]

    def call(self, target: Target, args: tuple, kwargs: dict, params: dict | None = None):
        """A call that autograd can differentiate through the sandbox when an input, or one
        of ``params`` (a module's parameters), requires grad."""
        params = params or {}
        inputs = protocol.tensors_in((args, kwargs))
        leaves = [*inputs, *params.values()]
        if torch.is_grad_enabled() and any(t.requires_grad for t in leaves):
            try:
                return _Remote.apply(self, target, (args, kwargs, list(params)), *leaves)
            except _NotTensors as result:
                return result.value
        return self.forward(target, args, kwargs)["value"]

    def proxy(self, name: str):
        """A stand-in for the student's function ``name`` in the trusted namespace."""
        target = self.target(name)

        def student_function(*args, **kwargs):
            return self.call(target, args, kwargs)

        student_function.__name__ = name
        return student_function

    def module_class(self, name: str):
        """A stand-in for the student's ``nn.Module`` subclass ``name``: calling it builds
        the module in the sandbox and returns a :class:`RemoteModule`."""

        def build(*args, **kwargs) -> RemoteModule:
            message = {"op": "new", "name": name, "args": protocol.encode(args),
                       "kwargs": protocol.encode(kwargs)}  # fmt: skip
            handle = self.value(message, name)
            if not isinstance(handle, int) or isinstance(handle, bool):
                raise self._fail("protocol", "the sandbox sent a malformed module handle")
            return RemoteModule(self, name, handle)

        build.__name__ = name
        return build


def _tensor_dict(value: object, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(t, torch.Tensor) for t in value.values()):
        raise StudentFailure(f"{what} did not return a dict of tensors")
    return value


class RemoteModule:
    """An ``nn.Module`` of the student's, built in the sandbox, seen through its handle.

    It answers the part of the ``nn.Module`` interface that tests use. Every method is a
    request; what comes back is plain tensors, checked here. ``parameters()`` are snapshots
    of the sandbox's values (changing them changes nothing there): they exist so that
    autograd can ask for the gradients wrt the module's parameters.
    """

    def __init__(self, session: Session, name: str, handle: int):
        self._session = session
        self._target = Target(f"{name} (an instance)", {"handle": handle})
        self._leaves: dict[str, torch.Tensor] | None = None  # parameter snapshots

    def _method(self, method: str, *args, **kwargs) -> object:
        message = {"op": "method", **self._target.fields, "method": method,
                   "args": protocol.encode(args), "kwargs": protocol.encode(kwargs)}  # fmt: skip
        return self._session.value(message, f"{self._target.label}.{method}")

    def __call__(self, *args, **kwargs):
        params = self._parameters() if torch.is_grad_enabled() else {}
        return self._session.call(self._target, args, kwargs, params)

    forward = __call__

    def _parameters(self) -> dict[str, torch.Tensor]:
        if self._leaves is None:
            values = _tensor_dict(self._method("named_parameters"), "named_parameters()")
            self._leaves = {
                name: t.requires_grad_(t.is_floating_point() or t.is_complex())
                for name, t in values.items()
            }
        return self._leaves

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self._parameters().items())

    def parameters(self) -> Iterator[torch.Tensor]:
        return iter(self._parameters().values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return _tensor_dict(self._method("state_dict"), "state_dict()")

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> None:
        if not strict:
            raise ValueError("the grader loads state dicts strictly")
        self._leaves = None
        self._method("load_state_dict", dict(state_dict))

    def train(self, mode: bool = True) -> RemoteModule:
        self._method("train", mode)
        return self

    def eval(self) -> RemoteModule:
        return self.train(False)

    @property
    def training(self) -> bool:
        mode = self._method("training")
        if not isinstance(mode, bool):
            raise StudentFailure("the module's training flag is not a bool")
        return mode

    def to(self, *args, **kwargs) -> RemoteModule:
        self._leaves = None
        self._method("to", *args, **kwargs)
        return self


class _Remote(torch.autograd.Function):
    """A call of a student's function or module that autograd can differentiate through the
    sandbox: its inputs are the call's tensors, then the module's parameter snapshots. The
    sandbox keeps the call's graph, and the backward pass asks for the gradients of that very
    call."""

    @staticmethod
    def forward(ctx, session, target, call, *leaves):
        args, kwargs, _ = call
        answer = session.forward(target, args, kwargs, keep=True)
        value = answer["value"]
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
        ctx.call = (session, target, answer["graph"], call[2], leaves)
        return outputs[0] if isinstance(value, torch.Tensor) else outputs

    @staticmethod
    def backward(ctx, *grads):
        session, target, graph, names, leaves = ctx.call
        needs = ctx.needs_input_grad[3:]
        count = len(needs) - len(names)  # the call's own tensors come first
        inputs = [(i, leaves[i]) for i in range(count) if needs[i]]
        params = {n: leaves[count + i] for i, n in enumerate(names) if needs[count + i]}
        found = iter(session.vjp(target, graph, inputs, list(grads), params))
        return (None, None, None, *(next(found) if need else None for need in needs))
