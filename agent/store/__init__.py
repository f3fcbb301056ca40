"""The store: the only place that knows SQL.

SQLite (a file, in WAL mode) serves one worker; PostgreSQL (``postgresql+psycopg://``) serves
several, which lease streams with ``FOR UPDATE SKIP LOCKED``. ``Store.open`` migrates the schema
to the newest revision before handing the store out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent.errors import ConfigError, Problem
from agent.logs import redact
from agent.model import (
    Action,
    ActionKind,
    Address,
    Attendee,
    Event,
    EventSyncResult,
    Message,
    SyncResult,
    utc,
)
from agent.store import tables as t

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision under migrations/versions; tests/test_store.py checks it against Alembic's
# own idea of the head, so a new migration cannot be added without moving this too.
SCHEMA_HEAD = "0005"

# Outbox states. A row moves forward only; the send protocol is in agent/outbox.py.
PLANNED = "planned"
AWAITING_APPROVAL = "awaiting_approval"
DRAFTING = "drafting"
DRAFTED = "drafted"
SENDING = "sending"
SENT = "sent"
CANCELLED = "cancelled"
NEEDS_ATTENTION = "needs_attention"
FAILED = "failed"
SHADOWED = "shadowed"  # shadow mode: rendered and recorded, what would have gone out
OPEN_STATES = (PLANNED, AWAITING_APPROVAL, DRAFTING, DRAFTED, SENDING)

GO_LIVE = "go_live"  # the decision that records a mailbox's go-live point

# Stream states. A mailbox's mail and calendar streams are worked together under one lease.
NEW = "new"
FULL_SYNC = "full_sync"
INCREMENTAL = "incremental"
BACKOFF = "backoff"
NEEDS_RECONNECT = "needs_reconnect"
ACCESS_DENIED = "access_denied"  # refused for what an administrator must fix; retried hourly
DISABLED = "disabled"
PARKED_STATES = (NEEDS_RECONNECT, DISABLED)
STREAM_KINDS = ("mail", "calendar")
WRITE_CHUNK = 500  # rows per batched statement (executemany / multi-row insert)
IN_CHUNK = 1000  # ids per IN (...) list


def wall_clock() -> datetime:
    """The system's time: the default clock of a store opened outside a worker or a test."""
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    # SQLite's default page cache is 2 MB per connection, and a worker's pool keeps several
    # connections open for months. In WAL mode the kernel's page cache serves the rest, so each
    # connection keeps 512 KiB: room for the tables' inner pages, not for a copy of the mail.
    cur.execute("PRAGMA cache_size=-512")
    cur.close()


