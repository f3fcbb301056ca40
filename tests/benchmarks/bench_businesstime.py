"""Business-time throughput: ``add`` and ``between`` on cold and warm calendars.

Run from the repository root: ``python -m tests.benchmarks.bench_businesstime [--runs 2000]``

A *cold* calendar is built fresh for every call, so each local day's UTC spans and the holiday
tables are computed again (the cost a new party pays once); a *warm* calendar reuses them (the
cost of every later call for the same party). Starts are spread over 2024-2027 so DST nights
and holidays are crossed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agent.businesstime import BusinessCalendar
from tests import zones

CASES = (
    (zones.BERLIN, "09:00-12:30,13:30-18:00", ("sat", "sun"), "DE"),
    (zones.RIYADH, "09:00-17:00", ("fri", "sat"), "SA"),
    (zones.KATHMANDU, "10:00-17:00", ("sat",), ""),
    (zones.APIA, "08:00-16:30", ("sat", "sun"), ""),
)
DURATIONS = {
    "4 hours": timedelta(hours=4),
    "3 days": timedelta(days=3),
    "4 weeks": timedelta(weeks=4),
}


def _calendar(case: tuple[str, str, tuple[str, ...], str]) -> BusinessCalendar:
    zone, hours, weekend, country = case
    return BusinessCalendar.simple(zone, hours, weekend, country=country)


def _starts(runs: int, seed: int = 7) -> list[datetime]:
    rng = random.Random(seed)
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    return [origin + timedelta(seconds=rng.randrange(3 * 365 * 86400)) for _ in range(runs)]


def _time(label: str, runs: int, call: Callable[[int], object]) -> None:
    began = time.perf_counter()
    for i in range(runs):
        call(i)
    per_call = (time.perf_counter() - began) / runs
    print(f"{label:<34} {per_call * 1e6:10.1f} µs/call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    starts = _starts(args.runs)
    for case in CASES:
        print(f"{case[0]} {case[1]} weekend={','.join(case[2])} {case[3] or '-'}")
        _bench_case(case, starts, args.runs)


def _bench_case(
    case: tuple[str, str, tuple[str, ...], str], starts: list[datetime], runs: int
) -> None:
    warm = _calendar(case)
    for name, duration in DURATIONS.items():

        def cold_add(i: int, d: timedelta = duration) -> object:
            return _calendar(case).add(starts[i], d)

        def warm_add(i: int, d: timedelta = duration) -> object:
            return warm.add(starts[i], d)

        ends = [warm.add(start, duration) for start in starts]  # also warms the day cache

        def between(i: int, ends: list[datetime] = ends) -> object:
            return warm.between(starts[i], ends[i])

        _time(f"  add {name}, cold", max(runs // 20, 1), cold_add)
        _time(f"  add {name}, warm", runs, warm_add)
        _time(f"  between ({name} of open time)", runs, between)


if __name__ == "__main__":
    main()
