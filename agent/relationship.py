"""Relationship figures for team leads: NPS and CSAT, follow-up outcomes, time to a meeting,
clients going quiet. Pure: every function takes stored data and ``now``, and reads no clock.

Each figure is grouped by rep (mailbox), team, client tier and client segment (the client's
first tag), plus "all", and carries its ``n``. A figure over fewer than ``min_n`` items is
*hidden*: its value is None and ``hidden`` is true, so one unhappy answer from a rep's single
meeting is not shown as that rep's NPS.

- **Survey answers** are the first human reply in the rep's mailbox to a sent feedback note
  (its ``In-Reply-To`` or ``References`` names the note's Message-ID), read by
  :func:`agent.surveys.read` on the scale the note asked (``context["scale"]``, NPS by default).
- **Follow-up outcomes** come from the outbox (steps sent or drafted for the rep), the thread
  (a client reply after step k and before step k+1) and the planner's decisions (why a cadence
  stopped: reply, meeting booked, asked to stop, opted out, bounce).
- **Going quiet**: a client whose last message to the team is older than their usual rhythm
  (``QUIET_FACTOR`` times the median gap between the conversations they open, at least
  ``QUIET_FLOOR``; ``QUIET_DEFAULT`` with fewer than three conversations) and
  who did write before: with the last exchange, for the lead to act on.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from agent import surveys
from agent.model import Client, Direction, Event, Thread

DIMENSIONS = ("rep", "team", "tier", "segment")
MIN_N = 5
QUIET_FACTOR = 2.0
QUIET_FLOOR = timedelta(days=14)  # B2B clients go a fortnight without writing and are fine
QUIET_DEFAULT = timedelta(days=21)  # a client with too few messages to have a rhythm
MAX_STEPS = 3
WEEK = timedelta(days=7)
DAY = timedelta(days=1)


def segment_of(client: Client | None) -> str:
    if client is None or not client.tags:
        return "-"
    return sorted(client.tags)[0]


def tier_of(client: Client | None) -> str:
    return (client.tier if client is not None else "") or "-"


@dataclass(frozen=True)
class Answer:
    """One client's answer to one feedback survey."""

    survey: str  # the feedback note's outbox key
    mailbox: str
    client: str
    tier: str
    segment: str
    scale: str
    score: int | None
    status: str  # scored | ambiguous | none
    comment: str
    why: str
    answered_at: datetime
    message_id: str
    meeting: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "survey": self.survey,
            "meeting": self.meeting,
            "mailbox": self.mailbox,
            "client": self.client,
            "tier": self.tier,
            "segment": self.segment,
            "scale": self.scale,
            "score": self.score,
            "status": self.status,
            "comment": self.comment,
            "why": self.why,
            "answered_at": _stamp(self.answered_at),
            "message_id": self.message_id,
        }


