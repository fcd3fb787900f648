"""CEL expressions of `rules.language.cel_subset` run over columns: one numpy operation per node
for a whole chunk of observations instead of one Python function call per observation.

`vectorise(source)` gives a function of a `Frame` (per variable and field, a `Column` of that
field's values over the chunk's rows) returning a `Column` of the expression's results. It
answers a row exactly as `rules.language.native`'s function would, and only where that function
would answer: every other row is marked `ask` (the caller evaluates those the scalar way, through
the native function and CEL). It mirrors the native functions node by node, including their
order: `&&` / `||` are decided by their first operand that is not true (false), as the native
function's nested blocks decide them, so a row the native function would refuse is never given
CEL's answer here.

Types are a column's `kind` (the Python type of its values: float, bool, int, str, NoneType) and
its `null` rows (a `?:` whose branch is `null`: the verdicts' `(when) ? (condition) : null`).
A row whose value has another type than its column's kind is an `ask` row of that column.
Anything outside what is mirrored (`size()`, a variable other than `reading`, `device`, `sun`,
`history`, `previous`) makes `vectorise` return None: the rules are then evaluated the scalar
way.
"""

import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rules.language.cel_subset import (
    ARITHMETIC,
    Binary,
    Call,
    Conditional,
    Has,
    Literal,
    Logical,
    Node,
    Select,
    Unary,
    parse,
)

VARIABLES = frozenset({"reading", "device", "sun", "history", "previous"})
"""The variables a vectorised expression may read."""

_NONE = type(None)
_EQUATABLE = (float, int, bool, str)
_ORDERED = (float, int)
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Column:
    """One value per row: `value` (an array, or one value for all rows) of type `kind` where
    neither `ask` (not mirrored: ask the scalar path) nor `null` (the value is null)."""

    kind: type
    value: Any
    ask: Any = False
    null: Any = False


@dataclass(frozen=True, slots=True)
class Frame:
    """A chunk's variables over its rows: `columns[(variable, field)]` for each field read, the
    rows where the variable exists (`exists[variable]`: a dict CEL could read), and `rows`."""

    rows: int
    columns: Mapping[tuple[str, str], Column]
    present: Mapping[tuple[str, str], Any]
    """Per field, the rows where it was sent (`has()`)."""
    exists: Mapping[str, Any]
    memo: dict[int, Column] = field(default_factory=dict)
    """The columns of the subexpressions several expressions share (`vectorise_all`), once
    computed over this frame."""


Vectorised = Callable[[Frame], Column]


def vectorise(source: str) -> Vectorised | None:
    """The vectorised function of `source` (a CEL expression that compiles), or None when it is
    outside what is mirrored."""
    return vectorise_all([source])[0]


def vectorise_all(sources: Sequence[str]) -> list[Vectorised | None]:
    """`vectorise` of each source, their common subexpressions computed once a frame: the
    verdicts of a rule book repeat theirs (the shipped rules: 108 operations, 86 distinct, the
    sun's window and the supply check in three rules each), and an operation is a numpy
    call over the whole chunk."""
    nodes = [parse(source) for source in sources]
    kept = [node if node is not None and _inside(node) else None for node in nodes]
    counts: Counter[str] = Counter()
    for node in kept:
        if node is not None:
            _count(node, counts)
    shared: dict[str, _Repeated] = {}
    return [None if node is None else _runner(_share(node, counts, shared)) for node in kept]


def _runner(node: "Node | _Repeated") -> Vectorised:
    def run(frame: Frame) -> Column:
        with np.errstate(all="ignore"):
            return _node(node, frame)

    return run


@dataclass(frozen=True, slots=True, eq=False)
class _Repeated:
    """A subexpression several expressions (or one, more than once) hold: its column is kept
    in the frame's `memo` (by this object's id) once computed."""

    node: "Node | _Repeated"


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Call):
        return (node.argument,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Logical):
        return node.operands
    if isinstance(node, Conditional):
        return (node.test, node.yes, node.no)
    return ()


