"""A static check of the student's code for the names an exercise forbids (Python's ``ast``).

The sandbox already makes forbidden names raise; this scan also catches what a stub cannot
see (``torch.ops.aten._softmax``, a reloaded module, ``getattr(torch, "soft" + "max")``,
``__import__("vis" + "learn.attention")``). For each forbidden dotted name it reports

- an attribute access or an imported name equal to its last part (``x.softmax``,
  ``from torch.nn.functional import softmax``), or an import of it as a module;
- a string equal to the dotted name or containing it (``"vislearn.attention"``), and a
  string equal to its last part if built by concatenation or passed to ``getattr``
  (docstrings are not code and are not scanned).

A hit inside a top-level function taints that function; a hit outside any function taints
the functions defined in the same cell (all of the student's functions if there are none).
Taint spreads to every function that calls a tainted one. Tests of tainted functions score 0.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """One use of a forbidden name: where, and in which top-level function (if any)."""

    name: str
    cell: str
    line: int
    function: str | None

    def describe(self) -> str:
        return (f"uses {self.name} (cell '{self.cell}', line {self.line}), which is not "
                "allowed in this exercise")  # fmt: skip


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


class _Finder(ast.NodeVisitor):
    def __init__(self, forbidden: tuple[str, ...]):
        self.forbidden = forbidden
        self.last = {name.rsplit(".", 1)[-1]: name for name in forbidden}
        self.found: list[tuple[str, int, str | None]] = []
        self.function: str | None = None

    def hit(self, name: str, node: ast.AST) -> None:
        self.found.append((name, node.lineno, self.function))

    def visit_top(self, node: ast.stmt) -> None:
        is_def = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        self.function = node.name if is_def else None
        self.visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.last:
            self.hit(self.last[node.attr], node)
        self.generic_visit(node)

    def _module(self, module: str, node: ast.AST) -> None:
        for name in self.forbidden:
            if module == name or module.startswith(name + "."):
                self.hit(name, node)

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
        return True

    def visit_Call(self, node: ast.Call) -> None:
        by_name = isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
        if by_name and len(node.args) > 1:
            self._string(node.args[1], by_name=True)
        self.generic_visit(node)

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


def scan(
    cells: list[list[str]], forbidden: tuple[str, ...], functions: tuple[str, ...]
) -> tuple[list[Hit], dict[str, Hit]]:
    """All hits in the ``[label, source]`` cells, and the tainted student functions."""
    hits: list[Hit] = []
    tainted: dict[str, Hit] = {}
    calls: dict[str, set[str]] = {}  # top-level function -> names it uses
    if not forbidden:
        return hits, tainted
    for label, source in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # the sandbox reports it when the cell runs
        finder = _Finder(forbidden)
        defined = []
        for node in tree.body:
            finder.visit_top(node)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.append(node.name)
                calls[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        seen = set()
        for name, line, function in finder.found:
            if (name, line) in seen:
                continue
            seen.add((name, line))
            hit = Hit(name, label, line, function)
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
