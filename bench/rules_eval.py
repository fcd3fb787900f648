"""What evaluating the rules costs, per observation: `python -m bench.rules_eval`.

    python -m bench.rules_eval --devices 200 --hours 24 --batch 100 [--profile] [--cel-only]

A simulated fleet's messages (`simulator.build_plan`, every fault kind) are decoded first, by
the real decoder, outside the timing; then `evaluate()` runs over them in batches of `--batch`
observations, as the engine does between two timer ticks (`deadman=False`), the state carried
from batch to batch. Printed: CPU µs per observation (the process's CPU time, not wall time,
so other processes on a shared machine do not count; best of `--repeat` passes, and the first
pass, whose caches start empty), and the deadman tick's cost per luminaire.
`--profile` adds cProfile's top functions for one pass; `--cel-only` runs every expression
through CEL, as before `rules.language.native` (the same verdicts, for comparing their cost).
"""

from __future__ import annotations

import cProfile
import pstats
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console

from bench.rules_score import ALL_FAULTS, DEFAULT_RULES, inventory_of
from ingest.decode import Limits, decode
from models import Observation
from rules.evaluation.evaluator import EngineState, Rulebook, evaluate
from rules.language.expressions import Expression
from rules.language.loader import Rule, RuleSet, load_rules
from simulator import SimulationConfig, build_plan
from simulator.clock import from_ms, to_ms
from simulator.schedule import Publish


@dataclass(frozen=True, slots=True)
class BenchResult:
    observations: int
    us_per_observation: float
    first_us_per_observation: float
    """The first pass, whose caches start empty (each luminaire's sun computed for its dates)."""
    tick_us_per_device: float


def observations_of(
    config: SimulationConfig, rules_path: Path = DEFAULT_RULES
) -> tuple[Rulebook, list[Observation]]:
    """The rules over the simulated fleet, and every observation its run produces."""
    assert config.end is not None
    plan = build_plan(config, now_ms=to_ms(config.end))
    inventory = inventory_of(plan)
    rules = load_rules(rules_path, {"nominal_voltage_v": config.nominal_voltage_v})
    limits = Limits(topic_root=config.topic_root, max_clock_skew_s=1e9, observe=True)
    out: list[Observation] = []
    for event in plan.schedule.events():
        if isinstance(event, Publish):
            out.extend(decode(event.topic, event.payload, from_ms(event.t_ms), limits).observations)
    return Rulebook(rules, inventory), out


def cel_only(book: Rulebook) -> Rulebook:
    """The same rulebook with every expression evaluated by CEL alone."""

    def plain(expression: Expression | None) -> Expression | None:
        return None if expression is None else replace(expression, native=None)

    def rule_of(rule: Rule) -> Rule:
        return replace(
            rule,
            when=plain(rule.when),
            condition=plain(rule.condition),
            value=plain(rule.value),
            verdict=plain(rule.verdict),
        )

    rules = book.rules
    return Rulebook(
        RuleSet(tuple(rule_of(r) for r in rules.rules), rules.params, rules.fields), book.inventory
    )


def run_pass(book: Rulebook, observations: list[Observation], batch: int) -> float:
    """Seconds `evaluate()` took over every observation, in batches."""
    state = EngineState()
    spent = 0.0
    for start in range(0, len(observations), batch):
        chunk = observations[start : start + batch]
        now = chunk[-1].at
        began = time.process_time()
        state, _ = evaluate(book, state, now, chunk, deadman=False)
        spent += time.process_time() - began
    return spent


def tick_cost(book: Rulebook, observations: list[Observation]) -> float:
    """Seconds of one timer tick (deadman over the whole inventory) after the run."""
    state, _ = evaluate(book, EngineState(), observations[0].at, observations, deadman=False)
    now = observations[-1].at + timedelta(seconds=1)
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        evaluate(book, state, now)
        best = min(best, time.process_time() - began)
    return best


def bench(
    config: SimulationConfig,
    rules_path: Path = DEFAULT_RULES,
    batch: int = 100,
    repeat: int = 3,
    *,
    native: bool = True,
) -> BenchResult:
    book, observations = observations_of(config, rules_path)
    if not native:
        book = cel_only(book)
    passes = [run_pass(book, observations, batch) for _ in range(repeat)]
    tick = tick_cost(book, observations)
    count = max(len(observations), 1)
    return BenchResult(
        len(observations),
        min(passes) / count * 1e6,
        passes[0] / count * 1e6,
        tick / max(len(book.inventory), 1) * 1e6,
    )


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    devices: int = typer.Option(200, help="Luminaires in the simulated fleet."),
    hours: float = typer.Option(24.0, help="Simulated hours."),
    batch: int = typer.Option(100, help="Observations per evaluate() call."),
    repeat: int = typer.Option(3, help="Timed passes; the best is reported."),
    seed: int = typer.Option(1, help="Seed of the fleet and its faults."),
    start: str = typer.Option("2026-01-05T00:00:00Z", help="Simulated start (UTC)."),
    rules: Path = typer.Option(DEFAULT_RULES, help="The rules file."),  # noqa: B008
    profile: bool = typer.Option(False, help="Print cProfile's top functions for one pass."),
    celonly: bool = typer.Option(
        False, "--cel-only", help="Evaluate every expression by CEL, not its Python function."
    ),
) -> None:
    """Time the evaluation of the rules over a simulated fleet's observations."""
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    config = SimulationConfig(
        devices=devices,
        start=begin,
        end=begin + timedelta(hours=hours),
        faults=ALL_FAULTS,
        seed=seed,
        connections="shared",
    )
    console = Console()
    result = bench(config, rules, batch, repeat, native=not celonly)
    console.print(
        f"{result.observations} observations, batches of {batch}: "
        f"{result.us_per_observation:.1f} µs per observation (best of {repeat}; "
        f"first pass {result.first_us_per_observation:.1f}); "
        f"deadman tick {result.tick_us_per_device:.2f} µs per luminaire"
    )
    if profile:
        book, observations = observations_of(config, rules)
        if celonly:
            book = cel_only(book)
        profiler = cProfile.Profile()
        profiler.runcall(run_pass, book, observations, batch)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    app()
