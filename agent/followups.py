"""Follow-ups and thank-yous -> planned notes to clients. Pure: it takes ``now`` and reads nothing.

Follow-ups
----------
In each thread with a client, the rep's last outbound human message is the *anchor*. If the
client does not answer, step 1 is due one ``after`` wait (in the client's calendar) after the
anchor, step 2 one wait after step 1, and so on up to ``steps``. The keys are
``follow_up/{mailbox}/{thread_id}/{anchor message id}/{step}``: a new message from the rep makes
it the anchor and the old anchor's keys obsolete, so the cadence starts again.

The cadence stops at once, with a :class:`Decision` saying why, when anyone at the client's
company writes (in any thread of the mailbox), a meeting with the client is booked, the thread
bounces, the client asks to stop, or the client is opted out. An out-of-office auto-reply is no
answer: it holds the next step until the return date it states, or for ``out_of_office_hold``.

Notes the outbox sent (an ``X-Followup-Key`` header, or a Message-ID listed in ``notes``) are
never taken for the rep's own mail; the next step counts from when a step really went out. A
step that would already be overdue when planned goes out once, and the steps after it count
from ``now``, so an agent started over old mail never sends several notes at once; a step
overdue by more than :data:`TOO_LATE` ends the cadence instead.

Thank-yous
----------
Once a meeting with a client attendee has ended, a thank-you is due ``delay`` after its end
(and a feedback survey ``delay_feedback`` after it, if the rule asks). None is planned for a
cancelled meeting, a meeting every client attendee (or the rep) declined, a recurring meeting, a
meeting a colleague's mailbox also holds (the organizer's mailbox thanks), or when the rep has
already written to the client since the meeting ended: any outbound human message from the rep
to that client counts, as the rep has then followed up in person. A thank-you found due more
than :data:`LATE_THANKS` ago is not sent at all.

Every note is moved into the client's business hours (their weekend and public holidays
skipped), inside the rule's ``send_window``, and notes to one client are kept ``min_gap`` apart.
A note found already due when planned (the agent was not running) goes out at the first such
time from ``now``, not at once: never at night or on the client's weekend. Each note carries
those times for the next two weeks (``send_spans``), so the outbox can hold one whose time
passed while the worker was down until the next of them.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from agent import bounces, matching, phrases, returndates
from agent.businesstime import BusinessCalendar, Shift
from agent.cadences import MAX_STEPS, Cadences, FollowUpRule, ThankYouRule
from agent.matching import FREE_MAIL
from agent.model import (
    Action,
    ActionKind,
    Address,
    Classified,
    Client,
    Direction,
    Event,
    Interval,
    MessageKind,
    Thread,
    utc,
)
from agent.names import greeting_fields
from agent.neutral import no_links
from agent.promises import Decision, Rep
from agent.providers.protocol import KEY_HEADER, key_tag

ClientCalendar = Callable[[Client], BusinessCalendar]
Languages = Callable[[Thread], str]

# The context key of the stretches a note may go out in, and how many days of them it carries.
SEND_SPANS = "send_spans"
SPAN_DAYS = 14
# A step found overdue by more than this when planned is not sent late: the cadence ends.
TOO_LATE = timedelta(days=7)
# The context key of the instant after which a step not yet sent is too late: its due before it
# was found overdue (or moved for ``min_gap``), plus TOO_LATE. The plan changes then by time alone.
LATE_AFTER = "late_after"
# A thank-you found due longer ago than this (the agent was not running) is not sent at all.
LATE_THANKS = timedelta(days=2)
# Return dates further out than this are more likely a misread than a long leave.
MAX_ABSENCE = returndates.MAX_ABSENCE
_KEY = KEY_HEADER.lower()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FollowupPlan:
    """What to send, what was decided against, and which earlier keys to cancel.

    ``actions`` are FOLLOW_UP, THANK_YOU and FEEDBACK notes; ``obsolete`` holds keys whose
    reason has gone (cancel them if unsent); ``modes`` maps an action key to "draft" or "send"
    where its rule overrides the configured mode.
    """

    actions: tuple[Action, ...]
    decisions: tuple[Decision, ...]
    obsolete: frozenset[str]
    modes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Note:
    """A note on its way to becoming an Action; ``due`` may still move for ``min_gap``."""

    action: Action
    calendar: BusinessCalendar
    window: tuple[Shift, ...]
    gap: timedelta
    mode: str
    reason: list[str]


class _Timeline:
    """Messages oldest first, to find those after an instant without scanning them all."""

    def __init__(self) -> None:
        self.items: list[tuple[Classified, Thread]] = []
        self.dates: list[datetime] = []

    def add(self, c: Classified, thread: Thread) -> None:
        self.items.append((c, thread))

    def seal(self) -> None:
        self.items.sort(key=lambda pair: (pair[0].message.date, pair[0].message.provider_id))
        self.dates = [c.message.date for c, _ in self.items]

    def after(
        self, when: datetime, *, inclusive: bool = False
    ) -> Iterator[tuple[Classified, Thread]]:
        """Messages dated after ``when`` (or at it, with ``inclusive``), oldest first."""
        cut = bisect.bisect_left if inclusive else bisect.bisect_right
        return (self.items[i] for i in range(cut(self.dates, when), len(self.items)))

    def first_after(self, when: datetime) -> tuple[Classified, Thread] | None:
        return next(self.after(when), None)


@dataclass
class _World:
    """Indexes over everything the planner sees, built once per call."""

    now: datetime
    notes: Mapping[str, str]
    opted_out: frozenset[str]
    rep_details: Mapping[str, Mapping[str, str]]
    # The team's clients, looked up without being copied (a team may have tens of thousands),
    # and the clients of the threads planned, which a caller's list may lack.
    directory: matching.Directory | None = None
    clients: dict[str, Client] = field(default_factory=dict)
    by_email: dict[str, Client] = field(default_factory=dict)
    by_domain: dict[str, Client] = field(default_factory=dict)
    # (mailbox, client key) -> that client's human replies, auto-replies, and the team's own
    # human mail (notes excluded) in that mailbox
    replies: dict[tuple[str, str], _Timeline] = field(
        default_factory=lambda: defaultdict(_Timeline)
    )
    autos: dict[tuple[str, str], _Timeline] = field(default_factory=lambda: defaultdict(_Timeline))
    sent: dict[tuple[str, str], _Timeline] = field(default_factory=lambda: defaultdict(_Timeline))
    stop_asked: dict[str, tuple[Classified, str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # client key -> meetings not cancelled that a client attendee has not declined
    meetings: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    threads: dict[tuple[str, str], Thread] = field(default_factory=dict)
    # (mailbox, client key) -> that client's thread with the newest message
    newest: dict[tuple[str, str], Thread] = field(default_factory=dict)
    # mailbox -> the delivery failures reported to it, in any thread, oldest first
    bounces: dict[str, list[tuple[Classified, Thread, bounces.Report]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def client_of(self, email: str) -> Client | None:
        email = email.lower()
        if self.directory is not None:
            found = self.directory.find(email)[0]
            if found is not None:
                return found
        if email in self.by_email:
            return self.by_email[email]
        domain = email.rpartition("@")[2]
        return None if domain in FREE_MAIL else self.by_domain.get(domain)

    def client(self, key: str) -> Client | None:
        found = self.directory.get(key) if self.directory is not None else None
        return found or self.clients.get(key)

    def is_note(self, c: Classified) -> bool:
        return bool(c.message.headers.get(_KEY)) or c.message.message_id in self.notes

    def note_key(self, c: Classified, keys: Mapping[str, str]) -> str:
        """Which of ``keys`` (each key's tag, and the key itself, mapped to the key) the note
        ``c`` was sent for, or ""."""
        found = c.message.headers.get(_KEY, "").strip()
        return keys.get(found, "") or keys.get(self.notes.get(c.message.message_id, ""), "")

    def rep(self, rep: Rep) -> dict[str, str]:
        return {**self.rep_details.get(rep.mailbox, {}), "name": rep.name, "email": rep.address}

    def opt_out(self, client: Client) -> str:
        if client.opted_out:
            return f"{client.name} is marked opted out in the clients file"
        if client.key in self.opted_out:
            return f"{client.name} is on the opt-out list"
        return ""


def _index(
    threads: list[Thread],
    events: Iterable[Event],
    clients: Iterable[Client] | matching.Directory,
    now: datetime,
    notes: Mapping[str, str],
    opted_out: Iterable[str],
    rep_details: Mapping[str, Mapping[str, str]],
) -> _World:
    world = _World(now, notes, frozenset(opted_out), rep_details)
    if isinstance(clients, matching.Directory):
        world.directory, clients = clients, ()
    known = [*clients, *(t.client for t in threads if t.client is not None)]
    for client in known:
        world.clients.setdefault(client.key, client)
    for client in world.clients.values():
        for email in client.emails:
            world.by_email.setdefault(email.lower(), client)
        for domain in client.domains:
            world.by_domain.setdefault(domain.lower(), client)
    for thread in threads:
        for c in thread.messages:
            if c.kind is MessageKind.BOUNCE and c.message.date <= now:
                # A bounce lands in a thread of its own as often as in the one it reports on.
                world.bounces[thread.mailbox].append((c, thread, matching.bounce_report(c.message)))
            if c.message.date > now or not c.client:
                continue
            slot = (thread.mailbox, c.client)
            if c.direction is Direction.INBOUND and c.kind is MessageKind.HUMAN:
                world.replies[slot].add(c, thread)
                asked, why = _asks_to_stop(c)
                if asked and c.client not in world.stop_asked:
                    world.stop_asked[c.client] = (c, why)
            elif c.direction is Direction.INBOUND and c.kind is MessageKind.AUTO_REPLY:
                world.autos[slot].add(c, thread)
            elif c.direction is Direction.OUTBOUND and c.is_human and not world.is_note(c):
                world.sent[slot].add(c, thread)
    for timelines in (world.replies, world.autos, world.sent):
        for timeline in timelines.values():
            timeline.seal()
    world.events = sorted(events, key=lambda e: (e.start, e.mailbox, e.provider_id))
    for event in world.events:
        if event.status == "cancelled":
            continue
        attending = {
            found.key
            for a in event.attendees
            if a.partstat.upper() != "DECLINED" and (found := world.client_of(a.email))
        }
        for key in sorted(attending):
            world.meetings[key].append(event)
    for thread in threads:
        world.threads[(thread.mailbox, thread.thread_id)] = thread
        if thread.client is not None and thread.messages:
            slot = (thread.mailbox, thread.client.key)
            known_thread = world.newest.get(slot)
            if known_thread is None or _newest(thread) > _newest(known_thread):
                world.newest[slot] = thread
    return world


def _asks_to_stop(c: Classified) -> tuple[bool, str]:
    m = c.message
    if m.headers.get("list-unsubscribe") or m.headers.get("list-id"):
        return False, ""  # bulk mail: its unsubscribe wording is the sender's, not a person's
    for text in (m.body, m.subject):
        if text:
            asked, why = phrases.asks_to_stop(text)
            if asked:
                return True, why
    return False, ""


def plan(
    threads: Iterable[Thread],
    events: Iterable[Event],
    cadences: Cadences,
    reps: Mapping[str, Rep],
    client_calendar: ClientCalendar,
    now: datetime,
    *,
    opted_out: Iterable[str] = frozenset(),
    languages: Languages | None = None,
    clients: Iterable[Client] | matching.Directory = (),
    notes: Mapping[str, str] | None = None,
    rep_details: Mapping[str, Mapping[str, str]] | None = None,
) -> FollowupPlan:
    """Plan follow-ups for ``threads`` and thank-yous for ``events`` as of ``now``.

    ``opted_out`` holds client keys that get no notes; ``languages(thread)`` picks the note's
    language (default: the client record's, else "en"); ``clients`` lets meeting attendees be
    recognised for clients with no thread yet (a team's :class:`~agent.matching.Directory`, read
    without being copied); ``notes`` maps the Message-ID of each note the
    outbox sent to its action key; ``rep_details`` adds, per mailbox, what the templates show of
    the rep beyond name and email (``company``, ``title``, ``signature``).

    Returns a :class:`FollowupPlan`. Messages dated after ``now`` are ignored. Raises
    ``ValueError`` only for a client calendar that never opens.
    """
    now = utc(now)
    items = list(threads)
    world = _index(items, events, clients, now, notes or {}, opted_out, rep_details or {})
    pending: list[_Note] = []
    decisions: list[Decision] = []
    obsolete: set[str] = set()
    for thread in items:
        rep = reps.get(thread.mailbox)
        if rep is None or thread.client is None:
            continue
        n, d, o = _follow_thread(thread, thread.client, rep, cadences, client_calendar, world)
        pending += n
        decisions += d
        obsolete |= o
    n, d, o = _thank_yous(world, cadences, reps, client_calendar)
    pending += n
    decisions += d
    obsolete |= o
    for note in pending:
        language = _language(note.action, world, languages)
        note.action = dataclasses.replace(note.action, language=language)
    actions = _space(pending)
    modes = {a.key: n.mode for a, n in zip(actions, pending, strict=True) if n.mode}
    planned = {a.key for a in actions}
    return FollowupPlan(tuple(actions), tuple(decisions), frozenset(obsolete - planned), modes)


# -- follow-ups -------------------------------------------------------------------------------


def _follow_keys(thread: Thread, anchor: Classified) -> set[str]:
    base = f"follow_up/{thread.mailbox}/{thread.thread_id}/{anchor.message.message_id}"
    return {f"{base}/{step}" for step in range(1, MAX_STEPS + 1)}


def _decide(thread: Thread, c: Classified, decision: str, reason: str) -> Decision:
    return Decision(thread.mailbox, thread.thread_id, c.message.message_id, decision, reason)


def _follow_thread(
    thread: Thread,
    client: Client,
    rep: Rep,
    cadences: Cadences,
    client_calendar: ClientCalendar,
    world: _World,
) -> tuple[list[_Note], list[Decision], set[str]]:
    decisions: list[Decision] = []
    obsolete: set[str] = set()
    mine = [
        c
        for c in thread.messages
        if c.message.date <= world.now
        and c.direction is Direction.OUTBOUND
        and c.is_human
        and c.message.sender.email in rep.addresses
        and not world.is_note(c)
    ]
    if not mine:
        return [], decisions, obsolete
    replies = world.replies[(thread.mailbox, client.key)]
    for old, new in itertools.pairwise(mine):
        obsolete |= _follow_keys(thread, old)
        first = replies.first_after(old.message.date)
        replied = first is not None and first[0].message.date <= new.message.date
        if not replied:
            decisions.append(
                _decide(
                    thread,
                    old,
                    "follow-ups restarted: the rep wrote again",
                    f"{rep.name} wrote again on {new.message.date:%Y-%m-%d %H:%M} UTC with no "
                    "answer in between; the follow-ups count from that message now",
                )
            )
    anchor = mine[-1]
    stop = _stopped(thread, client, anchor, world)
    if stop is None and anchor.message.body:
        no_answer, why = phrases.needs_no_answer(anchor.message.body, client.language)
        if no_answer:
            stop = ("no follow-up: the rep's message needs no answer", why)
    if stop is None and _recipient(anchor.message.recipients, client) is None:
        stop = (
            "no follow-up: the rep wrote to nobody of the client's",
            f"{rep.name}'s message went to "
            f"{', '.join(a.email for a in anchor.message.recipients) or 'nobody'}, none of "
            f"them {client.name}'s address or at its domains",
        )
    rule = cadences.follow_up_for(client, thread.mailbox, rep.team)
    if stop is None and rule is None:
        stop = ("no follow-up: no rule matches", f"no [[follow_up]] rule accepts {client.key}")
    if stop is not None:
        decisions.append(_decide(thread, anchor, *stop))
        obsolete |= _follow_keys(thread, anchor)
        return [], decisions, obsolete
    assert rule is not None
    notes, late = _steps(thread, client, rep, anchor, rule, client_calendar(client), world)
    if late is not None:
        decisions.append(_decide(thread, anchor, "follow-ups ended: too late", late))
    return notes, decisions, obsolete


def _stopped(
    thread: Thread, client: Client, anchor: Classified, world: _World
) -> tuple[str, str] | None:
    """Why the cadence after ``anchor`` must not run, as (decision, reason), or None."""
    since = anchor.message.date
    why = world.opt_out(client)
    if why:
        return "follow-ups stopped: opted out", why
    if client.key in world.stop_asked:
        c, phrase = world.stop_asked[client.key]
        return (
            "follow-ups stopped: asked to stop",
            f"{c.message.sender} asked not to be contacted on "
            f"{c.message.date:%Y-%m-%d %H:%M} UTC ({phrase})",
        )
    for c, where, report in world.bounces.get(thread.mailbox, ()):
        if not since < c.message.date <= world.now:
            continue
        linked = _bounced(anchor, client, report, where.thread_id == thread.thread_id)
        if linked:
            other = "" if where.thread_id == thread.thread_id else f" in {where.subject!r}"
            return (
                "follow-ups stopped: bounce",
                f"{c.message.sender.email} reported on {c.message.date:%Y-%m-%d %H:%M} UTC"
                f"{other} that {linked} ({report.reason})",
            )
    reply = world.replies[(thread.mailbox, client.key)].first_after(since)
    if reply is not None:
        c, where = reply
        other = "" if where.thread_id == thread.thread_id else f" in {where.subject!r}"
        return (
            "follow-ups stopped: client replied",
            f"{c.message.sender} wrote on {c.message.date:%Y-%m-%d %H:%M} UTC{other}",
        )
    for event in world.meetings.get(client.key, []):
        if event.start > since:
            return (
                "follow-ups stopped: meeting booked",
                f"{event.summary!r} with {client.name} on {event.start:%Y-%m-%d %H:%M} UTC",
            )
    return None


def _bounced(anchor: Classified, client: Client, report: bounces.Report, same: bool) -> str:
    """How a delivery failure ``report`` reaches the cadence after ``anchor`` (the rep's
    message), said for a person, or "" when it does not: it names the address the follow-ups
    would go to, or it names ``anchor`` itself and no other address, or it sits in the
    anchor's thread and names neither."""
    target = _recipient(anchor.message.recipients, client)
    to = target.email if target is not None else ""
    if to and to in report.recipients:
        return f"mail to {to} failed"
    if report.original_id and report.original_id == anchor.message.message_id:
        if not report.recipients:
            return f"{anchor.message.message_id} could not be delivered"
        return ""  # it failed for another recipient (a cc): the client's address works
    if same and not report.recipients and not report.original_id:
        return "a message in this conversation could not be delivered"
    return ""


def _steps(
    thread: Thread,
    client: Client,
    rep: Rep,
    anchor: Classified,
    rule: FollowUpRule,
    cal: BusinessCalendar,
    world: _World,
) -> tuple[list[_Note], str | None]:
    """The cadence's notes, and a reason if it ended because a step was found too late."""
    m = anchor.message
    base_key = f"follow_up/{thread.mailbox}/{thread.thread_id}/{m.message_id}"
    sent: dict[int, datetime] = {}
    steps = {f"{base_key}/{step}": step for step in range(1, MAX_STEPS + 1)}
    known = {form: key for key in steps for form in (key, key_tag(key))}
    for c in thread.messages:
        key = world.note_key(c, known)
        if key and c.message.date <= world.now:
            sent.setdefault(steps[key], c.message.date)
    holds = _absences(client, m.date, rule, cal, world, thread.mailbox)
    to = _recipient(m.recipients, client)
    assert to is not None  # _follow_thread stops a cadence with no client recipient
    name = _name_of(to, client)
    local = m.date.astimezone(cal.tz)
    notes: list[_Note] = []
    base = m.date
    for step in range(1, rule.steps + 1):
        due = rule.after.after(cal, base)
        reason = [
            f"no reply from {client.name} for {rule.after} in {cal.zone} since {local:%a %d %b %Y}"
            if step == 1
            else f"no reply from {client.name} since {local:%a %d %b %Y}; {rule.after} after "
            f"follow-up {step - 1} in {cal.zone}",
            f"follow-up {step} of {rule.steps}",
        ]
        for held_from, until, why in holds:
            if held_from <= due < until:
                due = until
                reason.append(f"held to {_local(cal, until)} by {why}")
        windowed = into_window(cal, rule.send_window, due)
        if windowed != due:
            reason.append(_moved(cal, due, windowed))
        due = windowed
        key = f"{base_key}/{step}"
        late_after = due + TOO_LATE
        if step in sent:
            base = sent[step]
        elif due <= world.now:
            if world.now > late_after:
                return notes, (
                    f"follow-up {step} was due {due:%Y-%m-%d %H:%M} UTC, over "
                    f"{TOO_LATE.days} days ago; a chase that late is not sent"
                )
            # Sent late, a note still goes out inside the client's window, never at night;
            # only one overdue step at a time: the ones after it count from when it goes.
            late = into_window(cal, rule.send_window, world.now)
            reason.append(f"overdue: goes out {_local(cal, late)} in the client's hours")
            due = base = late
        else:
            base = due
        action = Action(
            key=key,
            kind=ActionKind.FOLLOW_UP,
            mailbox=thread.mailbox,
            due=due,
            to=(to,),
            language="",
            template=rule.template,
            reason="",
            client=client.key,
            thread_id=thread.thread_id,
            rule=rule.name,
            reply_to_message_id=m.message_id,
            references=tuple(dict.fromkeys((*m.references, m.message_id))),
            subject=thread.subject,
            context={
                "client": _person(client, name, to),
                "rep": world.rep(rep),
                "thread": {"subject": thread.subject},
                "step": step,
                "steps": rule.steps,
                "last_sent": m.date,
                "zone": cal.zone,
                LATE_AFTER: late_after,
            },
        )
        notes.append(_Note(action, cal, rule.send_window, rule.min_gap, rule.mode, reason))
    return notes, None


def _absences(
    client: Client,
    since: datetime,
    rule: FollowUpRule,
    cal: BusinessCalendar,
    world: _World,
    mailbox: str,
) -> list[tuple[datetime, datetime, str]]:
    """Out-of-office replies after ``since``: (from, held until, why) for each."""
    holds = []
    for c, _ in world.autos[(mailbox, client.key)].after(since):
        m = c.message
        text = f"{m.subject}\n{m.body or ''}"
        found = _return(text, m.date, cal.zone, client.language, client.country)
        if found is not None:
            back, read = found
            until = cal.next_open(back)
            why = f"an out-of-office until {back.astimezone(cal.tz):%d %b}"
            if read.kind != "return":
                why += f" ({read.kind}: {read.phrase!r})"
        else:
            until = rule.out_of_office_hold.after(cal, m.date)
            why = f"an out-of-office with no return date (held {rule.out_of_office_hold})"
        holds.append((m.date, until, why))
    return holds


def return_date(
    text: str, sent: datetime, zone: str, language: str = "", country: str = ""
) -> datetime | None:
    """The first day an out-of-office reply says its writer is back, as the UTC start of that
    local day, or ``None``; read by :func:`agent.returndates.read_return` in the client's
    locale (``language``, ``country``)."""
    back = _return(text, sent, zone, language, country)
    return None if back is None else back[0]


def _return(
    text: str, sent: datetime, zone: str, language: str, country: str
) -> tuple[datetime, returndates.ReturnDate] | None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    found = returndates.read_return(text, sent.astimezone(tz).date(), language, country)
    if found is None:
        return None
    return utc(datetime.combine(found.day, time(0), tzinfo=tz)), found


# -- thank-yous -------------------------------------------------------------------------------


def _thank_yous(
    world: _World,
    cadences: Cadences,
    reps: Mapping[str, Rep],
    client_calendar: ClientCalendar,
) -> tuple[list[_Note], list[Decision], set[str]]:
    notes: list[_Note] = []
    decisions: list[Decision] = []
    obsolete: set[str] = set()
    starts: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    sharing: dict[tuple[str, datetime], list[str]] = defaultdict(list)
    for e in world.events:
        if e.uid:
            starts[(e.mailbox, e.uid)].add(e.start)
            if e.mailbox in reps:
                sharing[(e.uid, e.start)].append(e.mailbox)
    for event in world.events:
        rep = reps.get(event.mailbox)
        # Only a meeting that has ended is thanked for: a future one may yet be moved or
        # deleted, and a deleted event leaves no trace to cancel its note by.
        if rep is None or event.all_day or event.end > world.now:
            continue
        by_client: dict[str, list[Any]] = {}
        lists: dict[str, list[str]] = {}
        for a in event.attendees:
            client = world.client_of(a.email)
            if client is None or a.email.lower() in rep.addresses:
                continue
            if matching.trusted_recipient(a.email, client):
                by_client.setdefault(client.key, []).append(a)
            else:  # all-staff@, board@: a list reaches people who were never in the meeting
                lists.setdefault(client.key, []).append(a.email)
        for key, addresses in lists.items():
            if key not in by_client:
                decisions.append(
                    Decision(
                        event.mailbox,
                        "",
                        f"thank_you/{event.mailbox}/{event.provider_id}/{key}",
                        "no thank-you: only list addresses",
                        f"{', '.join(addresses)} in {event.summary!r} look like distribution "
                        "lists, not people, and the client record does not name them",
                    )
                )
        for key, attendees in by_client.items():
            client = world.client(key)
            assert client is not None  # found by client_of above
            ident = f"{event.mailbox}/{event.provider_id}/{client.key}"
            keys = {f"thank_you/{ident}", f"feedback/{ident}"}
            owner = _owner(event, sharing, reps)
            stop = _no_thanks(event, client, attendees, rep, world, starts, owner)
            rule = cadences.thank_you_for(client, event.mailbox, rep.team)
            if stop is None and rule is None:
                stop = ("no thank-you: no rule matches", f"no [[thank_you]] rule accepts {key}")
            if (
                stop is None
                and rule is not None
                and event.end + rule.delay < world.now - LATE_THANKS
            ):
                stop = (
                    "no thank-you: too late",
                    f"{event.summary!r} ended {event.end:%Y-%m-%d %H:%M} UTC; a thank-you more "
                    f"than {LATE_THANKS.days} days late reads oddly",
                )
            if stop is not None:
                decisions.append(
                    Decision(event.mailbox, "", f"thank_you/{ident}", stop[0], stop[1])
                )
                obsolete |= keys
                continue
            assert rule is not None
            cal = client_calendar(client)
            notes += _thank(event, client, attendees, world.rep(rep), rule, cal, ident, world.now)
    return notes, decisions, obsolete


def rep_had(event: Event, rep: Rep) -> bool:
    """Whether ``event`` is a meeting the rep had: one the rep organised (or an event of the
    rep's own with no organizer) or accepted. Anyone can put an invitation on a calendar."""
    organizer = event.organizer.strip().lower()
    if not organizer or organizer in rep.addresses:
        return True
    return any(
        a.email.strip().lower() in rep.addresses and a.partstat.upper() == "ACCEPTED"
        for a in event.attendees
    )


def _owner(
    event: Event, sharing: Mapping[tuple[str, datetime], list[str]], reps: Mapping[str, Rep]
) -> str:
    """Which mailbox thanks for a meeting several reps attend: the organizer's, else the first."""
    mailboxes = sorted(sharing.get((event.uid, event.start), [])) or [event.mailbox]
    organizer = event.organizer.lower()
    return next((m for m in mailboxes if organizer in reps[m].addresses), mailboxes[0])


def _no_thanks(
    event: Event,
    client: Client,
    attendees: list[Any],
    rep: Rep,
    world: _World,
    starts: Mapping[tuple[str, str], set[datetime]],
    owner: str,
) -> tuple[str, str] | None:
    if event.status == "cancelled":
        return "no thank-you: meeting cancelled", f"{event.summary!r} was cancelled"
    if not rep_had(event, rep):
        return (
            "no thank-you: not the rep's meeting",
            f"{event.summary!r} came from {event.organizer} and {rep.name} never accepted it; "
            "an invitation is not a meeting the rep had",
        )
    if all(a.partstat.upper() == "DECLINED" for a in attendees):
        names = ", ".join(a.name or a.email for a in attendees)
        return "no thank-you: client declined", f"{names} declined {event.summary!r}"
    if any(
        a.email.lower() in rep.addresses and a.partstat.upper() == "DECLINED"
        for a in event.attendees
    ):
        return "no thank-you: rep declined", f"{rep.name} declined {event.summary!r}"
    if event.uid and len(starts.get((event.mailbox, event.uid), ())) > 1:
        return (
            "no thank-you: recurring meeting",
            f"{event.summary!r} repeats; a thank-you after every occurrence would be noise",
        )
    if owner != event.mailbox:
        return (
            "no thank-you: a colleague sends it",
            f"{owner} has {event.summary!r} too and thanks {client.name} for both",
        )
    why = world.opt_out(client)
    if why:
        return "no thank-you: opted out", why
    if client.key in world.stop_asked:
        c, phrase = world.stop_asked[client.key]
        return "no thank-you: asked to stop", f"{c.message.sender} asked to stop ({phrase})"
    for c, _ in world.sent[(event.mailbox, client.key)].after(event.end, inclusive=True):
        m = c.message
        if m.sender.email in rep.addresses:
            return (
                "no thank-you: the rep already wrote",
                f"{rep.name} wrote to {client.name} on {m.date:%Y-%m-%d %H:%M} UTC, after "
                f"{event.summary!r} ended ({m.subject!r})",
            )
    return None


def _thank(
    event: Event,
    client: Client,
    attendees: list[Any],
    rep: dict[str, str],
    rule: ThankYouRule,
    cal: BusinessCalendar,
    ident: str,
    now: datetime,
) -> list[_Note]:
    present = [a for a in attendees if a.partstat.upper() != "DECLINED"]
    to = tuple(Address(a.email, a.name) for a in present)
    name = _name_of(to[0], client)
    ended = _local(cal, event.end)
    context = {
        "client": _person(client, name, to[0]),
        "rep": rep,
        "meeting": {
            # Whoever sent the invitation wrote its title: quoted to the client, it must not
            # become a link the rep seems to vouch for.
            "summary": no_links(event.summary, client.company or client.name),
            "start": event.start,
            "end": event.end,
            "zone": cal.zone,
        },
    }
    common: dict[str, Any] = dict(
        mailbox=event.mailbox, to=to, language="", client=client.key, rule=rule.name
    )
    notes = []
    # A note found due in the past goes out in the client's window from now, never at night.
    due = into_window(cal, rule.send_window, max(event.end + rule.delay, now))
    notes.append(
        _Note(
            Action(
                key=f"thank_you/{ident}",
                kind=ActionKind.THANK_YOU,
                due=due,
                template=rule.template,
                reason="",
                context=context,
                **common,
            ),
            cal,
            rule.send_window,
            timedelta(0),
            rule.mode,
            [
                f"meeting {event.summary!r} with {client.name} ended {ended}; thank-you "
                f"{_span(rule.delay)} later, in {client.name}'s business hours"
            ],
        )
    )
    if rule.feedback:
        due = into_window(cal, rule.send_window, max(event.end + rule.delay_feedback, now))
        notes.append(
            _Note(
                Action(
                    key=f"feedback/{ident}",
                    kind=ActionKind.FEEDBACK,
                    due=due,
                    template="feedback",
                    reason="",
                    context=context,
                    **common,
                ),
                cal,
                rule.send_window,
                timedelta(0),
                rule.mode,
                [
                    f"meeting {event.summary!r} with {client.name} ended {ended}; feedback survey "
                    f"{_span(rule.delay_feedback)} later"
                ],
            )
        )
    return notes


# -- shared -----------------------------------------------------------------------------------


def _recipient(recipients: tuple[Address, ...], client: Client) -> Address | None:
    """The client address the rep last wrote to (a person's before a list's), or ``None`` when
    the rep wrote to nobody the client record names: a thread is tied to a client by anyone
    who writes into it, so its other addresses are nobody the agent may chase."""
    matched = [a for a in recipients if matching.matches_client(a.email, client)]
    people = [a for a in matched if matching.trusted_recipient(a.email, client)]
    chosen = people or matched
    return chosen[0] if chosen else None


def _name_of(to: Address, client: Client) -> str:
    """Whom the note greets: never the record's contact when writing to a colleague of theirs."""
    name = no_links(to.name)  # a display name is whatever the sender typed
    if name:
        return name
    if to.email in client.emails or not client.emails:
        return client.name
    local = to.email.partition("@")[0]
    return local.capitalize() if local.isalpha() else client.company or client.name


def _person(client: Client, name: str, to: Address) -> dict[str, str]:
    """What a template greets the recipient with: the name in parts (agent/names.py), the
    clients file's parts when the note goes to the contact that row describes."""
    parts = (
        dict(
            first=client.first_name,
            last=client.last_name,
            honorific=client.honorific,
            gender=client.gender,
        )
        if _is_contact(client, name)
        else {}
    )
    return {
        **greeting_fields(name, client.language, default=client.name, **parts),
        "company": client.company or client.name,
        "email": to.email,
        "zone": client.zone or "UTC",
    }


def _is_contact(client: Client, name: str) -> bool:
    """Whether ``name`` (whom a note greets) is the person the clients file's row names: the
    row's name, or a name holding the row's first and last name. A colleague at the same
    address or domain keeps the parts read from their own name."""
    if name == client.name:
        return True
    said = name.casefold()
    parts = [p.casefold() for p in (client.first_name, client.last_name) if p]
    return bool(parts) and all(p in said for p in parts)


def client_context(client: Client, to: Address) -> dict[str, str]:
    """The ``client`` of a note to ``to`` (templates/README.md)."""
    return _person(client, _name_of(to, client), to)


def _language(action: Action, world: _World, languages: Languages | None) -> str:
    client_key = action.client
    if languages is not None:
        # A thank-you has no thread: the newest thread with that client speaks for it.
        thread = world.threads.get((action.mailbox, action.thread_id)) or world.newest.get(
            (action.mailbox, client_key)
        )
        if thread is not None:
            chosen = languages(thread)
            if chosen:
                return chosen
    client = world.client(client_key)
    return (client.language if client else "") or "en"


def _newest(thread: Thread) -> datetime:
    return thread.messages[-1].message.date if thread.messages else _EPOCH


def into_window(cal: BusinessCalendar, window: tuple[Shift, ...], at: datetime) -> datetime:
    """The first instant at or after ``at`` open in ``cal`` and inside ``window`` (local hours).

    With no window, the calendar's next opening. Raises ``ValueError`` if none within a year.
    """
    at = cal.next_open(at)
    if not window:
        return at
    for _ in range(400):
        day = at.astimezone(cal.tz).date()
        for shift in window:
            start = utc(datetime.combine(day, shift.start, tzinfo=cal.tz))
            end_day = day + timedelta(days=1) if shift.end == time(0) else day
            end = utc(datetime.combine(end_day, shift.end, tzinfo=cal.tz))
            spans = cal.open_intervals(max(start, at), end)
            if spans:
                return spans[0].start
        at = cal.next_open(utc(datetime.combine(day + timedelta(days=1), time(0), tzinfo=cal.tz)))
    raise ValueError(f"{cal!r} is never open inside {', '.join(map(str, window))}")


def _space(pending: list[_Note]) -> list[Action]:
    """Keep notes to one client ``min_gap`` apart; return the actions in ``pending``'s order."""
    by_client: dict[str, list[_Note]] = defaultdict(list)
    for note in pending:
        by_client[note.action.client].append(note)
    for notes in by_client.values():
        gap = max((n.gap for n in notes), default=timedelta(0))
        previous: _Note | None = None
        for note in sorted(notes, key=lambda n: (n.action.due, n.action.key)):
            if previous is not None and gap and note.action.due < previous.action.due + gap:
                due = into_window(note.calendar, note.window, previous.action.due + gap)
                note.action = dataclasses.replace(note.action, due=due)
                note.reason.append(
                    f"moved to {_local(note.calendar, due)} to stay {_span(gap)} after the "
                    f"previous note to {note.action.client}"
                )
            previous = note
    return [
        dataclasses.replace(
            n.action,
            reason="; ".join(n.reason),
            context={
                **n.action.context,
                SEND_SPANS: send_spans(n.calendar, n.window, n.action.due),
            },
        )
        for n in pending
    ]


def send_spans(
    cal: BusinessCalendar, window: tuple[Shift, ...], due: datetime, days: int = SPAN_DAYS
) -> list[dict[str, datetime]]:
    """The stretches (UTC ``start``/``end``) from ``due`` on, for ``days`` days, when a note may
    go out: open in ``cal`` and inside ``window`` (all open time without one). The outbox holds a
    note found due outside them (the worker was down) until the next one starts."""
    until = due + timedelta(days=days)
    spans = []
    for span in cal.open_intervals(due, until):
        if not window:
            spans.append(span)
            continue
        day = span.start.astimezone(cal.tz).date() - timedelta(days=1)
        while True:
            for shift in window:
                start = utc(datetime.combine(day, shift.start, tzinfo=cal.tz))
                end_day = day + timedelta(days=1) if shift.end == time(0) else day
                end = utc(datetime.combine(end_day, shift.end, tzinfo=cal.tz))
                a, b = max(start, span.start), min(end, span.end)
                if a < b:
                    spans.append(Interval(a, b))
            if utc(datetime.combine(day, time(0), tzinfo=cal.tz)) >= span.end:
                break
            day += timedelta(days=1)
    return [{"start": s.start, "end": s.end} for s in sorted(set(spans))]


def _moved(cal: BusinessCalendar, raw: datetime, due: datetime) -> str:
    """Why a note moved from ``raw`` to ``due``: the client's closed days in between, named."""
    first, last = raw.astimezone(cal.tz).date(), due.astimezone(cal.tz).date()
    closed = []
    day = first
    while day < last:
        holiday = cal.holiday_name(day)
        if holiday:
            closed.append(holiday)
        elif not cal.is_business_day(day) and (not closed or closed[-1] != "the weekend"):
            closed.append("the weekend" if cal.is_weekend(day) else "a closed day")
        day += timedelta(days=1)
    after = f", after {' and '.join(closed)}" if closed else ""
    return f"moved to {_local(cal, due)} in the client's business hours{after}"


def _local(cal: BusinessCalendar, at: datetime) -> str:
    return f"{at.astimezone(cal.tz):%a %d %b %H:%M} {cal.zone}"


def _span(td: timedelta) -> str:
    minutes = round(td.total_seconds() / 60)
    if minutes >= 48 * 60 and minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if m else f"{h}h"
