"""What the sandbox refuses: forbidden modules, and forbidden torch functions and classes by
whatever route the student's code takes to them.

The harness installs it (:func:`install`) after importing torch and before the student's code
runs, and runs the student's code inside :func:`active`. Five layers:

1. **Names.** A forbidden function that exists is replaced by a stub that raises
   :class:`NotAllowedError`: the clearest message for the plain route (``torch.softmax(x)``).
   A forbidden class is patched in place (its ``__init__`` and ``forward`` raise), so every
   alias of the class object (``torch.nn.modules.activation.MultiheadAttention``) refuses too.
2. **Imports.** A forbidden module, and every ``vislearn`` module the sandbox was not given, is
   refused by a meta-path finder. Nothing is imported to find out whether a name is a module:
   a module that torch has not imported is blocked, never loaded, so there is no module object
   to find again (and the sandbox does not contain the packages a course forbids anyway).
3. **Below names.** A :class:`~torch.overrides.TorchFunctionMode` refuses the original
   function objects (torch's C functions keep their identity under every alias:
   ``torch._C._nn.scaled_dot_product_attention`` *is* ``F.scaled_dot_product_attention``) and
   every torch function of the same name (a copy recompiled from torch's source calls torch's
   handler under its own name). A :class:`~torch.utils._python_dispatch.TorchDispatchMode`
   refuses the aten operators that implement them (:data:`DISPATCHED`), whatever reached them:
   ``torch.ops.aten._softmax``, a fused attention kernel, a loss that computes a log-softmax.
4. **Threads.** The two modes are per thread: every thread the student's code starts enters
   them first.
5. **Builtins.** The student's namespace has builtins of its own (:func:`student_builtins`):
   ``exec``, ``eval`` and ``compile`` refuse, and ``__import__``, ``getattr``, ``setattr``,
   ``vars`` ... refuse the modules and attributes that only lead around the grader, whatever
   name the code computed at run time. Torch's own code keeps the real builtins.

Every refusal is appended to :data:`REFUSED`; the harness reports it to the grader, and a
refusal at run time makes the submission ``tampered``. What the guard cannot see, the static
scan (:mod:`vislearn.grader.scan`, on the trusted side) reports: the constructs that exist
only to reach around it (``torch._C``, ``torch.ops``, ``gc``, ``ctypes``, ``exec`` ...).

Both sides import this file: the sandbox gets a copy beside ``harness.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import sys
import types

# The aten operators behind each forbidden torch function or class, by its last name. The
# dispatch mode sees operators after PyTorch's composite operators are decomposed, so the
# table lists what they decompose to (sdpa's math path ends in _safe_softmax, for one). A
# name that is itself an operator (torch._softmax -> aten::_softmax) needs no entry.
# tests/test_guard.py calls every forbidden name of every source notebook through these
# routes: a new forbidden function needs its line here when it is a composite operator.
_SOFTMAX = ("_softmax", "_safe_softmax", "_masked_softmax")
_ATTENTION = (
    "_safe_softmax",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
    "_flash_attention_forward",
    "_efficient_attention_forward",
    "_native_multi_head_attention",
)
DISPATCHED = {
    "softmax": _SOFTMAX,
    "Softmax": _SOFTMAX,
    "special_softmax": _SOFTMAX,
    "log_softmax": ("_log_softmax",),
    "LogSoftmax": ("_log_softmax",),
    "special_log_softmax": ("_log_softmax",),
    "scaled_dot_product_attention": _ATTENTION,
    "multi_head_attention_forward": _ATTENTION,
    "MultiheadAttention": _ATTENTION,
}

REFUSED: list[str] = []  # what was refused, in order; the harness reports and clears it
_MODES: list[type] = []  # the torch modes that install() made (see active())

# Modules whose use in graded code can only be to get behind the grader: the sandbox refuses
# to import them in the student's code, and the scan reports them (with these words).
REACH_AROUND_MODULES = {
    "gc": "the garbage collector",
    "ctypes": "ctypes",
    "inspect": "inspect",
    "linecache": "linecache",
    "dis": "dis",
    "marshal": "marshal",
    "pickle": "pickle",
    "_pickle": "pickle",
    "copyreg": "copyreg",
    "builtins": "the builtins module",
    "threading": "threads",
    "_thread": "threads",
    "concurrent": "threads",
    "multiprocessing": "processes",
    "subprocess": "processes",
    "pkgutil": "pkgutil",
    "site": "site",
    "sysconfig": "sysconfig",
    "code": "the code module",
    "guard": "the grader's own modules",
    "protocol": "the grader's own modules",
    "harness": "the grader's own modules",
}
# Attributes that lead from an object to code, frames, modules or the interpreter.
ESCAPE_ATTRIBUTES = {
    "__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__", "__mro__",
    "__bases__", "__base__", "__getattribute__", "__loader__", "__spec__", "__file__",
    "__path__", "__wrapped__", "__self__", "__import__", "f_locals", "f_globals", "f_back",
    "f_builtins", "f_code", "tb_frame", "tb_next", "gi_frame", "gi_code", "cr_frame",
    "ag_frame", "_getframe", "meta_path", "path_hooks", "path_importer_cache", "settrace",
    "setprofile", "attrgetter", "methodcaller", "CodeType", "FunctionType",
}  # fmt: skip
# A module's dunder attributes that tell nothing about where it lives or what it holds.
PUBLIC_DUNDERS = {"__name__", "__doc__", "__version__", "__all__", "__package__"}


class NotAllowedError(RuntimeError):
    """Raised when the student's code uses a function, class or module the exercise forbids."""


