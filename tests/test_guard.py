"""What the sandbox refuses, layer by layer, without the scan: every forbidden name of every
source notebook, reached by its name and by the routes around it (torch's C functions, torch.ops,
a thread, a module's namespace), in a process with the guard installed; and the scan's reports of
the constructs that reach around the grader, with the honest constructs it must leave alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from vislearn.grader import guard
from vislearn.grader.scan import scan

ROOT = Path(__file__).resolve().parents[1]
GRADER = ROOT / "lib" / "vislearn" / "grader"


def forbidden_names() -> dict[str, list[str]]:
    """Assignment -> the forbidden names of its source notebook."""
    return {
        path.parent.name: nbformat.read(path, as_version=4).metadata["grading"]["forbidden"]
        for path in sorted((ROOT / "solutions").glob("*/*.ipynb"))
    }


# How to call each forbidden torch function or class (by its last name) on small inputs, and the
# aten operator that is its own implementation below Python names.
CALLS = {
    "softmax": ("f(x, -1)", "torch.ops.aten._softmax(x, -1, False)"),
    "log_softmax": ("f(x, -1)", "torch.ops.aten._log_softmax(x, -1, False)"),
    "_softmax": ("f(x, -1, False)", "torch.ops.aten._softmax(x, -1, False)"),
    "_log_softmax": ("f(x, -1, False)", "torch.ops.aten._log_softmax(x, -1, False)"),
    "Softmax": ("f(-1)(x)", "torch.ops.aten._softmax(x, -1, False)"),
    "LogSoftmax": ("f(-1)(x)", "torch.ops.aten._log_softmax(x, -1, False)"),
    "scaled_dot_product_attention": (
        "f(q, q, q)",
        "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, q, q)",
    ),
    "multi_head_attention_forward": (
        "f(q, q, q, 4, 2, w, b, None, None, False, 0.0, w2, b2, need_weights=False)",
        "torch.ops.aten._native_multi_head_attention(q, q, q, 4, 2, w, b, w2, b2)",
    ),
    "MultiheadAttention": ("f(4, 2)", None),
}

CHILD = """
import contextlib, json, sys, threading
sys.path.insert(0, {grader!r})
import torch
import guard

names = {names!r}
original = {{}}
for dotted in names:  # the objects, before the guard replaces the names
    owner, value = guard._resolve(dotted)
    original[dotted] = value
guard.install(names, set())
x = torch.randn(3, 4)
q = torch.randn(2, 3, 4)
w, b = torch.randn(12, 4), torch.randn(12)
w2, b2 = torch.randn(4, 4), torch.randn(4)
calls = {calls!r}


def attempt(code, f=None, inside=True):  # as the harness runs the student's code: in active()
    values = {{"torch": torch, "f": f, "x": x, "q": q, "w": w, "b": b, "w2": w2, "b2": b2}}
    try:
        with guard.active() if inside else contextlib.nullcontext():
            eval(code, values)
    except guard.NotAllowedError:
        return "refused"
    except Exception as error:
        return f"raised {{type(error).__name__}}: {{error}}"
    return "ran"


def in_a_thread(code, f):  # a thread the student's code starts: it enters nothing itself
    out = []
    thread = threading.Thread(target=lambda: out.append(attempt(code, f, inside=False)))
    with guard.active():
        thread.start()
    thread.join()
    return out[0]


report = {{}}
for dotted in names:
    last = dotted.rsplit(".", 1)[-1]
    if original[dotted] is None:  # a module: never imported, refused
        try:
            __import__(dotted)
            report[dotted] = {{"import": "ran"}}
        except ImportError as error:
            report[dotted] = {{"import": "refused" if "not allowed" in str(error) else str(error)}}
        continue
    call, operator = calls[last]
    found = {{"by its name": attempt(call, guard._resolve(dotted)[1])}}
    if dotted.startswith("torch."):  # below its name: torch's modes, in any thread
        found["the original object"] = attempt(call, original[dotted])
        found["in a thread"] = in_a_thread(call, original[dotted])
        if operator:
            found["its aten operator"] = attempt(operator)
    report[dotted] = found
