"""Language detection on the labelled sample: per-language precision and recall, overall precision.

Run from the repository root: ``python -m tests.benchmarks.bench_language [--threshold 0.60]``

Each mail goes through ``own_text`` then ``detect`` restricted to the team's languages. A mail
counts as *predicted* only when the confidence reaches the threshold (below it the agent falls
back to the team default, which is an abstention, not a guess). Mails in an unsupported language
("other") are never right when predicted: any prediction for them is a false positive.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from agent.language import THRESHOLD, detect
from agent.textparts import own_text

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "language_sample.jsonl"
SUPPORTED = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")


@dataclass(frozen=True)
class Scores:
    """Counts and ratios from one run over the sample."""

    per_language: dict[str, tuple[float, float, int, int, int]]  # precision, recall, tp, pred, n
    overall_precision: float
    coverage: float  # share of supported-language mails that got a prediction
    other_rejected: float  # share of unsupported-language mails left to the team default
    mistakes: list[tuple[str, str, float, str]]


def load(path: Path = SAMPLE) -> list[tuple[str, str]]:
    """(label, text) pairs from the JSONL sample."""
    with path.open(encoding="utf-8") as f:
        return [(row["lang"], row["text"]) for row in map(json.loads, f) if row]


def score(threshold: float = THRESHOLD, supported: tuple[str, ...] = SUPPORTED) -> Scores:
    """Run the detector over the sample and count."""
    rows = load()
    tp: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    actual: Counter[str] = Counter()
    others = others_rejected = 0
    mistakes: list[tuple[str, str, float, str]] = []
    for label, text in rows:
        language, confidence = detect(own_text(text), supported)
        hit = bool(language) and confidence >= threshold
        if label in supported:
            actual[label] += 1
        else:
            others += 1
            others_rejected += not hit
        if not hit:
            continue
        predicted[language] += 1
        if language == label:
            tp[language] += 1
        else:
            mistakes.append((label, language, confidence, text))
    per = {}
    for code in supported:
        precision = tp[code] / predicted[code] if predicted[code] else 1.0
        recall = tp[code] / actual[code] if actual[code] else 0.0
        per[code] = (precision, recall, tp[code], predicted[code], actual[code])
    total_pred = sum(predicted.values())
    return Scores(
        per_language=per,
        overall_precision=sum(tp.values()) / total_pred if total_pred else 1.0,
        coverage=sum(predicted[c] for c in supported if c in actual) / sum(actual.values()),
        other_rejected=others_rejected / others if others else 1.0,
        mistakes=mistakes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    scores = score(args.threshold)
    elapsed = time.perf_counter() - started
    print(f"threshold {args.threshold:.2f}, sample {SAMPLE.name}")
    print(f"{'lang':<6}{'precision':>10}{'recall':>8}{'right':>7}{'guessed':>9}{'mails':>7}")
    for code, (p, r, tp, pred, n) in scores.per_language.items():
        print(f"{code:<6}{p:>10.3f}{r:>8.3f}{tp:>7}{pred:>9}{n:>7}")
    print(f"overall precision {scores.overall_precision:.3f}")
    print(f"coverage (supported mails above threshold) {scores.coverage:.3f}")
    print(f"unsupported-language mails left to team default {scores.other_rejected:.3f}")
    for label, got, confidence, text in scores.mistakes:
        print(f"  wrong: {label} -> {got} at {confidence:.2f}: {text[:70]!r}")
    print(f"{elapsed:.2f}s including model load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
