"""Response-time promises -> reminders and escalations. Pure: it takes ``now`` and reads nothing.

A thread with a client runs in cycles. A human message from the client opens a cycle (the first
one is a ``first_reply`` promise, later ones ``next_reply``), unless it needs no answer; the
rep's human reply from any of the rep's addresses closes it. The clock of each cycle starts at
the oldest unanswered client message, at the next opening of whoever's hours the rule counts.
Messages dated after ``now`` are ignored, so a replay over last month is the same function with
other ``now``s. Every message that starts no clock is recorded as a :class:`Decision`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.businesstime import BusinessCalendar
from agent.model import (
    Action,
    ActionKind,
    Address,
    Classified,
    Client,
    Direction,
    Thread,
)
from agent.neutral import chat
from agent.phrases import needs_no_answer
from agent.rules import PromiseRule, RuleSet


class State(enum.StrEnum):
    ACTIVE = "active"
    WARNED = "warned"
    MET = "met"
    BREACHED = "breached"


@dataclass(frozen=True)
class Rep:
    """What the planners know of a rep and the rep's lead."""

    mailbox: str
    name: str
    address: str
    addresses: frozenset[str]
    language: str
    zone: str
    calendar: BusinessCalendar
    team: str = ""
    lead_email: str = ""
    lead_name: str = ""
    lead_language: str = "en"
    webhook: str = ""  # the team's Slack-compatible webhook for escalations, if any


@dataclass(frozen=True)
class Promise:
    key: str
    rule: str
    kind: str
    mailbox: str
    thread_id: str
    client: str
    subject: str
    message_id: str
    received: datetime
    clock_start: datetime
    deadline: datetime
    state: State
    hours_of: str
    met_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    response: timedelta | None = None  # business (or calendar) time to the reply, once met

    @property
    def late(self) -> bool:
        return self.met_at is not None and self.met_at > self.deadline


@dataclass(frozen=True)
class Decision:
    mailbox: str
    thread_id: str
    message_id: str
    decision: str
    reason: str


@dataclass(frozen=True)
class PromisePlan:
    promises: tuple[Promise, ...]
    actions: tuple[Action, ...]
    decisions: tuple[Decision, ...]
    obsolete: frozenset[str]  # action keys of promises already met: cancel them if unsent


ClientCalendar = Callable[[Client], BusinessCalendar]


def _clock(
    rule: PromiseRule, rep: Rep, client: Client, client_calendar: ClientCalendar
) -> BusinessCalendar:
    return rep.calendar if rule.hours_of == "rep" else client_calendar(client)


def _advance(
    cal: BusinessCalendar, rule: PromiseRule, start: datetime, span: timedelta
) -> datetime:
    return cal.add(start, span) if rule.clock == "business" else start + span


def _elapsed(cal: BusinessCalendar, rule: PromiseRule, a: datetime, b: datetime) -> timedelta:
    return cal.between(a, b) if rule.clock == "business" else b - a


def _fmt(td: timedelta) -> str:
    minutes = round(td.total_seconds() / 60)
    h, m = divmod(abs(minutes), 60)
    text = f"{h}h{m:02d}m" if m else f"{h}h"
    return f"-{text}" if minutes < 0 else text


def _target(rule: PromiseRule) -> str:
    if rule.target_days:
        return f"{rule.target_days} business day{'s' if rule.target_days != 1 else ''}"
    return _fmt(rule.target)


def plan(
    threads: Iterable[Thread],
    rules: RuleSet,
    reps: Mapping[str, Rep],
    client_calendar: ClientCalendar,
    now: datetime,
) -> PromisePlan:
    promises: list[Promise] = []
    actions: list[Action] = []
    decisions: list[Decision] = []
    obsolete: set[str] = set()
    for thread in threads:
        rep = reps.get(thread.mailbox)
        if rep is None:
            continue
        p, a, d, o = _thread(thread, rules, rep, client_calendar, now)
        promises += p
        actions += a
        decisions += d
        obsolete |= o
    return PromisePlan(tuple(promises), tuple(actions), tuple(decisions), frozenset(obsolete))


