"""Crash anywhere: SIGKILL the worker inside the send protocol and during syncs, restart it on
the same database, and check that every due note went out exactly once.

The Gmail emulators run in this process on threads, so their state outlives the workers. Each
worker is a forked child building a real ``Worker`` on the same SQLite file, reaching the
emulators through the real Gmail adapter over HTTP; its provider is wrapped in a pass-through
that SIGKILLs its own process at the chosen point of the chosen call:

- ``before_draft``: the outbox row says ``drafting``, no draft exists yet;
- ``after_draft``: the draft exists, the row still says ``drafting``;
- ``sending``: the row says ``sending``, nothing has been sent;
- ``accepted``: Gmail accepted the send, the row still says ``sending`` (never ``sent``);
- ``anywhere``: the parent kills the child at a random moment of its life.

An episode replays the demo from scratch: a fresh database and freshly seeded mailboxes, a few
killed workers, then workers that run to the end. ``python -m pytest`` runs 200 kills;
``FOLLOWUP_SOAK=1`` runs 2,000 (``FOLLOWUP_CRASH_KILLS`` sets any number,
``FOLLOWUP_CRASH_SEED`` the seed).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import Mailbox
from agent.providers.registry import Connection, open_mailbox
from agent.providers.tokens import CredentialStore, Vault, new_key
from agent.store import DRAFTING, FAILED, NEEDS_ATTENTION, SENDING, SENT, Store
from agent.worker import Worker
from tests.fakes.gmail import raw_message
from tests.worker_helpers import (
    DEMO_NOW,
    GmailWorld,
    gmail_connect,
    preload,
    run_until_done,
    unfinished,
)

SOAK = os.environ.get("FOLLOWUP_SOAK") == "1"
KILLS = int(os.environ.get("FOLLOWUP_CRASH_KILLS") or (2000 if SOAK else 200))
SEED = int(os.environ.get("FOLLOWUP_CRASH_SEED") or 20261125)
PROTOCOL_POINTS = ("before_draft", "after_draft", "sending", "accepted")
POINTS = (*PROTOCOL_POINTS, "anywhere")
LEASE = 5  # seconds
POLL = 10
# Each worker starts one poll later on the clock than the last: a killed worker's lease has
# expired and the mailboxes it finished are due again. No new note falls due in those minutes.
STEP = timedelta(seconds=POLL * 1.1 + 1)
MAX_CHILDREN = 40  # per episode; far more than any episode needs


# -- the kill switch, inside the child ------------------------------------------------------
class KillSwitch:
    """SIGKILL this process at the ``nth`` time the protocol reaches ``point``."""

    def __init__(self, point: str | None, nth: int) -> None:
        self.point = point
        self.nth = nth
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def reach(self, point: str) -> None:
        with self.lock:
            self.seen[point] += 1
            hit = point == self.point and self.seen[point] == self.nth
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)


class KillingMail:
    """The real Gmail provider, passed through, with the kill switch at the send protocol's
    four points. Everything else (sync, find_sent, find_draft, bodies) goes straight through."""

    def __init__(self, inner: Any, switch: KillSwitch) -> None:
        self._inner = inner
        self._switch = switch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def draft(self, message: Any, *, key: str, thread_id: str = "") -> str:
        self._switch.reach("before_draft")
        draft_id: str = self._inner.draft(message, key=key, thread_id=thread_id)
        self._switch.reach("after_draft")
        return draft_id

    def send_draft(self, draft_id: str) -> Any:
        self._switch.reach("sending")
        sent = self._inner.send_draft(draft_id)
        self._switch.reach("accepted")
        return sent


def killing_connect(switch: KillSwitch) -> Callable[[Mailbox, CredentialStore, Vault | None], Any]:
    def connect(m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
        conn = open_mailbox(m, creds, vault)  # the default: sealed grant, real adapter
        return Connection(KillingMail(conn.mail, switch), conn.calendar)

    return connect


def run_child(config: Path, owner: str, now: datetime, point: str | None, nth: int) -> int:
    """Fork a worker that runs one round at ``now``; return its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        logging.disable(logging.ERROR)  # expected warnings of reconciliation and backoff
        switch = KillSwitch(point, nth)
        worker = Worker(config, owner=owner, clock=lambda: now, connect=killing_connect(switch))
        worker.run(once=True)
    except BaseException:  # the child must never return into pytest
        traceback.print_exc()
        code = 70
    finally:
        os._exit(code)


def wait_child(pid: int, kill_after: float | None) -> tuple[bool, int]:
    """Wait for the child (killing it after ``kill_after`` seconds if given);
    return (died of SIGKILL, exit code)."""
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    else:
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGKILL, -1
    return False, os.WEXITSTATUS(status)