def _count(node: Node, counts: Counter[str]) -> None:
    """How often each operation occurs (by its text, `repr`: `1`, `1.0` and `true` differ)."""
    children = _children(node)
    if children:
        counts[repr(node)] += 1
        for child in children:
            _count(child, counts)


def _share(node: Node, counts: Counter[str], shared: dict[str, _Repeated]) -> Any:
    """`node` with each operation that occurs more than once replaced by one `_Repeated`."""
    children = _children(node)
    if not children:
        return node
    new = [_share(child, counts, shared) for child in children]
    if isinstance(node, Unary):
        rebuilt: Any = replace(node, operand=new[0])
    elif isinstance(node, Call):
        rebuilt = replace(node, argument=new[0])
    elif isinstance(node, Binary):
        rebuilt = replace(node, left=new[0], right=new[1])
    elif isinstance(node, Logical):
        rebuilt = replace(node, operands=tuple(new))
    else:
        rebuilt = replace(node, test=new[0], yes=new[1], no=new[2])
    key = repr(node)
    if counts[key] < 2:
        return rebuilt
    return shared.setdefault(key, _Repeated(rebuilt))


def reads(source: str) -> set[tuple[str, str]]:
    """The (variable, field) pairs `source` reads (by `has()` or a select)."""
    node = parse(source)
    out: set[tuple[str, str]] = set()
    if node is not None:
        _reads(node, out)
    return out


def _reads(node: Node, out: set[tuple[str, str]]) -> None:
    if isinstance(node, Select | Has):
        out.add((node.variable, node.field))
    elif isinstance(node, Unary | Call):
        _reads(node.operand if isinstance(node, Unary) else node.argument, out)
    elif isinstance(node, Binary):
        _reads(node.left, out)
        _reads(node.right, out)
    elif isinstance(node, Logical):
        for operand in node.operands:
            _reads(operand, out)
    elif isinstance(node, Conditional):
        for part in (node.test, node.yes, node.no):
            _reads(part, out)


def _inside(node: Node) -> bool:
    if isinstance(node, Literal):
        return True
    if isinstance(node, Select | Has):
        return node.variable in VARIABLES
    if isinstance(node, Unary):
        return _inside(node.operand)
    if isinstance(node, Binary):
        return _inside(node.left) and _inside(node.right)
    if isinstance(node, Logical):
        return all(_inside(operand) for operand in node.operands)
    if isinstance(node, Conditional):
        return _inside(node.test) and _inside(node.yes) and _inside(node.no)
    return node.function == "double" and _inside(node.argument)


def _refused(column: Column) -> Any:
    """Rows an operator refuses outright whatever it wants: not mirrored, or null."""
    return column.ask | column.null


def _all_ask(kind: type = float) -> Column:
    return Column(kind, 0.0, True)


def _node(node: Any, frame: Frame) -> Column:
    if isinstance(node, _Repeated):
        found = frame.memo.get(id(node))
        if found is None:
            found = frame.memo[id(node)] = _node(node.node, frame)
        return found
    if isinstance(node, Literal):
        return Column(type(node.value), node.value, False, node.value is None)
    if isinstance(node, Select):
        key = (node.variable, node.field)
        found = frame.columns.get(key)
        if found is None:
            return _all_ask()
        return found
    if isinstance(node, Has):
        exists = np.asarray(frame.exists.get(node.variable, False), dtype=bool)
        return Column(bool, frame.present.get((node.variable, node.field), False), ~exists)
    if isinstance(node, Unary):
        return _unary(node, frame)
    if isinstance(node, Binary):
        if node.op in ARITHMETIC:
            return _arithmetic(node, frame)
        return _comparison(node, frame)
    if isinstance(node, Logical):
        return _logical(node, frame)
    if isinstance(node, Conditional):
        return _conditional(node, frame)
    return _double(node, frame)


