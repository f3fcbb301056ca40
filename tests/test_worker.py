"""The worker: leases, passes, parking, reload, health, signals and logs."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import app, logs
from agent.demo import run_demo
from agent.store import (
    DISABLED,
    INCREMENTAL,
    NEEDS_RECONNECT,
    NEW,
    SENT,
    Store,
)
from agent.worker import MAX_BACKOFF, Collector, Worker, backoff

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY = "f" * 43 + "="  # a syntactically valid Fernet key for configs with remote mailboxes


# -- backoff -----------------------------------------------------------------------------------
@given(
    failures=st.integers(1, 40),
    poll=st.floats(1, 3600),
    retry_after=st.none() | st.floats(0, 7200),
    jitter=st.floats(0, 0.999),
)
def test_backoff_grows_is_capped_and_honours_retry_after(
    failures: int, poll: float, retry_after: float | None, jitter: float
) -> None:
    wait = backoff(failures, timedelta(seconds=poll), retry_after, jitter)
    assert wait > timedelta(0)
    assert wait <= max(MAX_BACKOFF, timedelta(seconds=retry_after or 0))
    if retry_after:
        assert wait >= timedelta(seconds=retry_after)
    # Never shorter than half the undisturbed doubling (full jitter would retry in a burst).
    base = min(timedelta(seconds=poll), timedelta(seconds=30)) * 2 ** (failures - 1)
    assert wait >= min(base, MAX_BACKOFF) / 2


def test_backoff_doubles_with_each_failure() -> None:
    waits = [backoff(n, timedelta(seconds=60), None, 0.5) for n in range(1, 8)]
    assert waits == sorted(waits)
    assert waits[1] == 2 * waits[0]
    assert waits[-1] == MAX_BACKOFF * 0.75


# -- leases ------------------------------------------------------------------------------------
def test_full_collections_wait_for_an_idle_moment_or_run_after_the_longest_wait() -> None:
    import gc

    before = gc.get_threshold()
    collector = Collector(every=0.05, at_most=0.2)
    assert not collector.maybe_collect(idle=True)  # too soon
    time.sleep(0.06)
    assert not collector.maybe_collect(idle=False)  # busy, and not overdue
    assert collector.maybe_collect(idle=True)
    time.sleep(0.21)
    assert collector.maybe_collect(idle=False)  # overdue: collected even while busy
    assert collector.seconds > 0
    assert gc.get_threshold() == before  # Python's own collections are left as they are


def test_a_mailbox_is_leased_by_one_worker_until_its_lease_expires(store: Store) -> None:
    store.register_mailboxes(["a", "b", "c"], NOW)
    ttl = timedelta(seconds=30)
    first = store.lease("w1", NOW, ttl, 2)
    second = store.lease("w2", NOW, ttl, 10)
    assert len(first) == 2 and len(second) == 1
    assert not set(first) & set(second)
    assert store.lease("w3", NOW + timedelta(seconds=10), ttl, 10) == {}
    (alive,) = second
    assert store.finish("w2", alive, state=INCREMENTAL, next_run_at=NOW + timedelta(minutes=5))
    # w1 dies; after expiry w3 takes its mailboxes over, and w1's late finish is refused.
    taken = store.lease("w3", NOW + timedelta(seconds=31), ttl, 10)
    assert set(taken) == set(first)
    dead = next(iter(first))
    assert not store.finish("w1", dead, state=INCREMENTAL, next_run_at=NOW)
    assert store.finish("w3", dead, state=INCREMENTAL, next_run_at=NOW + timedelta(minutes=1))


def test_renew_keeps_live_leases_and_reports_lost_ones(store: Store) -> None:
    store.register_mailboxes(["a", "b"], NOW)
    ttl = timedelta(seconds=30)
    store.lease("w1", NOW, ttl, 10)
    assert store.renew("w1", ["a", "b"], NOW + timedelta(seconds=60)) == {"a", "b"}
    assert store.lease("w2", NOW + timedelta(seconds=45), ttl, 10) == {}  # renewed: not expired
    store.lease("w2", NOW + timedelta(seconds=61), ttl, 10)
    assert store.renew("w1", ["a", "b"], NOW + timedelta(seconds=90)) == set()


def test_parked_and_not_yet_due_mailboxes_are_not_leased(store: Store) -> None:
    store.register_mailboxes(["a", "b", "c"], NOW)
    store.lease("w", NOW, timedelta(seconds=30), 10)
    store.finish("w", "a", state=NEEDS_RECONNECT, next_run_at=None, error="revoked")
    store.finish("w", "b", state=INCREMENTAL, next_run_at=NOW + timedelta(minutes=5))
    store.finish("w", "c", state=INCREMENTAL, next_run_at=NOW)
    assert set(store.lease("w", NOW + timedelta(minutes=1), timedelta(seconds=30), 10)) == {"c"}
    # A fresh sign-in wakes the parked mailbox.
    store.save_credentials("a", b"sealed")
    states = {r["mailbox"]: r["state"] for r in store.streams() if r["kind"] == "mail"}
    assert states["a"] == INCREMENTAL


def test_removed_mailboxes_are_disabled_and_come_back(store: Store) -> None:
    store.register_mailboxes(["a", "b"], NOW)
    store.register_mailboxes(["a"], NOW)
    states = {(r["mailbox"], r["kind"]): r["state"] for r in store.streams()}
    assert states[("b", "mail")] == states[("b", "calendar")] == DISABLED
    assert set(store.lease("w", NOW, timedelta(seconds=30), 10)) == {"a"}
    store.register_mailboxes(["a", "b"], NOW)
    assert {r["state"] for r in store.streams("b")} == {NEW}


# -- a whole pass over the demo's mailboxes ----------------------------------------------------
@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The demo's config and Maildir mailboxes, with an empty database."""
    result = run_demo(tmp_path / "demo")
    for f in (tmp_path / "demo").glob("followup-demo.db*"):
        f.unlink()
    text = (result.out / "config.toml").read_text()
    text = text.replace("[service]\n", "")
    text += '\n[service]\nlisten = "127.0.0.1:0"\npoll_seconds = 60\nlease_seconds = 30\n'
    (result.out / "config.toml").write_text(text)
    return result.out / "config.toml"