def _skip(c: Classified, thread: Thread, decision: str, reason: str) -> Decision:
    m = c.message
    return Decision(thread.mailbox, thread.thread_id, m.message_id, decision, reason)


def _thread(
    thread: Thread,
    rules: RuleSet,
    rep: Rep,
    client_calendar: ClientCalendar,
    now: datetime,
) -> tuple[list[Promise], list[Action], list[Decision], set[str]]:
    promises: list[Promise] = []
    actions: list[Action] = []
    decisions: list[Decision] = []
    obsolete: set[str] = set()
    client = thread.client
    messages = [c for c in thread.messages if c.message.date <= now]
    if client is None:
        for c in messages:
            if c.direction is Direction.INBOUND:
                decisions.append(_skip(c, thread, "no clock: not a client", c.reason))
        return promises, actions, decisions, obsolete
    cycle = 0
    opened: tuple[Classified, PromiseRule] | None = None

    def close(at: datetime | None) -> None:
        nonlocal opened, cycle
        assert opened is not None
        c, rule = opened
        promise, acts, keys = _evaluate(
            thread, client, c, rule, cycle, rep, client_calendar, at, now
        )
        promises.append(promise)
        if at is None:
            actions.extend(acts)
        else:
            obsolete.update(keys)
        opened = None
        cycle += 1

    for c in messages:
        m = c.message
        if c.direction is Direction.INBOUND:
            if not c.is_human:
                decisions.append(_skip(c, thread, f"no clock: {c.kind.value}", c.reason))
                continue
            if c.by_thread:
                # In the thread only by quoting its References: no client wrote it.
                decisions.append(
                    _skip(
                        c,
                        thread,
                        "no clock: the sender is not the client",
                        f"{m.sender.email} is no client's address nor at a client's domain; "
                        f"the message is {client.name}'s only by its thread",
                    )
                )
                continue
            if opened is not None:
                continue  # the clock already runs from the oldest unanswered message
            if m.body:
                no_answer, why = needs_no_answer(m.body, client.language)
                if no_answer:
                    decisions.append(_skip(c, thread, "no clock: needs no answer", why))
                    continue
            kind = "first_reply" if cycle == 0 else "next_reply"
            rule = rules.promise_for(kind, client, thread.mailbox, rep.team)
            if rule is None:
                decisions.append(_skip(c, thread, f"no clock: no {kind} rule matches", client.key))
                cycle += 1
                continue
            opened = (c, rule)
        elif c.direction is Direction.OUTBOUND and c.is_human and m.sender.email in rep.addresses:
            if opened is not None:
                close(m.date)
        elif c.direction is Direction.INTERNAL:
            decisions.append(_skip(c, thread, "no clock: the team's own mail", c.reason))
    if opened is not None:
        close(None)
    return promises, actions, decisions, obsolete