def _stamp(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def _sent(row: Mapping[str, Any]) -> bool:
    return row.get("status") in ("sent", "drafted") or bool(row.get("sent_message_id"))


def survey_answers(
    feedback_rows: Iterable[Mapping[str, Any]],
    threads: Iterable[Thread],
    clients: Mapping[str, Client],
) -> list[Answer]:
    """The answers to sent feedback notes found in ``threads``, oldest first."""
    replies: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for thread in threads:
        for c in thread.messages:
            if c.direction is not Direction.INBOUND or not c.is_human:
                continue
            m = c.message
            for parent in {m.in_reply_to, *m.references} - {""}:
                replies[(m.mailbox, parent)].append(c)
    found: list[Answer] = []
    for row in feedback_rows:
        if row.get("kind") != "feedback" or not row.get("sent_message_id"):
            continue
        candidates = replies.get((str(row["mailbox"]), str(row["sent_message_id"])), [])
        if not candidates:
            continue
        first = min(candidates, key=lambda c: c.message.date)
        action = row.get("action") or {}
        context = action.get("context") or {}
        scale = str(context.get("scale") or "nps")
        if scale not in surveys.SCALES:
            scale = "nps"
        reading = surveys.read(first.message.body or "", scale)
        client = clients.get(str(row.get("client") or first.client))
        meeting = context.get("meeting") or {}
        found.append(
            Answer(
                survey=str(row["key"]),
                meeting=str(meeting.get("summary", "")) if isinstance(meeting, Mapping) else "",
                mailbox=str(row["mailbox"]),
                client=str(row.get("client") or first.client),
                tier=tier_of(client),
                segment=segment_of(client),
                scale=scale,
                score=reading.score,
                status=reading.status,
                comment=reading.comment,
                why=reading.why,
                answered_at=first.message.date,
                message_id=first.message.message_id,
            )
        )
    return sorted(found, key=lambda a: a.answered_at)


# --- grouping ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """Which rep, team, tier and segment a mailbox and a client belong to."""

    teams: Mapping[str, str]  # mailbox -> team
    clients: Mapping[str, Client]

    def of(self, mailbox: str, client: str) -> dict[str, str]:
        c = self.clients.get(client)
        return {
            "rep": mailbox,
            "team": self.teams.get(mailbox) or mailbox,
            "tier": tier_of(c),
            "segment": segment_of(c),
        }

    def keys(self, mailbox: str, client: str) -> list[tuple[str, str]]:
        return [("all", "all"), *self.of(mailbox, client).items()]


@dataclass(frozen=True)
class Value:
    """One figure: its value (None when hidden or undefined) and the n it stands on."""

    value: float | None
    n: int
    hidden: bool = False

    @classmethod
    def of(cls, value: float | None, n: int, min_n: int) -> Value:
        if n < min_n:
            return cls(None, n, True)
        return cls(value, n, False)

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "n": self.n, "hidden": self.hidden}

    def shown(self, unit: str = "", digits: int = 0) -> str:
        if self.hidden:
            return f"n={self.n} (too few)"
        if self.value is None:
            return "-"
        return f"{self.value:.{digits}f}{unit} (n={self.n})"


@dataclass(frozen=True)
class SurveyFigures:
    dimension: str
    group: str
    nps: Value
    csat: Value
    sent: int
    answered: int
    response_rate: Value

    def as_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "group": self.group,
            "nps": self.nps.as_json(),
            "csat_percent": self.csat.as_json(),
            "surveys_sent": self.sent,
            "answered": self.answered,
            "response_rate_percent": self.response_rate.as_json(),
        }


def survey_figures(
    answers: Iterable[Answer],
    feedback_rows: Iterable[Mapping[str, Any]],
    grouping: Grouping,
    since: datetime,
    now: datetime,
    min_n: int = MIN_N,
) -> list[SurveyFigures]:
    """NPS, CSAT and the response rate per group, for surveys sent in ``[since, now]``."""
    sent: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in feedback_rows:
        if row.get("kind") != "feedback" or not _sent(row) or not since <= row["due"] <= now:
            continue
        for k in grouping.keys(str(row["mailbox"]), str(row.get("client") or "")):
            sent[k].add(str(row["key"]))
    scores: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    answered: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a in answers:
        if not since <= a.answered_at <= now:
            continue
        for k in grouping.keys(a.mailbox, a.client):
            answered[k].add(a.survey)
            if a.score is not None:
                scores[k][a.scale].append(a.score)
    rows = []
    for key in sorted(set(sent) | set(answered), key=_group_order):
        n_sent, n_answered = len(sent[key]), len(answered[key])
        rate = 100 * n_answered / n_sent if n_sent else None
        nps_scores, csat_scores = scores[key]["nps"], scores[key]["csat"]
        rows.append(
            SurveyFigures(
                dimension=key[0],
                group=key[1],
                nps=Value.of(surveys.nps(nps_scores), len(nps_scores), min_n),
                csat=Value.of(surveys.csat(csat_scores), len(csat_scores), min_n),
                sent=n_sent,
                answered=n_answered,
                response_rate=Value.of(None if rate is None else round(rate, 1), n_sent, min_n),
            )
        )
    return rows


def _group_order(key: tuple[str, str]) -> tuple[int, str]:
    order = {"all": 0, **{d: i + 1 for i, d in enumerate(DIMENSIONS)}}
    return order.get(key[0], 9), key[1]


