"""Workers at real volumes: N mailboxes, each with a year of its own mail, a steady arrival.

Run: ``python -m tests.benchmarks.bench_worker --mailboxes N --messages-per-mailbox M
--minutes T [--database URL] [--workers K]`` (defaults: 20 mailboxes, 20,000 messages each,
2,000 of them open threads, 3 minutes; ``--database`` a PostgreSQL URL instead of a fresh SQLite
file). The old 1,000-mailbox run against the Gmail emulator is ``bench_worker_emulator``.

What it builds:

- every mailbox its own history, written straight into the store in batches
  (``Store.insert_messages``): ``M`` messages over the last year, ``--open-threads`` threads
  active in the last 30 days with a client, the rest closed client threads and newsletters;
  inbound client mail carries a body of about 1.5 KB (what the worker would have fetched), and
  the calendar about three meetings a week, half of them with a client;
- a synthetic provider in each worker process (no HTTP): new mail arrives at
  ``--arrivals-per-day`` per mailbox per 8-hour working day (Poisson), half of it client
  replies to open threads, a quarter the rep's answers, the rest new client threads and
  newsletters; the same arrivals in every process, so a mailbox moving to another worker sees
  the same mailbox;
- ``--workers K`` worker processes (``Worker`` with the synthetic ``connect``), poll 60 s, the
  outbox in shadow mode (the history is before go-live, so nothing would be sent anyway).

What it prints (and what it does not count):

- staleness: per mailbox the time between the starts of successive passes in steady state;
- per mailbox-pass: the pass thread's CPU time (``time.thread_time``: not the database
  server's, not other threads'), the SQL statements the pass issued (SQLAlchemy's
  ``before_cursor_execute``: one per execute or executemany batch; not the worker's lease and
  heartbeat statements, which are counted apart per second) and the rows it read (counted in
  the DBAPI cursor's fetch calls);
- each worker's RSS (VmRSS) through steady state, with the language detector loaded;
- each worker process's CPU (every thread) and the whole machine's busy CPU in steady state;
- with ``--workers`` > 1: one worker is killed with SIGKILL, and the time until every mailbox it
  held has had a pass on another worker, and the longest of those first passes, is printed.

With ``BENCH_PROFILE=DIR`` in the environment each worker also profiles its planning passes
(cProfile, which slows them) and writes ``DIR/wK.prof`` when it stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from agent.model import (
    Address,
    Attendee,
    Bodies,
    Event,
    EventSyncResult,
    Interval,
    Message,
    SyncResult,
)
from tests.scaleout_helpers import REPO, write_config

POLL = 60.0
WORKDAY = 8 * 3600.0
CLIENTS_PER_REP = 50

PARAGRAPHS = [
    "Thank you for the quick answer last week. We went through the proposal with our "
    "purchasing team and most of it works for us, but there are a few points we would like "
    "to settle before we sign.",
    "First, the delivery schedule: our warehouse in Hamburg can only take pallets on Tuesdays "
    "and Thursdays between 7:00 and 14:00. Could you confirm that your carrier can keep to "
    "that window, or tell us what it would cost to arrange it?",
    "Second, the price list you sent still shows last year's rates for the spare parts. Our "
    "controller asked whether the 4 % increase applies to those too, or only to new units.",
    "Could you send the updated price list and the draft contract by Friday? We would like to "
    "present it to the board at the meeting on the 14th.",
    "Also, my colleague Anna Berger will take over the day-to-day contact from next month; "
    "please copy her on anything about the rollout.",
    "We also need the safety data sheets for the new cleaning agents in German and English, "
    "and the certificate of conformity for the last batch.",
    "If it helps, we could meet next week to go through the open points. Tuesday or Wednesday "
    "afternoon would suit us best.",
    "Many thanks in advance, and best regards from the whole team.",
]
QUOTED = "\n".join(
    "> " + line
    for line in (
        "On Mon, 9 Nov 2026 at 10:00, Rep wrote:",
        "Dear all, please find attached our offer for the next quarter, with the volumes we",
        "discussed on the phone. Let me know if anything is missing.",
    )
)


# -- the synthetic history ---------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    mailboxes: int
    messages: int
    open_threads: int
    arrivals_per_day: float
    epoch: float  # wall-clock seconds: the history ends here and arrivals start

    @property
    def opened(self) -> int:
        return max(1, min(self.open_threads, self.messages // 10))


def name_of(i: int) -> str:
    return f"m{i:04d}"


def client_address(i: int, j: int) -> Address:
    return Address(f"c{j}@client{i}x{j}.example", f"Client {i}-{j}")


def body_of(provider_id: str) -> str:
    h = int(hashlib.blake2b(provider_id.encode(), digest_size=4).hexdigest(), 16)
    picked = [PARAGRAPHS[(h + k * 3) % len(PARAGRAPHS)] for k in range(5)]
    return "Hello,\n\n" + "\n\n".join(picked) + "\n\nKind regards\n\n" + QUOTED


def _msg(
    i: int,
    pid: str,
    thread: str,
    when: datetime,
    *,
    inbound: bool,
    client: int,
    subject: str,
    reply_to: str = "",
    news: bool = False,
) -> Message:
    own = Address(f"{name_of(i)}@team.example", f"Rep {i}")
    other = (
        Address(f"news@list{client % 7}.example", "Weekly news")
        if news
        else client_address(i, client)
    )
    sender, to = (other, own) if inbound else (own, other)
    return Message(
        mailbox=name_of(i),
        provider_id=pid,
        thread_id=thread,
        message_id=f"<{pid}.{i}@{sender.email.partition('@')[2]}>",
        sender=sender,
        to=(to,),
        date=when,
        subject=("Re: " if reply_to else "") + subject,
        in_reply_to=reply_to,
        references=(reply_to,) if reply_to else (),
        headers={"list-id": "<weekly.news.example>", "precedence": "bulk"} if news else {},
        labels=frozenset({"INBOX"} if inbound else {"SENT"}),
        body=body_of(pid) if inbound and not news else None,
    )


SUBJECTS = ["Order 4711", "Price list", "Delivery schedule", "Contract draft", "Rollout"]


def history(shape: Shape, i: int) -> Iterator[Message]:
    """Mailbox ``i``'s year of mail, oldest thread first."""
    rng = random.Random(i)
    end = datetime.fromtimestamp(shape.epoch, UTC)
    n = 0

    def pid() -> str:
        nonlocal n
        n += 1
        return f"h{n}"

    budget = shape.messages
    news = budget // 10
    for _ in range(news):
        when = end - timedelta(days=rng.uniform(0, 365))
        yield _msg(i, pid(), f"n{n}", when, inbound=True, client=n, subject="News", news=True)
    budget -= news
    opened = shape.opened
    per_open = max(1, min(6, budget // 2 // opened))
    for j in range(opened):  # open threads: active in the last 30 days
        when = end - timedelta(days=rng.uniform(1, 30))
        yield from _thread(i, f"o{j}", when, per_open, j % CLIENTS_PER_REP, end, pid, rng)
    budget -= opened * per_open
    k = 0
    while budget > 0:  # closed threads, over the rest of the year
        size = min(4, budget)
        when = end - timedelta(days=rng.uniform(30, 365))
        yield from _thread(i, f"c{k}", when, size, k % CLIENTS_PER_REP, end, pid, rng)
        budget -= size
        k += 1


def _thread(
    i: int,
    thread: str,
    when: datetime,
    size: int,
    client: int,
    end: datetime,
    pid: Any,
    rng: random.Random,
) -> Iterator[Message]:
    subject = SUBJECTS[client % len(SUBJECTS)]
    last = ""
    # The gaps fit the thread before the history's end, so no messages pile up at one instant.
    room = max((end - timedelta(minutes=5) - when) / size, timedelta(minutes=1))
    for step in range(size):
        m = _msg(
            i,
            pid(),
            thread,
            when,
            inbound=step % 2 == 0,
            client=client,
            subject=subject,
            reply_to=last,
        )
        last = m.message_id
        yield m
        when += min(timedelta(hours=48), room) * rng.uniform(0.5, 1.0)


def calendar(shape: Shape, i: int) -> list[Event]:
    rng = random.Random(-i - 1)
    end = datetime.fromtimestamp(shape.epoch, UTC).replace(minute=0, second=0, microsecond=0)
    own = f"{name_of(i)}@team.example"
    out = []
    for k in range(160):
        start = end + timedelta(days=rng.randint(-330, 30), hours=rng.randint(-6, 6))
        guests = [Attendee(own, "", "ACCEPTED")]
        if k % 2 == 0:
            guests.append(Attendee(client_address(i, k % CLIENTS_PER_REP).email, "", "ACCEPTED"))
        out.append(
            Event(
                name_of(i),
                f"e{k}",
                "Review" if k % 2 == 0 else "Team meeting",
                start,
                start + timedelta(hours=1),
                organizer=own,
                attendees=tuple(guests),
                uid=f"e{k}.{i}@team.example",
            )
        )
    return out


# -- the synthetic provider ---------------------------------------------------------------------
class Synthetic:
    """One mailbox's mail and calendar: the seeded history is already stored; new mail
    arrives at wall-clock times drawn once from the mailbox's own random stream."""

    def __init__(self, shape: Shape, i: int, clock: Any = time.time) -> None:
        self.shape, self.i, self.clock = shape, i, clock
        self.rng = random.Random(1_000_000 + i)
        self.times: list[float] = []
        self.rate = shape.arrivals_per_day / WORKDAY
        self.pending = shape.epoch + self._gap()

    def _gap(self) -> float:
        return self.rng.expovariate(self.rate) if self.rate > 0 else math.inf

    def _arrived(self, upto: float) -> int:
        """How many messages have arrived by ``upto``: the same times in every process."""
        while self.pending <= upto:
            self.times.append(self.pending)
            self.pending += self._gap()
        return len(self.times)

    def _arrival(self, k: int) -> Message:
        rng = random.Random(self.i * 7919 + k)
        when = datetime.fromtimestamp(self.times[k], UTC)
        pid = f"a{k}"
        roll = rng.random()
        opened = self.shape.opened
        j = rng.randrange(opened)
        client = j % CLIENTS_PER_REP
        if roll < 0.5:  # a client's reply in an open thread
            return _msg(
                self.i,
                pid,
                f"o{j}",
                when,
                inbound=True,
                client=client,
                subject="Rollout",
                reply_to=f"<o{j}.{self.i}@x>",
            )
        if roll < 0.75:  # the rep's answer
            return _msg(
                self.i,
                pid,
                f"o{j}",
                when,
                inbound=False,
                client=client,
                subject="Rollout",
                reply_to=f"<o{j}.{self.i}@x>",
            )
        if roll < 0.9:  # a new client thread
            return _msg(
                self.i, pid, f"a{k}", when, inbound=True, client=client, subject="New question"
            )
        return _msg(self.i, pid, f"n-a{k}", when, inbound=True, client=k, subject="News", news=True)

    # MailProvider
    def sync(self, cursor: str | None) -> SyncResult:
        start = int(cursor or 0)
        upto = self._arrived(self.clock())
        got = tuple(_without_body(self._arrival(k)) for k in range(start, upto))
        return SyncResult(got, str(upto))

    def fetch_body(self, provider_id: str) -> str:
        return body_of(provider_id)

    def fetch_bodies(self, provider_ids: Sequence[str]) -> Bodies:
        return Bodies({p: body_of(p) for p in provider_ids}, {})

    def find_sent(self, key: str) -> None:
        return None

    def find_draft(self, key: str) -> None:
        return None

    # CalendarProvider
    def events(self, cursor: str | None) -> EventSyncResult:
        return EventSyncResult((), cursor or "0")

    def busy(self, window: Interval) -> list[Interval]:
        return []


def _without_body(m: Message) -> Message:
    from dataclasses import replace

    return replace(m, body=None)


# -- counting -------------------------------------------------------------------------------
class Counts(threading.local):
    statements = 0
    rows = 0
    active = False


COUNTS = Counts()
OUTSIDE = {"statements": 0}


def _count_rows(n: int) -> None:
    if COUNTS.active:
        COUNTS.rows += n


class CountingSqliteCursor(sqlite3.Cursor):
    def fetchone(self) -> Any:
        row = super().fetchone()
        _count_rows(row is not None)
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = super().fetchmany(size) if size is not None else super().fetchmany()
        _count_rows(len(rows))
        return rows

    def fetchall(self) -> list[Any]:
        rows = super().fetchall()
        _count_rows(len(rows))
        return rows


class CountingSqliteConnection(sqlite3.Connection):
    def cursor(self, factory: Any = CountingSqliteCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)


def counting_engine(url: str) -> Any:
    from sqlalchemy import create_engine, event

    from agent.store import _sqlite_pragmas

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"factory": CountingSqliteConnection})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        import psycopg

        class CountingPgCursor(psycopg.Cursor):  # type: ignore[type-arg]
            def fetchone(self) -> Any:
                row = super().fetchone()
                _count_rows(row is not None)
                return row

            def fetchmany(self, size: int = 0) -> Any:
                rows = super().fetchmany(size)
                _count_rows(len(rows))
                return rows

            def fetchall(self) -> Any:
                rows = super().fetchall()
                _count_rows(len(rows))
                return rows

        engine = create_engine(
            url, pool_pre_ping=True, connect_args={"cursor_factory": CountingPgCursor}
        )

    def before(*_args: Any) -> None:
        if COUNTS.active:
            COUNTS.statements += 1
        else:
            OUTSIDE["statements"] += 1

    event.listen(engine, "before_cursor_execute", before)
    return engine


