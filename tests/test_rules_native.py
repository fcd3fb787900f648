"""The Python functions of `rules.language.native` are held to CEL itself: on random expressions
over
random variables (absent fields, other types, NaN, infinities, zeros), whenever a function
answers, CEL gives the same value of the same type, and when CEL cannot evaluate, the function
does not answer either. Then the evaluator with them against the evaluator without them, over
a simulated fleet: the same transitions and the same error counts."""

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import cel
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.rules_eval import cel_only, observations_of
from bench.rules_score import ALL_FAULTS, DEFAULT_RULES
from models import Observation
from rules.evaluation.evaluator import Counters, EngineState, Rulebook, evaluate, mark_sent
from rules.language.loader import load_rules
from rules.language.native import ASK_CEL, NotMirroredError, fuse, translate
from simulator import SimulationConfig

_FLOATS = ["0.0", "1.5", "2.0", "100.0", "1e3", "2.5e-1", "0.1"]
_INTS = ["0", "2", "7", "9223372036854775807"]
_FIELDS = ["m.x", "m.y", "m.z", "m.b", "m.s", "m.l", "m.i", "n.x", "q.x"]

leaves = st.one_of(
    st.sampled_from(_FLOATS),
    st.sampled_from(_INTS),
    st.sampled_from(["'a'", '"b"', "''", "true", "false", "null"]),
    st.sampled_from(_FIELDS),
    st.sampled_from(_FIELDS).map(lambda f: f"has({f})"),
)


def _compose(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(
        inner,
        st.sampled_from(["+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "&&", "||"]),
        inner,
    ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    return st.one_of(
        binary,
        inner.map(lambda e: f"!{e}"),
        inner.map(lambda e: f"-{e}"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        inner.map(lambda e: f"size({e})"),
        inner.map(lambda e: f"double({e})"),
        # precedence and associativity, unparenthesised
        st.tuples(inner, inner).map(lambda t: f"{t[0]} && {t[1]} || {t[0]}"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} - {t[1]} * {t[2]}"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} < {t[1]} == {t[2]}"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} - {t[1]} - {t[2]}"),
        st.tuples(inner, inner).map(lambda t: f"!{t[0]} && -{t[1]} < - -2.0"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]} ? {t[0]} : {t[1]}"),
    )


def _typed() -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    """Expressions that are mostly well typed (doubles, booleans), so that CEL can evaluate
    most of them and the functions answer."""
    numbers = st.deferred(
        lambda: st.one_of(
            st.sampled_from([*_FLOATS, "m.x", "m.y", "m.z", "n.x", "double(m.i)", "-m.x"]),
            st.tuples(numbers, st.sampled_from(["+", "-", "*", "/"]), numbers).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(booleans, numbers, numbers).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        )
    )
    booleans = st.deferred(
        lambda: st.one_of(
            st.sampled_from(["true", "false", "m.b", "has(m.x)", "has(n.x)", "size(m.l) > 0"]),
            st.tuples(numbers, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), numbers).map(
                lambda t: f"{t[0]} {t[1]} {t[2]}"
            ),
            booleans.map(lambda e: f"!({e})"),
            st.tuples(booleans, st.sampled_from(["&&", "||"]), booleans).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(booleans, booleans, booleans).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        )
    )
    return numbers, booleans


_NUMBERS, _BOOLEANS = _typed()
expressions = st.one_of(
    st.recursive(leaves, _compose, max_leaves=8),
    _BOOLEANS,
    _NUMBERS,
    _BOOLEANS.map(lambda e: f"({e}) ? ({e}) : null"),
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.5, 2.0, 100.0, math.inf, -math.inf, math.nan]),
)
typed_fields = st.fixed_dictionaries(
    {},
    optional={
        "x": numbers,
        "y": numbers,
        "z": numbers,
        "b": st.booleans(),
        "i": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "l": st.lists(st.sampled_from(["f1", "f2"]), max_size=3),
    },
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.5, 2.0, math.inf, -math.inf, math.nan]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.sampled_from(["a", "b", ""]),
    st.lists(st.sampled_from(["f1", "f2"]), max_size=3),
)
fields = st.dictionaries(st.sampled_from(["x", "y", "z", "b", "s", "l", "i"]), values)
variables = st.fixed_dictionaries(
    {"m": st.one_of(typed_fields, fields)},
    optional={"n": st.one_of(typed_fields, fields, st.just(1.0), st.just([]))},
)


def _same(native: Any, expected: Any) -> bool:
    if type(native) is not type(expected):
        return False
    if isinstance(native, float) and math.isnan(native):
        return math.isnan(expected)
    return bool(native == expected)


def _cel(source: str, bound: dict[str, Any]) -> tuple[Any, bool]:
    """CEL's value and whether it could evaluate."""
    try:
        return cel.compile(source).execute(cel.Context(bound)), True
    except Exception:
        return None, False


