"""Real volumes: a pass costs what changed, not what is stored, and survives a lease move.

A mailbox holds months of its own mail (tests/benchmarks/bench_worker.py writes it straight into
the store); the worker's statements are counted with SQLAlchemy's ``before_cursor_execute``
hook and the rows it reads in the DBAPI cursor's fetch calls.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.model import EventSyncResult
from agent.providers.registry import Connection
from agent.replan import MailboxPlan, plan_mailbox
from agent.store import Store
from agent.worker import Worker
from tests.benchmarks import bench_worker as bench

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
MESSAGES = 3_000
SHAPE = bench.Shape(1, MESSAGES, 300, 400.0, NOW.timestamp())


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Path]:
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    config = bench.write_team(tmp_path, SHAPE, url, concurrency=1, lease=120)
    bench.seed(url, SHAPE)
    yield config


def _worker(config: Path, clock: list[datetime]) -> Worker:
    boxes: dict[str, bench.Synthetic] = {}

    def connect(mailbox: Any, _creds: Any, _vault: Any) -> Connection:
        box = boxes.setdefault(
            mailbox.name, bench.Synthetic(SHAPE, 0, clock=lambda: clock[-1].timestamp())
        )
        return Connection(box, box)  # type: ignore[arg-type]

    worker = Worker(config, clock=lambda: clock[-1], connect=connect)
    old = worker.store.engine
    worker.store.engine = bench.counting_engine(str(old.url))
    old.dispose()
    return worker


def _counted_pass(worker: Worker, now: datetime) -> tuple[str, int, int]:
    """One leased pass over m0000: (its result, statements, rows read)."""
    assert worker.store.lease(worker.owner, now, timedelta(minutes=2), 1)
    bench.COUNTS.statements = bench.COUNTS.rows = 0
    bench.COUNTS.active = True
    try:
        result = worker.work("m0000")
    finally:
        bench.COUNTS.active = False
    return result.result, bench.COUNTS.statements, bench.COUNTS.rows


def _planned(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("followup_threads_planned_total") or 0.0


def test_a_steady_pass_takes_at_most_20_statements_and_reads_only_what_changed(
    seeded: Path,
) -> None:
    clock = [NOW]
    worker = _worker(seeded, clock)
    result, _, first_rows = _counted_pass(worker, NOW)
    assert result == "ok"
    assert first_rows >= MESSAGES  # the first plan reads the whole mailbox

    # Steady state: a pass a minute for twelve minutes while mail arrives (about ten messages at
    # this rate), planning on new mail and at least every five minutes.
    statements, rows = [], []
    for minute in range(1, 13):
        clock.append(NOW + timedelta(minutes=minute))
        result, n, read = _counted_pass(worker, clock[-1])
        assert result == "ok"
        statements.append(n)
        rows.append(read)
    assert int(worker.store.cursor("m0000") or 0) > 0  # mail arrived and was synced
    assert sum(statements) / len(statements) <= 20
    assert max(statements) <= 35
    # A pass that found nothing new: its streams (one read), the mail cursor, the outbox (one
    # read, parked rows with it), the lease; an unchanged calendar writes nothing.
    assert min(statements) <= 4
    # A pass reads what changed, its clients' threads and the calendar: not the stored mailbox.
    assert max(rows) < MESSAGES / 5
    worker.store.close()


def test_another_worker_continues_a_mailbox_without_planning_it_whole(seeded: Path) -> None:
    clock = [NOW]
    first = _worker(seeded, clock)
    assert _counted_pass(first, NOW)[0] == "ok"
    threads = len({m.thread_id for m in first.store.messages("m0000")})
    assert _planned(first) == threads
    outbox = {r["key"]: r["status"] for r in first.store.outbox()}
    first.store.close()

    # The lease moves: a worker that never saw the mailbox takes it over.
    clock.append(NOW + timedelta(minutes=6))
    second = _worker(seeded, clock)
    result, _, rows = _counted_pass(second, clock[-1])
    assert result == "ok"
    assert rows < MESSAGES / 5  # the calendar and what changed, not the stored mailbox
    assert 0 < _planned(second) < threads / 10  # the threads that changed, not all of them
    # It continued the same plan: nothing planned before was dropped or planned twice.
    after = {r["key"]: r["status"] for r in second.store.outbox()}
    assert set(outbox) <= set(after)
    # The promises it reports are the mailbox's, as the first worker counted them.
    assert second.promise_counts["m0000"]
    second.store.close()


def test_a_plan_with_nothing_due_reads_no_calendar_and_a_changed_one_plans_whole(
    seeded: Path,
) -> None:
    """The calendar (a year of events) is read when something is due or when it changed: a
    change made through the sync makes the mailbox's own row due, and the pass that follows
    finds the calendar changed and plans the mailbox whole."""
    clock = [NOW]
    worker = _worker(seeded, clock)
    assert _counted_pass(worker, NOW)[0] == "ok"  # the first plan, saved
    loaded, store = worker.loaded, worker.store
    later = NOW + timedelta(seconds=1)

    def plan() -> tuple[object, int]:
        bench.COUNTS.statements = 0
        bench.COUNTS.active = True
        try:
            step = plan_mailbox(store, loaded.team, later, mailbox="m0000", digest=loaded.digest)
        finally:
            bench.COUNTS.active = False
        return step, bench.COUNTS.statements

    assert plan() == (None, 1)  # the planner rows due, and nothing more

    moved = dataclasses.replace(store.events("m0000")[0], summary="Review (moved)")
    store.apply_event_sync("m0000", EventSyncResult((moved,), "1"), at=later)
    step, _ = plan()
    assert isinstance(step, MailboxPlan) and step.full
    step.save()
    assert plan() == (None, 1)

    # A provider that lists the whole calendar each time (a Maildir's .ics files): the same
    # listing changes nothing and writes no event, one event fewer is a change.
    events = tuple(store.events("m0000"))
    store.apply_event_sync("m0000", EventSyncResult(events, "full", full=True), at=later)
    assert plan() == (None, 1)
    store.apply_event_sync("m0000", EventSyncResult(events[1:], "full", full=True), at=later)
    assert len(store.events("m0000")) == len(events) - 1
    step, _ = plan()
    assert isinstance(step, MailboxPlan) and step.full


def _deferred(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("followup_whole_plans_deferred_total") or 0.0


def test_a_whole_plan_waits_for_a_free_slot_and_reads_nothing_meanwhile(seeded: Path) -> None:
    """``service.whole_plans`` bounds memory: a mailbox that needs planning from its whole
    history while every slot is taken syncs as usual, reads none of its history, and is planned
    whole at a later pass once a slot is free; no due note is lost meanwhile."""
    clock = [NOW]
    worker = _worker(seeded, clock)
    assert worker.loaded.settings.service.whole_plans == 1
    assert worker.whole_slots.acquire(blocking=False)  # another mailbox's whole plan is running
    result, _, rows = _counted_pass(worker, NOW)
    assert result == "ok"
    assert rows < MESSAGES / 5  # its calendar and its cursor, none of its stored mail
    assert _deferred(worker) == 1
    assert _planned(worker) == 0
    assert "m0000" not in worker.promise_counts

    # Still taken a minute later: put off again without reading its threads or calendar, as a
    # pass that finds nothing new (the streams, the cursor, the outbox, the lease).
    clock.append(NOW + timedelta(minutes=1))
    result, statements, rows = _counted_pass(worker, clock[-1])
    assert result == "ok"
    assert _deferred(worker) == 2
    assert (statements, rows) == (4, 2)

    # The slot frees: the next pass plans the mailbox whole, although no mail came.
    worker.whole_slots.release()
    clock.append(NOW + timedelta(minutes=2))
    result, _, rows = _counted_pass(worker, clock[-1])
    assert result == "ok"
    assert rows >= MESSAGES
    assert _deferred(worker) == 2
    threads = len({m.thread_id for m in worker.store.messages("m0000")})
    assert _planned(worker) == threads
    assert worker.promise_counts["m0000"]  # its promises are counted now
    # And the slot was handed back: another whole plan may start.
    assert worker.whole_slots.acquire(blocking=False)
    worker.whole_slots.release()
    worker.store.close()


def test_a_small_mailbox_is_planned_whole_without_a_slot(tmp_path: Path) -> None:
    """A mailbox under SMALL_WHOLE_PLAN messages costs a few MB to plan whole: it does not
    wait for a slot, so a small team's first notes are never put off."""
    from agent.worker import SMALL_WHOLE_PLAN

    shape = bench.Shape(1, SMALL_WHOLE_PLAN // 4, 50, 400.0, NOW.timestamp())
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    config = bench.write_team(tmp_path, shape, url, concurrency=1, lease=120)
    bench.seed(url, shape)
    worker = _worker(config, [NOW])
    assert worker.whole_slots.acquire(blocking=False)  # a large mailbox is being planned
    assert _counted_pass(worker, NOW)[0] == "ok"
    assert _deferred(worker) == 0
    assert _planned(worker) > 0
    worker.whole_slots.release()
    worker.store.close()


def test_one_round_waits_for_a_slot_rather_than_leave_a_mailbox_unplanned(tmp_path: Path) -> None:
    """`followup run --once` has no later pass: with two mailboxes and one slot, both are
    planned whole in the one round, one after the other."""
    shape = bench.Shape(2, 2_500, 60, 400.0, NOW.timestamp())  # both above SMALL_WHOLE_PLAN
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    config = bench.write_team(tmp_path, shape, url, concurrency=2, lease=120)
    bench.seed(url, shape)
    boxes: dict[str, bench.Synthetic] = {}

    def connect(mailbox: Any, _creds: Any, _vault: Any) -> Connection:
        i = int(mailbox.name[1:])
        box = boxes.setdefault(mailbox.name, bench.Synthetic(shape, i, clock=NOW.timestamp))
        return Connection(box, box)  # type: ignore[arg-type]

    worker = Worker(config, clock=lambda: NOW, connect=connect)
    assert worker.loaded.settings.service.whole_plans == 1
    # The slot is taken when the round starts, and freed a moment later.
    assert worker.whole_slots.acquire(blocking=False)
    threading.Timer(0.3, worker.whole_slots.release).start()
    assert worker.run(once=True) == 0
    assert _deferred(worker) == 0
    assert set(worker.promise_counts) == {"m0000", "m0001"}
    store = Store.open(url)
    threads = {(m.mailbox, m.thread_id) for m in store.messages()}
    store.close()
    assert _planned(worker) == len(threads)


def test_a_freed_slot_makes_the_longest_waiting_mailbox_due_at_once(tmp_path: Path) -> None:
    """A whole plan put off would otherwise wait for its next poll (about a minute) while the
    slot stands idle: when a slot frees, the mailbox that waited longest is due at once."""
    shape = bench.Shape(2, 2_500, 60, 400.0, NOW.timestamp())  # both above SMALL_WHOLE_PLAN
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    config = bench.write_team(tmp_path, shape, url, concurrency=2, lease=120)
    bench.seed(url, shape)
    clock = [NOW]
    boxes: dict[str, bench.Synthetic] = {}

    def connect(mailbox: Any, _creds: Any, _vault: Any) -> Connection:
        i = int(mailbox.name[1:])
        box = boxes.setdefault(
            mailbox.name, bench.Synthetic(shape, i, clock=lambda: clock[-1].timestamp())
        )
        return Connection(box, box)  # type: ignore[arg-type]

    worker = Worker(config, clock=lambda: clock[-1], connect=connect)
    ttl = timedelta(minutes=2)
    assert worker.whole_slots.acquire(blocking=False)  # another whole plan is running
    assert set(worker.store.lease(worker.owner, NOW, ttl, 2)) == {"m0000", "m0001"}
    assert worker.work("m0000").result == "ok"
    assert _deferred(worker) == 1
    worker.whole_slots.release()  # that plan ends without this worker's help

    # Ten seconds on, m0000 waits for its next poll; m0001 gets the free slot ...
    clock.append(NOW + timedelta(seconds=10))
    assert worker.store.lease(worker.owner, clock[-1], ttl, 2) == {}
    worker.wake.clear()
    assert worker.work("m0001").result == "ok"
    assert set(worker.promise_counts) == {"m0001"}  # planned whole
    # ... and when it hands the slot back, m0000 is due at once and planned whole.
    assert worker.wake.is_set()
    assert set(worker.store.lease(worker.owner, clock[-1], ttl, 2)) == {"m0000"}
    assert worker.work("m0000").result == "ok"
    assert _deferred(worker) == 1
    assert set(worker.promise_counts) == {"m0000", "m0001"}
    assert worker.deferred == {}
    worker.store.close()


def test_whole_plans_is_validated_with_the_key_named(tmp_path: Path) -> None:
    from agent.config import load
    from agent.errors import ConfigError

    config = bench.write_team(tmp_path, SHAPE, f"sqlite:///{tmp_path / 'f.db'}", 1, 120)
    config.write_text(config.read_text().replace("whole_plans = 1", "whole_plans = 0"))
    with pytest.raises(ConfigError) as raised:
        load(config)
    assert "service.whole_plans" in str(raised.value)


def test_a_maildir_that_lists_everything_rewrites_nothing_unchanged(tmp_path: Path) -> None:
    from agent.model import Address, Message, SyncResult

    store = Store.open(f"sqlite:///{tmp_path / 'f.db'}", clock=lambda: NOW)
    listed = tuple(
        Message("m", f"p{i}", f"t{i}", f"<{i}@x>", Address("a@x.example"), (), NOW)
        for i in range(3)
    )
    assert store.apply_sync("m", SyncResult(listed, "full", full=True)) == 3
    store.save_plan_state("m", [(f"t{i}", "g", NOW + timedelta(days=1), None) for i in range(3)])
    store.apply_sync("m", SyncResult(listed, "full", full=True))
    assert store.due_threads("m", NOW) == []  # nothing changed: nothing to plan again
    moved = (listed[0].__class__(**{**listed[0].__dict__, "subject": "changed"}),)
    store.apply_sync("m", SyncResult(moved + listed[1:], "full", full=True))
    assert [r["thread_id"] for r in store.due_threads("m", NOW)] == ["t0"]
    store.close()


def test_a_store_busy_at_shutdown_does_not_fail_the_worker(
    seeded: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Handing the leases back is a courtesy: when the store refuses it (locked, down), the
    worker still stops cleanly and the leases run out by themselves."""
    from sqlalchemy.exc import OperationalError

    worker = _worker(seeded, [NOW])

    def locked(_owner: str) -> int:
        raise OperationalError("UPDATE streams", {}, Exception("database is locked"))

    worker.store.release = locked  # type: ignore[method-assign]
    assert worker.run(once=True) == 0
    assert "could not hand back leases" in caplog.text
