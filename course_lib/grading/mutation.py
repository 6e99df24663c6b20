"""Test strength by mutation: how many small bugs in the reference solution do the tests catch?

``course check HW`` takes every answer cell of the source notebook, and inside its
``### BEGIN SOLUTION`` block makes one small change at a time -- the bugs students make:

- sign flips: ``a + b`` <-> ``a - b``, ``-x`` -> ``x``, ``+=`` <-> ``-=``
- dropped terms: ``a + b`` -> ``a`` or ``b``, ``a * b`` -> ``a`` or ``b``
- wrong operators: ``*`` <-> ``/``, ``**`` -> ``*``, ``<`` <-> ``<=``, ``and`` <-> ``or``, max <-> min, sum -> mean
- changed constants: ``c`` -> ``c + 1``, ``2 c``, ``c / 2``
- off-by-one: ``range(n)`` -> ``range(n + 1)`` / ``range(n - 1)``, ``x[i]`` -> ``x[i + 1]``, slice bounds +-1
- swapped arguments: ``f(a, b)`` -> ``f(b, a)``
- early exits: a loop body that ends with ``break`` (one iteration only)

Each mutant is graded by the trusted runner exactly like a submission. A mutant is *caught* when
at least one test cell fails. Mutants that cannot change behaviour (equivalent mutants) are
excluded only when the instructor lists them with a reason in ``grading.toml``.
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass

from .notebook import is_answer_cell, meta

__all__ = ["Mutant", "mutants_of_cell", "mutants_of_notebook"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_SWAP_NAMES = {"max": "min", "min": "max", "argmax": "argmin", "argmin": "argmax", "sum": "mean", "mean": "sum",
               "maximum": "minimum", "minimum": "maximum"}
_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
               ast.FloorDiv: ast.Div, ast.MatMult: None}
_CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}


@dataclass
class Mutant:
    """One mutated version of an answer cell."""

    id: str
    cell: str
    line: int
    operator: str
    original: str
    mutated: str
    source: str  # the whole mutated cell


def _solution_lines(src: str) -> tuple[int, int]:
    lines = src.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == BEGIN), None)
    end = next((i for i, l in enumerate(lines) if l.strip() == END), None)
    if start is None or end is None:
        return 1, len(lines)
    return start + 2, end  # 1-based, inclusive range of solution code lines


def _sites(tree, lo, hi):
    """Yield (node, parent, field, index, operator, replacement) for every mutation of nodes in [lo, hi]."""
    for parent in ast.walk(tree):
        for fld, value in ast.iter_fields(parent):
            children = value if isinstance(value, list) else [value]
            for idx, node in enumerate(children):
                if not isinstance(node, ast.AST) or not hasattr(node, "lineno") or not lo <= node.lineno <= hi:
                    continue
                key = idx if isinstance(value, list) else None
                yield from ((node, parent, fld, key, op, rep) for op, rep in _mutations(node))


def _num(v):
    return ast.Constant(v)


def _mutations(node):
    if isinstance(node, ast.BinOp):
        new = _BINOP_SWAP.get(type(node.op))
        if new is not None:
            yield f"{type(node.op).__name__}->{new.__name__}", ast.BinOp(node.left, new(), node.right)
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            yield "drop-right-operand", node.left
            if isinstance(node.op, (ast.Add, ast.Mult)):
                yield "drop-left-operand", node.right
        if isinstance(node.op, ast.MatMult):
            yield "swap-matmul-operands", ast.BinOp(node.right, ast.MatMult(), node.left)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield "drop-minus", node.operand
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop-not", node.operand
    elif isinstance(node, ast.AugAssign) and type(node.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
        new = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}[type(node.op)]
        yield f"aug-{type(node.op).__name__}->{new.__name__}", ast.AugAssign(node.target, new(), node.value)
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_SWAP:
        yield "comparison", ast.Compare(node.left, [_CMP_SWAP[type(node.ops[0])]()], node.comparators)
    elif isinstance(node, ast.BoolOp):
        yield "and<->or", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        v = node.value
        yield "constant+1", _num(v + 1)
        if v not in (0, 1):
            yield "constant*2", _num(v * 2)
            yield "constant/2", _num(v / 2 if isinstance(v, float) else v // 2 if v % 2 == 0 else v / 2)
        if v == 1:
            yield "constant-1", _num(0)
    elif isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name == "range" and node.args:
            last = node.args[-1] if len(node.args) <= 2 else node.args[1]
            for delta, tag in ((1, "range+1"), (-1, "range-1")):
                args = list(node.args)
                pos = len(args) - 1 if len(args) <= 2 else 1
                args[pos] = ast.BinOp(last, ast.Add(), _num(delta))
                yield tag, ast.Call(node.func, args, node.keywords)
        if len(node.args) >= 2:
            args = list(node.args)
            args[0], args[1] = args[1], args[0]
            yield "swap-arguments", ast.Call(node.func, args, node.keywords)
        if name in _SWAP_NAMES and isinstance(node.func, ast.Attribute):
            func = ast.Attribute(node.func.value, _SWAP_NAMES[name], ast.Load())
            yield f"{name}->{_SWAP_NAMES[name]}", ast.Call(func, node.args, node.keywords)
    elif isinstance(node, ast.Subscript) and not isinstance(node.slice, (ast.Slice, ast.Tuple)):
        yield "index+1", ast.Subscript(node.value, ast.BinOp(node.slice, ast.Add(), _num(1)), node.ctx)
    elif isinstance(node, ast.Slice):
        for part in ("lower", "upper"):
            bound = getattr(node, part)
            if bound is not None:
                for delta in (1, -1):
                    new = copy.copy(node)
                    setattr(new, part, ast.BinOp(bound, ast.Add(), _num(delta)))
                    yield f"slice-{part}{delta:+d}", new
    elif isinstance(node, (ast.For, ast.While)):
        new = copy.copy(node)
        new.body = list(node.body) + [ast.Break()]
        yield "loop-runs-once", new


def _set(parent, fld, idx, new):
    if idx is None:
        setattr(parent, fld, new)
    else:
        getattr(parent, fld)[idx] = new


def mutants_of_cell(src: str, cell_id: str) -> list[Mutant]:
    """All distinct, compilable mutants of one answer cell (only its solution block is mutated)."""
    lo, hi = _solution_lines(src)
    lines = src.splitlines()
    prefix = [l for l in lines if l.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return []
    base = ast.unparse(tree)
    seen, out = {base}, []
    counts: dict[str, int] = {}
    for node, parent, fld, idx, op, rep in list(_sites(tree, lo, hi)):
        old = node
        _set(parent, fld, idx, rep)
        try:
            code = ast.unparse(ast.fix_missing_locations(tree))
            compile(code, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError, AttributeError, RecursionError):
            code = None
        finally:
            _set(parent, fld, idx, old)
        if code is None or code in seen:
            continue
        seen.add(code)
        line = node.lineno
        key = f"{cell_id}:{line}:{op}"
        counts[key] = counts.get(key, 0) + 1
        mid = f"{key}:{counts[key]}"
        original = lines[line - 1].strip() if line - 1 < len(lines) else ""
        try:
            mutated = ast.unparse(rep) if not isinstance(rep, (ast.For, ast.While)) else "<loop body> + break"
        except Exception:  # noqa: BLE001
            mutated = op
        out.append(Mutant(mid, cell_id, line, op, original, re.sub(r"\s+", " ", mutated)[:120],
                          "\n".join(prefix + [code])))
    return out


def mutants_of_notebook(source_nb) -> list[tuple[int, Mutant]]:
    """(cell index, mutant) for every answer cell of a source notebook."""
    out = []
    for i, cell in enumerate(source_nb.cells):
        if is_answer_cell(cell) and BEGIN in cell.source:
            out.extend((i, m) for m in mutants_of_cell(cell.source, meta(cell).get("grade_id", f"cell{i}")))
    return out