def _unary(node: Unary, frame: Frame) -> Column:
    operand = _node(node.operand, frame)
    wanted = float if node.op == "-" else bool
    if operand.kind is not wanted:
        return _all_ask(wanted)
    value = -operand.value if node.op == "-" else ~np.asarray(operand.value, dtype=bool)
    return Column(wanted, value, _refused(operand))


def _arithmetic(node: Binary, frame: Frame) -> Column:
    left, right = _node(node.left, frame), _node(node.right, frame)
    if left.kind is not float or right.kind is not float:
        return _all_ask()
    ask = _refused(left) | _refused(right)
    if node.op == "/" and not (isinstance(node.right, Literal) and node.right.value):
        ask = ask | (np.asarray(right.value) == 0.0)  # CEL gives ±inf or NaN
    return Column(float, _OPS[node.op](np.asarray(left.value), right.value), ask)


def _comparison(node: Binary, frame: Frame) -> Column:
    """As the native function: operands of one kind, `<` and the like on doubles and ints
    only, no NaN."""
    left, right = _node(node.left, frame), _node(node.right, frame)
    allowed = _EQUATABLE if node.op in ("==", "!=") else _ORDERED
    if left.kind is not right.kind or left.kind not in allowed:
        return _all_ask(bool)
    ask = _refused(left) | _refused(right)
    if left.kind is float:
        ask = ask | np.isnan(left.value) | np.isnan(right.value)
    if left.kind is str and (
        isinstance(left.value, np.ndarray) or isinstance(right.value, np.ndarray)
    ):
        return _all_ask(bool)  # string columns are not built: only literals
    return Column(bool, _OPS[node.op](np.asarray(left.value), right.value), ask)


def _logical(node: Logical, frame: Frame) -> Column:
    """`&&`: decided by its first operand that is not true (false: false; anything else: ask),
    true when all are; `||` the same with true and false swapped."""
    decisive = node.op == "||"
    decided: Any = False
    ask: Any = False
    for operand_node in node.operands:
        operand = _node(operand_node, frame)
        open_ = ~np.asarray(decided, dtype=bool)
        if operand.kind is not bool:
            ask = ask | open_
            decided = True
            continue
        refused = _refused(operand)
        ask = ask | (open_ & refused)
        settles = ~np.asarray(refused, dtype=bool) & (np.asarray(operand.value) == decisive)
        decided = decided | refused | settles
    undecided = ~np.asarray(decided, dtype=bool)
    # Rows decided without ask took the decisive value; the rest, the other one.
    value = np.where(undecided, not decisive, decisive)
    return Column(bool, value, ask)


def _conditional(node: Conditional, frame: Frame) -> Column:
    test = _node(node.test, frame)
    if test.kind is not bool:
        return _all_ask()
    yes, no = _node(node.yes, frame), _node(node.no, frame)
    chosen = np.asarray(test.value, dtype=bool)
    if yes.kind is _NONE or no.kind is _NONE:
        kind = no.kind if yes.kind is _NONE else yes.kind
    elif yes.kind is not no.kind:
        return _all_ask()
    else:
        kind = yes.kind
    ask = _refused(test) | np.where(chosen, yes.ask, no.ask)
    null = np.where(chosen, yes.null, no.null)
    if yes.kind is _NONE or no.kind is _NONE:
        value = no.value if yes.kind is _NONE else yes.value
        if yes.kind is _NONE and no.kind is _NONE:
            value = None
    else:
        value = np.where(chosen, yes.value, no.value)
    return Column(kind, value, ask, null)


def _double(node: Call, frame: Frame) -> Column:
    argument = _node(node.argument, frame)
    if argument.kind is float:
        return Column(float, argument.value, _refused(argument))
    if argument.kind is int and not isinstance(argument.value, np.ndarray):
        return Column(float, float(argument.value), _refused(argument))
    return _all_ask()
