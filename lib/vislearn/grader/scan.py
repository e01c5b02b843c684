"""A static check of the student's code (Python's ``ast``): the names an exercise forbids, and
the constructs that exist only to reach around the grader's checks.

The sandbox refuses forbidden names by every route it can see (:mod:`vislearn.grader.guard`);
this scan also reports what the guard cannot see, and what should never appear in graded
code. A hit marks the submission ``tampered`` and scores 0 on the tests of the functions it
taints.

**Forbidden names** (the notebook's ``metadata.grading.forbidden``). For each dotted name:

- an attribute access or an imported name equal to its last part (``x.softmax``,
  ``from torch.nn.functional import softmax``), or an import of it as a module;
- a string equal to the dotted name or containing it (``"vislearn.attention"``), and a
  string equal to its last part if built by concatenation or passed to ``getattr``
  (docstrings are not code and are not scanned).

**Reaching around** (:data:`REACH_AROUND_MODULES`, :data:`ESCAPE_ATTRIBUTES`, and the rules
in :class:`_Finder`): ``exec``, ``eval``, ``compile``; ``__import__`` and ``importlib`` with a
computed name, ``importlib.reload``; modules whose only use here is to get behind the
grader (``gc``, ``ctypes``, ``inspect``, ``threading`` ...); ``torch._C``, ``torch.ops`` and
every other private or dispatch-level part of torch; ``sys.modules``, ``sys.meta_path`` and
the frame functions; ``vars()``, ``__dict__``, ``getattr``/``setattr``/``delattr`` on a
Python module with a computed name (or a private one), and those builtins passed around as
values; the attributes that lead from an object to code, frames or other modules
(``__globals__``, ``__subclasses__``, ``__file__`` ...); paths into installed packages.
An ``nn.Module``'s own attributes (``getattr(self, name)``, ``self.__dict__``) are the
student's to use.

A hit inside a top-level function taints that function; a hit outside any function taints
the functions defined in the same cell (all of the student's functions if there are none).
Taint spreads to every function that calls a tainted one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from vislearn.grader.guard import ESCAPE_ATTRIBUTES, REACH_AROUND_MODULES

# Builtins that run or reach code by a computed name.
CODE_BUILTINS = {"exec", "eval", "compile", "breakpoint", "__import__"}
ATTRIBUTE_BUILTINS = {"getattr", "setattr", "delattr", "hasattr", "vars"}
# Public parts of torch that work below its Python names (every private part counts too).
TORCH_INTERNALS = ("torch.ops", "torch.library", "torch.overrides", "torch.hub", "torch.package")


@dataclass(frozen=True)
class Hit:
    """One use of a forbidden name or construct: where, and in which top-level function."""

    name: str
    cell: str
    line: int
    function: str | None
    reach_around: bool = False

    def describe(self) -> str:
        where = f"cell '{self.cell}', line {self.line}"
        if self.reach_around:
            return (f"uses {self.name} ({where}), which is not allowed in graded code: it "
                    "reaches around the grader's checks")  # fmt: skip
        return f"uses {self.name} ({where}), which is not allowed in this exercise"


def _folded(node: ast.AST) -> tuple[str, bool] | None:
    """The value of a string expression made of literals, and whether it was concatenated."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _folded(node.left), _folded(node.right)
        if left and right:
            return left[0] + right[0], True
    if isinstance(node, ast.JoinedStr):
        parts = [_folded(v) for v in node.values]
        if all(parts):
            return "".join(p[0] for p in parts), True
    return None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imported(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name of what it was imported as (``F`` -> ``torch.nn.functional``),
    and names assigned a dotted name built on those (``nn = torch.nn``)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    changed = True
    while changed:  # nn = torch.nn; F = nn.functional
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                dotted = _dotted(node.value, aliases)
                if isinstance(target, ast.Name) and dotted and aliases.get(target.id) != dotted:
                    aliases[target.id] = dotted
                    changed = True
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name an expression stands for, through the imports (``F.softmax`` ->
    ``torch.nn.functional.softmax``), or None."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, forbidden: tuple[str, ...], aliases: dict[str, str]):
        self.forbidden = forbidden
        self.aliases = aliases
        self.last = {name.rsplit(".", 1)[-1]: name for name in forbidden}
        self.found: list[tuple[str, int, str | None, bool]] = []
        self.function: str | None = None

    def hit(self, name: str, node: ast.AST) -> None:
        self.found.append((name, node.lineno, self.function, False))

    def reach(self, construct: str, node: ast.AST) -> None:
        self.found.append((construct, node.lineno, self.function, True))

    def visit_top(self, node: ast.stmt) -> None:
        is_def = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        self.function = node.name if is_def else None
        self.visit(node)

    # --- names ---------------------------------------------------------------------------

    def _module_use(self, dotted: str, node: ast.AST) -> None:
        """Report a use of the module or name ``dotted`` (imported, or reached through an
        imported name) that reaches around the grader."""
        parts = dotted.split(".")
        if parts[0] in REACH_AROUND_MODULES:
            self.reach(f"{REACH_AROUND_MODULES[parts[0]]} ({parts[0]})", node)
        elif parts[0] == "importlib" and parts[1:2] in (["reload"], ["util"], ["machinery"]):
            self.reach(f"{dotted}", node)
        elif parts[0] == "sys" and parts[1:2] == ["modules"]:
            self.reach("sys.modules", node)
        elif parts[0] == "torch" and (
            any(_is_private(p) for p in parts[1:])
            or any(dotted == t or dotted.startswith(t + ".") for t in TORCH_INTERNALS)
        ):
            self.reach(f"torch's internals ({dotted})", node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.reach("__builtins__", node)
        elif node.id in CODE_BUILTINS | ATTRIBUTE_BUILTINS and node.id not in self.aliases:
            parent = getattr(node, "parent", None)
            if not (isinstance(parent, ast.Call) and parent.func is node):
                self.reach(f"{node.id} as a value", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.last:
            self.hit(self.last[node.attr], node)
        if node.attr in ESCAPE_ATTRIBUTES:
            self.reach(node.attr, node)
        elif node.attr == "__dict__" and not isinstance(node.value, ast.Name):
            self.reach("__dict__ of an object reached by an expression", node)
        dotted = _dotted(node, self.aliases)
        outermost = not isinstance(getattr(node, "parent", None), ast.Attribute)
        if dotted is not None and outermost:
            if node.attr == "__dict__":
                self.reach(f"{dotted} (a module's namespace)", node)
            self._module_use(dotted, node)
        self.generic_visit(node)

    def _module(self, module: str, node: ast.AST) -> None:
        for name in self.forbidden:
            if module == name or module.startswith(name + "."):
                self.hit(name, node)
        self._module_use(module, node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(module, node)
        for alias in node.names:
            self._module(f"{module}.{alias.name}", node)
            if alias.name in self.last:
                self.hit(self.last[alias.name], node)

    # --- strings -------------------------------------------------------------------------

    def _string(self, node: ast.expr, by_name: bool) -> bool:
        folded = _folded(node)
        if folded is None:
            return False
        value, concatenated = folded
        for name in self.forbidden:
            if name in value or name.replace(".", "/") in value:
                self.hit(name, node)
        if value in self.last and (concatenated or by_name):
            self.hit(self.last[value], node)
        if by_name and (value in ESCAPE_ATTRIBUTES or value == "__dict__"):
            self.reach(f"the attribute {value!r} by name", node)
        if "site-packages" in value or "dist-packages" in value:
            self.reach("a path into the installed packages", node)
        return True

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if function in self.aliases:
            function = None  # a name the student imported, not the builtin
        if function in ("exec", "eval", "compile", "breakpoint"):
            self.reach(f"{function}()", node)
        elif function == "__import__":
            self._imported_by_name(node, "__import__")
        elif function in ATTRIBUTE_BUILTINS and node.args:
            self._by_name(function, node)
        dotted = _dotted(node.func, self.aliases)
        if dotted == "importlib.import_module":
            self._imported_by_name(node, dotted)
        for keyword in node.keywords:
            if keyword.arg == "weights_only" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is True
            ):
                self.reach("unpickling with weights_only off", keyword.value)
        self.generic_visit(node)

    def _imported_by_name(self, node: ast.Call, how: str) -> None:
        folded = _folded(node.args[0]) if node.args else None
        if folded is None:
            self.reach(f"{how} with a computed name", node)
        else:
            self._module(folded[0], node)

    def _by_name(self, function: str, node: ast.Call) -> None:
        """``getattr(obj, name)`` and its kin: a module's namespace, a module attribute by a
        computed name, or a private or escape attribute by name."""
        target = _dotted(node.args[0], self.aliases)
        if function == "vars":
            if target is not None or not isinstance(node.args[0], ast.Name):
                self.reach(f"vars() of {target or 'an expression'}", node)
            return
        name = node.args[1] if len(node.args) > 1 else None
        literal = _folded(name) if name is not None else None
        if name is not None and not self._string(name, by_name=True) and target is not None:
            self.reach(f"{function}() on the module {target} with a computed name", node)
        elif literal is not None and target is not None and _is_private(literal[0]):
            self.reach(f"{function}() of the private {target}.{literal[0]}", node)
        if function in ("setattr", "delattr") and target is not None:
            self.reach(f"{function}() on the module {target}", node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not self._string(node, by_name=False):
            self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if not self._string(node, by_name=False):
            self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        is_docstring = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        if not is_docstring:  # docstrings may name what the student did *not* use
            self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        self._string(node, by_name=False)


def _with_parents(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node
    return tree


def scan(
    cells: list[list[str]],
    forbidden: tuple[str, ...],
    functions: tuple[str, ...],
    context: list[list[str]] = (),
) -> tuple[list[Hit], dict[str, Hit]]:
    """All hits in the ``[label, source]`` cells, and the tainted student functions.

    ``context`` are cells that run before the student's (the notebook's locked ``setup``):
    their imports name modules (``F``) for the scan, but they are not scanned."""
    hits: list[Hit] = []
    tainted: dict[str, Hit] = {}
    calls: dict[str, set[str]] = {}  # top-level function -> names it uses
    trees = []
    for label, source in [*context, *cells]:
        try:
            trees.append((label, _with_parents(ast.parse(source))))
        except SyntaxError:
            continue  # the sandbox reports it when the cell runs
    aliases: dict[str, str] = {}
    for _, tree in trees:
        aliases |= _imported(tree)
    scanned = {label for label, _ in cells}
    for label, tree in trees:
        if label not in scanned:
            continue
        finder = _Finder(forbidden, aliases)
        defined = []
        for node in tree.body:
            finder.visit_top(node)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.append(node.name)
                calls[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        seen = set()
        for name, line, function, reach_around in finder.found:
            if (name, line) in seen:
                continue
            seen.add((name, line))
            hit = Hit(name, label, line, function, reach_around)
            hits.append(hit)
            owners = [function] if function else (defined or list(functions))
            for owner in owners:
                tainted.setdefault(owner, hit)
    changed = True
    while changed:  # a function that calls a tainted function is tainted
        changed = False
        for function, used in calls.items():
            if function not in tainted:
                for callee in used & tainted.keys():
                    tainted[function] = tainted[callee]
                    changed = True
                    break
    return hits, tainted
