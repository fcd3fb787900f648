"""CEL expressions of `rules.language.cel_subset` as Python functions, so an observation need not be
converted into CEL values (about 3 µs per double with the `cel` module) to run the rules.

A function reads the same variables as the CEL program, as Python dicts (`reading`, `sun`…, each
a dict of field to value), and mirrors CEL only where that is exact: doubles (`+ - * /`,
comparisons), booleans (`! && || ?:`, `==`), `==`/`!=` of ints and strings, `<`… of ints,
`has()`, `size()` of a list, `double()` of a double or an int. Everywhere else it raises
`NotMirroredError` and the caller runs the CEL program instead: a field that is absent, a
variable that is not there, an operand of another type (CEL's errors and its heterogeneous
comparisons alike), a NaN compared, a division by zero, an operand of `&&` / `||` / `?:` that is
not a boolean. `&&` answers false as soon as one operand is false, `||` true as soon as one is
true: as CEL does, whatever the other operands would give. So a function answers exactly as CEL
would, or not at all.

The function is generated as Python text and compiled once, at load: one function call per
expression instead of one per node. The text holds nothing of the rule's source: names are
generated (`t3`, `c0`), and every literal and field name is handed in as a value (`c0`…).
"""

from collections.abc import Callable, Mapping
from typing import Any

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

Variables = Mapping[str, Any]
"""The variables of an expression by name, each a dict of its fields: a plain `dict` (what is
not a dict is no variable CEL could read a field of, except other mappings, which the functions
do not expect)."""
Native = Callable[[Variables], Any]

_MAX_DEPTH = 40
"""Deeper nesting of `&&`, `||`, `?:` is left to CEL (Python limits indentation)."""
_RESULTS = (bool, float, int, str, type(None))
_EQUATABLE = (float, int, bool, str)
_ORDERED = (float, int)


class NotMirroredError(Exception):
    """This evaluation left what the Python function mirrors exactly: ask CEL."""


class _TooDeepError(Exception):
    pass


def translate(source: str) -> Native | None:
    """The function evaluating `source` (a CEL expression that compiles), or None when it is
    outside the subset."""
    node = parse(source)
    if node is None:
        return None
    try:
        return _Writer().function(node)
    except (_TooDeepError, RecursionError):
        return None


