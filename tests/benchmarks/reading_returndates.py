"""Return dates of out-of-office replies, on ``tests/data/reading/returndates/cases.jsonl``.

Each case has the text, the day it was sent, the client's language and country, and the first
day the writer is back (``null`` when the text states none a follow-up should wait for). A case
is *right* when ``read_return`` gives exactly that day (or nothing when ``null``); a date given
for a ``null`` case is *invented*. The hostile figure is the slowest of 1 MB shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

from agent.returndates import read_return
from tests.benchmarks.bench_hostile_text import MB
from tests.benchmarks.bench_reading import Figure, hostile_figure

CASES = Path(__file__).resolve().parents[1] / "data" / "reading" / "returndates" / "cases.jsonl"
SECTION = "returndates"


def load(path: Path = CASES) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check(row: dict[str, str]) -> tuple[bool, bool, str | None]:
    """(right, invented, what was read) for one case."""
    found = read_return(row["text"], date.fromisoformat(row["sent"]), row["lang"], row["country"])
    got = found.day.isoformat() if found else None
    return got == row["back"], row["back"] is None and got is not None, got


HOSTILE = (
    "until 10.11. ",
    "bis zum 3. bis ",
    "十一月三日まで",
    "until Monday ",
    "١٠/١١ ",
    "from 3 to 14 November ",
    "9" * 50 + " ",
    "November " * 3,
)


def hostile_calls(size: int = MB) -> list[Callable[[], object]]:
    read_return("until 3 November", date(2025, 10, 1), "en")  # names load once per process
    texts = [unit * max(1, size // len(unit.encode("utf-8"))) for unit in HOSTILE]
    return [lambda text=text: read_return(text, date(2025, 10, 1), "de") for text in texts]


def figures() -> list[Figure]:
    rows = load()
    results = [check(row) for row in rows]
    right = sum(r for r, _, _ in results)
    invented = sum(i for _, i, _ in results)
    empty = sum(1 for row in rows if row["back"] is None)
    return [
        Figure(SECTION, "return date right", right / len(rows), 0.95, len(rows)),
        Figure(SECTION, "return dates invented (no date stated)", invented, 0, empty, higher=False),
        hostile_figure(SECTION, hostile_calls()),
    ]  # fmt: skip


if __name__ == "__main__":
    for figure in figures():
        print(figure.line())
