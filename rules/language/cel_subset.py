"""The part of CEL the shipped rules are written in, parsed into a small tree for
`rules.language.native`:
literals (doubles, ints, strings without escapes, `true`, `false`, `null`), `var.field`,
`has(var.field)`, `size(x)`, `double(x)`, `! -` (unary), `* /`, `+ -`, the six comparisons,
`&&`, `||` and `?:`, with CEL's precedence, each level left-associative.

`parse()` returns None for anything else (a macro, an index, a method call, a field of a field, a
map or list literal, `in`, `%`, a comment, a raw, bytes or escaped string, a hex or unsigned
int): such an expression is only ever evaluated by CEL. It is only given sources CEL compiled,
so it need not reject every invalid one, only parse valid ones as CEL does.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

INT64 = 2**63


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    """float, int, str, bool or None."""


@dataclass(frozen=True, slots=True)
class Select:
    """`variable.field`: an error when the field is absent."""

    variable: str
    field: str


@dataclass(frozen=True, slots=True)
class Has:
    """`has(variable.field)`."""

    variable: str
    field: str


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    """`!` or `-`."""
    operand: "Node"


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    """`* / + -` or a comparison."""
    left: "Node"
    right: "Node"


@dataclass(frozen=True, slots=True)
class Logical:
    op: str
    """`&&` or `||`, over two or more operands."""
    operands: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Conditional:
    test: "Node"
    yes: "Node"
    no: "Node"


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    """`size` or `double`."""
    argument: "Node"


Node = Literal | Select | Has | Unary | Binary | Logical | Conditional | Call

ARITHMETIC = frozenset({"*", "/", "+", "-"})
COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})

_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n]+)
    |(?P<float>(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+))
    |(?P<int>0|[1-9][0-9]*)
    |(?P<string>"[^"\\\r\n]*"|'[^'\\\r\n]*')
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-*/?:().,])""",
    re.VERBOSE,
)
_KEYWORDS = {"true": True, "false": False, "null": None}


class _OutsideError(Exception):
    """Not in the subset."""


def parse(source: str) -> Node | None:
    """The tree of `source` (an expression CEL compiles), or None when it is outside the subset."""
    try:
        parser = _Parser(_tokens(source))
        node = parser.expression()
        parser.expect("end")
    except (_OutsideError, RecursionError):
        return None
    return node


def _tokens(source: str) -> list[tuple[str, str]]:
    if "//" in source:  # a comment (or one inside a string): not worth telling apart
        raise _OutsideError
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _OutsideError
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, match.group()))
        pos = match.end()
    out.append(("end", ""))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def accept(self, *ops: str) -> str | None:
        kind, text = self.tokens[self.pos]
        if kind == "op" and text in ops:
            self.pos += 1
            return text
        return None

    def expect(self, kind: str, text: str | None = None) -> str:
        found_kind, found = self.take()
        if found_kind != kind or (text is not None and found != text):
            raise _OutsideError
        return found

    def expression(self) -> Node:
        test = self.logical("||", self.conjunction)
        if not self.accept("?"):
            return test
        yes = self.logical("||", self.conjunction)
        self.expect("op", ":")
        return Conditional(test, yes, self.expression())

    def conjunction(self) -> Node:
        return self.logical("&&", self.relation)

    def logical(self, op: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self.accept(op):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Logical(op, tuple(operands))

    def relation(self) -> Node:
        node = self.sum()
        while op := self.accept(*COMPARISONS):
            node = Binary(op, node, self.sum())
        return node

    def sum(self) -> Node:
        node = self.product()
        while op := self.accept("+", "-"):
            node = Binary(op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while op := self.accept("*", "/"):
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        op = self.accept("!", "-")
        if op is None:
            return self.primary()
        operand = self.unary()
        if op == "-" and isinstance(operand, Literal) and type(operand.value) in (float, int):
            return _literal(-operand.value)
        return Unary(op, operand)

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "float":
            return _literal(float(text))
        if kind == "int":
            return _literal(int(text))
        if kind == "string":
            return _literal(text[1:-1])
        if kind == "op" and text == "(":
            node = self.expression()
            self.expect("op", ")")
            return node
        if kind != "name":
            raise _OutsideError
        if text in _KEYWORDS:
            return _literal(_KEYWORDS[text])
        if self.accept("("):
            return self.call(text)
        self.expect("op", ".")
        field = self.expect("name")
        if self.tokens[self.pos] in (("op", "("), ("op", ".")):
            raise _OutsideError  # a method, or a field of a field
        return Select(text, field)

    def call(self, function: str) -> Node:
        if function == "has":
            variable = self.expect("name")
            self.expect("op", ".")
            field = self.expect("name")
            self.expect("op", ")")
            return Has(variable, field)
        if function not in ("size", "double"):
            raise _OutsideError
        argument = self.expression()
        self.expect("op", ")")
        return Call(function, argument)


def _literal(value: Any) -> Literal:
    if type(value) is int and not -INT64 < value < INT64:
        raise _OutsideError  # beyond CEL's int64, or its minimum (a literal of its own)
    return Literal(value)