class _Writer:
    """Writes one function: statements computing each node into a local, its static type when
    known (a comparison is a bool, arithmetic a double), so checks that cannot fail are left out."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: list[Any] = []
        self.variables: dict[str, tuple[str, str]] = {}
        """Per variable read: the local holding its dict (None when absent: reading a field of
        it raises TypeError, as of a value that is not a dict), the constant holding its name."""
        self.temps = 0

    def function(self, node: Node) -> Native:
        result, kind = self.node(node, 2)
        if kind not in _RESULTS:
            self.line(2, f"if type({result}) not in _R: raise _N")
        self.line(2, f"return {result}")
        head = [f"        {local} = v.get({name})" for local, name in self.variables.values()]
        parameters = ", ".join(["_N", "_R", "_E", "_O", *self.names()])
        lines = [f"def make({parameters}):", "    def native(v):", *head, *self.lines]
        text = "\n".join([*lines, "    return native"])
        namespace: dict[str, Any] = {}
        exec(compile(text, "<rules.language.native>", "exec"), namespace)  # noqa: S102 (see the module doc)
        made: Native = namespace["make"](
            NotMirroredError, _RESULTS, _EQUATABLE, _ORDERED, *self.constants
        )
        return made

    def names(self) -> list[str]:
        return [f"c{i}" for i in range(len(self.constants))]

    def line(self, depth: int, text: str) -> None:
        if depth > _MAX_DEPTH:
            raise _TooDeepError
        self.lines.append("    " * depth + text)

    def temp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    def constant(self, value: Any) -> str:
        self.constants.append(value)
        return f"c{len(self.constants) - 1}"

    def variable(self, name: str) -> str:
        """The local holding the variable's dict, read once at the top of the function."""
        if name not in self.variables:
            self.variables[name] = (f"d{len(self.variables)}", self.constant(name))
        return self.variables[name][0]

    def node(self, node: Node, depth: int) -> tuple[str, type | None]:
        """Emit `node` at `depth`; its local (or constant) and its type when known."""
        if isinstance(node, Literal):
            return self.constant(node.value), type(node.value)
        if isinstance(node, Select):
            return self.select(node, depth), None
        if isinstance(node, Has):
            out = self.temp()
            local = self.variable(node.variable)
            self.line(depth, f"if type({local}) is not dict: raise _N")
            self.line(depth, f"{out} = {self.constant(node.field)} in {local}")
            return out, bool
        if isinstance(node, Unary):
            return self.unary(node, depth)
        if isinstance(node, Binary):
            if node.op in ARITHMETIC:
                return self.arithmetic(node, depth), float
            return self.comparison(node, depth), bool
        if isinstance(node, Logical):
            return self.logical(node, depth), bool
        if isinstance(node, Conditional):
            return self.conditional(node, depth)
        return self.call(node, depth)

    def select(self, node: Select, depth: int) -> str:
        out = self.temp()
        local = self.variable(node.variable)
        self.line(depth, "try:")
        self.line(depth + 1, f"{out} = {local}[{self.constant(node.field)}]")
        self.line(depth, "except (KeyError, TypeError):")
        self.line(depth + 1, "raise _N from None")
        return out

    def unary(self, node: Unary, depth: int) -> tuple[str, type]:
        operand, kind = self.node(node.operand, depth)
        out = self.temp()
        if node.op == "-":
            if kind is not float:
                self.line(depth, f"if type({operand}) is not float: raise _N")
            self.line(depth, f"{out} = -{operand}")
            return out, float
        if kind is not bool:
            self.line(depth, f"if {operand} is not True and {operand} is not False: raise _N")
        self.line(depth, f"{out} = not {operand}")
        return out, bool

    def arithmetic(self, node: Binary, depth: int) -> str:
        left, left_kind = self.node(node.left, depth)
        right, right_kind = self.node(node.right, depth)
        checks = [
            f"type({operand}) is not float"
            for operand, kind in ((left, left_kind), (right, right_kind))
            if kind is not float
        ]
        if node.op == "/" and not (isinstance(node.right, Literal) and node.right.value):
            checks.append(f"{right} == 0.0")  # CEL gives ±inf or NaN
        if checks:
            self.line(depth, f"if {' or '.join(checks)}: raise _N")
        out = self.temp()
        self.line(depth, f"{out} = {left} {node.op} {right}")
        return out

    def comparison(self, node: Binary, depth: int) -> str:
        """Operands of one type (CEL's comparisons across types are left to it); `<` and the
        like on doubles and ints only; no NaN (CEL refuses to order one)."""
        left, left_kind = self.node(node.left, depth)
        right, right_kind = self.node(node.right, depth)
        allowed = _EQUATABLE if node.op in ("==", "!=") else _ORDERED
        checks: list[str] = []
        if left_kind is not None and right_kind is not None:
            if left_kind is not right_kind or left_kind not in allowed:
                checks.append("True")
        elif left_kind is not None or right_kind is not None:
            known, other = (left_kind, right) if left_kind is not None else (right_kind, left)
            assert known is not None
            if known not in allowed:
                checks.append("True")
            else:
                checks.append(f"type({other}) is not {known.__name__}")
        else:
            group = "_E" if allowed is _EQUATABLE else "_O"
            checks.append(f"type({left}) is not type({right}) or type({left}) not in {group}")
        for operand, kind, tree in ((left, left_kind, node.left), (right, right_kind, node.right)):
            if isinstance(tree, Literal):
                if tree.value != tree.value:
                    checks.append("True")
            elif kind in (float, None):
                checks.append(f"{operand} != {operand}")
        if checks:
            self.line(depth, f"if {' or '.join(checks)}: raise _N")
        out = self.temp()
        self.line(depth, f"{out} = {left} {node.op} {right}")
        return out

    def logical(self, node: Logical, depth: int) -> str:
        """`&&`: false as soon as an operand is false, true when all are true, else ask CEL;
        `||` the same with true and false swapped."""
        decisive, other = ("False", "True") if node.op == "&&" else ("True", "False")
        out = self.temp()
        self.line(depth, f"{out} = {decisive}")
        self.chain(node.operands, out, decisive, other, depth)
        return out

    def chain(
        self, operands: tuple[Node, ...], out: str, decisive: str, other: str, depth: int
    ) -> None:
        """The first operand, and the rest in its block when it is not decisive."""
        operand, kind = self.node(operands[0], depth)
        self.line(depth, f"if {operand} is {other}:")
        if len(operands) == 1:
            self.line(depth + 1, f"{out} = {other}")
        else:
            self.chain(operands[1:], out, decisive, other, depth + 1)
        if kind is not bool:
            self.line(depth, f"elif {operand} is not {decisive}: raise _N")

    def conditional(self, node: Conditional, depth: int) -> tuple[str, type | None]:
        test, kind = self.node(node.test, depth)
        out = self.temp()
        self.line(depth, f"if {test} is True:")
        yes, yes_kind = self.node(node.yes, depth + 1)
        self.line(depth + 1, f"{out} = {yes}")
        self.line(depth, "else:" if kind is bool else f"elif {test} is False:")
        no, no_kind = self.node(node.no, depth + 1)
        self.line(depth + 1, f"{out} = {no}")
        if kind is not bool:
            self.line(depth, "else: raise _N")
        return out, yes_kind if yes_kind is no_kind else None

    def call(self, node: Call, depth: int) -> tuple[str, type]:
        argument, kind = self.node(node.argument, depth)
        out = self.temp()
        if node.function == "size":
            if kind is not list:
                self.line(depth, f"if type({argument}) is not list: raise _N")
            self.line(depth, f"{out} = len({argument})")
            return out, int
        if kind not in (float, int):
            self.line(depth, f"if type({argument}) is not float and type({argument}) is not int:")
            self.line(depth + 1, "raise _N")
        self.line(depth, f"{out} = float({argument})")
        return out, float


