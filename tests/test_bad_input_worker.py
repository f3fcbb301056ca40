"""A stuck pass makes the worker unhealthy and gives its mailbox's lease up; the rest go on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from agent.config import Mailbox
from agent.providers.registry import Connection, open_mailbox
from agent.providers.tokens import CredentialStore, Vault
from agent.store import BACKOFF, INCREMENTAL
from agent.store import tables as t
from agent.worker import Worker
from tests.test_worker import NOW, demo_config

__all__ = ["demo_config"]

STUCK = "lukas"


class _Hanging:
    """A real provider whose sync waits on ``gate``: a pass stuck in a call that never ends."""

    def __init__(self, real: Any, gate: threading.Event) -> None:
        self._real, self._gate = real, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sync(self, cursor: str | None) -> Any:
        self._gate.wait(60)
        return self._real.sync(cursor)


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_stuck_pass_makes_healthz_unhealthy_and_gives_its_lease_up(demo_config: Path) -> None:
    gate = threading.Event()

    def connect(m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
        conn = open_mailbox(m, creds, vault)
        return replace(conn, mail=_Hanging(conn.mail, gate)) if m.name == STUCK else conn

    worker = Worker(demo_config, clock=lambda: NOW, connect=connect)
    pool = ThreadPoolExecutor(4)
    try:
        worker._round(pool, wait=False)
        _wait_for(lambda: all(f.done() for n, f in worker.in_flight.items() if n != STUCK))
        assert all(worker.health().values())  # a pass in flight is not yet a stuck one
        worker.stuck_after = timedelta(seconds=0.5)
        _wait_for(lambda: worker.stuck() == [STUCK])

        assert worker.health()["passes"] is False
        assert worker.give_up_stuck() == [STUCK]
        streams = {r["mailbox"]: r for r in worker.store.streams() if r["kind"] == "mail"}
        assert streams[STUCK]["lease_owner"] is None and streams[STUCK]["state"] == BACKOFF
        assert "stuck" in streams[STUCK]["last_error"]
        assert all(streams[n]["state"] == INCREMENTAL for n in streams if n != STUCK)

        gate.set()  # the call returns at last: the pass finds its lease gone and stops there
        assert worker.in_flight[STUCK].result(timeout=30).result == "lost"
        assert all(worker.health().values())
    finally:
        gate.set()
        pool.shutdown(wait=True)
        worker.store.close()


def test_a_pass_that_outlives_its_lease_counts_as_a_failure_and_keeps_the_backoff(
    demo_config: Path,
) -> None:
    """Leased again while its earlier pass still runs here, a mailbox backs off one step further
    than before, not from the start: the running pass will find its lease gone and record none
    of its failures."""
    gate = threading.Event()
    now = [NOW]

    def connect(m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
        conn = open_mailbox(m, creds, vault)
        return replace(conn, mail=_Hanging(conn.mail, gate)) if m.name == STUCK else conn

    worker = Worker(demo_config, clock=lambda: now[0], connect=connect)
    pool = ThreadPoolExecutor(4)
    try:
        with worker.store.tx() as conn:  # two failures already behind it
            conn.execute(update(t.streams).where(t.streams.c.mailbox == STUCK).values(failures=2))
        worker._round(pool, wait=False)
        _wait_for(lambda: all(f.done() for n, f in worker.in_flight.items() if n != STUCK))
        now[0] += timedelta(seconds=worker.loaded.settings.service.lease_seconds + 1)
        with worker.store.tx() as conn:  # due again, its lease expired while the pass hangs
            conn.execute(
                update(t.streams).where(t.streams.c.mailbox == STUCK).values(next_run_at=now[0])
            )
        worker._round(pool, wait=False)

        streams = {r["mailbox"]: r for r in worker.store.streams() if r["kind"] == "mail"}
        assert streams[STUCK]["state"] == BACKOFF and streams[STUCK]["failures"] == 3
        assert streams[STUCK]["lease_owner"] is None
        assert "stuck" in streams[STUCK]["last_error"]
    finally:
        gate.set()
        pool.shutdown(wait=True)
        worker.store.close()