def week_of(dt: datetime) -> datetime:
    """The Monday 00:00 UTC that starts ``dt``'s week."""
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class WeekScores:
    week: datetime
    nps: Value
    csat: Value

    def as_json(self) -> dict[str, Any]:
        return {
            "week": _stamp(self.week),
            "nps": self.nps.as_json(),
            "csat_percent": self.csat.as_json(),
        }


def survey_weeks(
    answers: Iterable[Answer], since: datetime, now: datetime, min_n: int = 1
) -> list[WeekScores]:
    """NPS and CSAT per week of the period (team-wide: a week per rep is too few answers)."""
    by_week: dict[datetime, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    week = week_of(since)
    while week <= now:
        by_week[week]  # every week of the period, answered or not
        week += WEEK
    for a in answers:
        if a.score is not None and since <= a.answered_at <= now:
            by_week[week_of(a.answered_at)][a.scale].append(a.score)
    return [
        WeekScores(
            w,
            Value.of(surveys.nps(s["nps"]), len(s["nps"]), min_n),
            Value.of(surveys.csat(s["csat"]), len(s["csat"]), min_n),
        )
        for w, s in sorted(by_week.items())
    ]


# --- follow-up outcomes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    dimension: str
    group: str
    cadences: int
    steps_sent: tuple[int, ...]  # step 1, 2, 3
    replied_after: tuple[int, ...]  # a client reply after step k (and before step k+1)
    meetings: int
    stops: dict[str, int] = field(default_factory=dict)
    opt_outs: int = 0
    reply_rate: Value = Value(None, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "group": self.group,
            "cadences": self.cadences,
            "steps_sent": list(self.steps_sent),
            "replied_after_step": list(self.replied_after),
            "meetings_booked": self.meetings,
            "stop_reasons": self.stops,
            "opt_outs": self.opt_outs,
            "reply_rate_percent": self.reply_rate.as_json(),
        }


def _step(key: str) -> tuple[str, int] | None:
    """``follow_up/<mailbox>/<thread>/<message id>/<step>`` -> (cadence, step)."""
    base, _, step = key.rpartition("/")
    if not key.startswith("follow_up/") or not step.isdigit():
        return None
    return base, int(step)


def follow_up_funnel(
    rows: Iterable[Mapping[str, Any]],
    threads: Iterable[Thread],
    decisions: Iterable[Mapping[str, Any]],
    grouping: Grouping,
    since: datetime,
    now: datetime,
    min_n: int = MIN_N,
) -> list[Funnel]:
    """Per group: cadences started, steps out, replies after each step, meetings, stops."""
    by_thread = {(t.mailbox, t.thread_id): t for t in threads}
    cadences: dict[str, dict[int, datetime]] = defaultdict(dict)
    owner: dict[str, tuple[str, str, str]] = {}  # cadence -> (mailbox, client, thread)
    for row in rows:
        parsed = _step(str(row.get("key", "")))
        if parsed is None or not _sent(row) or not since <= row["due"] <= now:
            continue
        cadence, step = parsed
        cadences[cadence][step] = row["due"]
        owner[cadence] = (str(row["mailbox"]), str(row.get("client") or ""), row["thread_id"])
    counts: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {
            "cadences": 0,
            "sent": [0] * MAX_STEPS,
            "replied": [0] * MAX_STEPS,
            "meetings": 0,
            "stops": Counter(),
            "opt_outs": 0,
        }
    )
    for cadence, steps in cadences.items():
        mailbox, client, thread_id = owner[cadence]
        thread = by_thread.get((mailbox, thread_id))
        inbound = sorted(
            c.message.date
            for c in (thread.messages if thread else ())
            if c.direction is Direction.INBOUND and c.is_human
        )
        replied_step = None
        ordered = sorted(steps.items())
        for i, (step, at) in enumerate(ordered):
            until = ordered[i + 1][1] if i + 1 < len(ordered) else now
            if any(at < d <= until for d in inbound):
                replied_step = step
                break
        for k in grouping.keys(mailbox, client):
            c = counts[k]
            c["cadences"] += 1
            for step in steps:
                if 1 <= step <= MAX_STEPS:
                    c["sent"][step - 1] += 1
            if replied_step is not None and 1 <= replied_step <= MAX_STEPS:
                c["replied"][replied_step - 1] += 1
    seen: set[tuple[str, str, str]] = set()
    for d in decisions:
        decision = str(d.get("decision", ""))
        stamp = d.get("at")
        if not decision.startswith("follow-ups stopped:") or stamp is None:
            continue
        if not since <= stamp <= now:
            continue
        mailbox, thread_id = str(d.get("mailbox", "")), str(d.get("thread_id", ""))
        if (mailbox, thread_id, decision) in seen:
            continue
        seen.add((mailbox, thread_id, decision))
        thread = by_thread.get((mailbox, thread_id))
        client = thread.client.key if thread is not None and thread.client is not None else ""
        reason = decision.removeprefix("follow-ups stopped:").strip()
        for k in grouping.keys(mailbox, client):
            counts[k]["stops"][reason] += 1
            if reason == "meeting booked":
                counts[k]["meetings"] += 1
            if reason in ("opted out", "asked to stop"):
                counts[k]["opt_outs"] += 1
    out = []
    for key in sorted(counts, key=_group_order):
        c = counts[key]
        replied = sum(c["replied"])
        rate = 100 * replied / c["cadences"] if c["cadences"] else None
        out.append(
            Funnel(
                dimension=key[0],
                group=key[1],
                cadences=c["cadences"],
                steps_sent=tuple(c["sent"]),
                replied_after=tuple(c["replied"]),
                meetings=c["meetings"],
                stops=dict(sorted(c["stops"].items())),
                opt_outs=c["opt_outs"],
                reply_rate=Value.of(None if rate is None else round(rate, 1), c["cadences"], min_n),
            )
        )
    return out


