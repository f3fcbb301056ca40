"""A Maildir and calendar folder holding good and generated bad files: the good ones sync, every
bad one is recorded with its reason, and nothing raises on the way into the store."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.providers.local import LocalMailbox
from agent.store import Store
from tests.conftest import open_store
from tests.test_bad_input_ics import GOOD, GOOD_START, calendars
from tests.test_bad_input_mime import raw_messages

NOW = datetime(2026, 3, 1, tzinfo=UTC)
PG_URL = os.environ.get("FOLLOWUP_TEST_PG_URL", "")


def good_message(n: int) -> bytes:
    return (
        f"From: Kai Tanaka <kai@client.example>\r\nTo: asha@acme.example\r\n"
        f"Date: Mon, 02 Mar 2026 10:{n:02d}:00 +0100\r\nMessage-ID: <good-{n}@client.example>\r\n"
        f"Subject: Order {n}\r\n\r\nHello\r\n"
    ).encode()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """One store for all examples (each uses its own mailbox); PostgreSQL when configured,
    since it refuses text SQLite takes (NULs)."""
    with tempfile.TemporaryDirectory() as tmp, open_store(request.param, Path(tmp)) as s:
        yield s


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    good=st.integers(0, 3),
    bad=st.lists(st.one_of(raw_messages(), st.binary(max_size=200)), min_size=1, max_size=6),
)
def test_good_mail_syncs_and_every_bad_file_is_recorded(
    store: Store, good: int, bad: list[bytes]
) -> None:
    mailbox = f"m{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        box = LocalMailbox(Path(tmp), mailbox=mailbox, address="asha@acme.example")
        good_ids = {box.deliver(good_message(n)) for n in range(good)}
        bad_ids = {box.deliver(raw) for raw in bad}
        result = box.sync(None)
    synced = {m.provider_id for m in result.messages}
    skipped = {pid for pid, _ in result.skipped}
    assert good_ids <= synced
    assert synced | skipped == good_ids | bad_ids
    assert not synced & skipped
    assert all(reason.strip() for _, reason in result.skipped)
    # The store takes the whole listing: every readable message and every skip with its reason.
    store.apply_sync(mailbox, result, at=NOW)
    assert synced == {m.provider_id for m in store.messages(mailbox)}
    recorded = {(s["item"], s["reason"]) for s in store.skipped() if s["mailbox"] == mailbox}
    assert set(result.skipped) == recorded


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(files=st.lists(calendars(), min_size=1, max_size=3))
def test_good_events_sync_and_every_broken_one_is_recorded(
    store: Store, files: list[tuple[bytes, bool]]
) -> None:
    mailbox = f"c{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        box = LocalMailbox(
            Path(tmp), mailbox=mailbox, address="asha@acme.example", clock=lambda: NOW
        )
        for i, (data, _) in enumerate(files):
            (Path(tmp) / "calendar" / f"f{i}.ics").write_bytes(data)
        (Path(tmp) / "calendar" / "plain.ics").write_text(
            f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{GOOD}END:VCALENDAR\r\n"
        )
        result = box.events(None)
        busy = box.busy(box._window())
    assert GOOD_START in {e.start for e in result.events}
    assert any(b.start <= GOOD_START < b.end for b in busy)
    assert all(reason.strip() for _, reason in result.skipped)
    assert len({item for item, _ in result.skipped}) == len(result.skipped)
    store.apply_event_sync(mailbox, result, at=NOW)
    assert len(result.events) == len(store.events(mailbox))
    recorded = {(s["item"], s["reason"]) for s in store.skipped() if s["mailbox"] == mailbox}
    assert set(result.skipped) == recorded
