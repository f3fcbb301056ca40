"""Builders shared by the worker tests: Gmail emulators seeded with the demo's mail, a config
whose mailboxes point at them, stored sign-ins, a clock the test moves, and counters over what
the emulators' Sent folders and Drafts hold.

    world = GmailWorld.start(["asha", "lukas", "omar"])
    config = world.write_config(tmp_path, db_url=f"sqlite:///{tmp_path / 'followup.db'}")
    world.connect_all(Store.open(url), vault)
    worker = Worker(config, clock=Clock(DEMO_NOW))

The emulators are real HTTP servers on loopback threads; the worker reaches them through the
real Gmail and Calendar adapters (google-api-python-client), never through a mock.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from agent import worker as worker_module
from agent.config import Mailbox
from agent.demo import HERE as DEMO_DIR
from agent.demo import bundled
from agent.providers.gmail import GmailProvider, GoogleCalendarProvider, google_services
from agent.providers.google_auth import SCOPES, load_credentials
from agent.providers.protocol import KEY_HEADER
from agent.providers.ratelimit import TokenBucket
from agent.providers.registry import Connection
from agent.providers.tokens import CredentialStore, Vault
from agent.store import DRAFTED, DRAFTING, PARKED_STATES, PLANNED, SENDING, Store
from agent.worker import Loaded, Worker
from tests.fakes.gmail import GoogleEmulator

# The demo's scenario stands on Wednesday 25 November 2026 at 08:00 UTC; at 09:00 reminders,
# escalations, a thank-you, a feedback survey and meeting proposals are due across three reps.
DEMO_NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DEMO_MAILBOXES = ("asha", "lukas", "omar")


class Clock:
    """A wall clock the test moves. ``sleep`` moves it too, so provider retries take no time."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, by: timedelta | float) -> datetime:
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        with self._lock:
            self.now += step
            return self.now

    def set(self, when: datetime) -> None:
        with self._lock:
            self.now = when

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def demo_scenario() -> dict[str, Any]:
    return tomllib.loads((DEMO_DIR / "scenario.toml").read_text(encoding="utf-8"))


def _message_id(item_id: str) -> str:
    # Fixed Message-IDs (the demo draws random ones) keep outbox keys equal between runs.
    return f"<{item_id}@demo.example>"