def _store(config_path: Path) -> Store:
    return Store.open(f"sqlite:///{config_path.parent / 'followup-demo.db'}")


def test_run_once_syncs_plans_and_executes_every_mailbox_exactly_once(demo_config: Path) -> None:
    worker = Worker(demo_config, clock=lambda: NOW)
    assert worker.run(once=True) == 0
    store = _store(demo_config)
    rows = store.outbox()
    assert rows, "the demo scenario has due reminders and notes"
    executed = [r for r in rows if r["status"] not in ("planned",)]
    assert any(r["status"] == SENT for r in executed)  # reminders to reps are always sent
    assert {r["mailbox"] for r in store.streams()} == {"asha", "lukas", "omar"}
    assert {r["state"] for r in store.streams()} == {INCREMENTAL}
    assert all(r["lease_owner"] is None for r in store.streams())
    before = {(r["key"], r["status"]) for r in rows}
    sent = [m for m in store.messages() if "SENT" in m.labels or "sent" in m.labels]

    # A second worker an hour later plans the same keys again: nothing is doubled.
    later = Worker(demo_config, clock=lambda: NOW + timedelta(hours=1))
    later.run(once=True)
    after = store.outbox()
    assert len(after) >= len(rows)
    assert len({r["key"] for r in after}) == len(after)
    resent = [r for r in after if (r["key"], SENT) in before and r["status"] != SENT]
    assert resent == []
    assert len([m for m in store.messages() if "SENT" in m.labels or "sent" in m.labels]) >= len(
        sent
    )
    store.close()


def test_later_passes_plan_again_only_what_changed_and_a_reload_plans_everything(
    demo_config: Path,
) -> None:
    clock = [NOW]
    worker = Worker(demo_config, clock=lambda: clock[-1])

    def planned() -> float:
        return worker.metrics.registry.get_sample_value("followup_threads_planned_total") or 0.0

    worker.run(once=True)
    first = planned()
    store = _store(demo_config)
    threads = len({(m.mailbox, m.thread_id) for m in store.messages()})
    assert first == threads > 0
    rows = len(store.outbox())

    clock.append(NOW + timedelta(minutes=6))
    worker.run(once=True)  # the notes sent in the first round are now in their threads
    assert len(store.outbox()) >= rows
    # Past the replanning interval again with no new mail: only threads whose time came.
    clock.append(NOW + timedelta(minutes=12))
    before = planned()
    worker.run(once=True)
    assert planned() - before < threads / 2

    worker.reload()  # a new set of rules and templates: every thread is planned again
    clock.append(NOW + timedelta(minutes=18))
    before = planned()
    worker.run(once=True)
    threads = len({(m.mailbox, m.thread_id) for m in store.messages()})
    assert planned() - before == threads
    store.close()
    worker.store.close()


