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
killed workers, then workers that run to the end. ``python -m pytest`` starts 200 workers (most
of them killed); ``FOLLOWUP_SOAK=1`` starts 2,000 (``FOLLOWUP_CRASH_RUNS`` sets any number,
``FOLLOWUP_CRASH_SEED`` the seed).
"""

from __future__ import annotations

import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import config as config_module
from agent import pipeline
from agent.config import Mailbox
from agent.providers.registry import Connection, open_mailbox
from agent.providers.tokens import CredentialStore, Vault, new_key
from agent.store import DRAFTING, FAILED, NEEDS_ATTENTION, SENDING, SENT, Store
from agent.worker import Worker
from tests.fakes.gmail import raw_message
from tests.worker_helpers import (
    DEMO_MAILBOXES,
    DEMO_NOW,
    Clock,
    GmailWorld,
    gmail_connect,
    preload,
    run_until_done,
    unfinished,
)

# Forking beside the emulators' server threads is the point here: the children never touch them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

SOAK = os.environ.get("FOLLOWUP_SOAK") == "1"
RUNS = int(os.environ.get("FOLLOWUP_CRASH_RUNS") or (2000 if SOAK else 200))
SEED = int(os.environ.get("FOLLOWUP_CRASH_SEED") or 20261125)
PROTOCOL_POINTS = ("before_draft", "after_draft", "sending", "accepted")
POINTS = (*PROTOCOL_POINTS, "anywhere")
LEASE = 5  # seconds
POLL = 60
# Each worker starts one lease later on the clock than the last, so a killed worker's lease has
# expired; mailboxes are worked one at a time, and one that finished its pass is not due again
# for a poll, so a restarted worker redoes only what the kill interrupted. No new note falls
# due in the minutes an episode spans.
STEP = timedelta(seconds=LEASE + 1)
# Episodes run side by side in lanes, one per core (each lane forks one worker at a time).
LANES = int(os.environ.get("FOLLOWUP_CRASH_LANES") or min(2, os.cpu_count() or 1))
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


def wait_child(pid: int, kill_after: float | None, limit: float = 120.0) -> tuple[bool, int]:
    """Wait for the child, killing it after ``kill_after`` seconds if given; return (died of
    SIGKILL, exit code). A child still alive after ``limit`` seconds is killed and reported."""
    started = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        waited = time.monotonic() - started
        if kill_after is not None and waited >= kill_after:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        if waited >= limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"worker {pid} hung for {limit:.0f} s")
        time.sleep(0.002)
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


# The parent's own database reads, and every fork, take turns under one lock: a child forked
# while another lane's thread held a lock inside SQLite or Alembic (whose module-level context
# is not thread-safe either) would inherit it held, and hang.
_parent_db = threading.Lock()


@contextmanager
def parent_store(url: str) -> Iterator[Store]:
    with _parent_db:
        store = Store.open(url)
        try:
            yield store
        finally:
            store.close()


class Harness:
    def __init__(self, world: GmailWorld, config: Path, db: Path, pristine: Path) -> None:
        self.world = world
        self.config = config
        self.db = db
        self.pristine = pristine
        self.url = f"sqlite:///{db}"
        self.tally = Tally()
        self.child_seconds: list[float] = []
        self.due_notes = 3
        self.synced: Path | None = None

    def fresh(self, *, synced: bool = False) -> None:
        """The seeded mailboxes and a database holding only the sign-ins (``synced``: and the
        mailboxes already synced once, so that workers start with an incremental sync)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        self.world.reset()
        if synced and self.synced is None:
            self.synced = self.pristine.with_name("synced.db")
            shutil.copy(self.pristine, self.synced)
            store = Store.open(f"sqlite:///{self.synced}")
            connect = gmail_connect()
            try:
                for mailbox in config_module.load(self.config).mailboxes:
                    conn = connect(mailbox, store, Vault.from_environment())
                    pipeline.sync_mailbox(store, mailbox.name, conn.mail, conn.calendar)
            finally:
                connect.close()
                store.close()
        shutil.copy(self.synced if synced and self.synced else self.pristine, self.db)

    def child(
        self, n: int, point: str | None, nth: int, kill_after: float | None = None
    ) -> tuple[bool, int]:
        started = time.monotonic()
        with _parent_db:
            pid = run_child(self.config, f"worker-{n}", DEMO_NOW + n * STEP, point, nth)
        killed, code = wait_child(pid, kill_after)
        self.child_seconds.append(time.monotonic() - started)
        self.tally.children += 1
        assert code in (-1, 0), f"worker {n} failed with exit code {code}"
        return killed, code

    def owed(self, n: int) -> list[dict[str, Any]]:
        with parent_store(self.url) as store:
            return unfinished(store, DEMO_NOW + n * STEP)

    def episode(self, rng: random.Random, kills: int) -> dict[str, int]:
        """Replay the demo with up to ``kills`` kills, then let workers finish; return the keys
        found in the Sent folders with their counts."""
        self.fresh(synced=True)
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
                owed = len(self.owed(n)) if n else self.due_notes
                nth = rng.randint(1, max(1, min(3, owed)))
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
            # A worker that ran to the end with nothing left owed ends the episode, kills planned
            # or not: with no work left there is no protocol step left to kill it in.
            if not self.owed(n):
                break
        return dict(self.world.sent_keys())

    def reference(self) -> dict[str, str]:
        """Run the demo once in this process with no kill (which also warms every lazy cache
        the forked workers then inherit); return the keys it sent with their kinds."""
        self.fresh(synced=True)
        connect = gmail_connect()  # its own pacing: the children's stays untouched
        try:
            run_until_done(self.config, self.url, DEMO_NOW, STEP, connect, limit=MAX_CHILDREN)
        finally:
            connect.close()
        with parent_store(self.url) as store:
            reference = {r["key"]: r["kind"] for r in store.outbox(statuses=(SENT,))}
        self.due_notes = len(reference)
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
        with parent_store(self.url) as store:
            states = {r["status"] for r in store.outbox()}
        assert expect in states, f"killed at {point} but no row is {expect}: {states}"

    def verify(self, reference: dict[str, str], sent: dict[str, int]) -> None:
        with parent_store(self.url) as store:
            rows = {r["key"]: r for r in store.outbox()}
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