def refuse(name: str) -> NotAllowedError:
    """Record a refusal of ``name``; the error to raise."""
    REFUSED.append(name)
    return NotAllowedError(f"{name} is not allowed in this exercise")


class ImportGuard(importlib.abc.MetaPathFinder):
    """Refuses forbidden modules, and ``vislearn`` modules that the sandbox was not given."""

    def __init__(self, blocked: list[str], vislearn_modules: set[str]):
        self.blocked = blocked
        self.vislearn_modules = vislearn_modules

    def find_spec(self, fullname, path=None, target=None):
        for name in self.blocked:
            if fullname == name or fullname.startswith(name + "."):
                raise ImportError(str(refuse(name)))
        parts = fullname.split(".")
        if parts[0] == "vislearn" and len(parts) > 1 and parts[1] not in self.vislearn_modules:
            available = ", ".join(f"vislearn.{m}" for m in sorted(self.vislearn_modules))
            raise ModuleNotFoundError(f"{fullname} is not available when grading ({available} are)")
        return None


def _stub(dotted: str):
    def not_allowed(*args, **kwargs):
        raise refuse(dotted)

    not_allowed.__name__ = not_allowed.__qualname__ = dotted.rsplit(".", 1)[-1]
    return not_allowed


def _patch_class(cls: type, dotted: str) -> None:
    """Make ``cls`` refuse to be built or called, under every name it has."""
    stub = _stub(dotted)
    cls.__init__ = stub
    if hasattr(cls, "forward"):
        cls.forward = stub