def demo_raw(item: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bytes:
    """One scenario.toml [[message]] as RFC 5322 bytes, threaded by In-Reply-To/References."""
    msg = EmailMessage()
    msg["From"] = item["from"]
    msg["To"] = item["to"]
    msg["Subject"] = item["subject"]
    msg["Date"] = format_datetime(item["date"])
    msg["Message-ID"] = _message_id(item["id"])
    chain: list[str] = []
    parent = item.get("reply_to")
    while parent:
        chain.insert(0, _message_id(parent))
        parent = by_id[parent].get("reply_to")
    if chain:
        msg["In-Reply-To"] = chain[-1]
        msg["References"] = " ".join(chain)
    for name, value in item.get("headers", {}).items():
        msg[name] = value
    msg.set_content(item["body"])
    return bytes(msg)


@dataclass
class GmailWorld:
    """One Gmail emulator per demo rep, seeded with that rep's demo mail and meetings."""

    emulators: dict[str, GoogleEmulator]
    addresses: dict[str, str]
    refresh_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, names: Iterable[str] = DEMO_MAILBOXES, *, seed: bool = True) -> GmailWorld:
        scenario = demo_scenario()
        addresses = {n: f"{n}@acme.example" for n in names}
        emulators = {n: GoogleEmulator(address=addresses[n], zone="UTC").start() for n in addresses}
        world = cls(emulators, addresses)
        if seed:
            world.seed_demo(scenario)
        return world

    def stop(self) -> None:
        for emu in self.emulators.values():
            emu.stop()

    def __enter__(self) -> GmailWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the freshly seeded demo (same ids, same ports, grants kept)."""
        for emu in self.emulators.values():
            emu.reset_mailbox()
        self.seed_demo()

    def seed_demo(self, scenario: dict[str, Any] | None = None) -> None:
        scenario = scenario or demo_scenario()
        by_id = {m["id"]: m for m in scenario["message"]}
        for item in scenario["message"]:
            emu = self.emulators.get(item["mailbox"])
            if emu is None:
                continue
            labels = ("INBOX", "UNREAD") if item["folder"] == "inbox" else ("SENT",)
            emu.deliver(demo_raw(item, by_id), labels, internal=item["date"])
        # The demo's calendars as Google events: Asha's ended meeting with Kenji (a thank-you
        # and a survey follow) and Lukas's cancelled call with Carlos (nothing follows).
        day = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
        if "asha" in self.emulators:
            self.emulators["asha"].add_event(
                day,
                day + timedelta(hours=1),
                "ライセンス更新のご相談 / License review",
                event_id="satoreview20261124",
                attendees=[
                    ("asha@acme.example", "accepted"),
                    ("kenji.sato@sato-trading.co.jp", "accepted"),
                ],
            )
        if "lukas" in self.emulators:
            start = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
            self.emulators["lukas"].add_event(
                start,
                start + timedelta(minutes=30),
                "Llamada Ruiz Logística",
                event_id="ruizcall20261123",
                status="cancelled",
                attendees=[("carlos.ruiz@ruizlogistica.mx", "accepted")],
            )

    # -- configuration and sign-in ---------------------------------------------------------
    def write_config(
        self,
        folder: Path,
        *,
        db_url: str,
        mode: str = "send",
        poll_seconds: float = 60,
        lease_seconds: float = 120,
        concurrency: int = 4,
        daily_cap: int = 40,
        names: Iterable[str] | None = None,
    ) -> Path:
        """A config.toml in ``folder`` with one gmail mailbox per emulator (``endpoint`` set to
        it), the demo's reps, leads and clients, and the shipped rules and templates."""
        return write_team_config(
            folder,
            {
                n: {"provider": "gmail", "endpoint": self.emulators[n].root}
                for n in (names or self.emulators)
            },
            db_url=db_url,
            mode=mode,
            poll_seconds=poll_seconds,
            lease_seconds=lease_seconds,
            concurrency=concurrency,
            daily_cap=daily_cap,
        )

    def connect(
        self, name: str, creds: CredentialStore, vault: Vault, *, token_lifetime: int = 3599
    ) -> str:
        """Grant a refresh token and an access token at ``name``'s emulator and store both
        sealed, as ``followup connect gmail`` would; return the refresh token. The access token
        expires after ``token_lifetime`` seconds of wall time (under the client's refresh margin
        of about 4 minutes, every request refreshes first)."""
        emu = self.emulators[name]
        refresh = f"rt-{name}-{len(emu.refresh_tokens)}"
        access = f"at-{name}-{len(emu.refresh_tokens)}"
        with emu.lock:
            emu.refresh_tokens.add(refresh)
            emu.scopes[refresh] = " ".join(SCOPES)
            emu.access_tokens[access] = refresh
            emu.token_lifetime = token_lifetime
        expiry = datetime.now(UTC) + timedelta(seconds=token_lifetime)
        info = {
            "token": access,
            "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "refresh_token": refresh,
            "token_uri": emu.token_uri,
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "scopes": list(SCOPES),
            "account": self.addresses[name],
        }
        creds.save_credentials(name, vault.seal(json.dumps(info).encode()))
        self.refresh_tokens[name] = refresh
        return refresh

    def connect_all(self, creds: CredentialStore, vault: Vault) -> None:
        for name in self.emulators:
            self.connect(name, creds, vault)

    # -- what the mailboxes hold -----------------------------------------------------------
    def sent_keys(self, name: str | None = None) -> Counter[str]:
        """How many messages in the Sent folder(s) carry each X-Followup-Key (a key's tag)."""
        counts: Counter[str] = Counter()
        for emu_name, emu in self.emulators.items():
            if name is not None and emu_name != name:
                continue
            for msg in emu.sent():
                key = _header(msg.headers, KEY_HEADER)
                if key:
                    counts[key] += 1
        return counts

    def draft_keys(self) -> Counter[str]:
        """How many unsent drafts carry each X-Followup-Key (a key's tag)."""
        counts: Counter[str] = Counter()
        for emu in self.emulators.values():
            with emu.lock:
                for message_id in emu.drafts.values():
                    key = _header(emu.messages[message_id].headers, KEY_HEADER)
                    if key:
                        counts[key] += 1
        return counts


