"""Auto-replies: recall on real auto-replies and on the subject forms of the major mail systems
in many languages, with no human reply taken for one.

The corpus is ``tests/data/reading/autoreplies/``: message files with ``labels.jsonl`` (real
auto-replies, and human replies from common mail clients), and ``subjects.jsonl``, subjects
alone, read as a message from a client with no automation header would be.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import matching, mime, phrases
from agent.model import Address, Message, MessageKind
from tests.benchmarks.bench_reading import Figure, hostile_figure

DATA = Path(__file__).resolve().parents[1] / "data" / "reading" / "autoreplies"
SECTION = "autoreplies"
WHEN = datetime(2026, 11, 16, 15, tzinfo=UTC)


def _jsonl(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def kind_of_file(name: str) -> MessageKind | None:
    raw = (DATA / name).read_bytes()
    try:
        return matching.kind_of(mime.to_message(raw, mailbox="sam", provider_id=name))[0]
    except mime.MalformedMessage:
        return None


def kind_of_subject(subject: str) -> MessageKind:
    message = Message(
        mailbox="sam",
        provider_id="s",
        thread_id="t",
        message_id="<s@client.example>",
        sender=Address("anna@client.example"),
        to=(Address("sam@acme.example"),),
        date=WHEN,
        subject=subject,
    )
    return matching.kind_of(message)[0]


def hostile(size: int = 1_000_000) -> Iterator[tuple[str, Callable[[], object]]]:
    yield "matching.auto_subject: long subject", lambda: matching.auto_subject("a" * size)
    yield "matching.auto_subject: brackets", lambda: matching.auto_subject("[" * size)
    yield (
        "matching.kind_of: long headers",
        lambda: kind_of_subject("Automatic reply" * (size // 15)),
    )
    footer = "To subscribe or unsubscribe via the World Wide Web, visit x\n" * (size // 60)
    yield "phrases.asks_to_stop: list footers", lambda: phrases.asks_to_stop(footer)


def corpus_figures() -> list[Figure]:
    """The figures measured on the corpus (what the tests assert)."""
    autos = humans = caught = misread = 0
    languages: set[str] = set()
    for row in _jsonl("labels.jsonl"):
        kind = kind_of_file(row["file"])
        if row["kind"] == "auto_reply":
            autos += 1
            caught += kind is MessageKind.AUTO_REPLY
        elif kind is not None:
            humans += 1
            misread += kind is MessageKind.AUTO_REPLY
    for row in _jsonl("subjects.jsonl"):
        kind = kind_of_subject(row["subject"])
        if row["kind"] == "auto_reply":
            autos += 1
            caught += kind is MessageKind.AUTO_REPLY
            languages.add(row["language"])
        else:
            humans += 1
            misread += kind is MessageKind.AUTO_REPLY
    return [
        Figure(
            SECTION, f"auto-reply recall ({len(languages)} languages)", caught / autos, 0.95, autos
        ),
        Figure(SECTION, "human replies taken for auto-replies", misread, 0, humans, False),
    ]


def figures() -> list[Figure]:
    return [*corpus_figures(), hostile_figure(SECTION, (call for _, call in hostile()))]
