"""One pass of the agent's main job: sync -> match -> plan -> execute.

The worker runs it per leased mailbox; the demo and ``rules simulate`` run the same pieces over
stored mail with a fixed ``now``. Nothing here decides anything: deciding is in the planners.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from agent import followups, golive, matching, meetings, promises
from agent.businesstime import BusinessCalendar
from agent.cadences import Cadences, parse_cadences
from agent.calendars import busy_from_events
from agent.clients import load_clients
from agent.config import Settings
from agent.errors import ClientsError, CursorExpired, Problem, RulesError
from agent.invites import invite_for, invite_uid
from agent.language import choose_language
from agent.meetings import MeetingRule, parse_meeting_rules
from agent.memo import PerObject
from agent.model import (
    Action,
    ActionKind,
    Address,
    Client,
    Direction,
    Event,
    Interval,
    Message,
    MessageKind,
    Thread,
)
from agent.providers.protocol import CalendarProvider, MailProvider
from agent.rules import RuleSet, load_rules, name_problems
from agent.store import SENT, Store, Synced, action_from_json


@dataclass(frozen=True)
class Team:
    """Everything the planners need that does not come from the mailboxes."""

    settings: Settings
    rules: RuleSet
    clients: tuple[Client, ...]
    client_problems: tuple[Problem, ...] = ()
    cadences: Cadences = field(default_factory=Cadences)
    meetings: tuple[MeetingRule, ...] = ()

    @property
    def directory(self) -> matching.Directory:
        return _derived(self).directory

    def reps(self) -> Mapping[str, promises.Rep]:
        """Every rep by mailbox name: built once per team, read-only."""
        return _derived(self).reps

    def _directory(self) -> matching.Directory:
        own = frozenset(a for m in self.settings.mailboxes for a in m.addresses)
        return matching.Directory(
            self.clients,
            team_domains=frozenset(d.lower() for d in self.settings.team.domains),
            team_addresses=own,
        )

    def _reps(self) -> dict[str, promises.Rep]:
        reps = {}
        for m in self.settings.mailboxes:
            lead = self.settings.lead(m.lead) if m.lead else None
            reps[m.name] = promises.Rep(
                mailbox=m.name,
                name=m.rep_name,
                address=m.address,
                addresses=m.addresses,
                language=m.language,
                zone=m.zone,
                calendar=m.calendar(),
                team=m.team,
                lead_email=lead.email if lead else m.lead,
                lead_name=lead.name if lead else "",
                lead_language=lead.language if lead else m.language,
                webhook=self.settings.team.webhook_url,
            )
        return reps


# Each pass asks a team for its directory and reps several times; building them anew each time
# costs the lookup tables and cold rep calendars, and with thousands of reps and clients more than
# the pass's own mail.
class _Derived(NamedTuple):
    directory: matching.Directory
    reps: Mapping[str, promises.Rep]
    details: Mapping[str, Mapping[str, str]]
    own: Mapping[str, frozenset[str]]  # mailbox -> its addresses


def _derive(team: Team) -> _Derived:
    return _Derived(
        team._directory(),
        MappingProxyType(team._reps()),
        MappingProxyType(
            {m.name: {"company": team.settings.team.name} for m in team.settings.mailboxes}
        ),
        MappingProxyType({m.name: m.addresses for m in team.settings.mailboxes}),
    )


_derived: PerObject[Team, _Derived] = PerObject(_derive)


def load_team(settings: Settings, rules_path: Path | None = None) -> Team:
    """Rules must load (RulesError otherwise); bad client rows are reported and skipped."""
    rules = load_rules(rules_path or settings.paths.rules)
    cadences, cadence_problems = parse_cadences(rules.raw)
    meeting_rules, meeting_problems = parse_meeting_rules(rules.raw.get("meeting", []))
    # A mailbox or team a rule matches on that the config does not have is a typo: refused here,
    # so the worker, status and simulate say so instead of the rule never firing.
    names = name_problems(
        rules, [m.name for m in settings.mailboxes], [m.team for m in settings.mailboxes]
    )
    if cadence_problems or meeting_problems or names:
        raise RulesError([*cadence_problems, *meeting_problems, *names])
    clients, problems = load_clients(settings.paths.clients)
    if problems and not clients:
        raise ClientsError(problems)
    return Team(settings, rules, tuple(clients), tuple(problems), cadences, tuple(meeting_rules))


def client_calendar(client: Client) -> BusinessCalendar:
    """A client's business hours: 09:00-17:00 in their zone on their country's working days.

    The weekend, public holidays and substituted working days are the ``holidays`` package's for
    the country (see :meth:`BusinessCalendar.regional`); without a country, Monday to Friday.
    """
    return _region_calendar(client.zone or "UTC", client.country, client.subdivision)


@lru_cache(maxsize=1024)
def _region_calendar(zone: str, country: str, subdivision: str) -> BusinessCalendar:
    # Calendars memoise their days, so sharing one per region keeps planning fast.
    return BusinessCalendar.regional(zone, "09:00-17:00", country, subdivision)


def threads(team: Team, messages: Iterable[Message]) -> list[Thread]:
    """The team's threads from ``messages``.

    Messages given as a tuple cannot change, so the threads of the last tuple are remembered:
    a pass that hands the same tuple to :func:`plan`, :func:`plan_notes` and
    :func:`plan_meetings` groups and matches its mail once instead of three times.
    """
    last = _LAST_THREADS
    if isinstance(messages, tuple) and last[0] is team and last[1] is messages:
        return list(last[2])
    built = matching.build_threads(messages, _derived(team).own, team.directory)
    if isinstance(messages, tuple):
        _remember_threads(team, messages, built)
    return built


_LAST_THREADS: tuple[object, object, tuple[Thread, ...]] = (None, None, ())


def _remember_threads(team: Team, messages: tuple[Message, ...], built: list[Thread]) -> None:
    global _LAST_THREADS
    _LAST_THREADS = (team, messages, tuple(built))


def plan(team: Team, messages: Iterable[Message], now: datetime) -> promises.PromisePlan:
    return promises.plan(threads(team, messages), team.rules, team.reps(), client_calendar, now)


def rep_details(team: Team) -> Mapping[str, Mapping[str, str]]:
    """Per mailbox, what client notes show of the rep besides name and address."""
    return _derived(team).details


def language_of(team: Team) -> Callable[[Thread], str]:
    """The language to write to a thread's client in: the record, else detection, else default."""
    settings = team.settings
    # Every note of a thread asks again; detection is the costly part of a note.
    chosen: dict[int, tuple[Thread, str]] = {}

    def choose(thread: Thread) -> str:
        hit = chosen.get(id(thread))
        if hit is not None and hit[0] is thread:
            return hit[1]
        language = detect(thread)
        chosen[id(thread)] = (thread, language)
        return language

    def detect(thread: Thread) -> str:
        texts = [
            c.message.body or ""
            for c in reversed(thread.messages)
            if c.direction is Direction.INBOUND and c.is_human and c.message.body
        ]
        return choose_language(
            record=thread.client.language if thread.client else "",
            texts=texts,
            supported=settings.team.languages,
            team_default=settings.team.default_language,
        ).language

    return choose


