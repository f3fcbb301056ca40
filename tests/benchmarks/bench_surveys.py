"""How well survey answers are read as scores, on the labelled set in ``tests/data/surveys.jsonl``.

Run from the repository root: ``python -m tests.benchmarks.bench_surveys``

Each row is one reply to a feedback survey in one of the ten template languages, with the score a
person read in it (or none) and whether it is ambiguous. Printed: accuracy (score and status both
right) overall and per language, and the count of *invented* scores (a score read where a person
read none or found the answer ambiguous: from a date, a time, a phone number, quoted text ...).
Exit status 1 when accuracy is below 0.97 or any score is invented.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from agent import surveys

DATA = Path(__file__).resolve().parents[1] / "data" / "surveys.jsonl"
TARGET = 0.97


def load() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]


def main() -> int:
    rows = load()
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    invented: list[str] = []
    for row in rows:
        got = surveys.read(str(row["text"]), str(row["scale"]))
        lang = str(row["language"])
        seen[lang] += 1
        if (got.score, got.status) == (row["score"], row["status"]):
            right[lang] += 1
        else:
            print(f"  wrong [{lang}] {str(row['text'])[:60]!r}: {got.score} {got.status}")
        if got.score is not None and got.score != row["score"]:
            invented.append(str(row["text"]))
    accuracy = sum(right.values()) / len(rows)
    print(f"survey answers read: n={len(rows)} languages={len(seen)}")
    for lang in sorted(seen):
        print(f"  {lang}: {right[lang]}/{seen[lang]}")
    print(f"  accuracy {accuracy:.3f} (target >= {TARGET})")
    print(f"  invented or wrong scores {len(invented)} (target 0)")
    return 0 if accuracy >= TARGET and not invented else 1


if __name__ == "__main__":
    sys.exit(main())
