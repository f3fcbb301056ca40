"""Incremental planning: plan again only what can have changed since the last pass.

The planners are pure functions of a client's mail, the client's meetings, the agent's earlier
notes and ``now``. Between two passes most of that is unchanged, so a :class:`Replanner` keeps
each *group*'s last plan and plans a group again only when

- its input changed: a message of one of its threads came, went or got its body, one of its
  messages became known as a note the agent sent, the client's meetings changed, or the outbox
  holds other proposals or invitations for its threads;
- ``now`` reached one of the group's *wake* times, the instants at which its plan changes with
  time alone: a warning, a deadline or an escalation falling due, a note's due time and the
  moment it becomes too late to send, a meeting ending (a thank-you) and its thank-you becoming
  too late, a hold expiring, an offered time passing, a message dated in the future;
- or it was last planned more than :data:`MAX_AGE` ago (3-6 hours, spread per group) while
  something lies ahead of it, a safety net for a change with time the wakes would miss (a
  change of the rep's calendar is not one: it plans the mailbox whole); a settled group, with
  nothing ahead, after :data:`SETTLED_AGE` (12-24 hours). Planning with a day between safety
  re-plans gives the full plan (``tests/test_replan.py``), so the net is rarely what plans a
  group; it is kept long because at real volumes it was most of a worker's CPU (an hour's
  bound re-planned every client with something ahead, 22,000 threads a minute at 500 reps).

Promises are kept per thread, since a thread's promises depend on that thread alone; follow-ups,
thank-yous and meeting proposals per group: a client's threads (in every mailbox the batch
holds), or one thread with no client. The result is the :class:`~agent.pipeline.Planned` a full
pass gives, and ``fresh`` holds what was planned this time: what a worker needs to enqueue,
cancel and record. Enqueueing is idempotent by key, so what was left alone has nothing new to
tell the outbox.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from agent import followups, matching, meetings, pipeline, promises
from agent.model import Action, ActionKind, Event, Message, MessageKind, Thread
from agent.store import SENT, Store, action_from_json

# How long a group with something ahead goes unplanned while nothing marks it due: a safety
# net, like SETTLED_AGE; its wakes are what plan it on time.
MAX_AGE = timedelta(hours=6)
# How long a settled group (nothing ahead of it in time) goes unplanned while its mail is
# unchanged: a safety net, not a schedule (see Replanner._wake).
SETTLED_AGE = timedelta(hours=24)
MEETING_DAYS = 30  # proposals and invitations read back, as pipeline.meeting_history
_INSTANT = timedelta(microseconds=1)  # "too late" is a strict comparison: it starts after
_T = TypeVar("_T")


@dataclass(frozen=True)
class Replanned:
    """The whole plan, and the part of it planned this time."""

    parts: tuple[pipeline.Planned, ...]  # the last plan of every group and thread
    fresh: pipeline.Planned
    groups: int  # groups in the batch
    replanned: int  # groups planned this time
    threads: int  # threads planned this time (their promises, or their client's notes)

    @functools.cached_property
    def planned(self) -> pipeline.Planned:
        """The whole plan, as a full pass gives it (put together when asked for)."""
        return _merge(list(self.parts))


@dataclass
class _Group:
    fingerprint: tuple[object, ...]
    planned_at: datetime
    wake: datetime
    plan: pipeline.Planned


@dataclass
class _Cached:
    fingerprint: tuple[object, ...]
    group: str


_EMPTY = pipeline.Planned(
    promises.PromisePlan((), (), (), frozenset()),
    followups.FollowupPlan((), (), frozenset()),
    meetings.MeetingPlan((), ()),
)


@dataclass
class Replanner:
    """Plans a team's mail pass after pass, reusing what cannot have changed.

    One replanner serves one :class:`~agent.pipeline.Team` (a new set of rules, templates or
    clients needs a new one) and any number of mailboxes; a batch holds one mailbox's mail or
    all of it, and groups missing from a batch of the same mailboxes are forgotten.
    """

    team: pipeline.Team
    max_age: timedelta = MAX_AGE
    _threads: dict[tuple[str, str], _Cached] = field(default_factory=dict)
    _groups: dict[tuple[str, str], _Group] = field(default_factory=dict)
    _promises: dict[tuple[str, str], _Group] = field(default_factory=dict)  # per thread
    # During one call: the batch's messages per thread, and the threads built from them. No
    # thread outlives the call: a worker keeps plans, not mail.
    _batch: dict[tuple[str, str], list[Message]] = field(default_factory=dict)
    _built: dict[tuple[str, str], Thread] = field(default_factory=dict)
    _only: set[str] | None = None

    def forget(self, mailbox: str | None = None) -> None:
        """Plan ``mailbox``'s groups (or all) afresh next time, e.g. after a failed pass."""
        if mailbox is None:
            self._threads.clear()
            self._groups.clear()
            self._promises.clear()
            return
        for key in [k for k in self._threads if k[0] == mailbox]:
            del self._threads[key]
            self._promises.pop(key, None)
        for key in [k for k in self._groups if k[0] in ("", mailbox)]:
            del self._groups[key]

    def plan(
        self,
        messages: Iterable[Message],
        events: Iterable[Event],
        now: datetime,
        *,
        sent_notes: Mapping[str, str] | None = None,
        earlier: Iterable[Action] = (),
        mailbox: str = "",
        only: set[str] | None = None,
    ) -> Replanned:
        """Plan a batch: ``mailbox``'s mail, events and earlier proposals, or (``""``) every
        mailbox's. Arguments as for :func:`pipeline.plan_notes`; ``only``, when given, is the
        set of groups the batch holds whole: meetings of other clients are left to the passes
        that load those clients' threads."""
        self._only = only
        try:
            return self._plan(messages, list(events), now, sent_notes or {}, list(earlier), mailbox)
        finally:
            self._only = None
            self._batch, self._built = {}, {}  # no mail outlives the call, even a failed one

    def _plan(
        self,
        messages: Iterable[Message],
        events: list[Event],
        now: datetime,
        notes: Mapping[str, str],
        earlier: list[Action],
        mailbox: str,
    ) -> Replanned:
        self._refresh_threads(messages, notes, mailbox)
        by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key, cached in self._threads.items():
            if not mailbox or key[0] == mailbox:
                by_group[cached.group].append(key)
        met = _meetings_by_client(self.team, events)
        if self._only is not None:
            met = {k: v for k, v in met.items() if k in self._only}
        offered: dict[tuple[str, str], list[Action]] = defaultdict(list)
        for a in earlier:
            offered[(a.mailbox, a.thread_id)].append(a)
        for client in met:
            by_group.setdefault(client, [])
        for gone in [k for k in self._groups if k[0] == mailbox and k[1] not in by_group]:
            del self._groups[gone]

        dirty: list[str] = []
        fingerprints: dict[str, tuple[object, ...]] = {}
        for name, keys in by_group.items():
            keys.sort()
            fp = (
                tuple(self._threads[k].fingerprint for k in keys),
                tuple(met.get(name, ())),
                tuple((a.key, a.due) for k in keys for a in offered.get(k, ())),
            )
            fingerprints[name] = fp
            known = self._groups.get((mailbox, name))
            if known is None or known.fingerprint != fp or not known.planned_at <= now < known.wake:
                dirty.append(name)

        # Promises: one thread's promise depends on that thread alone.
        batch = [k for keys in by_group.values() for k in keys]
        stale = []
        for key in batch:
            known = self._promises.get(key)
            if (
                known is None
                or known.fingerprint != self._threads[key].fingerprint
                or not known.planned_at <= now < known.wake
            ):
                stale.append(key)
        kept = self._plan_promises(stale, now)

        fresh = self._plan_groups(dirty, by_group, events, now, notes, earlier)
        parts = _split(fresh, self._owner_of, set(dirty))
        for name in dirty:
            part = parts.get(name, _EMPTY)
            self._groups[(mailbox, name)] = _Group(
                fingerprints[name],
                now,
                self._wake(name, by_group[name], part, met.get(name, ()), offered, now),
                part,
            )
        whole = [self._groups[(mailbox, name)].plan for name in by_group]
        whole += [self._promises[key].plan for key in batch]
        return Replanned(
            tuple(whole),
            _merge([*(parts.get(name, _EMPTY) for name in dirty), *kept]),
            len(by_group),
            len(dirty),
            len({*stale, *(k for name in dirty for k in by_group[name])}),
        )

    def _plan_promises(self, stale: list[tuple[str, str]], now: datetime) -> list[pipeline.Planned]:
        """Plan the promises of the ``stale`` threads; return what they planned."""
        team = self.team
        threads = sorted(
            self._threads_of(stale),
            key=lambda t: (t.mailbox, t.messages[0].message.date),
        )
        fresh = promises.plan(threads, team.rules, team.reps(), pipeline.client_calendar, now)
        chosen = set(stale)
        parts: dict[tuple[str, str], dict[str, list]] = {k: defaultdict(list) for k in stale}

        def owner(mailbox: str, thread_id: str, client: str = "") -> tuple[str, str] | None:
            return (mailbox, thread_id) if (mailbox, thread_id) in chosen else None

        for p in fresh.promises:
            parts[(p.mailbox, p.thread_id)]["promises"].append(p)
        for a in fresh.actions:
            parts[(a.mailbox, a.thread_id)]["actions"].append(a)
        for d in fresh.decisions:
            parts[(d.mailbox, d.thread_id)]["decisions"].append(d)
        for key in fresh.obsolete:
            found = _key_owner(key, owner)
            if found is not None:
                parts[found]["obsolete"].append(key)
        out = []
        for k, o in parts.items():
            plan = dataclasses.replace(
                _EMPTY,
                promises=promises.PromisePlan(
                    tuple(o["promises"]),
                    tuple(o["actions"]),
                    tuple(o["decisions"]),
                    frozenset(o["obsolete"]),
                ),
            )
            wake = self._wake(f"{k[0]}/{k[1]}", [k], plan, (), {}, now)
            self._promises[k] = _Group(self._threads[k].fingerprint, now, wake, plan)
            out.append(plan)
        return out

    def plan_stored(self, store: Store, now: datetime, *, mailbox: str = "") -> Replanned:
        """:meth:`plan` over the stored mail of ``mailbox`` (or all), recording the decisions
        of the groups planned this time."""
        found = pipeline.stored(store, now, mailbox=mailbox or None)
        result = self.plan(
            found.messages,
            found.events,
            now,
            sent_notes=found.sent_notes,
            earlier=found.earlier,
            mailbox=mailbox,
        )
        pipeline.record_all(store, result.fresh)
        return result

    # -- threads -------------------------------------------------------------------------------
    def _refresh_threads(
        self, messages: Iterable[Message], notes: Mapping[str, str], mailbox: str
    ) -> None:
        """Build the threads whose messages changed, forget those gone from the batch."""
        grouped: dict[tuple[str, str], list[Message]] = defaultdict(list)
        for m in messages:
            grouped[(m.mailbox, m.thread_id)].append(m)
        self._batch = grouped
        for key in [k for k in self._threads if (not mailbox or k[0] == mailbox)]:
            if key not in grouped:
                del self._threads[key]
                self._promises.pop(key, None)
        changed: list[Message] = []
        fingerprints: dict[tuple[str, str], tuple[object, ...]] = {}
        known = self._threads.get
        note = notes.get
        for key, found in grouped.items():
            fp = tuple(
                [
                    (m.provider_id, m.date, -1 if m.body is None else len(m.body))
                    if not notes or not note(m.message_id)
                    else (m.provider_id, m.date, note(m.message_id))
                    for m in found
                ]
            )
            cached = known(key)
            if cached is None or cached.fingerprint != fp:
                fingerprints[key] = fp
                changed += found
        if changed:
            for thread in pipeline.threads(self.team, changed):
                key = (thread.mailbox, thread.thread_id)
                group = _group_of(thread, self.team.directory)
                self._threads[key] = _Cached(fingerprints[key], group)
                self._built[key] = thread

    def _threads_of(self, keys: list[tuple[str, str]]) -> list[Thread]:
        """The threads of ``keys``, built from this call's batch when not built already."""
        missing = [k for k in keys if k not in self._built]
        if missing:
            built = pipeline.threads(self.team, [m for k in missing for m in self._batch[k]])
            self._built.update({(t.mailbox, t.thread_id): t for t in built})
        return [self._built[k] for k in keys]

    def _owner_of(self, mailbox: str, thread_id: str, client: str) -> str | None:
        cached = self._threads.get((mailbox, thread_id))
        if cached is not None:
            return cached.group
        return client or None

    # -- planning ------------------------------------------------------------------------------
    def _plan_groups(
        self,
        dirty: list[str],
        by_group: Mapping[str, list[tuple[str, str]]],
        events: list[Event],
        now: datetime,
        notes: Mapping[str, str],
        earlier: list[Action],
    ) -> pipeline.Planned:
        if not dirty:
            return _EMPTY
        team = self.team
        chosen = set(dirty)
        thread_list = sorted(
            self._threads_of([k for name in dirty for k in by_group[name]]),
            key=lambda t: (t.mailbox, t.messages[0].message.date),
        )
        directory = team.directory
        attended = [
            e
            for e in events
            if any(
                (found := directory.find(a.email)[0]) is not None and found.key in chosen
                for a in e.attendees
            )
        ]
        return pipeline.Planned(
            _EMPTY.promises,
            pipeline.notes_for(
                team,
                thread_list,
                attended,
                now,
                sent_notes=notes,
                earlier=earlier,
                calendar=events,
            ),
            pipeline.meetings_for(
                team, thread_list, events, now, earlier=earlier, sent_notes=notes
            ),
        )

    def _wake(
        self,
        name: str,
        keys: list[tuple[str, str]],
        plan: pipeline.Planned,
        met: Iterable[tuple[object, ...]],
        offered: Mapping[tuple[str, str], list[Action]],
        now: datetime,
    ) -> datetime:
        """The first instant after ``now`` at which the group's plan can change by time alone.

        A group with something ahead of it (a deadline, a note due or not yet too late, an
        offered time, a meeting) is planned again at its first such instant, and at least every
        ``max_age`` (3-6 hours, spread per group) as a safety net. A settled group (nothing
        ahead) can change only when its mail does, which marks it changed: it is looked at again
        after :data:`SETTLED_AGE` (12-24 hours) only as a safety net. Without that distinction
        every stored thread came due once an hour, and a planning pass cost what the mailbox
        holds.
        """
        spread = zlib.crc32(name.encode()) % 1000 / 1000  # 0 <= spread < 1, steady per group
        times: list[datetime] = []
        for k in keys:
            times += [m.date for m in self._batch.get(k, ())]
            for a in offered.get(k, ()):
                until = meetings.holds_until(a)
                if until is not None:
                    times.append(until)
                times += [s.start for s in meetings.slots_of(a)]
        for p in plan.promises.promises:
            times += [p.clock_start, p.deadline]
        for a in plan.actions:
            times.append(a.due)
            if a.kind is ActionKind.FOLLOW_UP:
                late = a.context.get(followups.LATE_AFTER, a.due + followups.TOO_LATE)
                times.append(late + _INSTANT)  # too late to send: past it, not at it
        delays = [r.delay for r in self.team.cadences.thank_yous] or [timedelta(0)]
        for _mailbox, _pid, start, end, *_ in met:
            assert isinstance(start, datetime) and isinstance(end, datetime)
            times += [start, end]
            times += [end + d + followups.LATE_THANKS + _INSTANT for d in delays]
        ahead = [t for t in times if t > now]
        if not ahead:
            return now + SETTLED_AGE * (0.5 + spread / 2)
        return min([*ahead, now + self.max_age * (0.5 + spread / 2)])


