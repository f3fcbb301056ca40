"""Outages: Gmail answers 503 for minutes, or throttles with 429 and Retry-After, or the grant is
revoked. The worker's real loop runs on a thread against the Gmail emulators; the test moves its
clock (provider retries sleep on that clock too), so minutes of outage take a few seconds.

What must hold: the mailbox in trouble backs off with growing waits that honour Retry-After, the
worker stays healthy and keeps serving the other mailboxes, and once the provider is back the
mailbox catches up: every message synced, every due note sent once, nothing lost. A revoked grant
parks only its mailbox (needs_reconnect, no retry loop) until the rep connects it again.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.providers.protocol import key_tag
from agent.providers.tokens import Vault, new_key
from agent.store import INCREMENTAL, NEEDS_RECONNECT, SENT, Store
from agent.worker import Worker
from tests.fakes.gmail import raw_message
from tests.worker_helpers import (
    DEMO_NOW,
    Clock,
    GmailConnect,
    GmailWorld,
    LoopDriver,
    gmail_connect,
    run_until_done,
    unfinished,
)

POLL = 60
OUTAGE = timedelta(minutes=5)
HEALTHY = {"store": True, "rules": True, "running": True, "passes": True}


@dataclass
class Rig:
    world: GmailWorld
    config: Path
    url: str
    store: Store
    vault: Vault
    connects: list[GmailConnect]

    def connect(self, clock: Clock) -> GmailConnect:
        """The worker's connect factory, its retries sleeping on ``clock``."""
        self.connects.append(gmail_connect(clock.sleep))
        return self.connects[-1]


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    with GmailWorld.start() as world:
        config = world.write_config(tmp_path, db_url=url, poll_seconds=POLL, lease_seconds=120)
        store = Store.open(url)
        vault = Vault.from_environment()
        world.connect_all(store, vault)
        rig = Rig(world, config, url, store, vault, [])
        yield rig
        for connect in rig.connects:
            connect.close()
        store.close()


def sample(worker: Worker, name: str, labels: dict[str, str]) -> float:
    return worker.metrics.registry.get_sample_value(name, labels) or 0.0


def synced_everything(rig: Rig, name: str) -> bool:
    emu = rig.world.emulators[name]
    with emu.lock:
        held = {i for i, m in emu.messages.items() if "DRAFT" not in m.labels}
    return {m.provider_id for m in rig.store.messages(name)} == held


