from __future__ import annotations

from pathlib import Path

import pytest

from agent.providers.local import LocalMailbox
from tests.provider_contract import CalendarProviderContract, MailProviderContract


class LocalHarness:
    def __init__(self, root: Path) -> None:
        self.address = "asha@acme.example"
        self.provider = LocalMailbox(root, mailbox="asha", address=self.address)
        self.calendar = self.provider

    def deliver(self, raw: bytes) -> None:
        self.provider.deliver(raw)


class TestLocalContract(MailProviderContract, CalendarProviderContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> LocalHarness:
        return LocalHarness(tmp_path / "asha")

    @pytest.fixture
    def calendar_harness(self, tmp_path: Path) -> LocalHarness:
        return LocalHarness(tmp_path / "asha")


def test_malformed_message_is_skipped_with_its_reason(tmp_path: Path) -> None:
    box = LocalMailbox(tmp_path, mailbox="asha", address="asha@acme.example")
    bad = box.deliver(b"Subject: no sender here\r\nDate: yesterday\r\n\r\nbody\r\n")
    result = box.sync(None)
    assert (bad, "no From address") in result.skipped
    assert not result.messages


def test_unreadable_ics_is_reported_and_the_rest_still_counts(tmp_path: Path) -> None:
    box = LocalMailbox(tmp_path, mailbox="asha", address="asha@acme.example")
    (tmp_path / "calendar" / "broken.ics").write_text("BEGIN:VCALENDAR\nthis is not ics\n")
    result = box.events(None)
    assert [name for name, _ in result.skipped] == ["broken.ics"]