def _meetings_by_client(team: pipeline.Team, events: list[Event]) -> dict[str, list[tuple]]:
    """Per client key, what the planners read of the events the client attends."""
    directory = team.directory
    found: dict[str, list[tuple]] = defaultdict(list)
    for e in sorted(events, key=lambda e: (e.start, e.mailbox, e.provider_id)):
        digest = (
            e.mailbox,
            e.provider_id,
            e.start,
            e.end,
            e.status,
            e.all_day,
            e.uid,
            e.organizer,
            e.summary,
            tuple((a.email, a.partstat) for a in e.attendees),
        )
        clients = {c.key for a in e.attendees if (c := directory.find(a.email)[0]) is not None}
        for key in sorted(clients):
            found[key].append(digest)
    return found


def _split(
    fresh: pipeline.Planned, owner_of: Callable[[str, str, str], str | None], chosen: set[str]
) -> dict[str, pipeline.Planned]:
    """``fresh`` cut into the groups it was planned for; what belongs to others is dropped."""

    def owner(mailbox: str, thread_id: str, client: str = "") -> str | None:
        group = owner_of(mailbox, thread_id, client)
        return group if group in chosen else None

    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for part, plan in (
        ("note_actions", fresh.notes),
        ("meeting_actions", fresh.meetings),
    ):
        for a in plan.actions:
            if (g := owner(a.mailbox, a.thread_id, a.client)) is not None:
                out[g][part].append(a)
    for part, plan in (
        ("note_decisions", fresh.notes),
        ("meeting_decisions", fresh.meetings),
    ):
        for d in plan.decisions:
            client = d.message_id.rpartition("/")[2] if not d.thread_id else ""
            if (g := owner(d.mailbox, d.thread_id, client)) is not None:
                out[g][part].append(d)
    for key in fresh.notes.obsolete:
        g = _key_owner(key, owner)
        if g is not None:
            out[g]["note_obsolete"].append(key)
    modes = fresh.notes.modes
    return {
        g: pipeline.Planned(
            _EMPTY.promises,
            followups.FollowupPlan(
                tuple(o["note_actions"]),
                tuple(o["note_decisions"]),
                frozenset(o["note_obsolete"]),
                {a.key: modes[a.key] for a in o["note_actions"] if a.key in modes},
            ),
            meetings.MeetingPlan(tuple(o["meeting_actions"]), tuple(o["meeting_decisions"])),
        )
        for g, o in out.items()
    }