# --- time to a meeting ------------------------------------------------------------------------


@dataclass(frozen=True)
class ToMeeting:
    dimension: str
    group: str
    median_days: Value

    def as_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "group": self.group,
            "median_days": self.median_days.as_json(),
        }


def time_to_meeting(
    threads: Iterable[Thread],
    events: Iterable[Event],
    grouping: Grouping,
    since: datetime,
    now: datetime,
    min_n: int = MIN_N,
) -> list[ToMeeting]:
    """Days from a client's first message with a rep to the first meeting with them after it
    (a calendar event a client address attends), for meetings in ``[since, now]``."""
    first: dict[tuple[str, str], datetime] = {}
    emails: dict[str, str] = {}
    for t in threads:
        if t.client is None:
            continue
        for c in t.messages:
            key = (t.mailbox, t.client.key)
            if key not in first or c.message.date < first[key]:
                first[key] = c.message.date
            for a in (c.message.sender, *c.message.recipients):
                if c.direction is Direction.INBOUND and a == c.message.sender:
                    emails[a.email] = t.client.key
    met: dict[tuple[str, str], datetime] = {}
    for e in events:
        if e.status == "cancelled" or not since <= e.start <= now:
            continue
        for att in e.attendees:
            client = emails.get(att.email.lower()) or _by_domain(att.email, grouping.clients)
            key = (e.mailbox, client)
            if client and key in first and first[key] <= e.start:
                met[key] = min(met.get(key, e.start), e.start)
    days: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (mailbox, client), at in met.items():
        for k in grouping.keys(mailbox, client):
            days[k].append((at - first[(mailbox, client)]) / timedelta(days=1))
    return [
        ToMeeting(k[0], k[1], Value.of(round(statistics.median(v), 1), len(v), min_n))
        for k, v in sorted(days.items(), key=lambda kv: _group_order(kv[0]))
    ]


def _by_domain(email: str, clients: Mapping[str, Client]) -> str:
    domain = email.lower().rpartition("@")[2]
    for c in clients.values():
        if email.lower() in c.emails or domain in c.domains:
            return c.key
    return ""


