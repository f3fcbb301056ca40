"""How well the agent reads real mail: bounces, auto-replies, return dates, quotes, language.

Run from the repository root: ``python -m tests.benchmarks.bench_reading [--section NAME]``

Each capability is measured on the labelled real-world corpus in ``tests/data/`` (sources and
licences in its manifest) by a section module ``tests/benchmarks/reading_<section>.py`` that
exposes ``figures() -> list[Figure]``. Every figure is printed next to its target; the exit status
is 1 when any target is missed, so the benchmark can gate a release.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    """One measured figure and its target. ``higher`` says which way is better."""

    section: str
    name: str
    value: float
    target: float
    n: int
    higher: bool = True
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.higher else self.value <= self.target

    def line(self) -> str:
        sign = ">=" if self.higher else "<="
        shown = f"{self.value:.3f}{self.unit}"
        target = f"{sign} {self.target:g}{self.unit}"
        verdict = "met" if self.met else "MISSED"
        return f"  {self.name:<52} {shown:>10}  target {target:<12} n={self.n:<6} {verdict}"


HOSTILE_TARGET_S = 1.0


def hostile_figure(section: str, calls: Iterable[Callable[[], object]]) -> Figure:
    """The slowest of ``calls`` (each reading about 1 MB of hostile text) as a figure: each runs
    in a forked child, and one that does not finish counts as infinitely slow."""
    from tests.benchmarks.bench_hostile_text import run_case

    worst, n = 0.0, 0
    for call in calls:
        seconds, _ = run_case(call)
        worst = max(worst, seconds if seconds is not None else float("inf"))
        n += 1
    return Figure(
        section, "slowest on 1 MB of hostile text", worst, HOSTILE_TARGET_S, n, False, " s"
    )


def sections() -> list[str]:
    """The section modules present, in name order."""
    return sorted(
        m.name.removeprefix("reading_")
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name.startswith("reading_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", action="append", choices=sections(), help="only this one")
    args = parser.parse_args(argv)
    missed = 0
    for name in args.section or sections():
        module = importlib.import_module(f"tests.benchmarks.reading_{name}")
        started = time.perf_counter()
        figures: list[Figure] = module.figures()
        print(f"{name} ({time.perf_counter() - started:.1f} s)")
        for figure in figures:
            print(figure.line())
            missed += not figure.met
    print(f"\n{missed} target(s) missed" if missed else "\nevery target met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