report["honest"] = attempt("torch.exp(x) / torch.exp(x).sum(-1, keepdim=True) @ x.T")
print(json.dumps(report))
"""


@pytest.mark.parametrize("assignment", sorted(forbidden_names()))
def test_every_forbidden_name_is_refused_by_every_route(assignment):
    """Torch's functions by every route; another package's function by its name (and the
    sandbox holds no package but torch's and NumPy: see tests/test_grader.py)."""
    names = forbidden_names()[assignment]
    functions = {n.rsplit(".", 1)[-1] for n in names if not n.startswith(("vislearn.", "torch_"))}
    assert functions <= CALLS.keys(), f"add a sample call for {functions - CALLS.keys()}"
    code = CHILD.format(grader=str(GRADER), names=names, calls=CALLS)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report.pop("honest") == "ran"
    allowed = {name: routes for name, routes in report.items()
               if any(outcome != "refused" for outcome in routes.values())}  # fmt: skip
    assert not allowed


def run_guarded(source: str, forbidden: list[str]) -> dict:
    """Run ``source`` as a student's cell in a fresh process with the guard and the student's
    builtins; its ``RESULT`` dict."""
    code = f"""
import json, sys
sys.path.insert(0, {str(GRADER)!r})
import torch
import guard
guard.install({forbidden!r}, set())
namespace = {{"__builtins__": guard.student_builtins(), "RESULT": {{}}}}
exec({source!r}, namespace)
print(json.dumps(namespace["RESULT"]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_students_builtins_refuse_what_reaches_around_and_allow_the_rest():
    attempts = {
        "import gc": "import gc",
        "import ctypes": "import ctypes",
        "from torch import _C": "from torch import _C",
        "import torch._C": "import torch._C",
        "getattr(torch, '_C')": "getattr(torch, '_C')",
        "getattr(torch, 'sof' + 'tmax')": "getattr(torch, 'sof' + 'tmax')(torch.ones(2), 0)",
        "vars(torch)": "vars(torch)",
        "setattr(torch, 'allclose', None)": "setattr(torch, 'allclose', None)",
        "eval('1')": "eval('1')",
        "exec('1')": "exec('1')",
        "hasattr(f, '__globals__')": "hasattr(len, '__globals__')",
    }
    honest = {
        "import math": "import math",
        "getattr(torch, 'exp')": "getattr(torch, 'exp')(torch.ones(2))",
        "getattr(self, name)": "getattr(torch.nn.Linear(2, 2), 'weight')",
        "setattr(module, name)": "setattr(torch.nn.Linear(2, 2), 'scale', 2.0)",
        "vars(an object)": "vars(torch.nn.Linear(2, 2))",
        "vars()": "vars()",
    }
    lines = ["import torch"]
    for label, code in {**attempts, **honest}.items():
        lines += ["try:", f"    {code}", f"    RESULT[{label!r}] = 'ran'",
                  "except Exception as error:",
                  f"    RESULT[{label!r}] = type(error).__name__"]  # fmt: skip
    result = run_guarded("\n".join(lines), ["torch.softmax"])
    assert {label: result[label] for label in attempts} == dict.fromkeys(
        attempts, "NotAllowedError"
    )
    assert {label: result[label] for label in honest} == dict.fromkeys(honest, "ran")


SETUP = [["setup", "import math\n\nimport torch\nimport torch.nn.functional as F\nimport vislearn"]]


def reported(source: str, forbidden: tuple[str, ...] = ()) -> list[str]:
    hits, _ = scan([["cell", textwrap.dedent(source)]], forbidden, ("f",), context=SETUP)
    return [hit.describe() for hit in hits]


@pytest.mark.parametrize(
    ("source", "construct"),
    [
        ("def f(x):\n    return eval('x')", "eval()"),
        ("def f(x):\n    exec('y = x')", "exec()"),
        ("code = compile('1', 'f', 'eval')", "compile()"),
        ("m = __import__('tor' + 'ch')", None),  # a literal name: an ordinary import
        ("def f(name):\n    return __import__(name)", "__import__ with a computed name"),
        ("import importlib\nm = importlib.import_module(NAME)", "with a computed name"),
        ("import importlib\nimportlib.reload(F)", "importlib.reload"),
        ("import gc\nobjects = gc.get_objects()", "the garbage collector (gc)"),
        ("import ctypes", "ctypes"),
        ("from inspect import getsource", "inspect"),
        ("import threading", "threads"),
        ("import builtins", "the builtins module"),
        ("f = torch._C._nn.gelu", "torch's internals (torch._C"),
        ("from torch import _C", "torch's internals (torch._C)"),
        ("g = torch.ops.aten.exp", "torch's internals (torch.ops"),
        ("from torch.utils import _python_dispatch", "torch's internals"),
        ("mode = torch.overrides.TorchFunctionMode", "torch's internals (torch.overrides"),
        ("import sys\nsys.modules['x'] = None", "sys.modules"),
        ("import sys\nsys.meta_path.clear()", "meta_path"),
        ("import sys\nframe = sys._getframe(1)", "_getframe"),
        ("namespace = vars(F)", "vars() of torch.nn.functional"),
        ("namespace = F.__dict__", "(a module's namespace)"),
        ("namespace = [F][0].__dict__", "__dict__ of an object reached by an expression"),
        ("def f(name):\n    return getattr(torch, name)", "with a computed name"),
        ("def f(name):\n    setattr(F, name, None)", "setattr() on the module"),
        ("hidden = getattr(torch, '_C')", "private torch._C"),
        ("from functools import reduce\nf = reduce(getattr, ['nn'], torch)", "getattr as a value"),
        ("path = F.__file__", "__file__"),
        ("g = (lambda: 0).__globals__", "__globals__"),
        ("classes = object.__subclasses__()", "__subclasses__"),
        ("w = torch.load('w.pt', weights_only=False)", "weights_only off"),
        ("path = '/usr/lib/python3/dist-packages/torch'", "a path into the installed packages"),
    ],
)
def test_the_scan_reports_each_construct_that_reaches_around(source, construct):
    found = reported(source)
    if construct is None:
        assert not found
    else:
        assert any(construct in text and "reaches around" in text for text in found), found


@pytest.mark.parametrize(
    "source",
    [
        "def f(x):\n    return F.gelu(x) + torch.exp(x).sum()",
        "class M(torch.nn.Module):\n    def f(self, name):\n        return getattr(self, name)",
        "class M(torch.nn.Module):\n    def f(self):\n        return self.__dict__",
        "def f(model, name):\n    return getattr(model, name)",
        "def f(model):\n    model.eval()\n    return torch.compile",
        "import numpy as np\nfrom collections import OrderedDict\nimport os.path",
        "def f(x):\n    return getattr(F, 'relu')(x)",
        "import sys\nsys.path.append('.')",
        "def f(layers):\n    return [vars(layer) for layer in layers]",
    ],
)
def test_the_scan_leaves_honest_code_alone(source):
    assert reported(source) == []


def test_a_forbidden_name_is_reported_through_an_alias_of_its_module():
    found = reported("from torch.nn import functional as G\ny = G.softmax", ("torch.softmax",))
    assert found and "torch.softmax" in found[0] and "in this exercise" in found[0]


def test_the_guard_and_the_scan_name_the_same_constructs():
    assert "gc" in guard.REACH_AROUND_MODULES and "__globals__" in guard.ESCAPE_ATTRIBUTES