def team_lines(db_url: str) -> list[str]:
    """The config.toml lines every test team shares: the store, the demo team, the shipped rules
    and templates, and the clients file beside the config."""
    return [
        "[database]",
        f"url = {json.dumps(db_url)}",
        "[team]",
        'name = "Acme Analytics"',
        'domains = ["acme.example"]',
        'default_language = "en"',
        "[paths]",
        f"rules = {json.dumps(str(bundled('rules')))}",
        f"templates = {json.dumps(str(bundled('templates')))}",
        'clients = "clients.csv"',
    ]


def write_team_config(
    folder: Path,
    mailboxes: dict[str, dict[str, str]],
    *,
    db_url: str,
    mode: str = "send",
    poll_seconds: float = 60,
    lease_seconds: float = 120,
    concurrency: int = 4,
    daily_cap: int = 40,
) -> Path:
    """A config.toml in ``folder`` with the demo's reps named in ``mailboxes`` (each with its
    provider settings: provider, endpoint, ...), leads and clients, and the shipped rules and
    templates."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_DIR / "clients.csv", folder / "clients.csv")
    demo = tomllib.loads((DEMO_DIR / "config.toml").read_text(encoding="utf-8"))
    reps = {m["name"]: m for m in demo["mailboxes"]}
    lines = [
        *team_lines(db_url),
        "[outbox]",
        f'mode = "{mode}"',
        f"daily_cap = {daily_cap}",
        # The team went live before the demo's mail, which the emulators hold.
        "go_live = 2026-11-16T00:00:00Z",
        "[service]",
        'listen = ""',
        f"poll_seconds = {poll_seconds}",
        f"lease_seconds = {lease_seconds}",
        "shutdown_timeout = 5",
        f"concurrency = {concurrency}",
    ]
    for lead in demo["leads"]:
        lines.append("[[leads]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in lead.items()]
    for name, settings in mailboxes.items():
        rep = dict(reps[name])
        rep.pop("path", None)
        rep.update(settings)
        lines.append("[[mailboxes]]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in rep.items()]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value.strip()
    return None


class GmailConnect:
    """A worker ``connect`` factory like the default one, with two test seams: provider retries
    sleep on ``sleep`` (a :class:`Clock`'s, so the test's clock measures the backoff; ``None``
    for the wall clock) and there is no client-side pacing. Everything else is the real adapter
    over HTTP. It keeps every provider it opened so that ``close()`` can shut their sockets:
    the worker drops a failed mailbox's providers without closing them."""

    def __init__(self, sleep: Callable[[float], None] | None = None) -> None:
        self.sleep = sleep or time.sleep
        self.opened: list[Connection] = []

    def __call__(self, m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
        assert vault is not None
        factory = google_services(load_credentials(m.name, vault, creds), root=m.endpoint)
        free = TokenBucket(1e9, 1e9)
        mail = GmailProvider(m.name, m.address, factory, bucket=free, sleep=self.sleep)
        calendar = GoogleCalendarProvider(m.name, factory, bucket=free, sleep=self.sleep)
        conn = Connection(mail, calendar)
        self.opened.append(conn)
        return conn

    def close(self) -> None:
        while self.opened:
            conn = self.opened.pop()
            for provider in (conn.mail, conn.calendar):
                provider.close()  # type: ignore[union-attr]


def gmail_connect(sleep: Callable[[float], None] | None = None) -> GmailConnect:
    return GmailConnect(sleep)


def unfinished(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Outbox rows a worker still owes at ``now``: mid-protocol, or planned and due."""
    return [
        r
        for r in store.outbox(statuses=(PLANNED, DRAFTING, DRAFTED, SENDING))
        if r["status"] != PLANNED or r["due"] <= now
    ]


def preload(monkeypatch: Any, config_path: Path) -> Loaded:
    """Load (validate, compile) the config, rules and templates once, and let every Worker
    built on ``config_path`` afterwards start from that set, as a pre-forking server shares
    its loaded code with its children. Compiling the shipped templates takes about a second;
    a crash test that starts hundreds of workers would spend its time there."""
    real = worker_module.load
    loaded = real(config_path)

    def load(path: Path) -> Loaded:
        return loaded if Path(path) == Path(config_path) else real(path)

    monkeypatch.setattr(worker_module, "load", load)
    return loaded


def run_until_done(
    config: Path, url: str, start: datetime, step: timedelta, connect: Any, *, limit: int = 40
) -> datetime:
    """Start one worker after another (``run(once=True)``), each ``step`` later on the clock,
    until the outbox owes nothing; return the clock of the last one. The crash-free reference
    that the crash and outage tests compare with."""
    n = 0
    while True:
        clock = Clock(start + n * step)
        Worker(config, owner=f"reference-{n}", clock=clock, connect=connect).run(once=True)
        n += 1
        store = Store.open(url)
        try:
            owed = unfinished(store, start + n * step)
        finally:
            store.close()
        if not owed:
            return clock()
        assert n < limit, f"the outbox still owes {owed}"


class LoopDriver:
    """Runs ``worker.run()`` (the real loop) on a thread and moves its clock from the test:
    ``advance`` jumps the clock, wakes the loop and waits until the worker is idle again (no
    lease held, nothing due that is not parked). Exceptions escaping the loop are kept."""

    def __init__(self, worker: Worker, clock: Clock) -> None:
        self.worker = worker
        self.clock = clock
        self.result: list[int] = []
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="worker-loop", daemon=True)

    def _run(self) -> None:
        try:
            self.result.append(self.worker.run())
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error.append(exc)

    def start(self) -> LoopDriver:
        self.thread.start()
        self.settle()
        return self

    def stop(self) -> int:
        self.worker.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the worker loop did not stop"
        assert not self.error, f"an exception escaped the worker loop: {self.error!r}"
        return self.result[0]

    def mail_streams(self) -> dict[str, dict[str, Any]]:
        return {r["mailbox"]: r for r in self.worker.store.streams() if r["kind"] == "mail"}

    def idle(self) -> bool:
        with self.worker.lock:
            running = any(not f.done() for f in self.worker.in_flight.values())
        if running:
            return False
        now = self.clock()
        for row in self.mail_streams().values():
            if row["lease_owner"]:
                return False
            due = row["next_run_at"]
            if row["state"] not in PARKED_STATES and (due is None or due <= now):
                return False
        return True

    def settle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert not self.error, f"an exception escaped the worker loop: {self.error!r}"
            if self.idle():
                return
            self.worker.wake.set()
            time.sleep(0.01)
        raise AssertionError(f"the worker never went idle: {self.mail_streams()}")

    def advance(self, by: timedelta | float) -> None:
        self.clock.advance(by)
        self.worker.wake.set()
        self.settle()

    def next_due(self) -> datetime | None:
        dues = [
            r["next_run_at"]
            for r in self.mail_streams().values()
            if r["state"] not in PARKED_STATES and r["next_run_at"] is not None
        ]
        return min(dues) if dues else None

    def jump(self, *, until: datetime) -> bool:
        """Move the clock to the next mailbox falling due (not past ``until``) and let the
        worker work it; False once nothing falls due before ``until``."""
        due = self.next_due()
        if due is None or due > until:
            self.clock.set(max(self.clock(), until))
            self.worker.wake.set()
            self.settle()
            return False
        self.clock.set(max(self.clock(), due))
        self.worker.wake.set()
        self.settle()
        return True