def _create_private(database: str | None) -> None:
    """Create a new SQLite database file readable by its owner only (0600), whatever the umask.

    It holds sealed tokens and other people's mail. SQLite gives the ``-wal`` and ``-shm``
    files it makes beside it the database file's own permissions, so they are private too. An
    existing file is left as its owner set it."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a folder that does not exist: SQLite's own error says it better
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits away, never added them
    finally:
        os.close(fd)


def _addr_json(addrs: Iterable[Address]) -> list[list[str]]:
    return [[a.email, a.name] for a in addrs]


def _addr_load(rows: Iterable[Sequence[str]]) -> tuple[Address, ...]:
    return tuple(Address(email, name) for email, name in rows)


def _action_json(action: Action) -> dict[str, Any]:
    data = asdict(action)
    data["due"] = action.due.isoformat()
    data["to"] = _addr_json(action.to)
    data["references"] = list(action.references)
    data["context"] = _jsonable(dict(action.context))
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        if set(value) == {"$td"}:
            return timedelta(seconds=value["$td"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def action_from_json(data: dict[str, Any]) -> Action:
    return Action(
        key=data["key"],
        kind=ActionKind(data["kind"]),
        mailbox=data["mailbox"],
        due=datetime.fromisoformat(data["due"]),
        to=_addr_load(data["to"]),
        language=data["language"],
        template=data["template"],
        reason=data["reason"],
        client=data.get("client", ""),
        thread_id=data.get("thread_id", ""),
        rule=data.get("rule", ""),
        reply_to_message_id=data.get("reply_to_message_id", ""),
        references=tuple(data.get("references", ())),
        subject=data.get("subject", ""),
        context=_unjson(data.get("context", {})),
        mode=data.get("mode", ""),
    )


def _check_reachable(url: str) -> None:
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return
    folder = Path(url.removeprefix("sqlite:///")).parent
    if not folder.is_dir():
        raise ConfigError(
            [
                Problem(
                    "database.url",
                    "",
                    f"the folder {folder} for the SQLite file does not exist: create it "
                    f"(mkdir -p {folder}) or point database.url elsewhere",
                )
            ]
        )


class Synced(int):
    """What :meth:`Store.apply_sync` returns: the number of messages new to the store, with
    ``touched``, the number of threads whose mail came, changed (labels too) or went."""

    touched: int

    def __new__(cls, new: int, touched: int) -> Synced:
        synced = super().__new__(cls, new)
        synced.touched = touched
        return synced


class Store:
    """The agent's state. Every time it records on its own (an update's stamp, the moment a
    fresh sign-in wakes a mailbox) comes from ``clock``: the worker's, a test's, or the wall
    clock by default, so a replay or a test never mixes two clocks."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = wall_clock) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], datetime] = wall_clock) -> Store:
        """Open (and migrate) the database at ``url``. A URL that cannot work raises
        ``ConfigError`` with the fix: a SQLite file in a folder that does not exist, PostgreSQL
        without its driver."""
        _check_reachable(url)
        try:
            engine = create_engine(url, future=True, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                [
                    Problem(
                        "database.url",
                        "",
                        f"PostgreSQL needs its driver ({exc.name} is not installed): "
                        "pip install 'followup-agent[postgres]'",
                    )
                ]
            ) from exc
        if engine.dialect.name == "sqlite":
            _create_private(engine.url.database)
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, clock=clock)
        store.migrate()
        return store

    def migrate(self) -> None:
        """Bring the schema to the newest migration.

        A database already there is recognised by its ``alembic_version`` row without loading
        Alembic, which would keep Alembic, Mako and Pygments (some 12 MB) resident in a worker
        for the whole of its life to read one row.
        """
        if self.schema_version() == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_version(self) -> str | None:
        """The migration the database is at; None for an empty database (or several heads)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except DBAPIError:
            return None
        return str(rows[0][0]) if len(rows) == 1 else None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except Exception:
            return False

    # -- messages -----------------------------------------------------------------------
    def apply_sync(self, mailbox: str, result: SyncResult, *, at: datetime | None = None) -> Synced:
        """Upsert the messages, drop deletions and advance the cursor in one transaction.

        A full listing also removes stored messages the listing no longer has. Returns the
        number of messages new to the store (and, as ``touched``, of threads that changed).
        """
        at = at or self.clock()
        with self.tx() as conn:
            listed = [m.provider_id for m in result.messages]
            pid, tid = t.messages.c.provider_id, t.messages.c.thread_id
            if result.full:
                known = {
                    r[0]: r[1]
                    for r in conn.execute(select(pid, tid).where(t.messages.c.mailbox == mailbox))
                }
            else:  # an increment: only its own ids are looked up, not the whole mailbox
                known = {}
                for i in range(0, len(listed), IN_CHUNK):
                    chosen = select(pid, tid).where(
                        t.messages.c.mailbox == mailbox, pid.in_(listed[i : i + IN_CHUNK])
                    )
                    known.update({r[0]: r[1] for r in conn.execute(chosen)})
            existing = set(known)
            rows = {m.provider_id: _message_row(m) for m in result.messages}  # the last counts
            fresh = {p: row for p, row in rows.items() if p not in existing}
            # Known messages are rewritten (and their threads planned again) only when the
            # listing differs from what is stored: a provider that lists everything every time
            # (a Maildir) costs reads, not writes.
            stored: dict[str, Any] = {}
            again = [p for p in rows if p in existing]
            for i in range(0, len(again), IN_CHUNK):
                chosen = select(t.messages).where(
                    t.messages.c.mailbox == mailbox, pid.in_(again[i : i + IN_CHUNK])
                )
                stored.update({r.provider_id: r._mapping for r in conn.execute(chosen)})
            changed = {p: rows[p] for p in again if p not in stored or _differs(rows[p], stored[p])}
            self._insert_messages(conn, list(fresh.values()))
            self._update_messages(conn, mailbox, list(changed.values()))
            new = len(fresh)
            gone = set(result.deleted)
            if result.full:
                gone |= (
                    existing
                    - {m.provider_id for m in result.messages}
                    - {pid for pid, _ in result.skipped}
                )
            if gone:
                conn.execute(
                    delete(t.messages).where(
                        t.messages.c.mailbox == mailbox, t.messages.c.provider_id.in_(gone)
                    )
                )
            # The threads whose mail changed are planned again at the next planning pass.
            touched = {row["thread_id"] for row in [*fresh.values(), *changed.values()]}
            touched |= {known[p] for p in changed.keys() | gone if p in known}
            _touch_threads(conn, mailbox, touched)
            for skipped_id, reason in result.skipped:
                self._record_skipped(conn, mailbox, "mail", skipped_id, reason, at)
            self._save_cursor(conn, mailbox, "mail", result.cursor, at)
        return Synced(new, len(touched))

    @staticmethod
    def _insert_messages(conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert new message rows, one statement per :data:`WRITE_CHUNK` rows."""
        for i in range(0, len(rows), WRITE_CHUNK):
            conn.execute(insert(t.messages), rows[i : i + WRITE_CHUNK])

    @staticmethod
    def _update_messages(conn: Connection, mailbox: str, rows: list[dict[str, Any]]) -> None:
        """Update known messages with one executemany per shape: a row without a body keeps
        the stored body (the provider listed headers only)."""
        if not rows:
            return
        fields = [k for k in rows[0] if k not in ("mailbox", "provider_id", "body")]
        for with_body in (False, True):
            batch = [
                {"b_mailbox": mailbox, "b_pid": r["provider_id"], **{k: r[k] for k in fields}}
                | ({"body": r["body"]} if with_body else {})
                for r in rows
                if (r["body"] is not None) is with_body
            ]
            if not batch:
                continue
            names = fields + (["body"] if with_body else [])
            stmt = (
                update(t.messages)
                .where(
                    t.messages.c.mailbox == bindparam("b_mailbox"),
                    t.messages.c.provider_id == bindparam("b_pid"),
                )
                .values({k: bindparam(k) for k in names})
            )
            for i in range(0, len(batch), WRITE_CHUNK):
                conn.execute(stmt, batch[i : i + WRITE_CHUNK])

    def insert_messages(self, messages: Iterable[Message]) -> int:
        """Insert messages the store does not hold yet, in batches: what a bulk import (or a
        benchmark seeding years of mail) uses instead of a provider's sync. Returns the count."""
        count = 0
        rows: list[dict[str, Any]] = []
        with self.tx() as conn:
            for m in messages:
                rows.append(_message_row(m))
                if len(rows) >= WRITE_CHUNK:
                    self._insert_messages(conn, rows)
                    count += len(rows)
                    rows = []
            self._insert_messages(conn, rows)
        return count + len(rows)

    def bodiless_threads(
        self, mailbox: str, since: datetime, own: Iterable[str]
    ) -> tuple[list[Message], list[Message]]:
        """The messages of ``mailbox`` dated ``since`` or later that have no body yet and were
        not sent from one of the ``own`` addresses, and every message of the threads those are
        in, both oldest first, in one read."""
        mine = sorted({a.lower() for a in own})
        m = t.messages.c
        inner = t.messages.alias("lacking")
        threads = select(inner.c.thread_id).where(
            inner.c.mailbox == mailbox,
            inner.c.date >= since,
            inner.c.body.is_(None),
            func.lower(inner.c.sender).not_in(mine),
        )
        q = (
            select(t.messages)
            .where(m.mailbox == mailbox, m.thread_id.in_(threads))
            .order_by(m.date, m.provider_id)
        )
        with self.engine.connect() as conn:
            context = [_message_from_row(r._mapping) for r in conn.execute(q)]
        missing = [
            x
            for x in context
            if x.body is None and x.date >= since and x.sender.email.lower() not in mine
        ]
        return missing, context

    def insert_events(self, events: Iterable[Event]) -> None:
        """Insert events in one batch (a bulk import; the calendar's sync replaces them)."""
        rows = [_event_row(e) for e in events]
        with self.tx() as conn:
            for i in range(0, len(rows), WRITE_CHUNK):
                conn.execute(insert(t.events), rows[i : i + WRITE_CHUNK])
            _calendar_changed(conn, {r["mailbox"] for r in rows})

    def save_cursor(self, mailbox: str, kind: str, cursor: str) -> None:
        """Set a stream's cursor (a bulk import that brought the store up to ``cursor``)."""
        with self.tx() as conn:
            self._save_cursor(conn, mailbox, kind, cursor, self.clock())

    def messages(self, mailbox: str | None = None, since: datetime | None = None) -> list[Message]:
        q = select(t.messages).order_by(t.messages.c.date, t.messages.c.provider_id)
        if mailbox:
            q = q.where(t.messages.c.mailbox == mailbox)
        if since:
            q = q.where(t.messages.c.date >= since)
        with self.engine.connect() as conn:
            return [_message_from_row(r._mapping) for r in conn.execute(q)]

    def message_count(self, mailbox: str) -> int:
        """How many messages the store holds for ``mailbox``."""
        q = select(func.count()).where(t.messages.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return int(conn.scalar(q) or 0)

    def set_body(self, mailbox: str, provider_id: str, body: str) -> None:
        self.set_bodies(mailbox, {provider_id: body})

    def set_bodies(self, mailbox: str, bodies: Mapping[str, str]) -> None:
        """Store several fetched bodies in one transaction, one statement per batch."""
        rows = [
            {"b_mailbox": mailbox, "b_pid": pid, "body": _storable(body)}
            for pid, body in bodies.items()
        ]
        if not rows:
            return
        stmt = (
            update(t.messages)
            .where(
                t.messages.c.mailbox == bindparam("b_mailbox"),
                t.messages.c.provider_id == bindparam("b_pid"),
            )
            .values(body=bindparam("body"))
        )
        ids = list(bodies)
        with self.tx() as conn:
            for i in range(0, len(rows), WRITE_CHUNK):
                conn.execute(stmt, rows[i : i + WRITE_CHUNK])
            for i in range(0, len(ids), IN_CHUNK):
                # Their threads are planned again (each has its planner row since its mail came).
                threads = select(t.messages.c.thread_id).where(
                    t.messages.c.mailbox == mailbox,
                    t.messages.c.provider_id.in_(ids[i : i + IN_CHUNK]),
                )
                conn.execute(
                    update(t.thread_state)
                    .where(
                        t.thread_state.c.mailbox == mailbox,
                        t.thread_state.c.thread_id.in_(threads.scalar_subquery()),
                    )
                    .values(wake=None)
                )

    def thread_messages(self, mailbox: str, thread_ids: Iterable[str]) -> list[Message]:
        """Every stored message of ``mailbox`` in one of ``thread_ids``, oldest first."""
        wanted = sorted(set(thread_ids))
        found: list[Message] = []
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                q = select(t.messages).where(
                    t.messages.c.mailbox == mailbox, t.messages.c.thread_id.in_(wanted[i : i + 500])
                )
                found += [_message_from_row(r._mapping) for r in conn.execute(q)]
        return sorted(found, key=lambda m: (m.date, m.provider_id))

    # -- events -------------------------------------------------------------------------
    def apply_event_sync(
        self, mailbox: str, result: EventSyncResult, *, at: datetime | None = None
    ) -> None:
        at = at or self.clock()
        with self.tx() as conn:
            ids = [e.provider_id for e in result.events]
            doomed = set(result.deleted) | set(ids)
            rows = list({e.provider_id: _event_row(e) for e in result.events}.values())
            if result.full:  # a provider that lists everything each time: often nothing changed
                changed = not _same_events(conn, mailbox, rows)
                if changed:
                    conn.execute(delete(t.events).where(t.events.c.mailbox == mailbox))
            else:
                changed = bool(doomed)
                if doomed:
                    conn.execute(
                        delete(t.events).where(
                            t.events.c.mailbox == mailbox, t.events.c.provider_id.in_(doomed)
                        )
                    )
            if changed:
                for i in range(0, len(rows), WRITE_CHUNK):
                    conn.execute(insert(t.events), rows[i : i + WRITE_CHUNK])
                _calendar_changed(conn, {mailbox})
            for item, reason in result.skipped:
                self._record_skipped(conn, mailbox, "calendar", item, reason, at)
            self._save_cursor(conn, mailbox, "calendar", result.cursor, at)

    def events(self, mailbox: str | None = None) -> list[Event]:
        q = select(t.events).order_by(t.events.c.start)
        if mailbox:
            q = q.where(t.events.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [_event_from_row(r._mapping) for r in conn.execute(q)]

    # -- cursors and skipped input --------------------------------------------------------
    def _save_cursor(
        self, conn: Connection, mailbox: str, kind: str, cursor: str, at: datetime
    ) -> None:
        found = conn.execute(
            update(t.streams)
            .where(t.streams.c.mailbox == mailbox, t.streams.c.kind == kind)
            .values(cursor=cursor, synced_at=at)
        ).rowcount
        if not found:
            conn.execute(
                insert(t.streams).values(
                    mailbox=mailbox,
                    kind=kind,
                    state="incremental",
                    cursor=cursor,
                    failures=0,
                    synced_at=at,
                )
            )

    def cursors(self, mailbox: str) -> dict[str, str | None]:
        """Each of ``mailbox``'s streams' cursors, by kind."""
        q = select(t.streams.c.kind, t.streams.c.cursor).where(t.streams.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return {str(r[0]): r[1] for r in conn.execute(q)}

    def cursor(self, mailbox: str, kind: str = "mail") -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(
                select(t.streams.c.cursor).where(
                    t.streams.c.mailbox == mailbox, t.streams.c.kind == kind
                )
            )

    def _record_skipped(
        self, conn: Connection, mailbox: str, source: str, item: str, reason: str, at: datetime
    ) -> None:
        _insert_once(
            conn,
            t.skipped,
            {"mailbox": mailbox, "source": source, "item": item},
            reason=redact(reason),  # may quote a provider's answer
            at=at,
        )

    def record_skipped(self, mailbox: str, source: str, item: str, reason: str) -> None:
        with self.tx() as conn:
            self._record_skipped(conn, mailbox, source, item, reason, self.clock())

    def skipped(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(t.skipped).order_by(t.skipped.c.id))
            ]

    # -- decisions (audit) ----------------------------------------------------------------
    def record_decisions(
        self, rows: Iterable[tuple[str, str, str, str, str]], *, at: datetime | None = None
    ) -> None:
        """Store (mailbox, thread_id, subject_id, decision, reason) once each: one statement
        per batch, the rows already recorded left as they are (the first reason stands)."""
        at = at or self.clock()
        batch: dict[tuple[str, str, str], dict[str, Any]] = {}
        for mailbox, thread_id, subject_id, decision, reason in rows:
            batch.setdefault(
                (mailbox, subject_id, decision),
                {
                    "mailbox": mailbox,
                    "thread_id": thread_id,
                    "subject_id": subject_id,
                    "decision": decision,
                    "reason": reason,
                    "at": at,
                },
            )
        if not batch:
            return
        values = list(batch.values())
        with self.tx() as conn:
            stmt = _insert_ignoring_duplicates(conn, t.decisions)
            for i in range(0, len(values), WRITE_CHUNK):
                conn.execute(stmt, values[i : i + WRITE_CHUNK])

    def record_control(
        self, mailbox: str, thread_id: str, subject_id: str, decision: str, reason: str
    ) -> None:
        """Record an act by hand (see agent/controls.py) as an audited decision."""
        self.record_decisions([(mailbox, thread_id, subject_id, decision, reason)])

    def control_decisions(
        self, mailbox: str | None = None, *, team_wide: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The acts by hand, oldest first: all of them, or those that bear on ``mailbox``: its
        own, and those of any mailbox whose decision is one of ``team_wide`` (an opt-out)."""
        controls = text(t.CONTROL_ROWS)  # a literal, so the partial indexes are used
        d = t.decisions.c
        everything = select(t.decisions).where(controls).order_by(d.id)
        own = select(t.decisions).where(controls, d.mailbox == mailbox)
        wide = select(t.decisions).where(controls, d.decision.in_(list(team_wide) or [""]))
        with self.engine.connect() as conn:
            rows = conn.execute(everything if mailbox is None else own.union(wide).order_by("id"))
            return [dict(r._mapping) for r in rows]

    def label_marks(self, mailbox: str) -> list[dict[str, Any]]:
        """The rows that remember which ``Followup/...`` labels were seen on which thread of
        ``mailbox``."""
        q = (
            select(t.decisions)
            .where(text(t.LABEL_ROWS), t.decisions.c.mailbox == mailbox)
            .order_by(t.decisions.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def promise_keys(self, mailbox: str, thread_ids: Iterable[str]) -> dict[str, set[str]]:
        """The promise keys each of ``thread_ids`` has notes for in the outbox, in any status."""
        wanted = sorted(set(thread_ids))
        found: dict[str, set[str]] = {}
        if not wanted:
            return found
        q = select(t.outbox.c.thread_id, t.outbox.c.key).where(
            t.outbox.c.mailbox == mailbox,
            t.outbox.c.thread_id.in_(wanted),
            t.outbox.c.key.like("promise/%"),
        )
        with self.engine.connect() as conn:
            for thread_id, key in conn.execute(q):
                found.setdefault(thread_id, set()).add(str(key).rsplit("/", 2)[0])
        return found

    def steering_messages(self, mailbox: str) -> list[Message]:
        """The messages of ``mailbox`` that may steer the agent: those carrying a label or
        category starting ``Followup/``, and those whose subject holds ``unsubscribe``."""
        q = select(t.messages).where(
            t.messages.c.mailbox == mailbox,
            or_(
                cast(t.messages.c.labels, String).ilike("%followup/%"),
                t.messages.c.subject.ilike("%unsubscribe%"),
            ),
        )
        with self.engine.connect() as conn:
            return [_message_from_row(r._mapping) for r in conn.execute(q)]

    def reschedule(self, key: str, due: datetime, expect: Sequence[str]) -> bool:
        """Move a row still in one of ``expect`` to a later ``due``; False if it moved on."""
        with self.tx() as conn:
            moved = conn.execute(
                update(t.outbox)
                .where(t.outbox.c.key == key, t.outbox.c.status.in_(expect))
                .values(due=due, updated_at=self.clock())
            ).rowcount
        return bool(moved)

    def go_live(self, mailbox: str, first: datetime) -> datetime:
        """The moment ``mailbox`` went live: recorded (as an audited decision) the first time it
        is asked for, as ``first``, and the same on every later call, restart and worker."""
        where = (
            t.decisions.c.mailbox == mailbox,
            t.decisions.c.subject_id == "",
            t.decisions.c.decision == GO_LIVE,
        )
        with self.engine.connect() as conn:
            found = conn.scalar(select(t.decisions.c.at).where(*where))
        if found is not None:
            return utc(found)
        try:
            with self.tx() as conn:
                conn.execute(
                    insert(t.decisions).values(
                        mailbox=mailbox,
                        thread_id="",
                        subject_id="",
                        decision=GO_LIVE,
                        reason="went live: mail and meetings before this are history only",
                        at=first,
                    )
                )
        except IntegrityError:
            pass  # another worker recorded it first: theirs stands
        with self.engine.connect() as conn:
            recorded = conn.scalar(select(t.decisions.c.at).where(*where))
        assert isinstance(recorded, datetime)
        return utc(recorded)

    def decisions(self, mailbox: str | None = None) -> list[dict[str, Any]]:
        q = select(t.decisions).order_by(t.decisions.c.id)
        if mailbox:
            q = q.where(t.decisions.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- outbox ---------------------------------------------------------------------------
    def enqueue(self, actions: Iterable[Action], *, status: str = PLANNED) -> list[str]:
        """Insert actions whose key is new; return the keys inserted. A known key is a no-op.

        One statement per batch: ``INSERT ... ON CONFLICT DO NOTHING RETURNING key``, so the
        keys returned are the rows this call made, whoever races it."""
        now = self.clock()
        rows: dict[str, dict[str, Any]] = {}
        for action in actions:
            rows.setdefault(
                action.key,
                {
                    "key": action.key,
                    "kind": action.kind.value,
                    "mailbox": action.mailbox,
                    "client": action.client,
                    "thread_id": action.thread_id,
                    "due": action.due,
                    "status": status,
                    "action": _action_json(action),
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        if not rows:
            return []
        order = list(rows)
        added: set[str] = set()
        with self.tx() as conn:
            stmt = _insert_ignoring_duplicates(conn, t.outbox).returning(t.outbox.c.key)
            values = list(rows.values())
            for i in range(0, len(values), WRITE_CHUNK):
                added.update(conn.scalars(stmt, values[i : i + WRITE_CHUNK]))
        return [k for k in order if k in added]

    # -- survey answers ----------------------------------------------------------------------
    def save_survey_answers(self, answers: Iterable[Mapping[str, Any]]) -> int:
        """Store each answer (a row of ``tables.survey_answers``), replacing the same reply's
        earlier reading. Returns how many rows were new."""
        new = 0
        with self.tx() as conn:
            for a in answers:
                row = _storable(dict(a))
                where = (
                    t.survey_answers.c.mailbox == row["mailbox"],
                    t.survey_answers.c.message_id == row["message_id"],
                )
                if conn.scalar(select(func.count()).where(*where)):
                    conn.execute(update(t.survey_answers).where(*where).values(**row))
                else:
                    conn.execute(insert(t.survey_answers).values(**row))
                    new += 1
        return new

    def survey_answers(self, since: datetime | None = None) -> list[dict[str, Any]]:
        q = select(t.survey_answers).order_by(t.survey_answers.c.answered_at)
        if since is not None:
            q = q.where(t.survey_answers.c.answered_at >= since)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def outbox(
        self, *, statuses: Sequence[str] | None = None, mailbox: str | None = None
    ) -> list[dict[str, Any]]:
        q = select(t.outbox).order_by(t.outbox.c.due, t.outbox.c.id)
        if statuses:
            q = q.where(t.outbox.c.status.in_(statuses))
        if mailbox:
            q = q.where(t.outbox.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def planning_outbox(self, mailbox: str, since: datetime) -> list[dict[str, Any]]:
        """What planning reads of ``mailbox``'s outbox, in one query: the sent notes, and the
        proposals and invitations due since ``since``."""
        c = t.outbox.c
        q = (
            select(t.outbox)
            .where(
                c.mailbox == mailbox,
                or_(
                    c.status == SENT,
                    and_(
                        c.kind.in_((ActionKind.PROPOSAL.value, ActionKind.INVITE.value)),
                        c.due >= since,
                    ),
                ),
            )
            .order_by(c.due, c.id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def withdrawn_drafts(self, mailbox: str | None = None) -> list[dict[str, Any]]:
        """Cancelled rows whose draft may still sit in the mailbox (their ``draft_id`` is kept
        until the draft is discarded)."""
        q = select(t.outbox).where(t.outbox.c.status == CANCELLED, t.outbox.c.draft_id.is_not(None))
        if mailbox:
            q = q.where(t.outbox.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def outbox_row(self, ident: int | str) -> dict[str, Any] | None:
        col = t.outbox.c.id if isinstance(ident, int) else t.outbox.c.key
        with self.engine.connect() as conn:
            row = conn.execute(select(t.outbox).where(col == ident)).first()
        return dict(row._mapping) if row else None

    def transition(
        self,
        key: str,
        expect: Sequence[str],
        status: str,
        *,
        attempt: int | None = None,
        unrequested: bool = False,
        **fields: Any,
    ) -> bool:
        """Move a row from one of ``expect`` (and, given ``attempt``, still at that send
        attempt; with ``unrequested``, with no send requested) to ``status``; False if another
        worker moved it.

        A ``last_error`` is stored redacted (:func:`agent.logs.redact`): provider error texts
        can quote tokens, secrets and webhook URLs."""
        if fields.get("last_error"):
            fields["last_error"] = redact(str(fields["last_error"]))
        where = [t.outbox.c.key == key, t.outbox.c.status.in_(expect)]
        if attempt is not None:
            where.append(t.outbox.c.attempts == attempt)
        if unrequested:
            where.append(t.outbox.c.send_requested_at.is_(None))
        with self.tx() as conn:
            moved = conn.execute(
                update(t.outbox)
                .where(*where)
                .values(status=status, updated_at=self.clock(), **fields)
            ).rowcount
            if moved and status == SENT:
                # A copy of the note synced before it was recorded sent was read as the rep's
                # mail: now that its Message-ID names the agent's note, its thread is planned
                # again. (A copy synced later is new mail, and marks its thread itself.)
                row = conn.execute(
                    select(t.outbox.c.mailbox, t.outbox.c.sent_message_id).where(
                        t.outbox.c.key == key
                    )
                ).first()
                if row is not None and row.sent_message_id:
                    copies = conn.scalars(
                        select(t.messages.c.thread_id).where(
                            t.messages.c.mailbox == row.mailbox,
                            t.messages.c.message_id == row.sent_message_id,
                        )
                    ).all()
                    _touch_threads(conn, row.mailbox, copies)
        return bool(moved)

    def cancel_many(self, keys: Iterable[str], expect: Sequence[str], status: str) -> int:
        """Move every row of ``keys`` still in one of ``expect`` to ``status``, one statement
        per batch; return how many moved."""
        wanted = sorted(set(keys))
        moved = 0
        with self.tx() as conn:
            for i in range(0, len(wanted), IN_CHUNK):
                moved += conn.execute(
                    update(t.outbox)
                    .where(
                        t.outbox.c.key.in_(wanted[i : i + IN_CHUNK]),
                        t.outbox.c.status.in_(expect),
                    )
                    .values(status=status, updated_at=self.clock())
                ).rowcount
        return moved

    # -- the planner's state ---------------------------------------------------------------
    def plan_meta(self, mailbox: str) -> dict[str, Any] | None:
        """The mailbox's own planner row (thread_id ""), or None: never planned here."""
        q = select(t.thread_state).where(
            t.thread_state.c.mailbox == mailbox, t.thread_state.c.thread_id == ""
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return dict(row._mapping) if row else None

    def due_threads(
        self, mailbox: str, now: datetime, *, groups: bool = False
    ) -> list[dict[str, Any]]:
        """The planner rows of ``mailbox``'s threads whose mail changed or whose wake came, and
        the mailbox's own row (thread_id ""), due or not. With ``groups``, in the same read,
        the rows of every other thread in the group of a due one (they are planned with it)."""
        c = t.thread_state.c
        due = or_(c.wake.is_(None), c.wake <= now)
        wanted = or_(c.thread_id == "", due)
        if groups:
            d = t.thread_state.alias("due")
            of_due = select(d.c.grp).where(
                d.c.mailbox == mailbox,
                d.c.thread_id != "",
                d.c.grp.is_not(None),
                or_(d.c.wake.is_(None), d.c.wake <= now),
            )
            wanted = or_(wanted, c.grp.in_(of_due))
        q = select(t.thread_state).where(c.mailbox == mailbox, wanted)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def group_thread_messages(
        self, mailbox: str, groups: Iterable[str], skip: Iterable[str] = ()
    ) -> tuple[list[dict[str, Any]], list[Message]]:
        """The planner rows of every thread of ``mailbox`` in one of ``groups`` but not in
        ``skip``, and those threads' messages (oldest first), in one read per 1,000 groups."""
        wanted = sorted(set(groups))
        skipped = set(skip)
        ts, m = t.thread_state, t.messages
        state = [ts.c[k].label(f"ts_{k}") for k in ("thread_id", "grp", "wake", "promises", "note")]
        rows: dict[str, dict[str, Any]] = {}
        found: list[Message] = []
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), IN_CHUNK):
                q = (
                    select(*state, *m.c)
                    .select_from(
                        ts.outerjoin(
                            m, and_(m.c.mailbox == ts.c.mailbox, m.c.thread_id == ts.c.thread_id)
                        )
                    )
                    .where(ts.c.mailbox == mailbox, ts.c.grp.in_(wanted[i : i + IN_CHUNK]))
                )
                for r in conn.execute(q):
                    row = r._mapping
                    if row["ts_thread_id"] in skipped:
                        continue
                    rows.setdefault(
                        row["ts_thread_id"],
                        {"mailbox": mailbox, "thread_id": row["ts_thread_id"]}
                        | {k: row[f"ts_{k}"] for k in ("grp", "wake", "promises", "note")},
                    )
                    if row["provider_id"] is not None:
                        found.append(_message_from_row(row))
        return list(rows.values()), sorted(found, key=lambda x: (x.date, x.provider_id))

    def save_plan_state(
        self,
        mailbox: str,
        threads: Iterable[tuple[str, str, datetime, dict[str, int] | None]],
        *,
        meta: tuple[datetime, str, dict[str, int]] | None = None,
        gone: Iterable[str] = (),
    ) -> None:
        """Record (thread_id, group, wake, promise states) of planned threads, in batches;
        ``meta`` (wake, note, the mailbox's promise count per state) is the mailbox's own row;
        ``gone`` threads lost their mail."""
        rows = [
            {
                "mailbox": mailbox,
                "thread_id": tid,
                "grp": grp,
                "wake": wake,
                "promises": states or None,
                "note": None,
            }
            for tid, grp, wake, states in threads
        ]
        if meta is not None:
            rows.append(
                {
                    "mailbox": mailbox,
                    "thread_id": "",
                    "grp": None,
                    "wake": meta[0],
                    "promises": meta[2],
                    "note": meta[1],
                }
            )
        doomed = sorted(set(gone))
        with self.tx() as conn:
            for i in range(0, len(doomed), IN_CHUNK):
                conn.execute(
                    delete(t.thread_state).where(
                        t.thread_state.c.mailbox == mailbox,
                        t.thread_state.c.thread_id.in_(doomed[i : i + IN_CHUNK]),
                    )
                )
            stmt = _upsert(conn, t.thread_state, ("mailbox", "thread_id"))
            for i in range(0, len(rows), WRITE_CHUNK):
                conn.execute(stmt, rows[i : i + WRITE_CHUNK])

    def forget_plans(self, mailbox: str) -> None:
        """Make the next planning pass of ``mailbox`` plan all of its mail."""
        with self.tx() as conn:
            conn.execute(
                delete(t.thread_state).where(
                    t.thread_state.c.mailbox == mailbox, t.thread_state.c.thread_id == ""
                )
            )

    def claim_send(
        self, key: str, expect: Sequence[str], attempts: int, *, requested: bool = False
    ) -> bool:
        """Take the row into ``sending`` for a new send attempt (numbered ``attempts + 1``) if it
        is still in one of ``expect`` after ``attempts`` attempts and no send was requested
        (``requested``: or one was, and proved not made); False if another worker moved it."""
        where = [
            t.outbox.c.key == key,
            t.outbox.c.status.in_(expect),
            t.outbox.c.attempts == attempts,
        ]
        if not requested:
            where.append(t.outbox.c.send_requested_at.is_(None))
        with self.tx() as conn:
            moved = conn.execute(
                update(t.outbox)
                .where(*where)
                .values(
                    status=SENDING,
                    attempts=attempts + 1,
                    send_requested_at=None,
                    updated_at=self.clock(),
                )
            ).rowcount
        return bool(moved)

    def request_send(self, key: str, attempt: int, at: datetime) -> bool:
        """Record that send attempt ``attempt`` is about to be made, at ``at``; False if that
        attempt is no longer the row's (another worker took the send over), and then nothing
        may be sent."""
        with self.tx() as conn:
            moved = conn.execute(
                update(t.outbox)
                .where(
                    t.outbox.c.key == key,
                    t.outbox.c.status == SENDING,
                    t.outbox.c.attempts == attempt,
                    t.outbox.c.send_requested_at.is_(None),
                )
                .values(send_requested_at=at, updated_at=self.clock())
            ).rowcount
        return bool(moved)

    def withdraw_send_request(self, key: str, attempt: int) -> bool:
        """Forget the request of send attempt ``attempt``: the provider refused it unmade."""
        with self.tx() as conn:
            moved = conn.execute(
                update(t.outbox)
                .where(
                    t.outbox.c.key == key,
                    t.outbox.c.status == SENDING,
                    t.outbox.c.attempts == attempt,
                )
                .values(send_requested_at=None, updated_at=self.clock())
            ).rowcount
        return bool(moved)

    def due_outbox(self, now: datetime, *, mailbox: str | None = None) -> list[dict[str, Any]]:
        """Rows ready to execute, unfinished sends first so they are reconciled before new work."""
        q = select(t.outbox).where(
            or_(
                t.outbox.c.status.in_((DRAFTING, DRAFTED, SENDING)),
                and_(t.outbox.c.status == PLANNED, t.outbox.c.due <= now),
            )
        )
        if mailbox:
            q = q.where(t.outbox.c.mailbox == mailbox)
        q = q.order_by((t.outbox.c.status == PLANNED).asc(), t.outbox.c.due, t.outbox.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def pass_outbox(
        self, mailbox: str, now: datetime, *, parked: list[dict[str, Any]] | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``due_outbox(now, mailbox=...)`` and ``withdrawn_drafts(mailbox)`` in one query;
        given a list as ``parked``, the same query fills it with the mailbox's rows that need
        attention."""
        c = t.outbox.c
        wanted = [
            c.status.in_((DRAFTING, DRAFTED, SENDING)),
            and_(c.status == PLANNED, c.due <= now),
            and_(c.status == CANCELLED, c.draft_id.is_not(None)),
        ]
        if parked is not None:
            wanted.append(c.status == NEEDS_ATTENTION)
        q = select(t.outbox).where(c.mailbox == mailbox, or_(*wanted))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        if parked is not None:
            parked += sorted(
                (r for r in rows if r["status"] == NEEDS_ATTENTION), key=lambda r: r["id"]
            )
        due = sorted(
            (r for r in rows if r["status"] not in (CANCELLED, NEEDS_ATTENTION)),
            key=lambda r: (r["status"] == PLANNED, r["due"], r["id"]),
        )
        withdrawn = [r for r in rows if r["status"] == CANCELLED]
        return due, withdrawn

    def sent_since(self, mailbox: str, since: datetime) -> list[dict[str, Any]]:
        q = select(t.outbox).where(
            t.outbox.c.mailbox == mailbox,
            t.outbox.c.status == SENT,
            t.outbox.c.updated_at >= since,
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- streams and leases ---------------------------------------------------------------
    def register_mailboxes(self, names: Iterable[str], at: datetime) -> None:
        """Give every configured mailbox its streams; park the ones no longer configured and
        wake the ones that came back. Safe to run from several workers at once."""
        wanted = set(names)
        with self.tx() as conn:
            rows = conn.execute(select(t.streams.c.mailbox, t.streams.c.kind, t.streams.c.state))
            have = {(r.mailbox, r.kind): r.state for r in rows}
            missing = [
                {"mailbox": name, "kind": kind, "state": NEW, "failures": 0, "next_run_at": at}
                for name in sorted(wanted)
                for kind in STREAM_KINDS
                if (name, kind) not in have
            ]
            if missing:
                # Another worker may register the same rows at the same moment: theirs stand.
                conn.execute(_insert_ignoring_duplicates(conn, t.streams), missing)
            gone = {m for m, _ in have} - wanted
            if gone:
                conn.execute(
                    update(t.streams)
                    .where(t.streams.c.mailbox.in_(sorted(gone)), t.streams.c.state != DISABLED)
                    .values(state=DISABLED, lease_owner=None, lease_expires=None)
                )
            back = {m for (m, _), state in have.items() if state == DISABLED} & wanted
            if back:
                conn.execute(
                    update(t.streams)
                    .where(t.streams.c.mailbox.in_(sorted(back)))
                    .values(state=NEW, next_run_at=at, failures=0, last_error=None)
                )

    def lease(
        self, owner: str, now: datetime, ttl: timedelta, limit: int
    ) -> dict[str, datetime | None]:
        """Lease up to ``limit`` mailboxes that are due and free (or whose lease expired).

        On PostgreSQL the candidates are locked with ``FOR UPDATE SKIP LOCKED``, so workers
        racing for the same rows each get different ones. Returns each leased mailbox with the
        time it fell due.
        """
        mail = t.streams.c
        q = (
            select(mail.mailbox, mail.next_run_at)
            .where(
                mail.kind == "mail",
                mail.state.not_in(PARKED_STATES),
                or_(mail.next_run_at.is_(None), mail.next_run_at <= now),
                # A worker never re-leases its own live lease: that mailbox is in flight.
                or_(mail.lease_owner.is_(None), mail.lease_expires < now),
            )
            .order_by(mail.next_run_at, mail.mailbox)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.tx() as conn:
            leased = {r.mailbox: r.next_run_at for r in conn.execute(q)}
            if leased:
                conn.execute(
                    update(t.streams)
                    .where(t.streams.c.mailbox.in_(sorted(leased)))
                    .values(lease_owner=owner, lease_expires=now + ttl)
                )
        return leased

    def expedite(self, mailbox: str, at: datetime) -> None:
        """Make ``mailbox`` due at ``at`` when it was due later; a lease and a parked state are
        left as they are."""
        mail = t.streams.c
        with self.tx() as conn:
            conn.execute(
                update(t.streams)
                .where(
                    mail.mailbox == mailbox,
                    mail.kind == "mail",
                    mail.state.not_in(PARKED_STATES),
                    mail.next_run_at > at,
                )
                .values(next_run_at=at)
            )

    def renew(self, owner: str, names: Iterable[str], expires: datetime) -> set[str]:
        """Extend this worker's leases; return the names it still holds (a lease that expired
        and was taken over is lost, and its work must stop)."""
        names = sorted(set(names))
        if not names:
            return set()
        with self.tx() as conn:
            _lock_mailboxes(conn, t.streams.c.mailbox.in_(names))
            conn.execute(
                update(t.streams)
                .where(t.streams.c.mailbox.in_(names), t.streams.c.lease_owner == owner)
                .values(lease_expires=expires)
            )
            held = conn.execute(
                select(t.streams.c.mailbox).where(
                    t.streams.c.mailbox.in_(names),
                    t.streams.c.kind == "mail",
                    t.streams.c.lease_owner == owner,
                )
            ).scalars()
            return set(held)

    def finish(
        self,
        owner: str,
        mailbox: str,
        *,
        state: str,
        next_run_at: datetime | None,
        failures: int = 0,
        error: str | None = None,
    ) -> bool:
        """Record a pass's outcome and hand the lease back. False if the lease was lost.
        ``error`` is stored redacted, as in :meth:`transition`."""
        with self.tx() as conn:
            _lock_mailboxes(conn, t.streams.c.mailbox == mailbox)
            done = conn.execute(
                update(t.streams)
                .where(t.streams.c.mailbox == mailbox, t.streams.c.lease_owner == owner)
                .values(
                    state=state,
                    next_run_at=next_run_at,
                    failures=failures,
                    last_error=redact(error) if error else error,
                    lease_owner=None,
                    lease_expires=None,
                )
            ).rowcount
        return bool(done)

    def release(self, owner: str) -> int:
        """Hand back every lease this worker holds (at shutdown), due again at once."""
        with self.tx() as conn:
            _lock_mailboxes(conn, t.streams.c.lease_owner == owner)
            return conn.execute(
                update(t.streams)
                .where(t.streams.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None)
            ).rowcount

    def streams(self, mailbox: str | None = None) -> list[dict[str, Any]]:
        q = select(t.streams).order_by(t.streams.c.mailbox, t.streams.c.kind)
        if mailbox:
            q = q.where(t.streams.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def stream_failures(self, mailbox: str) -> int:
        with self.engine.connect() as conn:
            return (
                conn.scalar(
                    select(t.streams.c.failures).where(
                        t.streams.c.mailbox == mailbox, t.streams.c.kind == "mail"
                    )
                )
                or 0
            )

    # -- credentials ----------------------------------------------------------------------
    def load_credentials(self, mailbox: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.scalar(
                select(t.credentials.c.sealed).where(t.credentials.c.mailbox == mailbox)
            )

    def save_credentials(self, mailbox: str, sealed: bytes) -> None:
        now = self.clock()
        with self.tx() as conn:
            done = conn.execute(
                update(t.credentials)
                .where(t.credentials.c.mailbox == mailbox)
                .values(sealed=sealed, updated_at=now)
            ).rowcount
            if not done:
                conn.execute(
                    insert(t.credentials).values(mailbox=mailbox, sealed=sealed, updated_at=now)
                )
            # A fresh sign-in wakes a mailbox parked for reconnection (or refused access), due
            # at once by the store's clock (the worker's, when the worker saves it).
            conn.execute(
                update(t.streams)
                .where(
                    t.streams.c.mailbox == mailbox,
                    t.streams.c.state.in_((NEEDS_RECONNECT, ACCESS_DENIED)),
                )
                .values(state=INCREMENTAL, next_run_at=now, failures=0, last_error=None)
            )

    def forget_credentials(self, mailbox: str, reason: str) -> bool:
        """Delete a mailbox's stored sign-in and park it until it is connected again (the next
        :meth:`save_credentials` wakes it). False when nothing was stored."""
        with self.tx() as conn:
            _lock_mailboxes(conn, t.streams.c.mailbox == mailbox)
            gone = conn.execute(
                delete(t.credentials).where(t.credentials.c.mailbox == mailbox)
            ).rowcount
            conn.execute(
                update(t.streams)
                .where(t.streams.c.mailbox == mailbox, t.streams.c.state != DISABLED)
                .values(state=NEEDS_RECONNECT, next_run_at=None, last_error=redact(reason))
            )
        return bool(gone)


def _differs(row: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether a message row as listed differs from the stored one (a listing without a body
    keeps the stored body)."""
    for k, v in row.items():
        if k == "body" and v is None:
            continue
        if stored.get(k) != v:
            return True
    return False


def _insert_ignoring_duplicates(conn: Connection, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _dialect_insert(conn: Connection, table: Any) -> Any:
    """The INSERT of the connection's dialect, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _upsert(conn: Connection, table: Any, keys: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column, in the connection's dialect."""
    stmt = _dialect_insert(conn, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys},
    )


def _touch_threads(conn: Connection, mailbox: str, thread_ids: Iterable[str]) -> None:
    """Mark the planner rows of ``thread_ids`` changed (wake NULL), making the missing ones."""
    rows = [{"mailbox": mailbox, "thread_id": tid, "wake": None} for tid in sorted(set(thread_ids))]
    if not rows:
        return
    stmt = _dialect_insert(conn, t.thread_state)
    stmt = stmt.on_conflict_do_update(
        index_elements=["mailbox", "thread_id"], set_={"wake": stmt.excluded.wake}
    )
    for i in range(0, len(rows), WRITE_CHUNK):
        conn.execute(stmt, rows[i : i + WRITE_CHUNK])


def _same_events(conn: Connection, mailbox: str, rows: list[dict[str, Any]]) -> bool:
    """Whether ``mailbox``'s stored events are exactly ``rows`` (as :func:`_event_row` makes
    them), compared as the events they read back as."""
    stored = conn.execute(select(t.events).where(t.events.c.mailbox == mailbox))
    key = attrgetter("provider_id")
    return sorted((_event_from_row(r._mapping) for r in stored), key=key) == sorted(
        (_event_from_row(r) for r in rows), key=key
    )


def _calendar_changed(conn: Connection, mailboxes: set[str]) -> None:
    """Make the planner row of each of ``mailboxes`` (thread_id "") due: its next pass reads
    the calendar and, finding it changed, plans the mailbox whole. A pass with nothing due
    reads no calendar at all, so this is what tells it one changed."""
    if mailboxes:
        c = t.thread_state.c
        conn.execute(
            update(t.thread_state)
            .where(c.mailbox.in_(sorted(mailboxes)), c.thread_id == "")
            .values(wake=None)
        )


def _lock_mailboxes(conn: Connection, where: Any) -> None:
    """Lock the mail rows of the mailboxes ``where`` selects, in name order, before their rows
    are updated. The mail row stands for the whole mailbox: ``lease`` locks it first too, so
    two transactions never take a mailbox's mail and calendar rows in opposite orders (an
    UPDATE alone locks them in whatever order it scans them, and a heartbeat renewing five
    leases deadlocked with a pass finishing one of them). SQLite has no row locks (a writer
    locks the whole database), so there it is one statement saved per pass."""
    if conn.dialect.name == "sqlite":
        return
    conn.execute(
        select(t.streams.c.mailbox)
        .where(where, t.streams.c.kind == "mail")
        .order_by(t.streams.c.mailbox)
        .with_for_update()
    ).all()


def _insert_once(conn: Connection, table: Any, keys: dict[str, Any], **values: Any) -> None:
    """Insert a row unless one with the same ``keys`` exists (audit rows are recorded once)."""
    exists = conn.scalar(select(func.count()).where(*(table.c[k] == v for k, v in keys.items())))
    if not exists:
        conn.execute(insert(table).values(**keys, **values))


def _storable(value: Any) -> Any:
    """``value`` with every text made storable: no NUL (PostgreSQL refuses it in text and JSON)
    and no lone surrogate (no database encodes it), each replaced rather than losing the row.

    A provider's JSON can carry both (``\\u0000``, an unpaired ``\\ud800``) in a subject, a name
    or a header; the MIME reader cleans what it parses, this cleans what the APIs hand over.
    """
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _message_row(m: Message) -> dict[str, Any]:
    # The provider's id stays as given: it is how the provider names the message, and its ids
    # are plain ASCII.
    fields = _message_fields(m)
    row = fields if _plain(m) else _storable(fields)
    return {"mailbox": m.mailbox, "provider_id": m.provider_id, **row}


def _plain(m: Message) -> bool:
    """Whether every text of ``m`` is ASCII without NUL, so :func:`_storable` would change
    nothing: one check over the joined texts instead of one call per value."""
    texts = [m.thread_id, m.message_id, m.sender.email, m.sender.name, m.subject, m.in_reply_to]
    texts += [x for a in (*m.to, *m.cc) for x in (a.email, a.name)]
    texts += [*m.references, *m.headers.keys(), *m.headers.values(), *m.labels, m.body or ""]
    joined = "".join(texts)
    return joined.isascii() and "\x00" not in joined


def _message_fields(m: Message) -> dict[str, Any]:
    return {
        "thread_id": m.thread_id,
        "message_id": m.message_id,
        "sender": m.sender.email,
        "sender_name": m.sender.name,
        "to_addrs": _addr_json(m.to),
        "cc_addrs": _addr_json(m.cc),
        "subject": m.subject,
        "date": m.date,
        "in_reply_to": m.in_reply_to,
        "refs": list(m.references),
        "headers": dict(m.headers),
        "labels": sorted(m.labels),
        "body": m.body,
    }


def _message_from_row(r: Any) -> Message:
    return Message(
        mailbox=r["mailbox"],
        provider_id=r["provider_id"],
        thread_id=r["thread_id"],
        message_id=r["message_id"],
        sender=Address(r["sender"], r["sender_name"]),
        to=_addr_load(r["to_addrs"]),
        cc=_addr_load(r["cc_addrs"]),
        date=r["date"],
        subject=r["subject"],
        in_reply_to=r["in_reply_to"],
        references=tuple(r["refs"]),
        headers=r["headers"],
        labels=frozenset(r["labels"]),
        body=r["body"],
    )


def _event_row(e: Event) -> dict[str, Any]:
    row = _storable(_event_fields(e))
    return {"mailbox": e.mailbox, "provider_id": e.provider_id, **row}


def _event_fields(e: Event) -> dict[str, Any]:
    return {
        "summary": e.summary,
        "start": e.start,
        "end": e.end,
        "status": e.status,
        "transparent": e.transparent,
        "all_day": e.all_day,
        "organizer": e.organizer,
        "attendees": [[a.email, a.name, a.partstat] for a in e.attendees],
        "uid": e.uid,
    }


def _event_from_row(r: Any) -> Event:
    return Event(
        mailbox=r["mailbox"],
        provider_id=r["provider_id"],
        summary=r["summary"],
        start=r["start"],
        end=r["end"],
        status=r["status"],
        transparent=r["transparent"],
        all_day=r["all_day"],
        organizer=r["organizer"],
        attendees=tuple(Attendee(e, n, p) for e, n, p in r["attendees"]),
        uid=r["uid"],
    )