@contextmanager
def make_harness(
    folder: Path, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...] = DEMO_MAILBOXES
) -> Iterator[Harness]:
    """Seeded emulators, a config pointing at them, a database holding their sign-ins (sealed
    with the FOLLOWUP_SECRET_KEY in the environment), and the config preloaded for children."""
    db = folder / "followup.db"
    pristine = folder / "pristine.db"
    with GmailWorld.start(names) as world:
        config = world.write_config(
            folder,
            db_url=f"sqlite:///{db}",
            poll_seconds=POLL,
            lease_seconds=LEASE,
            concurrency=1,
        )
        store = Store.open(f"sqlite:///{pristine}")
        world.connect_all(store, Vault.from_environment())
        store.close()
        preload(monkeypatch, config)
        yield Harness(world, config, db, pristine)


@pytest.fixture
def lanes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Harness]]:
    """One harness per lane: lanes run episodes side by side, each forking its own workers."""
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    with ExitStack() as stack:
        yield [
            stack.enter_context(make_harness(tmp_path / f"lane{i}", monkeypatch))
            for i in range(LANES)
        ]


def merged(tallies: list[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.episodes += t.episodes
        total.children += t.children
        total.kills += t.kills
        total.missed += t.missed
        total.delivered += t.delivered
        total.duplicates += t.duplicates
        total.lost += t.lost
        total.orphans += t.orphans
    return total


INNER = "FOLLOWUP_CRASH_INNER"


def run_isolated(request: pytest.FixtureRequest) -> bool:
    """Run this test again in a fresh interpreter, unless this is that interpreter; return True
    when it ran there (and passed: a failure fails this test with the inner run's output).

    A forked child inherits every lock as it was at the fork, and threads left by earlier tests
    in the same process (servers, pools, drivers) may hold one: the child would wait forever.
    A fresh interpreter has only the harness's own threads, which take turns with the forks."""
    if os.environ.get(INNER) == "1":
        return False
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", request.node.nodeid],
        cwd=request.config.rootpath,
        env={**os.environ, INNER: "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    sys.stdout.write(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return True


def test_kill_anywhere_in_the_send_protocol_sends_every_due_note_exactly_once(
    request: pytest.FixtureRequest,
) -> None:
    if run_isolated(request):
        return
    lanes: list[Harness] = request.getfixturevalue("lanes")
    started = time.monotonic()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The reference, run before any lane forks: the demo with no kill at all.
    references = [lane.reference() for lane in lanes]
    reference = references[0]
    assert all(r == reference for r in references)
    kinds = Counter(reference.values())
    # (Kenji's thank-you waits for Tokyo's next business morning: not due in these rounds.)
    assert {"reminder", "escalation", "proposal"} <= set(kinds), kinds

    errors: list[BaseException] = []

    def run_lane(lane: Harness, rng: random.Random) -> None:
        try:
            while not errors and sum(h.tally.children for h in lanes) < RUNS:
                sent = lane.episode(rng, kills=rng.randint(1, 6))
                lane.verify(reference, sent)
        except BaseException as exc:  # re-raised below, in the test's own thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run_lane, args=(lane, random.Random(SEED + i)))
        for i, lane in enumerate(lanes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]

    t = merged([lane.tally for lane in lanes])
    seconds = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    walls = [w for lane in lanes for w in lane.child_seconds]
    print(
        f"\ncrash harness (seed {SEED}, {len(lanes)} lanes): {t.episodes} episodes, "
        f"{t.children} workers started ({sum(walls) / len(walls):.2f} s each, "
        f"{child_cpu / t.children:.2f} s of CPU), {seconds:.1f} s in all\n"
        f"  kills: {t.killed} (" + ", ".join(f"{p} {t.kills[p]}" for p in POINTS) + ")\n"
        f"  planned kills the worker outran: {sum(t.missed.values())}\n"
        f"  notes due per episode: {len(reference)} ("
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        + ")\n"
        f"  delivered: {t.delivered}, duplicates: {t.duplicates}, lost: {t.lost}, "
        f"orphaned drafts: {t.orphans}"
    )
    assert t.children >= RUNS and t.killed >= RUNS // 2
    assert all(t.kills[p] > 0 for p in POINTS), t.kills
    assert t.duplicates == 0 and t.lost == 0 and t.orphans == 0
    assert t.delivered == len(reference) * t.episodes


# -- kills during a full sync -----------------------------------------------------------------
def test_kill_during_full_sync_then_restart_syncs_everything_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Kill the worker while it lists and reads the mailbox (several batches of metadata), with
    mail arriving between the kills: the restart lists again, and the store ends up with every
    message exactly once, its cursor set, nothing doubled."""
    if run_isolated(request):
        return
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    with make_harness(tmp_path, monkeypatch, ("asha",)) as harness:
        full_sync_killed(harness)


def full_sync_killed(harness: Harness) -> None:
    harness.fresh()
    asha = harness.world.emulators["asha"]
    old = datetime(2026, 9, 1, 9, 0, tzinfo=DEMO_NOW.tzinfo)  # too old to fetch bodies for
    for i in range(1, 151):
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
    for n, nth in enumerate([1, rng.randint(20, 70), rng.randint(80, 140)]):
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
    # A fresh worker finishes, and the next round picks up what arrived during its listing.
    connect = gmail_connect()
    try:
        end = run_until_done(harness.config, harness.url, DEMO_NOW + 3 * STEP, STEP, connect)
        later = Clock(end + timedelta(seconds=POLL * 1.2))
        Worker(harness.config, owner="sync-again", clock=later, connect=connect).run(once=True)
    finally:
        connect.close()

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