# -- a worker process ------------------------------------------------------------------------
def run_worker(config: Path, records: Path, name: str, shape: Shape) -> int:
    from agent import language, logs
    from agent.providers.registry import Connection
    from agent.worker import PassResult, Worker

    boxes: dict[str, Synthetic] = {}

    def connect(mailbox: Any, _creds: Any, _vault: Any) -> Connection:
        i = int(mailbox.name[1:])
        box = boxes.get(mailbox.name)
        if box is None:
            box = boxes[mailbox.name] = Synthetic(shape, i)
        return Connection(box, box)  # type: ignore[arg-type]

    worker = Worker(config, owner=f"{name}:{os.getpid()}", connect=connect)
    url = worker.loaded.settings.database.url
    old = worker.store.engine
    worker.store.engine = counting_engine(url)
    old.dispose()
    fd = os.open(records / f"{name}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    work, plan = worker.work, worker._plan
    planning = threading.local()

    profiled = os.environ.get("BENCH_PROFILE")  # a folder: planning passes' profiles go there
    profiles: list[Any] = []

    def timed_plan(*args: Any) -> int | None:
        began = time.perf_counter()
        done = None
        prof = None
        if profiled:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        try:
            done = plan(*args)
            return done
        finally:
            if prof is not None:
                prof.disable()
                profiles.append(prof)
            planning.seconds = time.perf_counter() - began
            planning.deferred = done is None

    def counted(mailbox: str) -> PassResult:
        start = time.time()
        os.write(
            fd, (json.dumps({"mailbox": mailbox, "worker": name, "start": start}) + "\n").encode()
        )
        COUNTS.statements = COUNTS.rows = 0
        COUNTS.active = True
        planning.seconds = None
        planning.deferred = False
        cpu = time.thread_time()
        result = PassResult(mailbox, "error")
        try:
            result = work(mailbox)
            return result
        finally:
            COUNTS.active = False
            line = {
                "mailbox": mailbox,
                "worker": name,
                "start": start,
                "end": time.time(),
                "cpu": time.thread_time() - cpu,
                "statements": COUNTS.statements,
                "rows": COUNTS.rows,
                "plan": None if planning.deferred else planning.seconds,
                "deferred": planning.deferred,
                "new": result.new_messages,
                "result": result.result,
                "outside": OUTSIDE["statements"],
            }
            os.write(fd, (json.dumps(line) + "\n").encode())

    # RSS is measured with the language detector loaded, as a worker whose clients write in
    # languages not on record has it (the synthetic clients all have one, so it would not load).
    language.warm_up(("en", "de", "fr", "es", "pt", "ja", "zh", "ar", "hi", "te"))
    worker.work = counted  # type: ignore[method-assign]
    worker._plan = timed_plan  # type: ignore[method-assign]
    logs.setup(worker.loaded.settings.service.log_format)
    code = worker.run()
    if profiled and profiles:
        import pstats

        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(str(Path(profiled) / f"{name}.prof"))
    return code


# -- set-up -----------------------------------------------------------------------------------
def write_team(
    root: Path, shape: Shape, url: str, concurrency: int, lease: float, whole_plans: int = 1
) -> Path:
    clients = ["name,emails,domains,company,language,time zone,country,tier,owner,tags"]
    boxes = []
    (root / "mail").mkdir(exist_ok=True)
    for i in range(shape.mailboxes):
        for j in range(CLIENTS_PER_REP):
            a = client_address(i, j)
            lang = "de" if j % 3 == 0 else "en"
            clients.append(
                f"{a.name},{a.email},{a.email.partition('@')[2]},{a.name} GmbH,{lang},"
                f"Europe/Berlin,DE,,{name_of(i)}@team.example,"
            )
        boxes.append(
            f'[[mailboxes]]\nname = "{name_of(i)}"\nprovider = "local"\n'
            f'address = "{name_of(i)}@team.example"\nrep_name = "Rep {i}"\n'
            f'zone = "Europe/Berlin"\npath = "mail"\n'
        )
    (root / "clients.csv").write_text("\n".join(clients) + "\n")
    path = write_config(
        root,
        url,
        "Bench",
        boxes,
        poll_seconds=POLL,
        lease_seconds=lease,
        concurrency=concurrency,
        whole_plans=whole_plans,
        shutdown_timeout=20,
    )
    path.write_text(path.read_text() + '\n[outbox]\nmode = "shadow"\n')
    return path


def seed(url: str, shape: Shape) -> tuple[float, int]:
    """Write every mailbox's history into the store; return (seconds, rows)."""
    from agent.store import Store

    store = Store.open(url)
    if store.streams():
        raise SystemExit(f"{url} holds a team already: give the benchmark an empty database")
    began = time.perf_counter()
    rows = 0
    names = [name_of(i) for i in range(shape.mailboxes)]
    store.register_mailboxes(names, datetime.fromtimestamp(shape.epoch, UTC))
    for i in range(shape.mailboxes):
        rows += store.insert_messages(history(shape, i))
        store.insert_events(calendar(shape, i))
        store.save_cursor(name_of(i), "mail", "0")
        store.save_cursor(name_of(i), "calendar", "0")
        if (i + 1) % 50 == 0:
            print(f"  seeded {i + 1:,} mailboxes, {rows:,} messages", flush=True)
    seconds = time.perf_counter() - began
    store.close()
    return seconds, rows


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def read_passes(records: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(records.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                if "end" in item:
                    out.append(item)
    return out


def _db_size(url: str, work: Path) -> float:
    if url.startswith("sqlite"):
        return sum(p.stat().st_size for p in work.glob("followup.db*")) / 1e6
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.scalar(text("SELECT pg_database_size(current_database())"))
    engine.dispose()
    return float(size or 0) / 1e6


# -- the run -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=20)
    parser.add_argument("--messages-per-mailbox", type=int, default=20_000)
    parser.add_argument("--open-threads", type=int, default=2_000)
    parser.add_argument("--arrivals-per-day", type=float, default=50.0)
    parser.add_argument("--minutes", type=float, default=3.0, help="steady-state window")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=60.0, help="service.lease_seconds")
    parser.add_argument("--whole-plans", type=int, default=1, help="service.whole_plans")
    parser.add_argument(
        "--database", default="", help="an empty PostgreSQL database's URL (default: SQLite)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--reuse",
        default="",
        help="a work folder kept from an earlier SQLite run (--keep): run again on its seeded "
        "and partly planned database, as a worker restarted on a new release would",
    )
    parser.add_argument("--run-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--epoch", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape = Shape(
        args.mailboxes,
        args.messages_per_mailbox,
        args.open_threads,
        args.arrivals_per_day,
        args.epoch or time.time(),
    )
    if args.run_worker:
        config, records, name = args.run_worker
        return run_worker(Path(config), Path(records), name, shape)

    if args.reuse:  # the same mailboxes, their history ending when the kept run's began
        work = Path(args.reuse)
        shape = dataclasses.replace(
            shape, epoch=json.loads((work / "shape.json").read_text())["epoch"]
        )
        args.keep = True
        shutil.rmtree(work / "records", ignore_errors=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    records = work / "records"
    records.mkdir()
    url = args.database or f"sqlite:///{work / 'followup.db'}"
    config = write_team(work, shape, url, args.concurrency, args.lease, args.whole_plans)
    if args.reuse:
        seconds, seeded = 0.0, 0
        print(f"reusing {work}: its database as the last run left it", flush=True)
    else:
        (work / "shape.json").write_text(json.dumps(dataclasses.asdict(shape)))
        print(
            f"seeding {args.mailboxes:,} mailboxes x {args.messages_per_mailbox:,} messages "
            f"({shape.opened:,} open threads each) ...",
            flush=True,
        )
        seconds, seeded = seed(url, shape)
        print(f"seeded {seeded:,} messages in {seconds:.1f} s ({seeded / seconds:,.0f} rows/s)")
    size = _db_size(url, work)

    procs: dict[str, subprocess.Popen[bytes]] = {}
    everyone = {name_of(i) for i in range(args.mailboxes)}
    started = time.time()
    for k in range(args.workers):
        name = f"w{k}"
        with (records / f"{name}.log").open("wb") as log:
            procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.benchmarks.bench_worker",
                    "--run-worker",
                    str(config),
                    str(records),
                    name,
                    "--epoch",
                    repr(shape.epoch),
                    "--mailboxes",
                    str(args.mailboxes),
                    "--messages-per-mailbox",
                    str(args.messages_per_mailbox),
                    "--open-threads",
                    str(args.open_threads),
                    "--arrivals-per-day",
                    str(args.arrivals_per_day),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    killed_at = None
    recovery: list[float] = []
    moved_first: list[dict[str, Any]] = []
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        while True:
            # A mailbox is in once its whole plan is made (a pass that found every slot for
            # whole plans taken synced and put its plan off).
            done = {
                p["mailbox"]
                for p in read_passes(records)
                if p["result"] == "ok" and p["plan"] is not None
            }
            if done >= everyone:
                break
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print((records / f"{name}.log").read_text()[-3000:])
                    raise SystemExit(f"worker {name} exited")
            time.sleep(1)
        first_round = time.time() - started
        print(
            f"first round (cold plans): {first_round:.0f} s; settling {POLL:.0f} s ...", flush=True
        )
        time.sleep(POLL)
        steady_from = time.time()
        cpu_from = {name: _cpu_seconds(proc.pid) for name, proc in procs.items()}
        machine_from = _machine_busy()
        print(f"steady state for {args.minutes:g} min ...", flush=True)
        while time.time() - steady_from < args.minutes * 60:
            for name, proc in procs.items():
                samples[name].append(_rss_mb(proc.pid))
            time.sleep(5)
        steady_to = time.time()
        process_cpu = {
            name: (_cpu_seconds(proc.pid) - cpu_from[name]) / (steady_to - steady_from)
            for name, proc in procs.items()
        }
        machine_to = _machine_busy()
        machine_cores = (machine_to[0] - machine_from[0]) / (steady_to - steady_from)
        if args.workers > 1:
            victim = "w0"
            before = read_passes(records)
            held = {
                p["mailbox"] for p in before if p["worker"] == victim and p["start"] > steady_from
            }
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            killed_at = time.time()
            print(f"killed {victim} holding {len(held)} mailboxes; waiting ...", flush=True)
            deadline = killed_at + args.lease + 3 * POLL
            while time.time() < deadline:
                after = [
                    p
                    for p in read_passes(records)
                    if p["worker"] != victim and p["start"] > killed_at
                ]
                first: dict[str, dict[str, Any]] = {}
                for p in sorted(after, key=lambda p: p["start"]):
                    first.setdefault(p["mailbox"], p)
                if held <= set(first):
                    recovery = [first[m]["end"] - killed_at for m in held]
                    moved_first = [first[m] for m in held]
                    break
                time.sleep(1)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    passes = read_passes(records)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)  # the records are read; the database is large
    starts: dict[str, list[float]] = defaultdict(list)
    for p in passes:
        starts[p["mailbox"]].append(p["start"])
    gaps = []
    for mailbox in everyone:
        times = sorted(t for t in starts[mailbox] if t <= steady_to)
        gaps += [b - a for a, b in pairwise(times) if b >= steady_from]
    steady = [
        p
        for p in passes
        if steady_from <= p["start"] and p["end"] <= steady_to and p["result"] == "ok"
    ]
    planned = [p for p in steady if p["plan"] is not None]
    quiet = [p for p in steady if p["plan"] is None]
    outside = {}
    for w in procs:
        mine = sorted((p for p in passes if p["worker"] == w), key=lambda p: p["start"])
        inside = [p for p in mine if steady_from <= p["start"] <= steady_to]
        if len(inside) >= 2:
            outside[w] = (inside[-1]["outside"] - inside[0]["outside"]) / (
                inside[-1]["start"] - inside[0]["start"]
            )

    def stat(rows: list[dict[str, Any]], key: str) -> str:
        values = [float(p[key]) for p in rows if p[key] is not None]
        if not values:
            return "-"
        return f"mean {statistics.fmean(values):8.3f}  p95 {_pct(values, 0.95):8.3f}  max {max(values):8.3f}"

    engine = "PostgreSQL" if args.database else "SQLite"
    print()
    print(
        f"{args.mailboxes:,} mailboxes x {args.messages_per_mailbox:,} messages "
        f"({shape.opened:,} open threads), {args.arrivals_per_day:g} arrivals per mailbox per "
        f"working day, {args.workers} worker(s) x concurrency {args.concurrency}, poll {POLL:.0f} s, "
        f"{engine}; {os.cpu_count()} CPUs"
    )
    print(
        f"seeding: {seeded:,} messages in {seconds:.1f} s; database after seeding {size:,.0f} MB "
        f"({size / max(args.mailboxes, 1) * 1000 / 1000:,.1f} GB per 1,000 mailboxes)"
    )
    print(
        f"first round (every mailbox synced and planned whole, {args.whole_plans} whole plan(s) "
        f"at once per worker): {first_round:.1f} s"
    )
    deferred = sum(1 for p in steady if p.get("deferred"))
    print(
        f"passes in steady state: {len(steady):,} ({len(planned):,} planned, {len(quiet):,} "
        f"sync only, of which {deferred:,} put a whole plan off)"
    )
    if gaps:
        print(
            f"staleness (s): p50 {statistics.median(gaps):.1f}  p95 {_pct(gaps, 0.95):.1f}  max {max(gaps):.1f}"
        )
    for label, rows in (
        ("all passes", steady),
        ("planning passes", planned),
        ("sync-only passes", quiet),
    ):
        if not rows:
            continue
        print(f"{label} ({len(rows):,}):")
        print(f"  CPU per pass (s)         {stat(rows, 'cpu')}")
        print(
            f"  wall per pass (s)        {stat([{**p, 'wall': p['end'] - p['start']} for p in rows], 'wall')}"
        )
        print(f"  statements per pass      {stat(rows, 'statements')}")
        print(f"  rows read per pass       {stat(rows, 'rows')}")
        if label == "planning passes":
            print(f"  planning per pass (s)    {stat(rows, 'plan')}")
    window = steady_to - steady_from
    cpu = sum(p["cpu"] for p in steady) / window if window else 0
    stmts = sum(p["statements"] for p in steady) / window if window else 0
    print(
        f"pass CPU in steady state: {cpu:.2f} cores; pass statements per second: {stmts:.1f} "
        f"({stmts / args.mailboxes * 1000:,.0f} per 1,000 mailboxes)"
    )
    print(
        "worker process CPU in steady state (every thread, garbage collection included): "
        + ", ".join(f"{w} {c:.2f}" for w, c in sorted(process_cpu.items()))
        + f" cores; the whole machine (database server and anything else running) "
        f"{machine_cores:.2f} of {os.cpu_count()} cores busy"
    )
    for w, rate in sorted(outside.items()):
        print(f"  {w}: statements outside passes (leases, heartbeat) {rate:.2f}/s")
    for w, values in sorted(samples.items()):
        values = [v for v in values if not math.isnan(v)]
        if values:
            print(f"RSS {w} (MB): median {statistics.median(values):.0f}  max {max(values):.0f}")
    if killed_at is not None:
        if recovery:
            longest = max((p["end"] - p["start"] for p in moved_first), default=0)
            plans = [p["plan"] for p in moved_first if p["plan"] is not None]
            print(
                f"after killing w0 (lease {args.lease:g} s): its {len(recovery)} mailboxes all served "
                f"within {max(recovery):.1f} s (p50 {statistics.median(recovery):.1f} s); "
                f"longest first pass on the new worker {longest:.2f} s, "
                f"longest planning in it {max(plans, default=0):.2f} s"
            )
        else:
            print("after killing w0: NOT every mailbox was served again within lease + 3 polls")
    print(
        "counted: statements and rows read inside Worker.work (sync, steering, bodies, planning, "
        "outbox); pass CPU of the pass thread only. Not counted: lease/heartbeat statements "
        "(printed apart), the database server's CPU, garbage collection between passes (all of "
        "these are in the worker process and machine CPU lines)."
    )
    problems = []
    for f in records.glob("*.log"):
        problems += [line for line in f.read_text().splitlines() if '"level": "error"' in line]
    print(f"{len(problems)} errors in the workers' logs")
    for line in problems[:5]:
        print("  ", line[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
