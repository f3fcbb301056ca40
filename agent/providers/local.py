"""A mailbox on disk: Maildir folders for incoming, sent and drafts, and a folder of .ics files.

Layout under the mailbox's folder::

    inbox/      Maildir of incoming mail
    sent/       Maildir of sent mail ("send" files the draft here)
    drafts/     Maildir of drafts the agent created
    calendar/   *.ics files, the rep's calendar

It serves the bundled demo and anyone who wants Followup on mail fetched by other tools
(fetchmail, mbsync, offlineimap all write Maildir). Every ``sync`` lists the folders in full
(``full=True``): Maildir has no change log, and the store's upsert makes a full listing cheap
and exact. Unreadable messages and .ics files are reported in ``skipped``.
"""

from __future__ import annotations

import dataclasses
import mailbox as mbox
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import icalendar

from agent import calendars, invites, mime
from agent.errors import Permanent
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

FOLDERS = {"inbox": "INBOX", "sent": "SENT"}
EVENT_HORIZON = timedelta(days=120)
OWN_PREFIX = "followup-"  # the events this mailbox wrote, the only ones it deletes


def _now() -> datetime:
    return datetime.now(UTC)


TAG_HEADERS = ("keywords", "x-keywords", "x-label")
MAX_TAGS = 50


def tags(message: Message) -> list[str]:
    """A Maildir message's tags, the Maildir counterpart of Gmail labels and Outlook
    categories: the comma-separated names in its ``Keywords`` header (RFC 5322 section 3.6.5),
    ``X-Keywords`` or ``X-Label`` (NeoMutt's ``edit-label``), such as ``Followup/Stop``."""
    found: list[str] = []
    for name in TAG_HEADERS:
        found += [t.strip() for t in message.headers.get(name, "").split(",") if t.strip()]
    return found[:MAX_TAGS]


class _PrivateMaildir(mbox.Maildir):
    """A Maildir whose new files are readable by their owner only (0600), whatever the umask:
    they are other people's mail. (The standard library creates them 0666 less the umask; its
    folders it already creates 0700.)"""

    def _create_tmp(self) -> Any:
        f = super()._create_tmp()  # type: ignore[misc]
        os.fchmod(f.fileno(), 0o600)
        return f


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)


