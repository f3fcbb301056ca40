"""Bounces: recall on real DSNs, no delay or success report taken for one, the failed address
and the sent message found, and the bounce linked to the rep's message in another thread.

The corpus is ``tests/data/reading/bounces/`` (labels in ``labels.jsonl``, sources in
``tests/data/reading/MANIFEST.md``). Each message goes the way a provider's mail goes:
``mime.to_message`` on its bytes, ``mime.body_text`` for the body the worker fetches, then
``matching.kind_of``. Linking runs the follow-up planner: the rep wrote to the failed address
(with the labelled Message-ID) in one thread, the bounce arrived in a thread of its own, and
the follow-ups must stop.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import bounces, matching, mime
from agent.businesstime import BusinessCalendar
from agent.cadences import parse_cadences
from agent.followups import plan
from agent.matching import Directory, build_threads
from agent.model import Address, Client, Message, MessageKind
from agent.pipeline import client_calendar
from agent.promises import Rep
from agent.rules import parse_rules
from tests.benchmarks.bench_reading import Figure, hostile_figure

DATA = Path(__file__).resolve().parents[1] / "data" / "reading" / "bounces"
SECTION = "bounces"
SENT = datetime(2026, 11, 16, 15, tzinfo=UTC)  # a Monday
NOW = SENT + timedelta(days=2)
REP = Rep(
    mailbox="sam",
    name="Sam Lee",
    address="sam@acme.example",
    addresses=frozenset({"sam@acme.example"}),
    language="en",
    zone="UTC",
    calendar=BusinessCalendar.simple("UTC"),
)
RULES = '[[follow_up]]\nname = "chase"\nafter = "1d"\nsteps = 3\n'


def labels() -> list[dict[str, Any]]:
    with (DATA / "labels.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read(name: str) -> tuple[Message | None, str]:
    """The message as the worker holds it (with its fetched body), or None and why not."""
    raw = (DATA / name).read_bytes()
    try:
        message = mime.to_message(raw, mailbox="sam", provider_id=name)
    except mime.MalformedMessage as exc:
        return None, str(exc)
    return dataclasses.replace(message, body=mime.body_text(raw)), ""


def linked(bounce: Message, label: dict[str, Any]) -> bool:
    """Whether the follow-ups after the rep's message to the failed address stop on ``bounce``
    arriving in another thread."""
    to = (label["failed"] or ["nobody@unlabelled.example"])[0]
    client = Client(key="c", name="Client", emails=frozenset({to}), language="en", zone="UTC")
    sent = Message(
        mailbox="sam",
        provider_id="sent",
        thread_id="sent-thread",
        message_id=label["original_id"] or "<unlabelled@acme.example>",
        sender=Address(REP.address),
        to=(Address(to),),
        date=SENT,
        subject="Proposal",
    )
    arrived = dataclasses.replace(
        bounce,
        thread_id="bounce-thread",
        date=SENT + timedelta(hours=1),
        to=(Address(REP.address),),
        cc=(),
        references=(),
        in_reply_to="",
    )
    directory = Directory([client], team_addresses=REP.addresses)
    threads = build_threads([sent, arrived], {"sam": REP.addresses}, directory)
    ruleset, _ = parse_rules([("r.toml", RULES)])
    cadences, _ = parse_cadences(ruleset.raw)
    result = plan(threads, [], cadences, {"sam": REP}, client_calendar, NOW, clients=[client])
    return any(d.decision == "follow-ups stopped: bounce" for d in result.decisions)


def hostile(size: int = 1_000_000) -> Iterator[tuple[str, Callable[[], object]]]:
    lines = "Action: failed\nFinal-Recipient: rfc822; a@b.example\n" * (size // 50)
    at_run = "a@" * (size // 2)
    ids = "Message-ID: <" * (size // 13)
    field = "Action:" + " " * size
    yield "bounces.read_text: field lines", lambda: bounces.read_text(lines)
    yield "bounces.read_text: '@' run", lambda: bounces.read_text(at_run)
    yield "bounces.read_text: open Message-IDs", lambda: bounces.read_text(ids)
    yield "bounces.read_text: one long field", lambda: bounces.read_text(field)
    yield (
        "bounces.read_text: SES JSON",
        lambda: bounces.read_text('{"notificationType"' + "[" * size),
    )
    report = (
        "From: MAILER-DAEMON\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\nSubject: Undeliverable\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n" + lines + "\r\n--b--\r\n"
    ).encode()
    yield "mime.body_text: a 1 MB delivery report", lambda: mime.body_text(report)
    yield (
        "mime.to_message: a 1 MB delivery report",
        lambda: mime.to_message(report, mailbox="r", provider_id="1"),
    )
    subject = "Undeliverable: " + "re: " * (size // 4)
    yield "bounces.looks_like: long subject", lambda: bounces.looks_like({}, "x", subject)


def corpus_figures() -> list[Figure]:
    """The figures measured on the corpus (what the tests assert)."""
    rows = labels()
    bounce_rows = [r for r in rows if r["kind"] == "bounce"]
    others = [r for r in rows if r["kind"] != "bounce"]
    found = named = identified = tied = recognised = 0
    misread = 0
    for row in rows:
        message, _ = read(row["file"])
        kind = matching.kind_of(message)[0] if message is not None else None
        if row["kind"] != "bounce":
            misread += kind is MessageKind.BOUNCE
            continue
        if kind is not MessageKind.BOUNCE:
            continue
        assert message is not None
        found += 1
        report = matching.bounce_report(message)
        named += bool(set(row["failed"]) & set(report.recipients)) or not row["failed"]
        identified += report.original_id == row["original_id"] or not row["original_id"]
        recognised += 1
        tied += linked(message, row)
    return [
        Figure(SECTION, "bounce recall", found / len(bounce_rows), 0.98, len(bounce_rows)),
        Figure(
            SECTION, "delayed/delivered reports taken for bounces", misread, 0, len(others), False
        ),
        Figure(SECTION, "failed recipient found", named / max(recognised, 1), 0.95, recognised),
        Figure(
            SECTION, "original Message-ID found", identified / max(recognised, 1), 0.9, recognised
        ),
        Figure(
            SECTION,
            "bounce in another thread linked to the sent message",
            tied / max(recognised, 1),
            0.95,
            recognised,
        ),
    ]


def figures() -> list[Figure]:
    return [*corpus_figures(), hostile_figure(SECTION, (call for _, call in hostile()))]