# --- going quiet ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quiet:
    client: str
    name: str
    mailbox: str
    tier: str
    segment: str
    last_from_client: datetime
    silent_days: float
    rhythm_days: float
    last_subject: str
    last_at: datetime
    last_direction: str  # who wrote last: "client" | "rep"

    def as_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "name": self.name,
            "mailbox": self.mailbox,
            "tier": self.tier,
            "segment": self.segment,
            "last_from_client": _stamp(self.last_from_client),
            "silent_days": self.silent_days,
            "usual_rhythm_days": self.rhythm_days,
            "last_exchange": {
                "subject": self.last_subject,
                "at": _stamp(self.last_at),
                "from": self.last_direction,
            },
        }


def going_quiet(
    threads: Iterable[Thread], clients: Mapping[str, Client], now: datetime
) -> list[Quiet]:
    """Clients who wrote before but not for longer than their usual rhythm, quietest first."""
    inbound: dict[str, list[datetime]] = defaultdict(list)
    outbound: dict[str, list[datetime]] = defaultdict(list)
    opened: dict[str, list[datetime]] = defaultdict(list)  # each thread's first client message
    last: dict[str, tuple[datetime, str, str, str]] = {}
    for t in threads:
        if t.client is None:
            continue
        key = t.client.key
        first = None
        for c in t.messages:
            if not c.is_human or c.message.date > now:
                continue
            if c.direction is Direction.INBOUND:
                inbound[key].append(c.message.date)
                first = first or c.message.date
            elif c.direction is Direction.OUTBOUND:
                outbound[key].append(c.message.date)
            else:
                continue
            who = "client" if c.direction is Direction.INBOUND else "rep"
            if key not in last or c.message.date >= last[key][0]:
                last[key] = (c.message.date, c.message.subject, who, t.mailbox)
        if first is not None:
            opened[key].append(first)
    out = []
    for key, dates in inbound.items():
        if not outbound.get(key):
            continue  # never a two-way relationship: nothing to go quiet from
        dates.sort()
        # The rhythm is how often the client starts a conversation (or writes in one again
        # after a day): the replies inside one exchange are not the relationship's pace.
        starts = sorted(opened[key])
        gaps = [(b - a) / DAY for a, b in pairwise(starts) if b - a > timedelta(hours=24)]
        rhythm = statistics.median(gaps) * DAY if len(gaps) >= 2 else QUIET_DEFAULT
        limit = max(QUIET_FLOOR, rhythm * QUIET_FACTOR)
        silent = now - dates[-1]
        if silent <= limit:
            continue
        client = clients.get(key)
        at, subject, who, mailbox = last[key]
        out.append(
            Quiet(
                client=key,
                name=client.name if client else key,
                mailbox=mailbox,
                tier=tier_of(client),
                segment=segment_of(client),
                last_from_client=dates[-1],
                silent_days=round(silent / timedelta(days=1), 1),
                rhythm_days=round(rhythm / timedelta(days=1), 1),
                last_subject=subject,
                last_at=at,
                last_direction=who,
            )
        )
    return sorted(out, key=lambda q: -q.silent_days / max(q.rhythm_days, 0.1))


# --- SLA per week -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekSla:
    group: str
    week: datetime
    sla: Value

    def as_json(self) -> dict[str, Any]:
        return {"group": self.group, "week": _stamp(self.week), "sla_percent": self.sla.as_json()}


def sla_weeks(
    promises: Iterable[Any],
    since: datetime,
    now: datetime,
    group_of: Callable[[str], str] = lambda mailbox: mailbox,
    min_n: int = 1,
) -> list[WeekSla]:
    """SLA met % per group and week the promise was received in (decided promises only)."""
    decided: dict[tuple[str, datetime], list[bool]] = defaultdict(list)
    groups: set[str] = set()
    for p in promises:
        if p.received < since:
            continue
        groups.add(group_of(p.mailbox))
        if p.met_at is None and p.deadline > now:
            continue  # still open
        decided[(group_of(p.mailbox), week_of(p.received))].append(p.state.value != "breached")
    weeks = []
    week = week_of(since)
    while week <= now:
        weeks.append(week)
        week += WEEK
    out = []
    for g in sorted(groups):
        for w in weeks:
            met = decided.get((g, w), [])
            value = round(100 * sum(met) / len(met), 1) if met else None
            out.append(WeekSla(g, w, Value.of(value, len(met), min_n)))
    return out