def plan_notes(
    team: Team,
    messages: Iterable[Message],
    events: Iterable[Event],
    now: datetime,
    *,
    sent_notes: Mapping[str, str] | None = None,
    earlier: Iterable[Action] = (),
) -> followups.FollowupPlan:
    """Follow-ups and thank-yous to clients. ``sent_notes`` maps the Message-ID of each note the
    outbox sent to its key, so the agent's own notes are never taken for the rep's mail.

    Follow-up steps whose rule says ``propose_slots`` become proposals with meeting times
    (HOLD actions beside them when the client's meeting rule holds times); ``earlier`` is
    :func:`meeting_history`, so times held for other clients are not offered again."""
    return notes_for(
        team, threads(team, messages), events, now, sent_notes=sent_notes, earlier=earlier
    )


def notes_for(
    team: Team,
    thread_list: list[Thread],
    events: Iterable[Event],
    now: datetime,
    *,
    sent_notes: Mapping[str, str] | None = None,
    earlier: Iterable[Action] = (),
    calendar: Iterable[Event] | None = None,
) -> followups.FollowupPlan:
    """:func:`plan_notes` over threads already built. ``calendar`` is the events the reps'
    busy time is read from when follow-ups propose times (default: ``events``, which the
    thank-yous are planned for)."""
    events = list(events)
    result = followups.plan(
        thread_list,
        events,
        team.cadences,
        team.reps(),
        client_calendar,
        now,
        clients=team.directory,
        languages=language_of(team),
        notes=sent_notes or {},
        rep_details=rep_details(team),
    )
    actions = tuple(
        dataclasses.replace(a, mode=result.modes[a.key]) if a.key in result.modes else a
        for a in result.actions
    )
    proposing = {r.name: r.propose_slots for r in team.cadences.follow_ups if r.propose_slots}
    if proposing:
        offered = meetings.propose_in_follow_ups(
            actions,
            lambda a: a.context.get("step") in proposing.get(a.rule, ()),
            list(team.meetings),
            {c.key: c for c in team.clients},
            team.reps(),
            client_calendar,
            _busy(
                team,
                events if calendar is None else calendar,
                now,
                max((a.due for a in actions), default=now),
            ),
            now,
            earlier=earlier,
        )
        return dataclasses.replace(
            result, actions=offered.actions, decisions=(*result.decisions, *offered.decisions)
        )
    return dataclasses.replace(result, actions=actions) if result.modes else result


