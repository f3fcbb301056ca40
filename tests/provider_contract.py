"""The contract every mail provider keeps, run against each of them.

To add a provider, subclass ``MailProviderContract`` in that provider's test module and give it a
``harness`` fixture returning an object with:

- ``provider``: the MailProvider under test, for a mailbox whose address is ``address``;
- ``address``: that mailbox's own address;
- ``deliver(raw: bytes) -> None``: put an incoming message into the inbox by the backend's own
  means (an emulator's API, a Maildir write), never through the provider under test.

The memory provider (tests/test_provider_memory.py), the local Maildir provider
(tests/test_provider_local.py) and the Gmail and Outlook emulators run it.

Calendar providers keep ``CalendarProviderContract``: its ``calendar_harness`` fixture returns
an object with ``calendar`` (the CalendarProvider under test, whose clock is the real time) and
``address`` (the calendar owner's address).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import pytest

from agent.model import Address, EventSyncResult, Interval, Invite, SyncResult
from agent.providers.protocol import CalendarProvider, MailProvider


class Harness(Protocol):
    provider: MailProvider
    address: str

    def deliver(self, raw: bytes) -> None: ...


def incoming(n: int, *, to: str, subject: str = "Pricing question", reply_to: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Client {n} <client{n}@customer.example>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = f"Mon, 02 Nov 2026 {9 + n % 8:02d}:15:00 +0000"
    msg["Message-ID"] = f"<in-{n}@customer.example>"
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content(f"Hello, question number {n}: what does the premium plan cost?")
    return bytes(msg)


def outgoing(address: str, *, key: str, reply_to: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = address
    msg["To"] = "client1@customer.example"
    msg["Subject"] = "Re: Pricing question"
    msg["Message-ID"] = f"<{key.replace(':', '.')}@followup.test>"
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content("Thank you for your question; the premium plan is 40 EUR per seat.")
    return msg


def _ids(result: SyncResult) -> set[str]:
    return {m.message_id for m in result.messages}


class MailProviderContract:
    @pytest.fixture
    def harness(self) -> Any:  # pragma: no cover - overridden by each provider's test module
        raise NotImplementedError

    def test_full_sync_lists_delivered_mail_with_its_headers(self, harness: Harness) -> None:
        harness.deliver(incoming(1, to=harness.address))
        harness.deliver(incoming(2, to=harness.address, subject="Contract renewal"))
        result = harness.provider.sync(None)
        assert {"<in-1@customer.example>", "<in-2@customer.example>"} <= _ids(result)
        first = next(m for m in result.messages if m.message_id == "<in-1@customer.example>")
        assert first.sender.email == "client1@customer.example"
        assert first.subject == "Pricing question"
        assert "INBOX" in first.labels
        assert first.date.utcoffset() is not None and first.date.tzinfo is not None
        assert result.cursor

    def test_incremental_sync_returns_what_arrived_since_the_cursor(self, harness: Harness) -> None:
        harness.deliver(incoming(1, to=harness.address))
        first = harness.provider.sync(None)
        harness.deliver(incoming(2, to=harness.address))
        second = harness.provider.sync(first.cursor)
        assert "<in-2@customer.example>" in _ids(second)
        if not second.full:
            assert "<in-1@customer.example>" not in _ids(second)

    def test_sent_draft_is_found_by_its_key_and_not_as_a_draft(self, harness: Harness) -> None:
        harness.deliver(incoming(1, to=harness.address))
        key = "first_reply:t1:remind:1"
        draft_id = harness.provider.draft(outgoing(harness.address, key=key), key=key)
        assert harness.provider.find_draft(key) == draft_id
        assert harness.provider.find_sent(key) is None
        sent = harness.provider.send_draft(draft_id)
        assert sent.provider_id
        found = harness.provider.find_sent(key)
        assert found is not None and found.provider_id == sent.provider_id
        assert harness.provider.find_draft(key) is None

    def test_sent_mail_appears_in_sync_as_sent(self, harness: Harness) -> None:
        key = "follow_up:t2:1"
        draft_id = harness.provider.draft(outgoing(harness.address, key=key), key=key)
        sent = harness.provider.send_draft(draft_id)
        result = harness.provider.sync(None)
        ours = [m for m in result.messages if m.provider_id == sent.provider_id]
        assert ours and "SENT" in ours[0].labels
        assert ours[0].sender.email == harness.address.lower()

    def test_a_discarded_draft_is_gone_and_a_sent_one_is_never_touched(
        self, harness: Harness
    ) -> None:
        key = "follow_up:t3:1"
        draft_id = harness.provider.draft(outgoing(harness.address, key=key), key=key)
        harness.provider.discard_draft(draft_id)
        assert harness.provider.find_draft(key) is None
        assert harness.provider.find_sent(key) is None
        harness.provider.discard_draft(draft_id)  # already gone: done, not an error
        # The rep sent the draft before it was withdrawn: the sent mail stays.
        key = "follow_up:t4:1"
        draft_id = harness.provider.draft(outgoing(harness.address, key=key), key=key)
        sent = harness.provider.send_draft(draft_id)
        harness.provider.discard_draft(draft_id)
        found = harness.provider.find_sent(key)
        assert found is not None and found.provider_id == sent.provider_id

    def test_unknown_key_finds_nothing(self, harness: Harness) -> None:
        assert harness.provider.find_sent("no-such-key") is None
        assert harness.provider.find_draft("no-such-key") is None


class CalendarHarness(Protocol):
    calendar: CalendarProvider
    address: str


def hold(address: str, key: str = "hold:t1:1") -> tuple[Invite, Interval]:
    """A hold two days ahead on the hour, as the outbox makes it, and a window around it."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    invite = Invite(
        key=key,
        summary="Hold: pricing call",
        start=start,
        end=start + timedelta(minutes=30),
        zone="Europe/Berlin",
        organizer=Address(address),
        attendees=(Address(address),),
        send_updates=False,
        tentative=True,
    )
    return invite, Interval(start - timedelta(hours=2), start + timedelta(hours=2))