def test_a_mailbox_that_is_not_connected_is_parked_and_the_others_run(
    demo_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", KEY)
    text = demo_config.read_text()
    text += (
        '\n[[mailboxes]]\nname = "dana"\nprovider = "gmail"\naddress = "dana@acme.example"\n'
        'rep_name = "Dana"\nzone = "America/New_York"\n'
    )
    demo_config.write_text(text)
    worker = Worker(demo_config, clock=lambda: NOW)
    worker.run(once=True)
    store = _store(demo_config)
    mail = {r["mailbox"]: r for r in store.streams() if r["kind"] == "mail"}
    assert mail["dana"]["state"] == NEEDS_RECONNECT
    assert "followup connect gmail --mailbox dana" in mail["dana"]["last_error"]
    assert {mail[n]["state"] for n in ("asha", "lukas", "omar")} == {INCREMENTAL}
    # Parked: the next round does not touch it, and does not loop on it.
    Worker(demo_config, clock=lambda: NOW + timedelta(hours=2)).run(once=True)
    assert store.streams("dana")[0]["state"] == NEEDS_RECONNECT
    store.close()
    # followup status tells the rep what to run.
    shown = {r["mailbox"]: r for r in app.status(demo_config, now="2026-11-25T09:00Z").mailboxes}
    assert shown["dana"]["hint"] == "followup connect gmail --mailbox dana"
    assert "hint" not in shown["asha"]


def test_a_broken_rule_file_is_refused_and_the_last_good_rules_keep_running(
    demo_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(demo_config, clock=lambda: NOW)
    good = worker.loaded
    rules_dir = demo_config.parent / "rules"
    rules_dir.mkdir()
    text = demo_config.read_text()
    rules_line = next(line for line in text.splitlines() if line.startswith("rules = "))
    bundled = Path(json.loads(rules_line.removeprefix("rules = ")))
    for f in bundled.glob("*.toml"):
        (rules_dir / f.name).write_text(f.read_text())
    demo_config.write_text(text.replace(rules_line, 'rules = "rules"'))
    assert worker.reload()
    assert worker.loaded is not good

    (rules_dir / "default.toml").write_text('[[promise]]\nname = "x"\nwithin = "soon"\n')
    with caplog.at_level(logging.ERROR, logger="followup.worker"):
        assert not worker.reload()
    assert "reload refused" in caplog.text
    assert "default.toml" in caplog.text  # the problem names the file
    assert worker.loaded.team.rules.promises  # still the last good set
    assert all(worker.health().values())
    worker.store.close()


def test_a_change_on_disk_is_picked_up_without_a_signal(demo_config: Path) -> None:
    worker = Worker(demo_config, clock=lambda: NOW)
    first = worker.loaded
    worker._maybe_reload()
    assert worker.loaded is first  # nothing changed
    text = demo_config.read_text().replace("daily_cap", "daily_cap", 1)
    demo_config.write_text(text + "\n# touched\n")
    worker.last_reload_check = 0.0
    worker._maybe_reload()
    assert worker.loaded is not first
    worker.store.close()


# -- the service, as a process -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _start(config_path: Path, port: int) -> subprocess.Popen[str]:
    text = config_path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    text = text.replace("[service]\n", '[service]\nlog_format = "json"\nshutdown_timeout = 10\n')
    config_path.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_healthy(port: int, proc: subprocess.Popen[str]) -> tuple[int, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            status, body = _get(f"http://127.0.0.1:{port}/healthz")
            if status == 200:
                return status, body
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the worker never became healthy")


def test_the_service_answers_health_and_metrics_and_stops_cleanly_on_sigterm(
    demo_config: Path,
) -> None:
    port = _free_port()
    proc = _start(demo_config, port)
    try:
        _, body = _wait_healthy(port, proc)
        assert json.loads(body) == {
            "status": "ok",
            "store": True,
            "rules": True,
            "running": True,
            "passes": True,
        }
        deadline = time.monotonic() + 30
        metrics = ""
        while time.monotonic() < deadline and 'syncs_total{result="ok"} 3.0' not in metrics:
            metrics = _get(f"http://127.0.0.1:{port}/metrics")[1]
            time.sleep(0.2)
        assert 'followup_syncs_total{result="ok"} 3.0' in metrics
        assert "followup_actions_executed_total" in metrics
        assert _get(f"http://127.0.0.1:{port}/nothing")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate(timeout=10)[1]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    assert any(line["msg"].startswith("SIGTERM") for line in lines)
    assert lines[-1]["msg"].endswith("stopped")
    assert any(line.get("mailbox") and line.get("key") for line in lines)
    store = _store(demo_config)
    assert all(r["lease_owner"] is None for r in store.streams())  # leases handed back
    assert not [r for r in store.outbox() if r["status"] in ("drafting", "sending")]
    store.close()


# Loaded by commands that need them, never by a worker serving Gmail or local mailboxes: the
# migration tool, the Microsoft and OAuth consent libraries, the language models, the terminal UI.
# (requests comes with the first webhook, and the demo's team has one.)
NOT_IN_A_WORKER = (
    "alembic",
    "mako",
    "pygments",
    "msal",
    "oauthlib",
    "google_auth_oauthlib",
    "py3langid",
    "rich",
)


def test_a_worker_loads_only_what_it_uses(demo_config: Path) -> None:
    # `followup run --once` as the command line runs it, on a database already migrated, with
    # Gmail's provider loaded as a Gmail mailbox would: what else is resident at exit?
    Store.open(f"sqlite:///{demo_config.parent / 'followup-demo.db'}").close()
    code = (
        "import atexit, sys\n"
        "from agent.providers import gmail\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "from agent.cli import main\n"
        "main(['run', '--once', '--now', '2026-11-25T09:00Z', '--config', sys.argv[1]])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(demo_config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))
    assert {"agent", "googleapiclient", "sqlalchemy"} <= loaded
    assert loaded.isdisjoint(NOT_IN_A_WORKER), sorted(loaded & set(NOT_IN_A_WORKER))


def test_sighup_reloads_and_a_second_sigterm_exits_at_once(demo_config: Path) -> None:
    port = _free_port()
    proc = _start(demo_config, port)
    try:
        _wait_healthy(port, proc)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        metrics = ""
        while time.monotonic() < deadline and 'followup_reloads_total{result="ok"}' not in metrics:
            metrics = _get(f"http://127.0.0.1:{port}/metrics")[1]
            time.sleep(0.2)
        assert 'followup_reloads_total{result="ok"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) in (0, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


# -- logs --------------------------------------------------------------------------------------
def test_json_logs_carry_context_and_never_a_token() -> None:
    out = io.StringIO()
    logs.setup("json", stream=out)
    log = logging.getLogger("followup.test")
    log.info(
        "refresh failed: {'access_token': 'ya29.a0AfH6SMBx', 'refresh_token': '1//0gLONGREFRESH'}",
        extra={"mailbox": "asha", "client": "kenji", "rule": "vip"},
    )
    log.warning("GET https://x/?code=4/abc&client_secret=shh Authorization: Bearer eyJ0eXAi.x.y")
    try:
        raise RuntimeError("token gAAAAABlongsealedcredentialblobxxxxxxxx leaked")
    except RuntimeError:
        log.exception("boom")
    text = out.getvalue()
    for secret in ("ya29.a0", "1//0gLONG", "4/abc", "shh", "eyJ0eXAi", "gAAAAABlong"):
        assert secret not in text
    first = json.loads(text.splitlines()[0])
    assert first["mailbox"] == "asha" and first["client"] == "kenji" and first["rule"] == "vip"
    assert first["level"] == "info" and "[redacted]" in first["msg"]
    logging.getLogger().handlers.clear()


def test_a_store_that_refuses_leases_keeps_the_worker_running_until_it_answers(
    demo_config: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy or restarting database turns the lease away: the worker says so once, counts each
    attempt, and leases at its next tick once the store answers; a one-round run just ends."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.exc import OperationalError

    worker = Worker(demo_config, clock=lambda: NOW)
    real = worker.store.lease
    refusals = [3]

    def lease(*args: object, **kwargs: object) -> object:
        if refusals[0]:
            refusals[0] -= 1
            raise OperationalError("UPDATE streams ...", {}, Exception("database is locked"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.store, "lease", lease)
    caplog.set_level(logging.INFO, logger="followup.worker")
    pool = ThreadPoolExecutor(2)
    try:
        for _ in range(3):
            worker._round(pool, wait=False)  # turned away: nothing leased, nothing raised
        assert not worker.in_flight
        warned = [r for r in caplog.records if r.msg.startswith("cannot lease")]
        assert len(warned) == 1 and "database is locked" in warned[0].getMessage()
        errors = worker.metrics.registry.get_sample_value("followup_lease_errors_total")
        assert errors == 3
        worker._round(pool, wait=True)  # the store answers again: every mailbox is worked
        assert {r["state"] for r in worker.store.streams()} == {INCREMENTAL}
        assert any(r.msg.startswith("the store answers again") for r in caplog.records)
    finally:
        pool.shutdown(wait=True)

    refusals[0] = 10**6
    assert worker.run(once=True) == 0  # one round, turned away: ends without a traceback


def test_a_reload_while_the_store_is_down_registers_its_mailboxes_once_it_answers(
    demo_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    worker = Worker(demo_config, clock=lambda: NOW)
    real = worker.store.register_mailboxes
    calls: list[list[str]] = []

    def register(names: list[str], at: datetime) -> None:
        calls.append(sorted(names))
        if len(calls) == 1:
            raise OperationalError("INSERT INTO streams ...", {}, Exception("server closed"))
        real(names, at)

    monkeypatch.setattr(worker.store, "register_mailboxes", register)
    assert worker.reload()  # the new set runs; its mailboxes wait for the store
    assert worker.unregistered
    worker.last_reload_check = 0.0
    worker._maybe_reload()  # the next check registers them, without loading the files again
    assert not worker.unregistered and len(calls) == 2
    worker.store.close()
