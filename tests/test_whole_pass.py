"""A worker's whole pass over a Gmail mailbox, counted at the emulator: the bodies it fetches
(only those a planner reads, in batches) and a first sync that serves recent mail first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from agent import app
from agent.config import Mailbox
from agent.providers.gmail import GmailProvider
from agent.providers.protocol import first_sync_of
from agent.providers.registry import Connection
from agent.providers.tokens import CredentialStore, Vault, new_key
from agent.store import Store
from agent.worker import Worker
from tests.fakes.gmail import GoogleEmulator, raw_message
from tests.worker_helpers import DEMO_NOW, Clock, GmailConnect, GmailWorld, gmail_connect

CLIENT = "Priya Reddy <priya@reddytextiles.in>"  # a client of the demo's clients.csv
NEWSLETTER = {"List-Id": "<news.tradefair.example>", "Precedence": "list"}


@dataclass
class Rig:
    world: GmailWorld
    config: Path
    store: Store
    connect: GmailConnect

    @property
    def emu(self) -> GoogleEmulator:
        return self.world.emulators["asha"]

    def worker(self, clock: Clock) -> Worker:
        return Worker(self.config, owner="test", clock=clock, connect=self.connect)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    with GmailWorld.start(["asha"]) as world:
        config = world.write_config(tmp_path, db_url=url)
        store = Store.open(url)
        world.connect_all(store, Vault.from_environment())
        connect = gmail_connect()
        yield Rig(world, config, store, connect)
        connect.close()
        store.close()


def _deliver_mix(emu: GoogleEmulator, clients: int, others: int) -> set[str]:
    """``clients`` questions from a client and ``others`` each of newsletters and strangers,
    all within the last days before DEMO_NOW; return the ids of the clients' questions."""
    wanted = set()
    for n in range(clients):
        when = DEMO_NOW - timedelta(hours=2 + n)
        wanted.add(emu.deliver(raw_message(1000 + n, sender=CLIENT, date=when), internal=when))
    for n in range(others):
        when = DEMO_NOW - timedelta(hours=3 + n)
        emu.deliver(
            raw_message(
                2000 + n, sender="News <news@tradefair.example>", date=when, extra=NEWSLETTER
            ),
            internal=when,
        )
        emu.deliver(
            raw_message(3000 + n, sender=f"x{n}@stranger.example", date=when), internal=when
        )
    return wanted


def test_a_pass_fetches_only_client_bodies_and_fetches_them_in_batches(rig: Rig) -> None:
    wanted = _deliver_mix(rig.emu, clients=120, others=40)
    rig.emu.reset_counters()
    rig.worker(Clock(DEMO_NOW)).run(once=True)

    stored = {m.provider_id: m for m in rig.store.messages("asha")}
    fetched = {pid for pid, m in stored.items() if m.body is not None}
    assert wanted <= fetched
    newsletters_and_strangers = {
        pid
        for pid, m in stored.items()
        if m.sender.email.endswith(("tradefair.example", "stranger.example"))
    }
    assert len(newsletters_and_strangers) == 80
    assert fetched.isdisjoint(newsletters_and_strangers)
    # One messages.get(format=raw) per body read, no more, 50 to a batch: about 130 bodies
    # cost 3 HTTP requests, not 130.
    assert rig.emu.formats["raw"] == len(fetched)
    carrying = [b.count("messages.get:raw") for b in rig.emu.batches if "messages.get:raw" in b]
    assert sum(carrying) == len(fetched)
    assert len(carrying) == -(-len(fetched) // 50) == 3


def test_a_body_gone_before_it_is_fetched_is_recorded_and_the_rest_are_kept(rig: Rig) -> None:
    wanted = _deliver_mix(rig.emu, clients=3, others=0)
    gone = rig.emu.deliver(raw_message(4000, sender=CLIENT, date=DEMO_NOW), internal=DEMO_NOW)
    seen: list[str] = []

    def delete_before_its_body_is_read(call: str) -> None:
        # The first GET of the message is the sync's metadata, the second its body.
        if call.endswith(f"/messages/{gone}"):
            seen.append(call)
            if len(seen) == 2:
                rig.emu.delete(gone)

    rig.emu.on_call = delete_before_its_body_is_read
    rig.worker(Clock(DEMO_NOW)).run(once=True)
    stored = {m.provider_id: m for m in rig.store.messages("asha")}
    assert all(stored[pid].body for pid in wanted)
    assert stored[gone].body == ""
    assert [s["item"] for s in rig.store.skipped() if s["source"] == "body"] == [gone]


class WindowedConnect(GmailConnect):
    """The worker's Gmail clients with a windowed first sync."""

    def __init__(self, days: int, chunk: int) -> None:
        super().__init__()
        self.days, self.chunk = days, chunk

    def __call__(self, m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
        conn = super().__call__(m, creds, vault)
        mail = conn.mail
        assert isinstance(mail, GmailProvider)
        mail._first_sync_days, mail._first_sync_chunk = self.days, self.chunk
        return conn


def test_a_first_sync_serves_the_last_two_weeks_in_its_first_pass(rig: Rig, tmp_path: Path) -> None:
    # 600 client questions, one every 4.8 hours: 120 days, 14 a week ... 70 in two weeks.
    for n in range(600):
        when = DEMO_NOW - timedelta(hours=4.8 * (n + 1))
        rig.emu.deliver(raw_message(5000 + n, sender=CLIENT, date=when), internal=when)
    recent = {
        pid
        for pid, m in rig.emu.messages.items()
        if m.internal_ms >= (DEMO_NOW - timedelta(days=14)).timestamp() * 1000
    }
    # The window ends at the newest message in the mailbox.
    newest = max(m.internal_ms for m in rig.emu.messages.values())
    window = {
        pid
        for pid, m in rig.emu.messages.items()
        if m.internal_ms >= newest - timedelta(days=90).total_seconds() * 1000
    }
    clock = Clock(DEMO_NOW)
    connect = WindowedConnect(days=90, chunk=100)
    try:
        worker = Worker(rig.config, owner="t", clock=clock, connect=connect)
        worker.run(once=True)
        stored = {m.provider_id: m for m in rig.store.messages("asha")}
        assert recent <= set(stored)  # the last two weeks, after one pass ...
        assert len(stored) == 100  # ... of one chunk
        asked = [pid for pid in recent if stored[pid].sender.email == "priya@reddytextiles.in"]
        assert len(asked) >= 70 and all(stored[pid].body for pid in asked)  # and read
        rows = app.status(rig.config, mailbox="asha", now=DEMO_NOW.isoformat()).mailboxes
        assert rows[0]["first_sync"] == (
            "first sync: 20% of the window read, back to 2026-11-06 of 2026-08-27"
        )
        worker._gauges()  # what its loop exports every 15 s
        ratio = worker.metrics.registry.get_sample_value(
            "followup_first_sync_done_ratio", {"mailbox": "asha"}
        )
        assert ratio is not None and 0.2 < ratio < 0.22

        passes = 1
        while first_sync_of(rig.store.cursor("asha")) is not None:
            clock.advance(timedelta(seconds=60))
            Worker(rig.config, owner="t", clock=clock, connect=connect).run(once=True)
            passes += 1
        assert passes == -(-len(window) // 100)
        stored = {m.provider_id: m for m in rig.store.messages("asha")}
        assert window <= set(stored)
        # Besides the window only what the agent sent meanwhile: nothing older than 90 days.
        assert all("SENT" in stored[pid].labels for pid in set(stored) - window)
    finally:
        connect.close()