def _evaluate(
    thread: Thread,
    client: Client,
    start: Classified,
    rule: PromiseRule,
    cycle: int,
    rep: Rep,
    client_calendar: ClientCalendar,
    met_at: datetime | None,
    now: datetime,
) -> tuple[Promise, list[Action], set[str]]:
    cal = _clock(rule, rep, client, client_calendar)
    received = start.message.date
    clock_start = cal.next_open(received) if rule.clock == "business" else received
    if rule.target_days:
        deadline = cal.add_days(clock_start, rule.target_days)
        target = cal.between(clock_start, deadline)  # warnings are shares of this
    else:
        deadline = _advance(cal, rule, clock_start, rule.target)
        target = rule.target
    base = f"promise/{thread.mailbox}/{thread.thread_id}/{cycle}"
    keys: set[str] = set()
    actions: list[Action] = []
    warn_times = []
    for i, w in enumerate(rule.warn):
        due = _advance(cal, rule, clock_start, w.offset(target))
        keys.add(f"{base}/warn/{i}")
        if due < deadline:
            warn_times.append((i, w, due))
    escalations = []
    for level, after in enumerate(rule.escalate_after, start=1):
        keys.add(f"{base}/escalate/{level}")
        keys.add(f"{base}/webhook/{level}")
        escalations.append((level, after, deadline + after))
    hours = "the rep's" if rule.hours_of == "rep" else "the client's"
    common: dict[str, Any] = dict(
        client=client.key,
        thread_id=thread.thread_id,
        rule=rule.name,
        subject=start.message.subject,
    )
    context = {
        "rep": {"name": rep.name, "email": rep.address},
        "client": {"name": client.name, "company": client.company or client.name},
        "thread": {"subject": start.message.subject},
        "received": received,
        "deadline": deadline,
        "rep_zone": rep.zone,
        "rule": rule.name,
    }
    state = State.ACTIVE
    warned_at = None
    breached_at = deadline if (met_at or now) >= deadline and met_at != deadline else None
    if met_at is not None:
        state = State.BREACHED if met_at > deadline else State.MET
        response = _elapsed(cal, rule, clock_start, met_at)
    else:
        response = None
        # Formatted once: every action's reason repeats them.
        received_at = f"{received:%Y-%m-%d %H:%M}"
        deadline_at = f"{deadline:%Y-%m-%d %H:%M}"
        passed = [due for _, _, due in warn_times if due <= now]
        if breached_at is not None:
            state = State.BREACHED
        elif passed:
            state, warned_at = State.WARNED, passed[0]
        if breached_at is None:
            for i, w, due in warn_times:
                actions.append(
                    Action(
                        key=f"{base}/warn/{i}",
                        kind=ActionKind.REMINDER,
                        mailbox=thread.mailbox,
                        due=due,
                        to=(Address(rep.address, rep.name),),
                        language=rep.language,
                        template="reminder",
                        reason=(
                            f"rule {rule.name!r}: {client.name} wrote at "
                            f"{received_at} UTC; "
                            f"reply due {deadline_at} UTC ({_target(rule)} of "
                            f"{hours} {rule.clock} hours in {cal.zone}); warning {w.label}"
                        ),
                        context={**context, "remaining": deadline - due, "warning": w.label},
                        **common,
                    )
                )
        hook = rule.webhook or rep.webhook
        if hook:
            for level, _after, due in escalations:
                actions.append(
                    Action(
                        key=f"{base}/webhook/{level}",
                        kind=ActionKind.WEBHOOK,
                        mailbox=thread.mailbox,
                        due=due,
                        to=(),
                        language="en",
                        template="",
                        reason=f"rule {rule.name!r}: escalation level {level} posted to the team",
                        context={
                            "url": hook,
                            # Names and subjects come from outside: as chat markup they
                            # could ping the channel or disguise a link.
                            "text": (
                                f":rotating_light: {chat(client.name)} has waited past the "
                                f"{chat(rule.name)} promise: {chat(rep.name)} owed a reply by "
                                f'{deadline_at} UTC on "{chat(start.message.subject)}" '
                                f"(escalation level {level})."
                            ),
                        },
                        **common,
                    )
                )
        lead = rule.escalate_to or rep.lead_email
        if lead:
            for level, after, due in escalations:
                actions.append(
                    Action(
                        key=f"{base}/escalate/{level}",
                        kind=ActionKind.ESCALATION,
                        mailbox=thread.mailbox,
                        due=due,
                        to=(Address(lead, rep.lead_name if lead == rep.lead_email else ""),),
                        language=rep.lead_language,
                        template="escalation",
                        reason=(
                            f"rule {rule.name!r}: no reply to {client.name} by the deadline "
                            f"{deadline_at} UTC; escalation level {level}"
                            + (f", {_fmt(after)} after the breach" if after else "")
                        ),
                        context={
                            **context,
                            "lead": {"name": rep.lead_name or lead, "email": lead},
                            "overdue": max(due, now) - deadline,
                            "level": level,
                        },
                        **common,
                    )
                )
    promise = Promise(
        key=base,
        rule=rule.name,
        kind=rule.kind,
        mailbox=thread.mailbox,
        thread_id=thread.thread_id,
        client=client.key,
        subject=start.message.subject,
        message_id=start.message.message_id,
        received=received,
        clock_start=clock_start,
        deadline=deadline,
        state=state,
        hours_of=rule.hours_of,
        met_at=met_at,
        warned_at=warned_at,
        breached_at=breached_at,
        response=response,
    )
    return promise, actions, keys
