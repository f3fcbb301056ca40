"""The nouns of Followup as frozen dataclasses.

Every datetime here is timezone-aware and in UTC; zones are applied only in business-time math and
in rendering. Planners receive and return these values and nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any


def utc(dt: datetime) -> datetime:
    """Return ``dt`` in UTC; refuse naive datetimes, which have no place in Followup."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no zone")
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Address:
    email: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", self.email.strip().lower())

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class MessageKind(enum.StrEnum):
    """What a message is, beyond who sent it. Only HUMAN messages start or stop promises."""

    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    NOTICE = "notice"  # a delivery report that is no failure: delayed, or delivered
    LIST = "list"
    UNSUBSCRIBE = "unsubscribe"  # the mail a note's List-Unsubscribe link sends


@dataclass(frozen=True)
class Message:
    """One mail message as a provider reported it: headers only, the body is fetched on demand.

    ``provider_id`` is the provider's stable id (Gmail message id, Graph immutable id, Maildir
    key). ``thread_id`` is the provider's conversation id. ``headers`` holds the headers the
    planners look at (Auto-Submitted, X-Autoreply, Precedence, List-Id, Content-Type,
    X-Followup-Key ...), with lower-case names. ``labels`` carries folder facts such as
    ``INBOX`` and ``SENT`` (a message to oneself has both), and the names the rep filed the
    message under: Gmail user labels by name, Outlook categories, a Maildir's Keywords
    (``Followup/Stop``; see agent/steering.py).
    """

    mailbox: str
    provider_id: str
    thread_id: str
    message_id: str
    sender: Address
    to: tuple[Address, ...]
    date: datetime
    subject: str = ""
    cc: tuple[Address, ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()
    body: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "date", utc(self.date))
        lowered = {k.lower(): v for k, v in self.headers.items()}
        object.__setattr__(self, "headers", MappingProxyType(lowered))

    @property
    def recipients(self) -> tuple[Address, ...]:
        return self.to + self.cc


@dataclass(frozen=True)
class Client:
    """A client company contact as the CRM export describes it."""

    key: str
    name: str
    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    company: str = ""
    language: str = ""
    zone: str = ""
    country: str = ""
    subdivision: str = ""
    tier: str = ""
    owner: str = ""
    tags: frozenset[str] = frozenset()
    opted_out: bool = False
    # The contact's name in parts, when the clients file gives them (agent/names.py reads
    # them from the display name otherwise); gender is "female", "male" or "".
    first_name: str = ""
    last_name: str = ""
    honorific: str = ""
    gender: str = ""


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str = ""
    # RFC 5545 PARTSTAT: NEEDS-ACTION, ACCEPTED, DECLINED, TENTATIVE
    partstat: str = "NEEDS-ACTION"


@dataclass(frozen=True)
class Event:
    """A calendar event; ``start``/``end`` in UTC (all-day events span whole local days)."""

    mailbox: str
    provider_id: str
    summary: str
    start: datetime
    end: datetime
    status: str = "confirmed"  # confirmed | tentative | cancelled
    transparent: bool = False
    all_day: bool = False
    organizer: str = ""
    attendees: tuple[Attendee, ...] = ()
    uid: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open span of time ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end < self.start:
            raise ValueError(f"interval ends before it starts: {self.start} > {self.end}")

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


class ActionKind(enum.StrEnum):
    REMINDER = "reminder"
    ESCALATION = "escalation"
    FOLLOW_UP = "follow_up"
    THANK_YOU = "thank_you"
    FEEDBACK = "feedback"
    PROPOSAL = "proposal"
    INVITE = "invite"  # the client chose a proposed time: a note carrying a calendar request
    HOLD = "hold"  # a tentative hold on the rep's calendar, created or released; no mail
    WEBHOOK = "webhook"
    DIGEST = "digest"  # team mail past the team's daily cap, gathered into one message or post
    WEEKLY = "weekly"  # a lead's weekly digest of the team's figures, or a rep's own summary