def crash_free_reference(tmp_path: Path) -> dict[str, str]:
    """The keys a run with no outage sends, with their kinds (a separate world and database)."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    with GmailWorld.start() as world:
        config = world.write_config(tmp_path / "reference", db_url=url, poll_seconds=POLL)
        store = Store.open(url)
        world.connect_all(store, Vault.from_environment())
        store.close()
        connect = gmail_connect()
        try:
            run_until_done(config, url, DEMO_NOW, timedelta(seconds=POLL * 1.2), connect)
        finally:
            connect.close()
        store = Store.open(url)
        try:
            # Mail carries each key's opaque tag: the reference is kept by tag to compare.
            return {key_tag(r["key"]): r["kind"] for r in store.outbox(statuses=(SENT,))}
        finally:
            store.close()


def backoffs(caplog: pytest.LogCaptureFixture, mailbox: str) -> list[float]:
    """The waits the worker chose after each failed pass of ``mailbox``, from its log."""
    return [
        float(r.args[-1])  # type: ignore[index, arg-type]
        for r in caplog.records
        if r.name == "followup.worker"
        and getattr(r, "mailbox", None) == mailbox
        and r.msg.startswith("pass failed")
    ]


def test_outage_and_throttling_back_off_and_catch_up_with_nothing_lost(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reference = crash_free_reference(tmp_path)
    caplog.set_level(logging.WARNING, logger="followup.worker")
    asha, lukas, omar = (rig.world.emulators[n] for n in ("asha", "lukas", "omar"))
    clock = Clock(DEMO_NOW)
    start = clock()
    # asha: every Gmail call answers 503 for five minutes of the worker's clock.
    asha.outage(503, until=lambda: clock() >= start + OUTAGE)
    # lukas: a 429 storm asking for two minutes' rest each time, for four minutes.
    lukas.outage(429, retry_after=120, until=lambda: clock() >= start + timedelta(minutes=4))
    attempts: list[datetime] = []  # when lukas's worker knocked during its storm
    lukas.on_call = lambda _call: attempts.append(clock()) if lukas.in_outage else None
    # omar: a short storm whose Retry-After the adapter can sleep through inside one pass.
    omar.script([429, 429], retry_after=20)
    worker = Worker(rig.config, clock=clock, connect=rig.connect(clock), rng=random.Random(8))
    loop = LoopDriver(worker, clock).start()

    served_during_outage: set[str] = set()
    arrived: list[str] = []
    while clock() < start + OUTAGE + timedelta(minutes=20):
        assert worker.health() == HEALTHY
        if asha.in_outage:
            served_during_outage.update(
                n for n, r in loop.mail_streams().items() if r["failures"] == 0 and r["synced_at"]
            )
        if len(arrived) < 3 and clock() >= start + timedelta(minutes=len(arrived) + 1):
            # Mail keeps arriving while Gmail turns the worker away.
            when = clock() - timedelta(minutes=1)
            arrived.append(
                asha.deliver(raw_message(9000 + len(arrived), to=asha.address, date=when))
            )
        loop.jump(until=clock() + timedelta(seconds=POLL))
    assert loop.stop() == 0

    # asha backed off with growing waits, doubling from 30 s (jittered into its upper half).
    asha_waits = backoffs(caplog, "asha")
    assert len(asha_waits) >= 3, asha_waits
    assert all(b > a for a, b in itertools.pairwise(asha_waits)), asha_waits
    assert 15 <= asha_waits[0] <= 30
    # Inside each failing pass the adapter retried reads with short sleeps, never for minutes.
    assert clock.slept and max(clock.slept) <= 60
    # lukas was told to wait two minutes each time: the worker chose at least that, and did
    # not knock again sooner.
    lukas_waits = backoffs(caplog, "lukas")
    assert len(lukas_waits) >= 2 and all(w >= 120 for w in lukas_waits), lukas_waits
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps and all(g >= 120 for g in gaps), gaps
    # omar slept through its short storm inside a pass, as told, and never backed off.
    assert sum(1 for s in clock.slept if s >= 20) >= 2
    assert omar.failed[429] == 2 and not backoffs(caplog, "omar")
    # The other mailboxes were served while asha was down.
    assert "omar" in served_during_outage
    assert asha.failed[503] > 0 and lukas.failed[429] > 0
    assert sample(worker, "followup_provider_errors_total", {"error": "Transient"}) >= 3
    assert sample(worker, "followup_syncs_total", {"result": "transient"}) >= 3

    # Caught up: synced, sent once each, nothing lost, nothing stuck.
    streams = {r["mailbox"]: r for r in rig.store.streams() if r["kind"] == "mail"}
    assert {n: (r["state"], r["failures"]) for n, r in streams.items()} == {
        n: (INCREMENTAL, 0) for n in streams
    }
    for name in rig.world.emulators:
        assert synced_everything(rig, name), name
    stored = {m.provider_id for m in rig.store.messages("asha")}
    assert set(arrived) <= stored
    sent = rig.world.sent_keys()
    assert all(count == 1 for count in sent.values()), sent
    assert set(sent) == set(reference)
    assert not unfinished(rig.store, clock())
    print(
        f"\noutage: asha (503 for {OUTAGE}) waited "
        f"{', '.join(f'{w:.0f}' for w in asha_waits)} s after successive failures; lukas "
        f"(429, Retry-After 120) waited {', '.join(f'{w:.0f}' for w in lukas_waits)} s; "
        f"{len(sent)} notes sent once each after catching up, {len(reference)} due"
    )


def test_revoked_grant_parks_only_that_mailbox_until_it_is_connected_again(rig: Rig) -> None:
    asha, lukas = rig.world.emulators["asha"], rig.world.emulators["lukas"]
    clock = Clock(DEMO_NOW)
    worker = Worker(rig.config, clock=clock, connect=rig.connect(clock))
    loop = LoopDriver(worker, clock).start()
    assert {n: r["state"] for n, r in loop.mail_streams().items()} == dict.fromkeys(
        rig.world.emulators, INCREMENTAL
    )

    # The rep or an admin revoked the grant: the access token answers 401, and the refresh the
    # client then tries answers invalid_grant at the token endpoint.
    asha.revoke()
    late = datetime(2026, 11, 25, 8, 55, tzinfo=DEMO_NOW.tzinfo)
    new_asha = asha.deliver(raw_message(7001, to="asha@acme.example", date=late))
    new_lukas = lukas.deliver(raw_message(7002, to="lukas@acme.example", date=late))
    loop.advance(POLL * 1.2)
    row = loop.mail_streams()["asha"]
    assert (row["state"], row["next_run_at"]) == (NEEDS_RECONNECT, None)
    assert "revoked or expired" in row["last_error"]
    assert new_lukas in {m.provider_id for m in rig.store.messages("lukas")}
    assert worker.health() == HEALTHY

    # Parked means parked: an hour of polls, and no one asks the token endpoint again.
    asked = asha.token_requests
    for _ in range(20):
        loop.advance(POLL * 3)
    assert asha.token_requests == asked
    assert loop.mail_streams()["asha"]["state"] == NEEDS_RECONNECT
    assert {n: r["state"] for n, r in loop.mail_streams().items() if n != "asha"} == {
        "lukas": INCREMENTAL,
        "omar": INCREMENTAL,
    }
    assert sample(worker, "followup_syncs_total", {"result": "needs_reconnect"}) == 1

    # The rep connects again (a fresh grant saved sealed, by a store on the worker's clock):
    # the mailbox is due at once by that clock, wakes and catches up.
    rig.store.clock = clock
    rig.world.connect("asha", rig.store, rig.vault)
    row = loop.mail_streams()["asha"]
    assert (row["state"], row["next_run_at"]) == (INCREMENTAL, clock())
    loop.advance(1)
    assert loop.mail_streams()["asha"]["state"] == INCREMENTAL
    assert new_asha in {m.provider_id for m in rig.store.messages("asha")}
    assert synced_everything(rig, "asha")
    assert worker.health() == HEALTHY
    assert loop.stop() == 0
