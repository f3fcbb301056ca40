"""Scale-out: three worker processes share one PostgreSQL database and 300 mailboxes.

Each worker records every provider call it makes (tests/scaleout_helpers.py). The test checks
that every mailbox is synced, that no two workers ever work one mailbox at overlapping times,
that the work is spread over the three, and that after one worker is killed with SIGKILL the
mailboxes it held are taken over by the others once their leases expire, not before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.store import Store
from tests.scaleout_helpers import (
    REPO,
    local_team,
    overlaps,
    passes,
    pg_schema_url,
    read_calls,
)

PG_URL = os.environ.get("FOLLOWUP_TEST_PG_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="FOLLOWUP_TEST_PG_URL is not set")

MAILBOXES = 300
WORKERS = 3
POLL = 2.0
# The heartbeat renews every LEASE / 3 s. It shares the interpreter with the pass threads, and on
# a busy 2-core machine a renewal can come a second or two late: with a 3 s lease that was enough
# for a live worker's lease to expire mid-pass. Production leases are 120 s.
LEASE = 5.0
CONCURRENCY = 4
TICK = min(1.0, POLL / 10)  # how often an idle worker looks for due mailboxes
# A survivor leases an expired mailbox at its next look, but only when one of its pass slots
# is free: with 300 mailboxes due every 2 s the workers are busy, and a slot frees within a
# pass or two.
SLACK = 2.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway schema; every connection of every worker has it as its search_path."""
    from sqlalchemy import create_engine, text

    schema = f"scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield pg_schema_url(PG_URL, schema, durable=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _start(config: Path, records: Path, name: str) -> subprocess.Popen[bytes]:
    with (records / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.scaleout_helpers", str(config), str(records), name],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _log_lines(records: Path, name: str) -> list[dict[str, object]]:
    lines = []
    for line in (records / f"{name}.log").read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            lines.append({"msg": line, "level": "raw"})
    return lines


def test_three_workers_share_300_mailboxes_and_take_over_from_a_killed_one(
    tmp_path: Path, pg_url: str
) -> None:
    started = time.monotonic()
    config = local_team(
        tmp_path / "team",
        MAILBOXES,
        pg_url,
        poll_seconds=POLL,
        lease_seconds=LEASE,
        concurrency=CONCURRENCY,
    )
    records = tmp_path / "records"
    records.mkdir()
    names = [f"w{i}" for i in range(WORKERS)]
    procs = {name: _start(config, records, name) for name in names}
    store = Store.open(pg_url)
    try:
        everyone = {f"m{i:03d}" for i in range(MAILBOXES)}

        def all_synced() -> bool:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited early: {_log_lines(records, name)}"
            return {c.mailbox for c in read_calls(records) if c.call == "sync"} >= everyone

        _wait(all_synced, 120, "every mailbox's first sync")
        print(f"\nall synced after {time.monotonic() - started:.1f} s")
        time.sleep(1)  # into the second round

        # Kill w0 while it holds leases: those mailboxes are in the middle of a pass.
        def victim_holds_leases() -> bool:
            return any(
                str(r["lease_owner"] or "").startswith("w0:")
                for r in store.streams()
                if r["kind"] == "mail"
            )

        _wait(victim_holds_leases, 10, "w0 to hold a lease")
        procs["w0"].send_signal(signal.SIGKILL)
        killed_at = time.time()
        procs["w0"].wait(timeout=10)
        orphans: dict[str, datetime] = {
            str(r["mailbox"]): r["lease_expires"]
            for r in store.streams()
            if r["kind"] == "mail" and str(r["lease_owner"] or "").startswith("w0:")
        }
        assert orphans, "w0 died holding no lease: nothing to take over"

        def taken_over() -> bool:
            after = {
                c.mailbox
                for c in read_calls(records)
                if c.call == "sync" and c.worker != "w0" and c.start > killed_at
            }
            return after >= set(orphans)

        _wait(taken_over, LEASE + POLL + SLACK + 5, "the survivors to take w0's mailboxes over")

        for name in names[1:]:
            procs[name].send_signal(signal.SIGTERM)
        for name in names[1:]:
            assert procs[name].wait(timeout=20) == 0, _log_lines(records, name)[-5:]
        stopped_at = time.time()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    calls = read_calls(records, unfinished_end=killed_at)
    worked = passes(calls)

    # Every mailbox was synced, and every one is in a good state with no lease left behind.
    assert {p.mailbox for p in worked} == everyone
    streams = [r for r in store.streams() if r["kind"] == "mail"]
    store.close()
    assert Counter(r["state"] for r in streams) == Counter({"incremental": MAILBOXES})
    assert [r["mailbox"] for r in streams if r["lease_owner"]] == []

    # Never two workers on one mailbox at once.
    assert overlaps(worked) == []

    # Work is spread: once all three were up, and until the kill, each worker made a fair share
    # of the passes (a worker that starts first works alone for a while).
    all_up = max(min(p.start for p in worked if p.worker == name) for name in names)
    share = Counter(p.worker for p in worked if all_up <= p.start < killed_at)
    total = sum(share.values())
    print(f"passes by worker between the last start and the kill: {dict(sorted(share.items()))}")
    assert set(share) == set(names)
    assert min(share.values()) >= total / WORKERS / 2, share

    # Nothing of w0's after its death; its mailboxes taken over only once their leases
    # expired, and soon after.
    assert [c for c in calls if c.worker == "w0" and c.start > killed_at] == []
    delays = {}
    for mailbox, expires in orphans.items():
        first = min(
            p.start
            for p in worked
            if p.mailbox == mailbox and p.worker != "w0" and p.start > killed_at
        )
        assert first >= expires.timestamp(), (mailbox, "taken over before its lease expired")
        delays[mailbox] = first - killed_at
        assert first - killed_at <= LEASE + TICK + SLACK, (mailbox, first - killed_at)
    print(
        f"w0 killed holding {len(orphans)} leases; taken over after "
        f"{min(delays.values()):.2f}-{max(delays.values()):.2f} s (lease {LEASE:.0f} s); "
        f"{len(worked)} passes in {stopped_at - killed_at:.1f} s after the kill; "
        f"test ran {time.monotonic() - started:.1f} s"
    )

    # Survivors never lost a lease, and nothing failed.
    for name in names[1:]:
        problems = [
            line
            for line in _log_lines(records, name)
            if line.get("level") in ("warning", "error", "critical", "raw")
        ]
        assert problems == [], problems[:5]
