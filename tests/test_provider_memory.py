from __future__ import annotations

import pytest

from agent.errors import CursorExpired, Transient
from agent.providers.memory import MemoryMailbox
from tests.provider_contract import (
    CalendarProviderContract,
    MailProviderContract,
    incoming,
    outgoing,
)


class MemoryHarness:
    def __init__(self) -> None:
        self.address = "asha@acme.example"
        self.provider = MemoryMailbox(mailbox="asha", address=self.address)
        self.calendar = self.provider

    def deliver(self, raw: bytes) -> None:
        self.provider.deliver(raw)


class TestMemoryContract(MailProviderContract, CalendarProviderContract):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness()

    @pytest.fixture
    def calendar_harness(self) -> MemoryHarness:
        return MemoryHarness()


def test_injected_failures_are_raised_in_order_then_calls_succeed() -> None:
    box = MemoryMailbox(mailbox="asha", address="asha@acme.example")
    box.fail("sync", Transient("503", retry_after=2.0), times=2)
    for _ in range(2):
        with pytest.raises(Transient) as err:
            box.sync(None)
        assert err.value.retry_after == 2.0
    assert box.sync(None).full


def test_stale_cursor_raises_cursor_expired() -> None:
    box = MemoryMailbox(mailbox="asha", address="asha@acme.example")
    box.deliver(incoming(1, to=box.address))
    cursor = box.sync(None).cursor
    box.deliver(incoming(2, to=box.address))
    box.expire_history()
    with pytest.raises(CursorExpired):
        box.sync(cursor)


def test_deleted_message_is_reported_and_not_listed() -> None:
    box = MemoryMailbox(mailbox="asha", address="asha@acme.example")
    pid = box.deliver(incoming(1, to=box.address))
    cursor = box.sync(None).cursor
    box.delete(pid)
    result = box.sync(cursor)
    assert result.deleted == (pid,)
    assert not result.messages


def test_lost_send_response_still_sends_once() -> None:
    box = MemoryMailbox(mailbox="asha", address="asha@acme.example")
    key = "k1"
    draft = box.draft(outgoing(box.address, key=key), key=key)
    box.lose_response("send_draft")
    with pytest.raises(Transient):
        box.send_draft(draft)
    assert box.find_sent(key) is not None
    assert box.find_draft(key) is None
