"""Rounds and sweeps: many measurements, each on a fresh stage.

Each measurement gets a namespace and an nginx of its own, so no run inherits another's
TIME_WAIT sockets (which every poll of a watcher dumps) and every watcher meets the same
conditions. Within a round the watchers take turns, and the order turns by one each
round, so none is always first after a quiet moment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from harness.counts import Tally
from harness.measure import TAIL, Row, measure
from harness.pacer import run_paced
from harness.stage import LoadResult, Stage
from harness.verdict import Target, misses
from harness.watchers import WatcherSpec

WARM_UP = (200, 10)  # ab -n -c before each measurement: nginx's workers' first connections
SWEEP_MISSES = 2  # a watcher's sweep stops after missing at this many rates in a row
SWEEP_REACH = 0.9  # ... or once the client reached less than this share of the rate


def fresh_measure(
    spec: WatcherSpec,
    load: Callable[[Stage], LoadResult],
    sockscope: str,
    files: Path,
    round_: int,
    tail: float = TAIL,
) -> Row:
    """``measure`` on a stage of its own, warmed up first."""
    with Stage() as stage:
        stage.ab(*WARM_UP)
        return measure(stage, spec, lambda: load(stage), sockscope, files, round_, tail)


def progress(row: Row) -> str:
    """One line to follow a run by."""
    t = row.tally or Tally()
    us = row.per_conn_us()
    bpf = row.bpf_per_conn_ns()
    return (
        f"{row.round} {row.key:10} {row.load.label:18} logged {row.logged:6,} at {row.load.rate:7,.0f}/s"
        f"  srv o/c/named {t.server.opened}/{t.server.closed}/{t.server.closed_named}"
        f"  cli o/c/named {t.client.opened}/{t.client.closed}/{t.client.closed_named}"
        f"  lost {row.lost}  cpu {'-' if us is None else f'{us:.1f}'} us/conn"
        f"  bpf {'-' if bpf is None else f'{bpf:,.0f}'} ns/conn  caught up {row.caught_up}"
        + (f"  error: {row.error}" if row.error else "")
        + (f"  load: {row.load.detail}" if row.load.detail else "")
    )


def run_rounds(
    specs: Sequence[WatcherSpec],
    rounds: int,
    load: Callable[[Stage], LoadResult],
    sockscope: str,
    tmp: Path,
    tail: float = TAIL,
) -> list[Row]:
    """Every watcher once per round, taking turns; a line on stdout per measurement."""
    rows = []
    for r in range(1, rounds + 1):
        turn = r - 1
        for spec in [*specs[turn % len(specs) :], *specs[: turn % len(specs)]]:
            row = fresh_measure(spec, load, sockscope, tmp / f"{r}-{spec.key}", r, tail)
            print(progress(row), flush=True)
            rows.append(row)
    return rows


def run_sweep(
    specs: Sequence[tuple[WatcherSpec, Target]],
    rates: Sequence[float],
    seconds: float,
    processes: int,
    sockscope: str,
    tmp: Path,
) -> tuple[list[Row], list[str]]:
    """The paced client at each rate (ascending) under each watcher; the rows, and why
    each watcher's sweep stopped where it did."""
    rows: list[Row] = []
    stopped: list[str] = []
    misses_in_a_row = {spec.key: 0 for spec, _ in specs}
    for step, rate in enumerate(sorted(rates), 1):
        for spec, target in specs:
            if spec.key not in misses_in_a_row:
                continue

            def paced(stage: Stage, rate: float = rate, net: int = step) -> LoadResult:
                return run_paced(stage, rate, seconds, processes, net=net)

            row = fresh_measure(spec, paced, sockscope, tmp / f"sweep-{step}-{spec.key}", step)
            print(progress(row), flush=True)
            rows.append(row)
            why = _stop(row, target, rate, misses_in_a_row)
            if why:
                stopped.append(f"{spec.label}: {why}")
                del misses_in_a_row[spec.key]
    return rows, stopped


def _stop(row: Row, target: Target, rate: float, misses_in_a_row: dict[str, int]) -> str:
    missed = bool(misses(row, target))
    misses_in_a_row[row.key] = misses_in_a_row[row.key] + 1 if missed else 0
    if row.load.rate < SWEEP_REACH * rate:
        return f"stopped at {rate:,.0f}/s: the paced client reached {row.load.rate:,.0f}/s"
    if misses_in_a_row[row.key] >= SWEEP_MISSES:
        return f"stopped at {rate:,.0f}/s: missed at {SWEEP_MISSES} rates in a row"
    return ""