@settings(max_examples=500, deadline=None)
@given(expressions, variables)
@example("m.x < 1.0 && m.y", {"m": {"x": math.nan, "y": False}})
@example("(m.x / 0.0) > 1.0", {"m": {"x": 1.0}})
@example("q.x && false", {"m": {}})
@example("double(m.i) == 2.0", {"m": {"i": 2}})
@example("1 == 1.0", {"m": {}})
def test_a_function_answers_as_cel_or_not_at_all(source: str, bound: dict[str, Any]) -> None:
    try:
        cel.compile(source)
    except Exception:
        return  # the loader would have refused it
    native = translate(source)
    if native is None:
        return
    expected, evaluable = _cel(source, bound)
    try:
        answer = native(bound)
    except NotMirroredError:
        return
    assert evaluable, f"{source}: CEL cannot evaluate it, the function said {answer!r}"
    assert _same(answer, expected), f"{source}: {answer!r}, CEL {expected!r}"


def _compiles(source: str) -> bool:
    try:
        cel.compile(source)
    except Exception:
        return False
    return True


def _each(natives: tuple[Any, ...], bound: dict[str, Any]) -> list[Any]:
    """What running the functions one by one gives: each result, ASK_CEL where there is none
    or it does not answer."""
    out = []
    for native in natives:
        try:
            out.append(ASK_CEL if native is None else native(bound))
        except NotMirroredError:
            out.append(ASK_CEL)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(expressions, max_size=6), variables)
def test_fused_functions_give_each_function_s_result(
    sources: list[str], bound: dict[str, Any]
) -> None:
    """`fuse` runs the functions as one: the same results (and ASK_CEL where one does not
    answer); with `changes_only`, None exactly when every result is False or None."""
    natives = [translate(source) for source in sources if _compiles(source)]
    expected = _each(tuple(natives), bound)
    each = fuse(tuple(natives), changes_only=False)(bound)
    assert each is not None
    assert len(each) == len(expected)
    for got, want in zip(each, expected, strict=True):
        assert got is want if want is ASK_CEL else _same(got, want), (sources, got, want)
    changes = fuse(tuple(natives), changes_only=True)(bound)
    if all(r is False or r is None for r in expected):
        assert changes is None
    else:
        assert changes is not None
        assert [r is ASK_CEL for r in changes] == [r is ASK_CEL for r in expected]


@pytest.mark.parametrize(
    "source",
    [
        "[1.0, 2.0].exists(x, x > 1.0)",  # a macro
        "m.l[0] == 'a'",  # an index
        "m.s.startsWith('a')",  # a method
        "m.x.y > 1.0",  # a field of a field
        "m.x > 1.0 // a comment",
        "m.s == 'a\\'b'",  # an escape
        "m.s == r'raw'",
        "m.x in [1.0]",
        "m.i % 2 == 0",
        "0x10 == m.i",
        "m.i == 1u",
        "{'a': 1.0}.a > 0.0",
        "m",
        "int(m.x) > 1",
    ],
)
def test_what_is_left_to_cel(source: str) -> None:
    cel.compile(source)
    assert translate(source) is None


def test_a_string_literal_is_data_not_code() -> None:
    """The generated text holds nothing of the source: a literal that looks like Python is
    compared as a string."""
    source = 'm.s == \'x" or __import__("os").getpid() or "\''
    native = translate(source)
    assert native is not None
    assert native({"m": {"s": "x"}}) is False
    assert native({"m": {"s": 'x" or __import__("os").getpid() or "'}}) is True


def test_every_shipped_expression_has_a_function() -> None:
    rules = load_rules(DEFAULT_RULES)
    for rule in rules.rules:
        for expression in (rule.verdict, rule.value):
            if expression is not None:
                assert expression.native is not None, (rule.name, expression.source)


def _run(book: Rulebook, observations: list[Observation]) -> tuple[list[Any], dict[str, int]]:
    state, counters = EngineState(), Counters()
    out: list[Any] = []
    for start in range(0, len(observations), 50):
        chunk = observations[start : start + 50]
        now = chunk[-1].at
        state, transitions = evaluate(book, state, now, chunk, counters)
        out.extend((t.kind, t.at, t.alert) for t in transitions)
        state = mark_sent(state, [a.id for a in state.resolved.values()], now)
    return out, counters.errors


def test_the_functions_change_no_verdict_over_a_simulated_fleet() -> None:
    start = datetime(2026, 3, 20, 12, tzinfo=UTC)
    config = SimulationConfig(
        devices=40,
        start=start,
        end=start + timedelta(hours=24),
        faults=ALL_FAULTS,
        seed=5,
        connections="shared",
    )
    book, observations = observations_of(config)
    with_functions = _run(book, observations)
    assert with_functions[0], "the fleet's faults raise alerts"
    assert with_functions == _run(cel_only(book), observations)
