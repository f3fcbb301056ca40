"""The contract every mail provider keeps, run against each of them.

To add a provider, subclass ``MailProviderContract`` in that provider's test module and give it a
``harness`` fixture returning an object with:

- ``provider``: the MailProvider under test, for a mailbox whose address is ``address``;
- ``address``: that mailbox's own address;
- ``deliver(raw: bytes) -> None``: put an incoming message into the inbox by the backend's own
  means (an emulator's API, a Maildir write), never through the provider under test.

The memory provider (tests/test_provider_memory.py), the local Maildir provider
(tests/test_provider_local.py) and the Gmail and Outlook emulators run it.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any, Protocol

import pytest

from agent.model import SyncResult
from agent.providers.protocol import MailProvider


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

    def test_unknown_key_finds_nothing(self, harness: Harness) -> None:
        assert harness.provider.find_sent("no-such-key") is None
        assert harness.provider.find_draft("no-such-key") is None