def bodies_needed(
    team: Team, messages: Iterable[Message], candidates: Iterable[str]
) -> list[Message]:
    """The messages among ``candidates`` (provider ids) whose body a planner reads, newest first.

    That is inbound mail in a thread tied to a client (by address, company domain or thread
    continuity, so ``messages`` should hold the candidates' whole threads): human mail, read
    for "needs no answer", "stop", meeting wishes and the client's language, and auto-replies,
    read for an out-of-office's return date. Delivery reports are fetched in any thread: their
    body names the failed address and the sent message (:mod:`agent.bounces`), and says
    whether delivery failed or is only delayed. Mailing lists, the team's own mail and other
    mail from anyone who is not a client are never fetched.
    """
    wanted = set(candidates)
    reports = (MessageKind.BOUNCE, MessageKind.NOTICE)
    found = [
        c.message
        for thread in threads(team, list(messages))  # a list: the planners' cache stays theirs
        for c in thread.messages
        if c.message.provider_id in wanted
        and c.direction is Direction.INBOUND
        and (
            c.kind in reports
            or (thread.client is not None and c.kind in (MessageKind.HUMAN, MessageKind.AUTO_REPLY))
        )
    ]
    return sorted(found, key=lambda m: (m.date, m.provider_id), reverse=True)


def sync_mailbox(
    store: Store,
    mailbox: str,
    mail: MailProvider,
    calendar: CalendarProvider | None = None,
    *,
    cursors: Mapping[str, str | None] | None = None,
    at: datetime | None = None,
) -> Synced:
    """Sync mail (and the calendar) into the store; return how many messages were new (an
    int whose ``touched`` counts the threads whose mail changed).
    ``cursors`` are the streams' stored cursors when the caller read them already; ``at``
    is the time recorded as the streams' last sync (the store's clock by default)."""
    if cursors is None:
        cursors = store.cursors(mailbox)  # both streams' in one read
    cursor = cursors.get("mail")
    try:
        result = mail.sync(cursor)
    except CursorExpired:
        result = mail.sync(None)  # a full listing: the store's upsert loses and doubles nothing
    new = store.apply_sync(mailbox, result, at=at)
    if calendar is not None:
        try:
            events = calendar.events(cursors.get("calendar"))
        except CursorExpired:
            events = calendar.events(None)
        unchanged = not (events.events or events.deleted or events.skipped or events.full)
        if not (unchanged and events.cursor == cursors.get("calendar")):
            store.apply_event_sync(mailbox, events, at=at)  # else: nothing to write
    return new


def _busy(
    team: Team, events: Iterable[Event], now: datetime, latest: datetime
) -> dict[str, list[Interval]]:
    """Each rep's busy time from the stored events, from ``now`` to past the longest search
    window after ``latest``; the agent's own tentative holds are not busy time."""
    within = max((r.within for r in team.meetings), default=meetings.MeetingRule("", "").within)
    horizon = Interval(now, max(now, latest) + within + timedelta(days=1))
    by_mailbox: dict[str, list[Event]] = {}
    for e in events:
        if not meetings.is_hold(e):
            by_mailbox.setdefault(e.mailbox, []).append(e)
    own = _derived(team).own  # a rep with no events is free: the planners read it as none
    return {
        name: busy_from_events(found, horizon, attendee_emails=own[name])
        for name, found in by_mailbox.items()
        if name in own
    }


def meeting_history(
    store: Store, now: datetime, days: int = 30, *, mailbox: str | None = None
) -> list[Action]:
    """The PROPOSAL and INVITE actions in the outbox planned in the last ``days`` days, in any
    status: what :func:`plan_meetings` reads clients' answers against and releases holds of."""
    since = now - timedelta(days=days)
    found = []
    for row in store.outbox(mailbox=mailbox):
        if row["kind"] not in (ActionKind.PROPOSAL, ActionKind.INVITE):
            continue
        action = action_from_json(row["action"])
        if action.due >= since:
            found.append(action)
    return found