@dataclass(frozen=True)
class Action:
    """Something a planner decided should happen at ``due``.

    ``key`` is deterministic (rule, thread, stage): the outbox stores it under a unique
    constraint, so planning the same thing twice never sends twice. ``template`` names the
    purpose under templates/, ``context`` is the plain data it renders with, ``reason`` is the
    human explanation shown by the demo, status and logs.
    """

    key: str
    kind: ActionKind
    mailbox: str
    due: datetime
    to: tuple[Address, ...]
    language: str
    template: str
    reason: str
    client: str = ""
    thread_id: str = ""
    rule: str = ""
    reply_to_message_id: str = ""
    references: tuple[str, ...] = ()
    subject: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    mode: str = ""  # "draft" | "send" when a rule decides; "" follows the config's outbox mode

    def __post_init__(self) -> None:
        object.__setattr__(self, "due", utc(self.due))


@dataclass(frozen=True)
class SyncResult:
    """What one ``sync`` call found: changed messages, deleted provider ids and the next cursor.

    ``full`` is true when the provider listed everything (first sync or after CursorExpired):
    the store then knows that messages it holds and the listing lacks were deleted.
    """

    messages: tuple[Message, ...]
    cursor: str
    deleted: tuple[str, ...] = ()
    full: bool = False
    skipped: tuple[tuple[str, str], ...] = ()  # (provider_id, reason) of malformed items


@dataclass(frozen=True)
class FirstSync:
    """How far a windowed first sync has come: it started at ``started`` and reads mail back
    to ``floor``, newest first; everything from ``reached`` to now is stored."""

    started: datetime
    floor: datetime
    reached: datetime

    @property
    def done(self) -> float:
        """The share of the window stored, 0.0 to 1.0."""
        span = (self.started - self.floor).total_seconds()
        covered = (self.started - self.reached).total_seconds()
        return 1.0 if span <= 0 else max(0.0, min(1.0, covered / span))


@dataclass(frozen=True)
class Bodies:
    """Plain-text bodies fetched together (``MailProvider.fetch_bodies``).

    ``found`` maps provider ids to their text; ``failed`` maps the ids the provider could not
    give (deleted since the sync, unreadable) to a one-line reason. An id is in exactly one.
    """

    found: Mapping[str, str]
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSyncResult:
    events: tuple[Event, ...]
    cursor: str
    deleted: tuple[str, ...] = ()
    full: bool = False
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SentRef:
    """A message the provider accepted: its provider id and its (possibly rewritten) Message-ID."""

    provider_id: str
    message_id: str
    thread_id: str = ""


@dataclass(frozen=True)
class Invite:
    """An event to create on the rep's calendar and send to its attendees.

    ``uid_key`` (default ``key``) is what the event's UID is derived from, so that a moved
    meeting is the same event with a higher ``sequence``; ``cancelled`` makes it a
    cancellation.

    ``tentative`` marks a hold: time kept free on the rep's own calendar for a proposed
    meeting. Providers create it as tentative (still busy for other bookings) and with no
    attendees besides the rep, so nobody is invited.
    """

    key: str
    summary: str
    start: datetime
    end: datetime
    zone: str
    organizer: Address
    attendees: tuple[Address, ...]
    description: str = ""
    location: str = ""
    send_updates: bool = True
    tentative: bool = False
    # An update of an invitation already sent keeps its UID (the key it was derived from) and
    # counts SEQUENCE up; a cancellation says METHOD:CANCEL under that UID.
    uid_key: str = ""
    sequence: int = 0
    cancelled: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))


@dataclass(frozen=True)
class Classified:
    """A message after matching: whose it is, which way it went, and what kind of mail it is.

    ``reason`` says how the client was found ("address", "domain", "thread") or why it was
    not, and why the kind was chosen, so a lead can audit every decision.
    """

    message: Message
    direction: Direction
    kind: MessageKind
    client: str = ""
    reason: str = ""
    by_thread: bool = False  # the client came from the thread, not from the message's addresses

    @property
    def is_human(self) -> bool:
        return self.kind is MessageKind.HUMAN


@dataclass(frozen=True)
class Thread:
    """One conversation in one mailbox, its messages oldest first, with its client if known."""

    mailbox: str
    thread_id: str
    messages: tuple[Classified, ...]
    client: Client | None = None

    @property
    def subject(self) -> str:
        return self.messages[0].message.subject if self.messages else ""

    @property
    def last(self) -> Classified | None:
        return self.messages[-1] if self.messages else None