def _event_ids(result: EventSyncResult) -> set[str]:
    return {e.provider_id for e in result.events}


class CalendarProviderContract:
    @pytest.fixture
    def calendar_harness(self) -> Any:  # pragma: no cover - overridden by each provider module
        raise NotImplementedError

    def test_hold_is_tentative_busy_time_with_nobody_invited(
        self, calendar_harness: CalendarHarness
    ) -> None:
        calendar, address = calendar_harness.calendar, calendar_harness.address
        invite, window = hold(address)
        event_id = calendar.create_event(invite)
        assert calendar.create_event(invite) == event_id
        events = [e for e in calendar.events(None).events if e.provider_id == event_id]
        assert len(events) == 1
        assert events[0].status == "tentative" and not events[0].transparent
        assert events[0].start == invite.start and events[0].end == invite.end
        assert {a.email.lower() for a in events[0].attendees} <= {address.lower()}
        assert calendar.busy(window) == [Interval(invite.start, invite.end)]

    def test_deleted_event_is_gone_from_events_and_busy(
        self, calendar_harness: CalendarHarness
    ) -> None:
        calendar, address = calendar_harness.calendar, calendar_harness.address
        invite, window = hold(address)
        event_id = calendar.create_event(invite)
        before = calendar.events(None)
        assert event_id in _event_ids(before)
        calendar.delete_event(event_id)
        after = calendar.events(before.cursor)
        assert event_id not in _event_ids(after)
        if not after.full:
            assert event_id in after.deleted
        assert event_id not in _event_ids(calendar.events(None))
        assert calendar.busy(window) == []

    def test_deleting_an_event_already_gone_is_not_an_error(
        self, calendar_harness: CalendarHarness
    ) -> None:
        calendar, address = calendar_harness.calendar, calendar_harness.address
        invite, window = hold(address)
        other, _ = hold(address, key="hold:t2:1")
        event_id = calendar.create_event(invite)
        kept = calendar.create_event(other)
        calendar.delete_event(event_id)
        calendar.delete_event(event_id)
        assert _event_ids(calendar.events(None)) & {event_id, kept} == {kept}
        assert calendar.busy(window) == [Interval(other.start, other.end)]