def _key_owner(key: str, owner: Callable[..., _T | None]) -> _T | None:
    """The group an obsolete key belongs to: ``promise/<mailbox>/<thread>/...``,
    ``follow_up/<mailbox>/<thread>/...``, ``thank_you|feedback/<mailbox>/<event>/<client>``."""
    kind, _, rest = key.partition("/")
    if kind in ("thank_you", "feedback"):
        mailbox = rest.partition("/")[0]
        return owner(mailbox, "", rest.rpartition("/")[2])
    mailbox, _, tail = rest.partition("/")
    group = owner(mailbox, tail.partition("/")[0])
    if group is not None:
        return group
    # Thread ids may hold "/": try each cut, longest thread id first.
    cut = len(tail)
    while cut > 0:
        cut = tail.rfind("/", 0, cut)
        if cut <= 0:
            break
        group = owner(mailbox, tail[:cut])
        if group is not None:
            return group
    return None


def _merge(plans: list[pipeline.Planned]) -> pipeline.Planned:
    chain = itertools.chain.from_iterable
    modes: dict[str, str] = {}
    for p in plans:
        if p.notes.modes:
            modes.update(p.notes.modes)
    return pipeline.Planned(
        promises.PromisePlan(
            tuple(chain(p.promises.promises for p in plans)),
            tuple(chain(p.promises.actions for p in plans)),
            tuple(chain(p.promises.decisions for p in plans)),
            frozenset(chain(p.promises.obsolete for p in plans)),
        ),
        followups.FollowupPlan(
            tuple(chain(p.notes.actions for p in plans)),
            tuple(chain(p.notes.decisions for p in plans)),
            frozenset(chain(p.notes.obsolete for p in plans)),
            modes,
        ),
        meetings.MeetingPlan(
            tuple(chain(p.meetings.actions for p in plans)),
            tuple(chain(p.meetings.decisions for p in plans)),
        ),
    )