class LocalMailbox:
    name = "local"
    sent_copy_lag = timedelta(0)

    def __init__(
        self, root: Path, *, mailbox: str, address: str, clock: Callable[[], datetime] = _now
    ) -> None:
        self.root = Path(root)
        self.mailbox = mailbox
        self.address = address
        self.clock = clock
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (*FOLDERS, "drafts"):
            _PrivateMaildir(self.root / folder, create=True)
        (self.root / "calendar").mkdir(mode=0o700, parents=True, exist_ok=True)

    def _box(self, folder: str) -> mbox.Maildir:
        return _PrivateMaildir(self.root / folder, factory=None, create=False)

    def _raw(self, provider_id: str) -> bytes:
        folder, _, key = provider_id.partition("/")
        try:
            return self._box(folder).get_bytes(key)
        except (KeyError, FileNotFoundError) as exc:
            raise Permanent(f"no message {provider_id}", mailbox=self.mailbox) from exc

    # -- mail ---------------------------------------------------------------------------
    def sync(self, cursor: str | None) -> SyncResult:
        messages, skipped = [], []
        for folder, label in FOLDERS.items():
            box = self._box(folder)
            for key in sorted(box.keys()):
                provider_id = f"{folder}/{key}"
                try:
                    raw = box.get_bytes(key)
                except (KeyError, FileNotFoundError):
                    continue  # deleted by another mail tool since the listing: gone, not bad
                try:
                    message = mime.to_message(
                        raw, mailbox=self.mailbox, provider_id=provider_id, labels=frozenset()
                    )
                    messages.append(
                        dataclasses.replace(message, labels=frozenset({label, *tags(message)}))
                    )
                except mime.MalformedMessage as exc:
                    skipped.append((provider_id, str(exc)))
        return SyncResult(
            messages=tuple(messages), cursor="full", full=True, skipped=tuple(skipped)
        )

    def fetch_body(self, provider_id: str) -> str:
        return mime.body_text(self._raw(provider_id))

    def fetch_bodies(self, provider_ids: Sequence[str]) -> Bodies:
        """Each file read in turn: a Maildir costs no requests."""
        found: dict[str, str] = {}
        failed: dict[str, str] = {}
        for pid in provider_ids:
            try:
                found[pid] = self.fetch_body(pid)
            except Permanent as exc:
                failed[pid] = str(exc)
        return Bodies(found, failed)

    def deliver(self, raw: bytes, folder: str = "inbox") -> str:
        return f"{folder}/{self._box(folder).add(raw)}"

    def draft(self, message: EmailMessage, *, key: str, thread_id: str = "") -> str:
        del message[KEY_HEADER]
        message[KEY_HEADER] = key_tag(key)
        if message["Date"] is None:
            message["Date"] = format_datetime(self.clock())
        try:
            raw = mime.outgoing_bytes(message)
        except mime.HeaderInjection as exc:
            raise Permanent(str(exc), mailbox=self.mailbox) from exc
        return self._box("drafts").add(raw)

    def send_draft(
        self, draft_id: str, *, before_post: Callable[[], None] | None = None
    ) -> SentRef:
        drafts = self._box("drafts")
        try:
            raw = drafts.get_bytes(draft_id)
        except (KeyError, FileNotFoundError) as exc:
            raise Permanent(f"no draft {draft_id}", mailbox=self.mailbox) from exc
        if before_post is not None:
            before_post()
        # Filed in sent before the draft goes: a crash between the two leaves a draft that
        # find_sent already accounts for, never a note that vanished.
        sent_key = self._box("sent").add(raw)
        drafts.discard(draft_id)
        parsed = mime.parse(raw)
        return SentRef(f"sent/{sent_key}", str(parsed.get("message-id", "")))

    def _find(self, folder: str, key: str) -> tuple[str, bytes] | None:
        box = self._box(folder)
        for item in box.iterkeys():
            raw = box.get_bytes(item)
            if carries_key(mime.parse(raw).get(KEY_HEADER), key):
                return item, raw
        return None

    def find_sent(self, key: str) -> SentRef | None:
        found = self._find("sent", key)
        if found is None:
            return None
        item, raw = found
        return SentRef(f"sent/{item}", str(mime.parse(raw).get("message-id", "")))

    def find_draft(self, key: str) -> str | None:
        found = self._find("drafts", key)
        if found is None:
            return None
        # A draft whose twin is already in sent was sent; it is stale, not pending.
        if self.find_sent(key) is not None:
            self._box("drafts").discard(found[0])
            return None
        return found[0]

    def discard_draft(self, draft_id: str) -> None:
        self._box("drafts").discard(draft_id)  # a Maildir key, only ever a draft's

    # -- calendar -----------------------------------------------------------------------
    def _window(self) -> Interval:
        now = self.clock()
        return Interval(now - EVENT_HORIZON, now + EVENT_HORIZON)

    def events(self, cursor: str | None) -> EventSyncResult:
        found: list[Event] = []
        skipped: list[tuple[str, str]] = []
        first_seen: dict[str, str] = {}
        window = self._window()
        for path in sorted((self.root / "calendar").glob("*.ics")):
            try:
                events, problems = calendars.read_ics(path.read_bytes(), window, self.mailbox)
            except (ValueError, OSError) as exc:
                skipped.append((path.name, str(exc)))
                continue
            for event in events:
                # The same invitation saved twice: keep one copy, as the store holds one per id.
                if event.provider_id in first_seen:
                    item = f"{path.name}#{event.uid or event.provider_id}"
                    if item not in {i for i, _ in skipped}:
                        skipped.append(
                            (item, f"also in {first_seen[event.provider_id]}: kept that")
                        )
                    continue
                first_seen[event.provider_id] = path.name
                found.append(event)
            # One entry per broken event, so each is recorded; the file's other events count.
            unnamed = 0
            for uid, why in problems:
                unnamed += not uid
                skipped.append((f"{path.name}#{uid or f'no-uid-{unnamed}'}", why))
        return EventSyncResult(
            events=tuple(found), cursor="full", full=True, skipped=tuple(skipped)
        )

    def busy(self, window: Interval) -> list[Interval]:
        spans: list[Interval] = []
        for path in sorted((self.root / "calendar").glob("*.ics")):
            try:
                events, _ = calendars.read_ics(path.read_bytes(), window, self.mailbox)
            except (ValueError, OSError):
                continue  # reported by events(); busy time from the readable files still counts
            spans.extend(calendars.busy_from_events(events, window, attendee_emails=[self.address]))
        return calendars.merge(spans)

    def create_event(self, invite: Invite) -> str:
        """Write ``calendar/followup-<key>.ics`` unless it exists; return the event's UID, the
        id :meth:`events` lists it under.

        A hold (``invite.tentative``) is written ``STATUS:TENTATIVE`` and stays busy time.
        """
        path = self._own_file(invite.key)
        if not path.exists():
            _write_private(path, invites.build_invite(invite, stamp=self.clock()))
        return invites.invite_uid(invite)

    def _own_file(self, key: str) -> Path:
        return self.root / "calendar" / f"{OWN_PREFIX}{key.replace('/', '_')}.ics"

    def delete_event(self, provider_id: str) -> None:
        """Remove the .ics file holding the event :meth:`create_event` made under that id; a
        file already gone is fine.

        Only ``followup-*.ics`` files are searched: the rest of the folder is the rep's own
        calendar, never touched. An id of the form ``followup-<key>`` (the file's name, given
        out by earlier versions) names the file directly.
        """
        folder = self.root / "calendar"
        if provider_id.startswith(OWN_PREFIX):
            if Path(provider_id).name != provider_id:
                raise Permanent(f"not an event id: {provider_id!r}", mailbox=self.mailbox)
            (folder / f"{provider_id}.ics").unlink(missing_ok=True)
            return
        for path in folder.glob(f"{OWN_PREFIX}*.ics"):
            try:
                calendar = icalendar.Calendar.from_ical(path.read_bytes())
            except (OSError, ValueError):
                continue  # removed since the listing, or not one we could have written
            if any(str(e.get("uid", "")) == provider_id for e in calendar.walk("VEVENT")):
                path.unlink(missing_ok=True)
