"""What every mail and calendar provider offers. Providers hide every vendor difference here.

Each method raises only the classes of :mod:`agent.errors` under ``ProviderError``:
``Transient`` (retry with backoff, honour ``retry_after``), ``CursorExpired`` (resync fully),
``AuthRevoked`` (park the mailbox) and ``Permanent`` (record, do not retry). Vendor exceptions
are translated with ``raise ... from exc``.

Sending is split in two so that the outbox can make it exactly-once: ``draft`` creates a draft
carrying the outbox key (an ``X-Followup-Key`` header holding :func:`key_tag` of it, or the
vendor's equivalent), ``send_draft``
sends that draft once and is never retried by any layer. After a crash ``find_sent`` and
``find_draft`` tell the outbox what happened.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol, runtime_checkable

from agent.model import Bodies, EventSyncResult, FirstSync, Interval, Invite, SentRef, SyncResult

KEY_HEADER = "X-Followup-Key"


def key_tag(key: str) -> str:
    """What mail carries in ``KEY_HEADER`` for outbox ``key``: an opaque digest of it.

    The key names mailboxes, threads and the kind of note; a client reading the headers learns
    none of that. Deterministic, so a crash is reconciled by computing the tag again; the same
    digest as the note's Message-ID (:func:`agent.compose.message_id_for`).
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def carries_key(value: str | None, key: str) -> bool:
    """Whether a ``KEY_HEADER`` value belongs to outbox ``key``: its tag, or the key itself as
    notes made before tags carried it."""
    if not value:
        return False
    value = value.strip()
    return value == key_tag(key) or value == key


def first_sync_of(cursor: str | None) -> FirstSync | None:
    """The progress of a windowed first sync still under way, read from a mail cursor.

    A provider whose first sync takes several passes keeps its cursor as a JSON object with a
    ``first_sync`` member ``{"started", "floor", "reached"}`` (ISO 8601 instants) until the
    window is read; every other cursor (a Gmail history id, Graph's delta links) gives ``None``.
    """
    if not cursor or not cursor.startswith("{"):
        return None
    try:
        part = json.loads(cursor)["first_sync"]
        return FirstSync(
            started=datetime.fromisoformat(part["started"]),
            floor=datetime.fromisoformat(part["floor"]),
            reached=datetime.fromisoformat(part["reached"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


@runtime_checkable
class MailProvider(Protocol):
    name: str
    # How long after an accepted send the message may still read as a draft, not yet in the
    # sent folder: zero where sending is synchronous and consumes the draft (Gmail), an hour
    # for Exchange. Within it a found draft proves nothing; after it, a draft still there
    # proves the send was never made only where it is zero.
    sent_copy_lag: timedelta

    def sync(self, cursor: str | None) -> SyncResult:
        """Changes since ``cursor`` (``None``: everything). Raises ``CursorExpired`` when stale."""
        ...

    def fetch_body(self, provider_id: str) -> str:
        """The plain-text body of one message, fetched only when a planner needs it."""
        ...

    def fetch_bodies(self, provider_ids: Sequence[str]) -> Bodies:
        """The plain-text bodies of several messages, in as few requests as the vendor allows
        (Gmail: batches of 50 ``messages.get``; Graph: ``$batch`` of 20).

        A message gone or unreadable lands in ``Bodies.failed`` and never fails the others;
        ``Transient`` and ``AuthRevoked`` are raised for the call as a whole.
        """
        ...

    def draft(self, message: EmailMessage, *, key: str, thread_id: str = "") -> str:
        """Create a draft that carries ``key``; return its draft id."""
        ...

    def send_draft(
        self, draft_id: str, *, before_post: Callable[[], None] | None = None
    ) -> SentRef:
        """Send the draft once. Never retried: an unknown outcome is reconciled, not repeated.

        ``before_post`` is called right before the one request that sends (after any reads);
        if it raises, nothing is sent and its exception propagates."""
        ...

    def find_sent(self, key: str) -> SentRef | None:
        """The sent message carrying ``key``, if the provider holds one."""
        ...

    def find_draft(self, key: str) -> str | None:
        """The id of the unsent draft carrying ``key``, if one exists."""
        ...

    def discard_draft(self, draft_id: str) -> None:
        """Delete an unsent draft. One already gone (sent by the rep, deleted) counts as done,
        and a message that is no longer a draft is never touched."""
        ...


@runtime_checkable
class CalendarProvider(Protocol):
    name: str

    def events(self, cursor: str | None) -> EventSyncResult:
        """Events changed since ``cursor``. Raises ``CursorExpired`` when stale."""
        ...

    def busy(self, window: Interval) -> list[Interval]:
        """Busy intervals of the mailbox's own calendar inside ``window``, merged and sorted."""
        ...

    def create_event(self, invite: Invite) -> str:
        """Create the event (idempotent on ``invite.key``) and return its provider id."""
        ...

    def delete_event(self, provider_id: str) -> None:
        """Delete (cancel) an event this agent created; an event already gone is not an error."""
        ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
