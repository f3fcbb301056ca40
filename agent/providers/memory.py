"""An in-memory mailbox and calendar with failure injection, for worker and outbox tests.

It keeps the same contract as the real providers (tests/provider_contract.py runs against it)
and lets a test make any call fail, or make a send be accepted and then look as if it failed,
which is what a crash or a lost response looks like from the outbox.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from agent import mime
from agent.errors import CursorExpired, Permanent, ProviderError, Transient
from agent.model import (
    Bodies,
    Event,
    EventSyncResult,
    Interval,
    Invite,
    Message,
    SentRef,
    SyncResult,
)
from agent.providers.protocol import KEY_HEADER, carries_key, key_tag


@dataclass
class _Stored:
    raw: bytes
    labels: frozenset[str]
    thread_id: str


@dataclass
class MemoryMailbox:
    """Mail and calendar for one mailbox, held in dicts.

    ``fail(method, error, times)`` makes the next ``times`` calls of ``method`` raise ``error``.
    ``lose_response("send_draft")`` makes the next send take effect and then raise Transient,
    the "unknown outcome" the outbox must reconcile.
    """

    sent_copy_lag = timedelta(0)

    mailbox: str
    address: str
    name: str = "memory"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    messages: dict[str, _Stored] = field(default_factory=dict)
    drafts: dict[str, tuple[EmailMessage, str]] = field(default_factory=dict)
    event_store: dict[str, Event] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    oldest_cursor: int = 0
    _log: list[tuple[int, str, str]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _failures: dict[str, deque[ProviderError]] = field(default_factory=dict)
    _lost: set[str] = field(default_factory=set)
    _last_seq: int = 0

    # -- test controls ------------------------------------------------------------------
    def fail(self, method: str, error: ProviderError, times: int = 1) -> None:
        self._failures.setdefault(method, deque()).extend([error] * times)

    def lose_response(self, method: str) -> None:
        self._lost.add(method)

    def deliver(self, raw: bytes, labels: frozenset[str] = frozenset({"INBOX"})) -> str:
        seq = self._bump()
        provider_id = f"m{seq}"
        parsed = mime.parse(raw)
        refs = str(parsed.get("references", "")).split()
        thread_id = refs[0] if refs else str(parsed.get("in-reply-to", "") or "").strip()
        self.messages[provider_id] = _Stored(raw, labels, thread_id or f"<{provider_id}@thread>")
        self._log.append((seq, "added", provider_id))
        return provider_id

    def delete(self, provider_id: str) -> None:
        self.messages.pop(provider_id)
        self._log.append((self._bump(), "deleted", provider_id))

    def expire_history(self) -> None:
        """Forget the change log, as Gmail does after a week: old cursors become stale."""
        self.oldest_cursor = self._last_seq

    def add_event(self, event: Event) -> None:
        self.event_store[event.provider_id] = event

    # -- protocol -----------------------------------------------------------------------
    def _bump(self) -> int:
        self._last_seq = next(self._seq)
        return self._last_seq

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        queue = self._failures.get(method)
        if queue:
            raise queue.popleft()

    def _message(self, provider_id: str) -> Message | None:
        stored = self.messages[provider_id]
        try:
            return mime.to_message(
                stored.raw,
                mailbox=self.mailbox,
                provider_id=provider_id,
                labels=stored.labels,
                thread_id=stored.thread_id,
            )
        except mime.MalformedMessage:
            return None

    def sync(self, cursor: str | None) -> SyncResult:
        self._enter("sync")
        since = int(cursor) if cursor else None
        if since is not None and since < self.oldest_cursor:
            raise CursorExpired(f"cursor {since} is older than {self.oldest_cursor}")
        if since is None:
            ids = list(self.messages)
            deleted: list[str] = []
        else:
            changes = [(kind, pid) for seq, kind, pid in self._log if seq > since]
            gone = {pid for kind, pid in changes if kind == "deleted"}
            ids = [pid for kind, pid in changes if kind == "added" and pid not in gone]
            deleted = sorted(gone)
        messages, skipped = [], []
        for pid in ids:
            try:
                msg = mime.to_message(
                    self.messages[pid].raw,
                    mailbox=self.mailbox,
                    provider_id=pid,
                    labels=self.messages[pid].labels,
                    thread_id=self.messages[pid].thread_id,
                )
            except mime.MalformedMessage as exc:
                skipped.append((pid, str(exc)))
                continue
            messages.append(msg)
        return SyncResult(
            messages=tuple(messages),
            cursor=str(self._last_seq),
            deleted=tuple(deleted),
            full=since is None,
            skipped=tuple(skipped),
        )

    def fetch_body(self, provider_id: str) -> str:
        self._enter("fetch_body")
        return mime.body_text(self.messages[provider_id].raw)

    def fetch_bodies(self, provider_ids: Sequence[str]) -> Bodies:
        self._enter("fetch_bodies")
        found = {
            p: mime.body_text(self.messages[p].raw) for p in provider_ids if p in self.messages
        }
        return Bodies(found, {p: "no such message" for p in provider_ids if p not in found})

    def draft(self, message: EmailMessage, *, key: str, thread_id: str = "") -> str:
        self._enter("draft")
        del message[KEY_HEADER]
        message[KEY_HEADER] = key_tag(key)
        if message["Date"] is None:
            message["Date"] = format_datetime(self.clock())
        try:
            mime.outgoing_bytes(message)  # as a real mailbox would be handed it
        except mime.HeaderInjection as exc:
            raise Permanent(str(exc), mailbox=self.mailbox) from exc
        draft_id = f"d{self._bump()}"
        self.drafts[draft_id] = (message, thread_id)
        return draft_id

    def send_draft(
        self, draft_id: str, *, before_post: Callable[[], None] | None = None
    ) -> SentRef:
        self._enter("send_draft")  # an injected failure stands for a request never made
        if before_post is not None:
            before_post()
        if draft_id not in self.drafts:
            raise ProviderError(f"no draft {draft_id}")
        message, thread_id = self.drafts.pop(draft_id)
        refs = str(message.get("references", "")).split()
        provider_id = self.deliver(bytes(message), labels=frozenset({"SENT"}))
        if thread_id or refs:
            self.messages[provider_id].thread_id = thread_id or refs[0]
        ref = SentRef(provider_id, str(message["Message-ID"]), self.messages[provider_id].thread_id)
        if "send_draft" in self._lost:
            self._lost.discard("send_draft")
            raise Transient("connection reset after the send was accepted")
        return ref

    def find_sent(self, key: str) -> SentRef | None:
        self._enter("find_sent")
        for pid, stored in self.messages.items():
            if "SENT" in stored.labels:
                parsed = mime.parse(stored.raw)
                if carries_key(parsed.get(KEY_HEADER), key):
                    return SentRef(pid, str(parsed["Message-ID"]), stored.thread_id)
        return None

    def find_draft(self, key: str) -> str | None:
        self._enter("find_draft")
        for draft_id, (message, _) in self.drafts.items():
            if carries_key(message.get(KEY_HEADER), key):
                return draft_id
        return None

    def discard_draft(self, draft_id: str) -> None:
        self._enter("discard_draft")
        self.drafts.pop(draft_id, None)

    def events(self, cursor: str | None) -> EventSyncResult:
        self._enter("events")
        return EventSyncResult(events=tuple(self.event_store.values()), cursor="all", full=True)

    def busy(self, window: Interval) -> list[Interval]:
        self._enter("busy")
        spans = sorted(
            Interval(max(e.start, window.start), min(e.end, window.end))
            for e in self.event_store.values()
            if not e.transparent
            and e.status != "cancelled"
            and e.start < window.end
            and window.start < e.end
        )
        return spans

    def create_event(self, invite: Invite) -> str:
        self._enter("create_event")
        provider_id = f"ev-{invite.key}"
        self.event_store.setdefault(
            provider_id,
            Event(
                mailbox=self.mailbox,
                provider_id=provider_id,
                summary=invite.summary,
                start=invite.start,
                end=invite.end,
                organizer=invite.organizer.email,
                uid=invite.key,
                status="tentative" if invite.tentative else "confirmed",
            ),
        )
        return provider_id

    def delete_event(self, provider_id: str) -> None:
        self._enter("delete_event")
        self.event_store.pop(provider_id, None)