# -- planning from the planner's stored state ------------------------------------------------------
@dataclass
class MailboxPlan:
    """One planning pass over a mailbox from its stored planner state (:func:`plan_mailbox`).

    The decisions of ``result.fresh`` are the caller's to record (with its own, in one batch);
    ``save`` records the new state; call it once what was planned is in the outbox, so that a
    pass failing before then leaves the same threads due for the next one.
    """

    result: Replanned
    full: bool  # every stored message of the mailbox was read (first plan, new rules, calendar)
    loaded: int  # threads read and planned
    counts: dict[str, int]  # the mailbox's promises per state, after this pass
    save: Callable[[], None]


class Deferred:
    """A whole plan put off: the worker had no slot for it (see :func:`plan_mailbox`)."""

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED = Deferred()


def plan_mailbox(
    store: Store,
    team: pipeline.Team,
    now: datetime,
    *,
    mailbox: str,
    digest: str,
    whole: bool = False,
    hold: Callable[[int], bool] | None = None,
) -> MailboxPlan | Deferred | None:
    """Plan what can have changed in ``mailbox`` since its last plan, reading only that.

    The store keeps, per thread, the thread's group and the next instant its plan can change by
    time alone (``thread_state``), and marks a thread changed when its mail does. A pass reads
    the threads that changed or whose instant came, with every other thread of their clients,
    and plans them afresh; it reads the whole stored mailbox only when it was never planned, when
    ``digest`` (the rules, clients and templates) or the calendar changed since. Nothing of the
    plan stays in the worker, so any worker continues where another left off. Returns None when
    nothing is due. ``whole`` plans all of the mailbox's mail whatever the stored state says
    (after a reload).

    A whole plan reads the mailbox's whole history into memory: ``hold`` is asked first with
    the number of messages stored, and when it says no (a worker's slots for whole plans are
    all taken) nothing is read and :data:`DEFERRED` is returned, for the caller to plan the
    mailbox at its next pass.
    """
    read = store.due_threads(mailbox, now, groups=True)  # with every thread of their groups
    meta = next((r for r in read if r["thread_id"] == ""), None)
    read = [r for r in read if r["thread_id"] != ""]
    due = [r for r in read if r["wake"] is None or r["wake"] <= now]
    if (
        not whole
        and meta is not None
        and str(meta["note"] or "").startswith(f"{digest}:")
        and not due
        and meta["wake"] is not None
        and meta["wake"] > now
    ):
        # Nothing due, the same rules, and the calendar unchanged since the last plan (a change
        # makes the mailbox's own row due, see Store.apply_event_sync): nothing else is read.
        return None
    events = store.events(mailbox)
    note = f"{digest}:{_events_digest(events)}"
    full = whole or meta is None or meta["note"] != note
    met_groups = set(_meetings_by_client(team, events))
    rows: dict[str, dict[str, object]] = {}
    meta_due = True
    only: set[str] | None = None
    if full:
        if hold is not None and not hold(store.message_count(mailbox)):
            return DEFERRED
        messages = store.messages(mailbox)
    else:
        assert meta is not None
        meta_due = meta["wake"] is None or meta["wake"] <= now
        if not due and not meta_due:
            return None
        # Every thread of the clients of what is due is planned with it: those of the groups
        # the due threads had came with them; a changed thread may have found its client only
        # now, and the meetings' clients are planned when the mailbox's own wake came.
        rows = {str(r["thread_id"]): r for r in read}
        read_groups = {str(r["grp"]) for r in due if r["grp"]}
        messages = store.thread_messages(mailbox, rows)
        groups = read_groups | (met_groups if meta_due else set())
        groups |= {_group_of(t, team.directory) for t in pipeline.threads(team, messages)}
        if groups - read_groups:
            more, theirs = store.group_thread_messages(mailbox, groups - read_groups, rows)
            rows.update({str(r["thread_id"]): r for r in more})
            messages += theirs
        only = groups
    history = store.planning_outbox(mailbox, now - timedelta(days=MEETING_DAYS))
    sent = {
        str(r["sent_message_id"]): str(r["key"])
        for r in history
        if r["status"] == SENT and r["sent_message_id"]
    }
    earlier = [
        action_from_json(r["action"])
        for r in history
        if r["kind"] in (ActionKind.PROPOSAL, ActionKind.INVITE)
    ]
    earlier = [a for a in earlier if a.due >= now - timedelta(days=MEETING_DAYS)]
    replanner = Replanner(team)
    result = replanner.plan(
        tuple(messages),
        events,
        now,
        sent_notes=sent,
        earlier=earlier,
        mailbox=mailbox,
        only=only,
    )

    states: list[tuple[str, str, datetime, dict[str, int] | None]] = []
    grouped: set[str] = set()
    for (_mailbox, tid), cached in replanner._threads.items():
        grouped.add(cached.group)
        promised = replanner._promises[(mailbox, tid)]
        wake = min(promised.wake, replanner._groups[(mailbox, cached.group)].wake)
        per: dict[str, int] = {}
        for p in promised.plan.promises.promises:
            per[p.state.value] = per.get(p.state.value, 0) + 1
        states.append((tid, cached.group, wake, per or None))
    gone = [tid for tid in rows if (mailbox, tid) not in replanner._threads]
    if full or meta_due:
        lonely = [g.wake for (_m, name), g in replanner._groups.items() if name not in grouped]
        meta_wake = min(lonely, default=now + replanner.max_age)
    else:
        assert meta is not None
        meta_wake = meta["wake"]

    totals: dict[str, int] = {}
    if not full:
        assert meta is not None
        totals = dict(meta["promises"] or {})  # the count stored with the last plan
        for r in rows.values():
            for state, n in dict(r["promises"] or {}).items():  # type: ignore[call-overload]
                totals[state] = totals.get(state, 0) - int(n)
    for _tid, _grp, _wake, planned in states:
        for state, n in (planned or {}).items():
            totals[state] = totals.get(state, 0) + n

    def save() -> None:
        store.save_plan_state(mailbox, states, meta=(meta_wake, note, totals), gone=gone)

    return MailboxPlan(result, full, len(states), totals, save)


def _group_of(thread: Thread, directory: matching.Directory) -> str:
    """The group ``thread`` is planned with: its client's; for a delivery report in a thread
    of its own, the client of the address it reports failed (follow-ups to that address stop
    in whichever thread they are, so the report must be read whenever that client's group is
    planned, and plan it again when it comes); else the thread alone."""
    if thread.client:
        return thread.client.key
    for c in thread.messages:
        if c.kind is MessageKind.BOUNCE:
            for email in matching.bounce_report(c.message).recipients:
                client = directory.find(email)[0]
                if client is not None:
                    return client.key
    return f"#{thread.mailbox}/{thread.thread_id}"


def _events_digest(events: Iterable[Event]) -> str:
    """A digest of a mailbox's calendar: any change to it plans the mailbox whole."""
    h = hashlib.blake2b(digest_size=12)
    for e in sorted(events, key=lambda e: e.provider_id):
        h.update(repr(e).encode())
    return h.hexdigest()
