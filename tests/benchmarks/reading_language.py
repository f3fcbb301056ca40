"""Language detection, on ``tests/data/reading/language/cases.jsonl`` and the project's own
sample ``tests/data/language_sample.jsonl``.

Each mail goes through ``choose_language`` as the agent uses it (own text, the script rule, the
detector restricted to the team's ten languages, the threshold). A mail is *predicted* when the
language is detected rather than left to the team default. Per supported language: precision
(predictions that are right) and coverage (its mails predicted right). A mail in another
language (Marathi, Nepali, Italian ...) predicted as a supported one counts against that one's
precision. Memory is the resident size the detector adds to a fresh process, measured in a child.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.language import choose_language, warm_up
from tests.benchmarks.bench_hostile_text import MB
from tests.benchmarks.bench_reading import Figure, hostile_figure

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = DATA / "reading" / "language" / "cases.jsonl"
SAMPLE = DATA / "language_sample.jsonl"
SUPPORTED = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")
SECTION = "language"


def load() -> list[dict[str, str]]:
    rows = []
    for path in (CASES, SAMPLE):
        with path.open(encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def predict(text: str) -> str:
    decision = choose_language(record="", texts=[text], supported=SUPPORTED, team_default="")
    return decision.language if decision.source == "detected" else ""


def score(rows: list[dict[str, str]]) -> tuple[Counter[str], Counter[str], Counter[str], list]:
    right: Counter[str] = Counter()
    guessed: Counter[str] = Counter()
    mails: Counter[str] = Counter()
    wrong = []
    for row in rows:
        got = predict(row["text"])
        if row["lang"] in SUPPORTED:
            mails[row["lang"]] += 1
        if got:
            guessed[got] += 1
            if got == row["lang"]:
                right[got] += 1
            else:
                wrong.append((row["lang"], got, row["text"][:70]))
    return right, guessed, mails, wrong


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _memory_child(conn: Any) -> None:
    before = _rss_mb()
    warm_up(SUPPORTED)
    conn.send(_rss_mb() - before)


def detector_memory() -> float:
    """MB the loaded detector adds to a fresh interpreter (a spawned child, not a fork)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_memory_child, args=(child,))
    proc.start()
    mb = float(parent.recv())
    proc.join()
    return mb


HOSTILE = ("thanks please unsubscribe call ", "ありがとうございます。", "धन्यवाद ", "a\n" * 3, "Ωx ")


def hostile_calls(size: int = MB) -> list[Callable[[], object]]:
    warm_up(SUPPORTED)
    texts = [unit * max(1, size // len(unit.encode("utf-8"))) for unit in HOSTILE]
    return [
        lambda text=text: choose_language(
            record="", texts=[text] * 5, supported=SUPPORTED, team_default="en"
        )
        for text in texts
    ]


def figures() -> list[Figure]:
    rows = load()
    warm_up(SUPPORTED)
    started = time.perf_counter()
    right, guessed, mails, _ = score(rows)
    per_mail = (time.perf_counter() - started) / len(rows) * 1000
    out = []
    for code in SUPPORTED:
        precision = right[code] / guessed[code] if guessed[code] else 1.0
        out.append(Figure(SECTION, f"{code} precision", precision, 0.99, guessed[code]))
        out.append(
            Figure(SECTION, f"{code} coverage", right[code] / mails[code], 0.95, mails[code])
        )
    others = sum(1 for row in rows if row["lang"] not in SUPPORTED)
    taken = sum(1 for row in rows if row["lang"] not in SUPPORTED and predict(row["text"]))
    out.append(
        Figure(
            SECTION,
            "other-language mails taken as supported (info)",
            taken,
            others,
            others,
            higher=False,
        )
    )
    out.append(
        Figure(SECTION, "detector memory", detector_memory(), 150, 1, higher=False, unit=" MB")
    )
    out.append(
        Figure(SECTION, "time per mail (info)", per_mail, 1000, len(rows), higher=False, unit=" ms")
    )
    out.append(hostile_figure(SECTION, hostile_calls()))
    return out  # fmt: skip


if __name__ == "__main__":
    import sys

    if "--wrong" in sys.argv:
        for item in score(load())[3]:
            print(item)
    else:
        for figure in figures():
            print(figure.line())