# -- the harness, in the parent -------------------------------------------------------------
@dataclass
class Tally:
    episodes: int = 0
    children: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)  # planned kills the child outran
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    orphans: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def killed(self) -> int:
        return sum(self.kills.values())


class Harness:
    def __init__(self, world: GmailWorld, config: Path, db: Path, pristine: Path) -> None:
        self.world = world
        self.config = config
        self.db = db
        self.pristine = pristine
        self.url = f"sqlite:///{db}"
        self.tally = Tally()
        self.child_seconds: list[float] = []

    def fresh(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        shutil.copy(self.pristine, self.db)
        self.world.reset()

    def child(
        self, n: int, point: str | None, nth: int, kill_after: float | None = None
    ) -> tuple[bool, int]:
        started = time.monotonic()
        pid = run_child(self.config, f"worker-{n}", DEMO_NOW + n * STEP, point, nth)
        killed, code = wait_child(pid, kill_after)
        self.child_seconds.append(time.monotonic() - started)
        self.tally.children += 1
        assert code in (-1, 0), f"worker {n} failed with exit code {code}"
        return killed, code

    def owed(self, n: int) -> list[dict[str, Any]]:
        store = Store.open(self.url)
        try:
            return unfinished(store, DEMO_NOW + n * STEP)
        finally:
            store.close()

    def episode(self, rng: random.Random, kills: int) -> dict[str, int]:
        """Replay the demo with up to ``kills`` kills, then let workers finish; return the keys
        found in the Sent folders with their counts."""
        self.fresh()
        self.tally.episodes += 1
        n = 0
        done_kills = 0
        while True:
            assert n < MAX_CHILDREN, f"work left after {n} workers: {self.owed(n)}"
            point: str | None = None
            nth = 0
            kill_after = None
            if done_kills < kills:
                point = rng.choice(POINTS)
                nth = rng.randint(1, 3)
                if point == "anywhere":
                    kill_after = rng.uniform(0.0, self.typical_child())
            killed, _ = self.child(n, None if point == "anywhere" else point, nth, kill_after)
            n += 1
            if killed:
                assert point is not None, "a worker died of SIGKILL nobody sent"
                done_kills += 1
                self.tally.kills[point] += 1
                if point in PROTOCOL_POINTS:
                    self.check_left_mid_protocol(n, point)
                continue
            if point is not None:
                self.tally.missed[point] += 1
            if done_kills >= kills and not self.owed(n):
                break
        return dict(self.world.sent_keys())

    def reference(self) -> dict[str, str]:
        """Run the demo once in this process with no kill (which also warms every lazy cache
        the forked workers then inherit); return the keys it sent with their kinds."""
        self.fresh()
        connect = gmail_connect()  # its own pacing: the children's stays untouched
        try:
            run_until_done(self.config, self.url, DEMO_NOW, STEP, connect, limit=MAX_CHILDREN)
        finally:
            connect.close()
        store = Store.open(self.url)
        try:
            reference = {r["key"]: r["kind"] for r in store.outbox(statuses=(SENT,))}
        finally:
            store.close()
        assert self.world.sent_keys() == dict.fromkeys(reference, 1)
        return reference

    def typical_child(self) -> float:
        if not self.child_seconds:
            return 1.0
        ordered = sorted(self.child_seconds)
        return ordered[len(ordered) // 2]

    def check_left_mid_protocol(self, n: int, point: str) -> None:
        """A kill at a protocol point leaves a row in the state that point implies."""
        expect = DRAFTING if point in ("before_draft", "after_draft") else SENDING
        store = Store.open(self.url)
        try:
            states = {r["status"] for r in store.outbox()}
        finally:
            store.close()
        assert expect in states, f"killed at {point} but no row is {expect}: {states}"

    def verify(self, reference: dict[str, str], sent: dict[str, int]) -> None:
        store = Store.open(self.url)
        try:
            rows = {r["key"]: r for r in store.outbox()}
        finally:
            store.close()
        t = self.tally
        dupes = {k: c for k, c in sent.items() if c > 1}
        lost = sorted(set(reference) - set(sent))
        orphans = set(self.world.draft_keys()) & set(sent)
        t.delivered += sum(1 for k in sent if k in reference)
        t.duplicates += sum(c - 1 for c in dupes.values())
        t.lost += len(lost)
        t.orphans += len(orphans)
        for key in sent:
            t.by_kind[reference.get(key, "unexpected")] += 1
        assert not dupes, f"sent more than once: {dupes}"
        assert not lost, f"never sent: {[(k, rows[k]['status']) for k in lost if k in rows]}"
        assert set(sent) == set(reference), f"sent but not due: {set(sent) - set(reference)}"
        assert not orphans, f"drafts left behind for sent notes: {orphans}"
        stuck = {
            k: r["status"] for k, r in rows.items() if r["status"] in (NEEDS_ATTENTION, FAILED)
        }
        assert not stuck, f"rows a person would have to check: {stuck}"
        assert all(rows[k]["status"] == SENT for k in reference)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    db = tmp_path / "followup.db"
    pristine = tmp_path / "pristine.db"
    with GmailWorld.start() as world:
        config = world.write_config(
            tmp_path, db_url=f"sqlite:///{db}", poll_seconds=POLL, lease_seconds=LEASE
        )
        store = Store.open(f"sqlite:///{pristine}")
        world.connect_all(store, Vault.from_environment())
        store.close()
        preload(monkeypatch, config)
        yield Harness(world, config, db, pristine)


def test_kill_anywhere_in_the_send_protocol_sends_every_due_note_exactly_once(
    harness: Harness,
) -> None:
    started = time.monotonic()
    reference = harness.reference()
    kinds = Counter(reference.values())
    assert {"reminder", "escalation", "thank_you", "proposal"} <= set(kinds), kinds

    rng = random.Random(SEED)
    while harness.tally.killed < KILLS:
        sent = harness.episode(rng, kills=rng.randint(1, 4))
        harness.verify(reference, sent)

    t = harness.tally
    seconds = time.monotonic() - started
    per_child = sum(harness.child_seconds) / len(harness.child_seconds)
    print(
        f"\ncrash harness (seed {SEED}): {t.episodes} episodes, {t.children} workers started "
        f"({per_child:.2f} s each), {seconds:.1f} s in all\n"
        f"  kills: {t.killed} (" + ", ".join(f"{p} {t.kills[p]}" for p in POINTS) + ")\n"
        f"  planned kills the worker outran: {sum(t.missed.values())}\n"
        f"  notes due per episode: {len(reference)} ("
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        + ")\n"
        f"  delivered: {t.delivered}, duplicates: {t.duplicates}, lost: {t.lost}, "
        f"orphaned drafts: {t.orphans}"
    )
    assert t.killed >= KILLS
    assert all(t.kills[p] > 0 for p in POINTS), t.kills
    assert t.duplicates == 0 and t.lost == 0 and t.orphans == 0
    assert t.delivered == len(reference) * t.episodes


# -- kills during a full sync -----------------------------------------------------------------
def test_kill_during_full_sync_then_restart_syncs_everything_once(harness: Harness) -> None:
    """Kill the worker while it lists and reads the mailbox (several batches of metadata), with
    mail arriving between the kills: the restart lists again, and the store ends up with every
    message exactly once, its cursor set, nothing doubled."""
    harness.fresh()
    asha = harness.world.emulators["asha"]
    old = datetime(2026, 9, 1, 9, 0, tzinfo=DEMO_NOW.tzinfo)  # too old to fetch bodies for
    for i in range(1, 301):
        asha.deliver(raw_message(1000 + i, to="asha@acme.example", date=old + timedelta(hours=i)))
    target: dict[str, int] = {}

    def kill_at(signature: str) -> None:
        pid, nth = target.get("pid"), target.get("nth", 0)
        if pid and signature.startswith("GET /gmail/v1/users/me/messages/"):
            target["seen"] = target.get("seen", 0) + 1
            if target["seen"] == nth:
                target.pop("pid")
                os.kill(pid, signal.SIGKILL)

    asha.on_call = kill_at
    rng = random.Random(SEED)
    kills = 0
    for n, nth in enumerate([1, rng.randint(40, 120), rng.randint(150, 250), 290]):
        target.update(seen=0, nth=nth)
        pid = run_child(harness.config, f"sync-{n}", DEMO_NOW + n * STEP, None, 0)
        target["pid"] = pid
        killed, _ = wait_child(pid, None)
        assert killed, f"the worker finished before the {nth}th read"
        kills += 1
        store = Store.open(harness.url)
        assert store.cursor("asha") is None  # the listing never committed half a mailbox
        store.close()
        asha.deliver(raw_message(5000 + n, to="asha@acme.example", date=old))
    target.clear()
    n = 4
    pid = run_child(harness.config, "sync-final", DEMO_NOW + n * STEP, None, 0)
    assert wait_child(pid, None) == (False, 0)
    # One more round picks up what arrived during the final listing, if anything did.
    pid = run_child(harness.config, "sync-again", DEMO_NOW + (n + 2) * STEP * 2, None, 0)
    assert wait_child(pid, None) == (False, 0)

    store = Store.open(harness.url)
    try:
        stored = [m.provider_id for m in store.messages("asha")]
        with asha.lock:
            expected = {i for i, m in asha.messages.items() if "DRAFT" not in m.labels}
        assert len(stored) == len(set(stored)), "a message was stored twice"
        assert set(stored) == expected
        assert store.cursor("asha") is not None
    finally:
        store.close()
    print(
        f"\nfull sync killed {kills} times mid-listing; the restart stored "
        f"{len(stored)} messages, each once"
    )
