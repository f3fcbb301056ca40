"""Meeting requests -> slot proposals in the client's language. Pure: it takes ``now``.

When the newest human message from a client asks for a meeting ("let's talk next week",
"können wir einen Termin vereinbaren", "هل يمكننا تحديد موعد") and the rep has not answered it
yet, the planner proposes times that suit both sides (agent/slots.py, the rep's busy time from
the calendar) as a note in the client's language. ``[[meeting]]`` tables in the rule files set
the terms; without one, no proposals are made.

Keys: ``name`` (required), ``match`` (as for promises), ``duration`` ("30m"), ``within``
(search window from now, "7d"), ``min_notice`` ("4h"), ``count`` (3), ``mode`` (draft | send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent import phrases
from agent.businesstime import BusinessCalendar
from agent.errors import Problem
from agent.model import Action, ActionKind, Address, Client, Direction, Interval, Thread
from agent.promises import Decision, Rep
from agent.rules import Match, parse_duration
from agent.slots import Party, SlotRequest, propose

KEYS = {"name", "match", "duration", "within", "min_notice", "count", "mode", "description"}
MATCH_KEYS = {"tier", "tags", "domain", "language", "mailbox", "team"}


@dataclass(frozen=True)
class MeetingRule:
    name: str
    source: str
    match: Match = field(default_factory=Match)
    duration: timedelta = timedelta(minutes=30)
    within: timedelta = timedelta(days=7)
    min_notice: timedelta = timedelta(hours=4)
    count: int = 3
    mode: str = ""


def parse_meeting_rules(
    raw: Iterable[Mapping[str, Any]],
) -> tuple[list[MeetingRule], list[Problem]]:
    rules: list[MeetingRule] = []
    problems: list[Problem] = []
    for i, item in enumerate(raw):
        source = str(item.get("_source", "rules"))
        name = item.get("name")
        where = name if isinstance(name, str) and name else f"meeting[{i}]"
        start = len(problems)
        for key in sorted(set(item) - KEYS - {"_source"}):
            problems.append(
                Problem(source, f"{where}:{key}", f"unknown key; known: {', '.join(sorted(KEYS))}")
            )
        if not isinstance(name, str) or not name:
            problems.append(
                Problem(source, f"{where}:name", "missing: every meeting rule needs a name")
            )
        spans: dict[str, timedelta] = {}
        for key, default in (("duration", "30m"), ("within", "7d"), ("min_notice", "4h")):
            try:
                spans[key] = parse_duration(str(item.get(key, default)))
            except ValueError as exc:
                problems.append(Problem(source, f"{where}:{key}", str(exc)))
        if spans.get("duration") is not None and spans["duration"] <= timedelta(0):
            problems.append(Problem(source, f"{where}:duration", "must be longer than zero"))
        count = item.get("count", 3)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10:
            problems.append(Problem(source, f"{where}:count", f"{count!r}: propose 1 to 10 times"))
        mode = item.get("mode", "")
        if mode not in ("", "draft", "send"):
            problems.append(Problem(source, f"{where}:mode", f"{mode!r}: use draft or send"))
        match_raw = item.get("match", {})
        values: dict[str, frozenset[str]] = {}
        if isinstance(match_raw, dict):
            for key, value in match_raw.items():
                items = [value] if isinstance(value, str) else value
                if key not in MATCH_KEYS or not isinstance(items, list) or not items:
                    problems.append(
                        Problem(source, f"{where}:match.{key}", "unknown key or empty value")
                    )
                    continue
                values[key] = frozenset(str(v).lower() for v in items)
        else:
            problems.append(Problem(source, f"{where}:match", "must be a table"))
        if len(problems) == start:
            rules.append(
                MeetingRule(
                    name=str(name),
                    source=source,
                    match=Match(**values),
                    duration=spans["duration"],
                    within=spans["within"],
                    min_notice=spans["min_notice"],
                    count=int(count),
                    mode=str(mode),
                )
            )
    return rules, problems


@dataclass(frozen=True)
class MeetingPlan:
    actions: tuple[Action, ...]
    decisions: tuple[Decision, ...]


def plan(
    threads: Iterable[Thread],
    rules: list[MeetingRule],
    reps: Mapping[str, Rep],
    client_calendar: Callable[[Client], BusinessCalendar],
    busy: Mapping[str, list[Interval]],
    now: datetime,
    *,
    languages: Callable[[Thread], str] | None = None,
) -> MeetingPlan:
    """``busy`` holds each mailbox's busy intervals from its calendar."""
    actions: list[Action] = []
    decisions: list[Decision] = []
    for thread in threads:
        rep, client = reps.get(thread.mailbox), thread.client
        if rep is None or client is None or client.opted_out:
            continue
        rule = next((r for r in rules if r.match.accepts(client, thread.mailbox, rep.team)), None)
        if rule is None:
            continue
        seen = [c for c in thread.messages if c.message.date <= now and c.is_human]
        if not seen or seen[-1].direction is not Direction.INBOUND:
            continue  # the rep has answered since: the rep handles the meeting
        asked = seen[-1].message
        wants, why = phrases.asks_for_meeting(f"{asked.subject}\n{asked.body or ''}")
        if not wants:
            continue
        window = Interval(now, now + rule.within)
        parties = (
            Party(client.name, asked.sender.email, client_calendar(client), (), role="client"),
            Party(
                rep.name,
                rep.address,
                rep.calendar,
                tuple(busy.get(thread.mailbox, ())),
                role="internal",
            ),
        )
        proposal = propose(
            SlotRequest(
                duration=rule.duration,
                window=window,
                now=now,
                parties=parties,
                min_notice=rule.min_notice,
                count=rule.count,
            )
        )
        key = f"proposal/{thread.mailbox}/{thread.thread_id}/{asked.message_id}"
        if not proposal.slots:
            reason = "; ".join(proposal.near_misses[0].reasons) if proposal.near_misses else ""
            decisions.append(
                Decision(
                    thread.mailbox,
                    thread.thread_id,
                    key,
                    "no proposal: no common time",
                    reason or "no time suits both sides in the window",
                )
            )
            continue
        zone = client.zone or "UTC"
        first = client.name.split()[0] if client.name else ""
        actions.append(
            Action(
                key=key,
                kind=ActionKind.PROPOSAL,
                mailbox=thread.mailbox,
                due=now,
                to=(Address(asked.sender.email, asked.sender.name),),
                language=languages(thread) if languages else (client.language or "en"),
                template="proposal",
                reason=(
                    f"rule {rule.name!r}: {client.name} asked for a meeting ({why}); "
                    f"{len(proposal.slots)} times that suit {zone} and {rep.zone}"
                ),
                client=client.key,
                thread_id=thread.thread_id,
                rule=rule.name,
                reply_to_message_id=asked.message_id,
                references=(*asked.references, asked.message_id),
                subject=asked.subject,
                context={
                    "client": {
                        "name": client.name,
                        "first_name": first,
                        "company": client.company or client.name,
                    },
                    "rep": {"name": rep.name},
                    "slots": [{"start": s.start, "end": s.end} for s in proposal.slots],
                    "client_zone": zone,
                    "rep_zone": rep.zone,
                    "duration_minutes": int(rule.duration / timedelta(minutes=1)),
                },
                mode=rule.mode,
            )
        )
    return MeetingPlan(tuple(actions), tuple(decisions))