ASK_CEL: Any = object()
"""A fused result standing for an expression its function cannot answer (or that has none):
ask CEL (`fuse`)."""

Fused = Callable[[Variables], tuple[Any, ...] | None]


def fuse(natives: tuple[Native | None, ...], *, changes_only: bool) -> Fused:
    """One function running `natives` in turn on the same variables: the tuple of their results,
    `ASK_CEL` where a function raised `NotMirroredError` or there is none. With `changes_only`
    it returns None instead when every result is False or None (null): what the verdicts of a
    device without alerts come to when they change nothing (`rules.evaluation.evaluator`), so
    its observation costs one call. Generated once per rule set, like the functions themselves:
    the text holds generated names only."""
    slots = [f"r{i}" for i in range(len(natives))]
    lines = [f"def make(_N, _A, {', '.join(f'f{i}' for i in range(len(natives)))}):"]
    lines.append("    def fused(v):")
    for i, native in enumerate(natives):
        if native is None:
            lines.append(f"        r{i} = _A")
        else:
            lines += [f"        try: r{i} = f{i}(v)", f"        except _N: r{i} = _A"]
    if changes_only:
        quiet = " and ".join(f"({r} is False or {r} is None)" for r in slots) or "True"
        lines.append(f"        if {quiet}: return None")
    lines += [f"        return ({''.join(f'{r}, ' for r in slots)})", "    return fused"]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<rules.language.native.fuse>", "exec"), namespace)  # noqa: S102 (see the module doc)
    made: Fused = namespace["make"](NotMirroredError, ASK_CEL, *natives)
    return made