def plan_meetings(
    team: Team,
    messages: Iterable[Message],
    events: Iterable[Event],
    now: datetime,
    *,
    earlier: Iterable[Action] = (),
    sent_notes: Mapping[str, str] | None = None,
) -> meetings.MeetingPlan:
    """Slot proposals for clients who asked to meet, around each rep's calendar; invitations
    for times clients chose from ``earlier`` proposals (:func:`meeting_history`); holds and
    their release. ``sent_notes`` as for :func:`plan_notes`."""
    return meetings_for(
        team, threads(team, messages), events, now, earlier=earlier, sent_notes=sent_notes
    )


def meetings_for(
    team: Team,
    thread_list: list[Thread],
    events: Iterable[Event],
    now: datetime,
    *,
    earlier: Iterable[Action] = (),
    sent_notes: Mapping[str, str] | None = None,
) -> meetings.MeetingPlan:
    """:func:`plan_meetings` over threads already built."""
    if not team.meetings:
        return meetings.MeetingPlan((), ())
    events = list(events)
    result = meetings.plan(
        thread_list,
        list(team.meetings),
        team.reps(),
        client_calendar,
        _busy(team, events, now, now),
        now,
        languages=language_of(team),
        earlier=earlier,
        notes=sent_notes,
        rep_details=rep_details(team),
    )
    # A moved meeting's old time leaves the rep's calendar, where the rep had put it.
    freed = []
    for action in result.actions:
        if action.kind is ActionKind.INVITE and action.context["meeting"].get("sequence"):
            rep = team.reps()[action.mailbox]
            uid = invite_uid(invite_for(action, Address(rep.address, rep.name)))
            freed += meetings.freed_events(action, events, uid)
    if not freed:
        return result
    return dataclasses.replace(result, actions=(*result.actions, *freed))


def record(
    store: Store,
    result: promises.PromisePlan | followups.FollowupPlan | meetings.MeetingPlan | golive.Gated,
) -> None:
    store.record_decisions(
        (d.mailbox, d.thread_id, d.message_id, d.decision, d.reason) for d in result.decisions
    )


@dataclass(frozen=True)
class Planned:
    """One pass's plan: what every planner decided over the stored mail and calendar."""

    promises: promises.PromisePlan
    notes: followups.FollowupPlan
    meetings: meetings.MeetingPlan

    @property
    def actions(self) -> list[Action]:
        parts = (self.promises.actions, self.notes.actions, self.meetings.actions)
        return sorted((a for part in parts for a in part), key=lambda a: a.due)

    @property
    def obsolete(self) -> frozenset[str]:
        """Keys planned earlier whose reason has gone: cancel them if still unsent."""
        return self.promises.obsolete | self.notes.obsolete


@dataclass(frozen=True)
class Stored:
    """What the planners read from the store for one pass."""

    messages: tuple[Message, ...]  # a tuple: the three planners share one threading
    events: list[Event]
    sent_notes: dict[str, str]  # Message-ID of each note the outbox sent -> its key
    earlier: list[Action]  # :func:`meeting_history`


def stored(store: Store, now: datetime, *, mailbox: str | None = None) -> Stored:
    """The stored mail, events, sent notes and earlier proposals of ``mailbox`` (or all)."""
    return Stored(
        tuple(store.messages(mailbox)),
        store.events(mailbox),
        {
            str(r["sent_message_id"]): str(r["key"])
            for r in store.outbox(statuses=(SENT,), mailbox=mailbox)
            if r["sent_message_id"]
        },
        meeting_history(store, now, mailbox=mailbox),
    )


def plan_stored(team: Team, store: Store, now: datetime, *, mailbox: str | None = None) -> Planned:
    """Run every planner over the stored mail of ``mailbox`` (or all) and record the decisions.

    The agent's sent notes and earlier proposals are read from the outbox, so its own mail is
    never taken for the rep's and clients' answers are read against what was offered.
    """
    found = stored(store, now, mailbox=mailbox)
    messages, events = found.messages, found.events
    sent, earlier = found.sent_notes, found.earlier
    result = Planned(
        plan(team, messages, now),
        plan_notes(team, messages, events, now, sent_notes=sent, earlier=earlier),
        plan_meetings(team, messages, events, now, earlier=earlier, sent_notes=sent),
    )
    record_all(store, result)
    return result


def record_all(store: Store, result: Planned) -> None:
    """Record the decisions of every planner in ``result``."""
    for part in (result.promises, result.notes, result.meetings):
        record(store, part)
