"""Quote and signature cutting (``own_text``), on ``tests/data/reading/quotes/cases.jsonl``.

Each case is a plain-text body and the words its sender wrote (``own``): no quoted reply, no
attribution or forwarded headers, no signature. Both sides are compared line by line with
surrounding spaces and repeated blank lines dropped. A case is *exact* when they match; *own
text lost* when a line of ``own`` is missing from the result; *kept* when the result has lines
``own`` has not (quoted text, headers or signature left in). The HTML cases
(``tests/data/reading/quotes/html.jsonl``) are converted by ``mime.html_to_text`` first.

``python -m tests.benchmarks.reading_quotes --show`` prints each miss.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from agent import mime
from agent.textparts import own_text
from tests.benchmarks.bench_hostile_text import MB
from tests.benchmarks.bench_reading import Figure, hostile_figure

HERE = Path(__file__).resolve().parents[1] / "data" / "reading" / "quotes"
CASES = HERE / "cases.jsonl"
HTML = HERE / "html.jsonl"
SECTION = "quotes"


def load(path: Path = CASES) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def lines(text: str) -> list[str]:
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = " ".join(raw.split())
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def check(row: dict[str, str], cut: Callable[[str], str] = own_text) -> tuple[bool, bool, bool]:
    """(exact, own text lost, other text kept) for one case."""
    body = mime.html_to_text(row["html"]) if "html" in row else row["body"]
    got, want = lines(cut(body)), lines(row["own"])
    if "html" in row:  # paragraphs and line breaks are not blank lines in HTML
        got, want = [g for g in got if g], [w for w in want if w]
    got_set, want_set = {g for g in got if g}, {w for w in want if w}
    return got == want, bool(want_set - got_set), bool(got_set - want_set)


HOSTILE = (
    "on a wrote ",
    "Best regards\n",
    "From: x\n",
    "> quoted\n",
    "<",
    "On Mon, 2 Mar 2026 Sam <\n",
    "-----Original Message-----\n",
    "\n" * 3 + "Sent: x\n",
    "---- a wrote ----\n",
)


def hostile_calls(size: int = MB) -> list[Callable[[], object]]:
    html = "<blockquote>" * (size // 24) + "x" + "<style>p{}</style>" * (size // 36)
    texts = [unit * max(1, size // len(unit)) for unit in HOSTILE]
    calls: list[Callable[[], object]] = [lambda text=text: own_text(text) for text in texts]
    return [*calls, lambda: own_text(mime.html_to_text(html))]


def figures() -> list[Figure]:
    rows = load() + load(HTML)
    results = [check(row) for row in rows]
    n = len(rows)
    exact = sum(e for e, _, _ in results)
    lost = sum(lo for _, lo, _ in results)
    kept = sum(k for _, _, k in results)
    return [
        Figure(SECTION, "quote cutting exact", exact / n, 0.85, n),
        Figure(SECTION, "own text lost", lost / n, 0.02, n, higher=False),
        Figure(SECTION, "quoted, header or signature text kept (info)", kept / n, 1.0, n,
               higher=False),
        hostile_figure(SECTION, hostile_calls()),
    ]  # fmt: skip


def show() -> None:
    for row in load() + load(HTML):
        exact, lost, kept = check(row)
        if not exact:
            body = mime.html_to_text(row["html"]) if "html" in row else row["body"]
            print(f"== {row['id']} lost={lost} kept={kept}")
            print("   want:", lines(row["own"]))
            print("   got: ", lines(own_text(body)))


if __name__ == "__main__":
    if "--show" in sys.argv:
        show()
    else:
        for figure in figures():
            print(figure.line())