def _resolve(dotted: str) -> tuple[object | None, object | None]:
    """``(owner, value)`` of a function or class named ``dotted``; ``(None, None)`` if the
    name is a module or nothing. Only the name's parents are imported (when torch has not
    imported them already), never the name itself: a forbidden module stays unloaded."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:i])
        try:
            module = sys.modules.get(parent) or importlib.import_module(parent)
        except ImportError:
            continue
        owner = module
        for attribute in parts[i:-1]:
            owner = getattr(owner, attribute, None)
        value = getattr(owner, parts[-1], None) if owner is not None else None
        if value is None or isinstance(value, types.ModuleType):
            return None, None
        return owner, value
    return None, None


def _torch_modes(functions: dict[int, str], names: set[str], operators: set[str]):
    """The function and dispatch modes that refuse ``functions`` (id of the object -> its
    forbidden name), torch functions called ``names``, and the aten operators called
    ``operators``."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    class RefuseFunctions(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if id(func) in functions or name in names:
                raise refuse(functions.get(id(func), f"torch's {name}"))
            return func(*args, **(kwargs or {}))

    class RefuseOperators(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            operator = func._overloadpacket.__name__
            if operator in operators:
                raise refuse(f"the operator aten::{operator}")
            return func(*args, **(kwargs or {}))

    return RefuseFunctions, RefuseOperators


def _guard_threads(enter) -> None:
    """Every thread started from now on calls ``enter()`` before its target."""
    import _thread
    import threading

    for owner, attribute in ((_thread, "start_new_thread"), (threading, "_start_new_thread"),
                             (_thread, "start_joinable_thread"),
                             (threading, "_start_joinable_thread")):  # fmt: skip
        original = getattr(owner, attribute, None)
        if original is None:
            continue

        def start(function, *args, _original=original, **kwargs):
            def guarded(*a, **k):
                enter()
                return function(*a, **k)

            return _original(guarded, *args, **kwargs)

        setattr(owner, attribute, start)


def _reaches_around(obj: object, name: object) -> bool:
    """Is ``obj.name`` an attribute that graded code may not reach by name?"""
    if not isinstance(name, str):
        return False
    private = name.startswith("_") and name not in PUBLIC_DUNDERS
    return name in ESCAPE_ATTRIBUTES or (isinstance(obj, types.ModuleType) and private)


def _imports_around(name: str, fromlist) -> bool:
    parts = name.split(".")
    private = [p for p in [*parts[1:], *(fromlist or ())] if isinstance(p, str) and p[:1] == "_"]
    return parts[0] in REACH_AROUND_MODULES or (parts[0] == "torch" and bool(private))


def student_builtins() -> dict:
    """The builtins of the student's namespace. Those that reach code, modules or attributes
    by a name computed at run time refuse what graded code may not reach (``exec``,
    ``eval``, ``compile``; ``import gc``, ``import torch._C``; a module's private attributes,
    ``vars()`` of a module, ``setattr`` on one; the attributes that lead to code and frames).
    Only the student's code sees them: torch's own code keeps the real builtins."""
    import builtins

    names = dict(vars(builtins))

    def getattr_(obj, name, *default):
        if _reaches_around(obj, name):
            raise refuse(f"getattr() of {name!r}")
        return builtins.getattr(obj, name, *default)

    def hasattr_(obj, name):
        if _reaches_around(obj, name):
            raise refuse(f"hasattr() of {name!r}")
        return builtins.hasattr(obj, name)

    def setattr_(obj, name, value):
        if isinstance(obj, types.ModuleType) or _reaches_around(obj, name):
            raise refuse(f"setattr() of {name!r}")
        builtins.setattr(obj, name, value)

    def delattr_(obj, name):
        if isinstance(obj, types.ModuleType) or _reaches_around(obj, name):
            raise refuse(f"delattr() of {name!r}")
        builtins.delattr(obj, name)

    def vars_(*args):
        if args and isinstance(args[0], types.ModuleType):
            raise refuse("vars() of a module")
        return builtins.vars(*args) if args else sys._getframe(1).f_locals

    def import_(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and _imports_around(name, fromlist):
            names = f" ({', '.join(map(str, fromlist))})" if fromlist else ""
            raise refuse(f"import {name}{names}")
        return builtins.__import__(name, globals, locals, fromlist, level)

    names.update(getattr=getattr_, hasattr=hasattr_, setattr=setattr_, delattr=delattr_,
                 vars=vars_, __import__=import_)  # fmt: skip
    for name in ("exec", "eval", "compile", "breakpoint"):
        names[name] = _stub(f"{name}()")
    return names


def install(forbidden: list[str], vislearn_modules: set[str]) -> None:
    """Refuse the ``forbidden`` dotted names by every layer (see the module's docstring); the
    torch modes refuse inside :func:`active`, and in every thread started from now on."""
    import torch

    guard = ImportGuard([], vislearn_modules)
    sys.meta_path.insert(0, guard)
    functions: dict[int, str] = {}  # id of a forbidden function -> its forbidden name
    names, operators = set(), set()
    for dotted in forbidden:
        owner, value = _resolve(dotted)
        if value is None:  # a module, or nothing the sandbox has: refused, never imported
            guard.blocked.append(dotted)
            for loaded in [m for m in sys.modules if m == dotted or m.startswith(dotted + ".")]:
                del sys.modules[loaded]
            continue
        last = dotted.rsplit(".", 1)[-1]
        name = getattr(value, "__name__", last)
        if isinstance(value, type):
            _patch_class(value, dotted)
        else:
            functions[id(value)] = dotted
            names.add(name)
            setattr(owner, last, _stub(dotted))
        operators.update({last, name}, DISPATCHED.get(last, ()), DISPATCHED.get(name, ()))
    if not functions and not operators:
        return
    _MODES[:] = _torch_modes(functions, names, operators)
    _guard_threads(lambda: active().__enter__())
    with active():  # the first dispatch through the modes imports what they use: not in a call
        (torch.ones(2, requires_grad=True) * 2).sum().backward()


def prepare() -> None:
    """Import what torch's function and dispatch modes import on their first dispatch (1,900
    modules, sympy among them: 1.7 s). The zygote calls it once, before it forks a sandbox,
    with modes that refuse nothing: no student's code has run, and nothing is refused yet.
    Forward only: a backward pass would start autograd's device threads, which a fork cannot
    use on a GPU machine."""
    import torch

    with contextlib.ExitStack() as stack:
        for mode in _torch_modes({}, set(), set()):
            stack.enter_context(mode())
        (torch.ones(2, requires_grad=True) * 2).sum()


def active() -> contextlib.ExitStack:
    """A context in which the torch modes of :func:`install` refuse what it forbade (nothing,
    if it forbade no torch function). The harness runs the student's code, and handles what it
    returns, in it; the harness's own reading and writing of messages stays outside."""
    stack = contextlib.ExitStack()
    for mode in _MODES:
        stack.enter_context(mode())
    return stack
