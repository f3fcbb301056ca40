"""The long-running worker: lease due mailboxes, then sync -> match -> plan -> execute, forever.

Each configured mailbox has two streams (mail, calendar) in the store's ``streams`` table, with
a state (new, incremental, backoff, needs_reconnect, access_denied, disabled), a cursor,
``next_run_at`` and a failure count. The loop leases due mailboxes (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so several workers share one database and each mailbox is worked by one of them
at a time), works up to ``service.concurrency`` of them in threads, renews the leases of the
ones in flight from a heartbeat thread, and schedules each mailbox's next pass:
``poll_seconds`` later (jittered), or later still after failures (exponential, honouring
Retry-After).

- ``AuthRevoked`` parks one mailbox as ``needs_reconnect`` until the rep connects it again;
  ``AccessDenied`` (no licence, mailbox not enabled, a permission) marks it ``access_denied``
  with the reason and tries it again hourly; any other failure backs that mailbox off. Nothing
  a mailbox does stops the worker.
- SIGTERM / SIGINT: take no new work, let in-flight passes finish within
  ``service.shutdown_timeout``, hand the leases back, exit 0. A second signal exits at once.
- SIGHUP, or a change on disk to the config, rules, templates or clients file, reloads them;
  an invalid new set is refused with its problems in the log and the last good set runs on.
- A pass still running after ``STUCK_AFTER`` is stuck: its lease is given up (the mailbox backs
  off, and another worker may take it), ``/healthz`` answers 503 and the systemd watchdog is no
  longer fed, so the service manager restarts the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from agent import attention, config, configcheck, controls, golive, logs, pipeline, steering
from agent.compose import Composer
from agent.config import Mailbox, Settings
from agent.errors import (
    AccessDenied,
    AuthRevoked,
    ConfigError,
    FollowupError,
    Problem,
    ProviderError,
    TemplateError,
    Transient,
    UserError,
)
from agent.health import HealthServer, Metrics
from agent.mime import MAX_TEXT_CHARS
from agent.model import Action, Bodies
from agent.outbox import Outbox
from agent.providers.protocol import first_sync_of
from agent.providers.registry import Connection, open_mailbox
from agent.providers.tokens import CredentialStore, Vault
from agent.replan import Deferred, plan_mailbox
from agent.store import (
    ACCESS_DENIED,
    BACKOFF,
    INCREMENTAL,
    NEEDS_ATTENTION,
    NEEDS_RECONNECT,
    Store,
    action_from_json,
    wall_clock,
)

log = logging.getLogger("followup.worker")

MAX_BACKOFF = timedelta(minutes=15)
# An administrator's fix (a licence, a permission) arrives unannounced: look again this often.
ACCESS_RETRY = timedelta(hours=1)
# A first full sync of a large mailbox takes minutes; a pass this long is stuck, not slow.
STUCK_AFTER = timedelta(minutes=30)
REPLAN_EVERY = timedelta(minutes=5)  # reminders fall due with time even when no mail arrives
BODY_WINDOW = timedelta(days=45)  # bodies older than this are never read by a planner
# A mailbox holding fewer messages than this is planned whole without waiting for one of the
# `service.whole_plans` slots: its history takes a few MB (about 4.4 KB a message when planned).
SMALL_WHOLE_PLAN = 2_000
BODY_CHUNK = 500  # bodies stored after every so many, so a failed pass keeps what it fetched
RELOAD_CHECK_SECONDS = 2.0
# Providers whose clients are opened per pass rather than kept: opening a Gmail client reuses
# the process's parsed discovery document and the stored token, while an Outlook client is
# kept because MSAL looks its authority up over the network when it is created.
CHEAP_TO_OPEN = frozenset({"local", "gmail"})

Connect = Callable[[Mailbox, CredentialStore, Vault | None], Connection]


# -- what the worker runs with ----------------------------------------------------------------
@dataclass(frozen=True)
class Loaded:
    """A consistent, validated set of config, rules, clients and templates."""

    settings: Settings
    team: pipeline.Team
    composer: Composer
    vault: Vault | None
    stamp: tuple[tuple[str, int, int], ...]
    digest: str = ""  # of the files' contents: a plan made with other ones is made again

    @property
    def enabled(self) -> list[str]:
        return [m.name for m in self.settings.mailboxes if m.enabled]


def load(config_path: Path) -> Loaded:
    """Load and validate everything; raises a ``UserError`` naming every problem."""
    settings = config.load(config_path)
    team = pipeline.load_team(settings)
    composer = Composer(settings.paths.templates, team_default=settings.team.default_language)
    if composer.problems:
        raise TemplateError(composer.problems)
    wrong = configcheck.setup_problems(settings, str(config_path))
    wrong += configcheck.template_problems(
        team.cadences, composer.purposes(), settings.paths.templates
    )
    if wrong:
        raise ConfigError(wrong)
    for problem in team.client_problems:  # reported and skipped; the other clients load
        log.warning("client row skipped: %s", problem)
    remote = any(m.provider != "local" and m.enabled for m in settings.mailboxes)
    vault = Vault.from_environment() if remote else None
    stamped = stamp(config_path, settings)
    return Loaded(settings, team, composer, vault, stamped, digest(stamped))


def digest(stamped: tuple[tuple[str, int, int], ...]) -> str:
    """A digest of the contents of the files ``stamp`` names: the same on every worker that
    runs the same config, rules, templates and clients, wherever they lie on disk."""
    h = hashlib.blake2b(digest_size=16)
    for path, _mtime, _size in stamped:
        try:
            h.update(Path(path).read_bytes())
        except OSError:
            h.update(b"\0missing")
        h.update(b"\0")
    return h.hexdigest()


def stamp(config_path: Path, settings: Settings | None) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every file a reload reads: a change in any of them reloads."""
    files = [config_path]
    if settings is not None:
        for folder, pattern in (
            (settings.paths.rules, "*.toml"),
            (settings.paths.templates, "**/*.j2"),
            (settings.paths.templates, "*.toml"),
        ):
            files += sorted(folder.glob(pattern)) if folder.is_dir() else [folder]
        files.append(settings.paths.clients)
    seen = []
    for f in files:
        try:
            st = f.stat()
            seen.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            seen.append((str(f), 0, -1))
    return tuple(seen)


def backoff(failures: int, poll: timedelta, retry_after: float | None, jitter: float) -> timedelta:
    """The wait after ``failures`` consecutive failures: doubling from ``poll`` (at most 30 s)
    up to 15 minutes, never shorter than the provider's Retry-After; ``jitter`` in [0, 1)
    spreads the retries of many mailboxes over the upper half of the wait."""
    base = min(poll, timedelta(seconds=30)) * (2 ** max(failures - 1, 0))
    wait = min(base, MAX_BACKOFF) * (0.5 + jitter / 2)
    if retry_after:
        wait = max(wait, timedelta(seconds=retry_after))
    return wait


def _fewer_malloc_arenas() -> None:
    """Cap glibc at two malloc arenas. By default every pass thread gets its own arena, which
    holds on to freed memory: with eight threads that is tens of megabytes of idle RSS."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


M_ARENA_MAX = -8  # from glibc's malloc.h


def _trim_malloc() -> None:
    """Give the memory a collection freed back to the system (glibc keeps it otherwise)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Collector:
    """Full garbage collections between rounds, when the worker is idle.

    A full collection walks every object the worker holds; on a large team that takes seconds.
    Python still starts them itself when it must, but the worker also runs one when nothing is
    in flight and ``every`` has passed (or after ``at_most`` whatever is running), so that they
    seldom fall inside a pass. Each one ends by handing the freed memory back to the system.
    """

    def __init__(self, every: float = 60.0, at_most: float = 120.0) -> None:
        self.every, self.at_most = every, at_most
        self.last = time.monotonic()
        self.seconds = 0.0  # spent in full collections, for the benchmarks

    def maybe_collect(self, *, idle: bool) -> bool:
        waited = time.monotonic() - self.last
        if waited < self.every or (not idle and waited < self.at_most):
            return False
        began = time.monotonic()
        gc.collect()
        _trim_malloc()
        self.last = time.monotonic()
        self.seconds += self.last - began
        return True


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about readiness, watchdog pings and stopping."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)


@dataclass(frozen=True)
class PassResult:
    mailbox: str
    result: str  # ok | transient | needs_reconnect | error | lost
    new_messages: int = 0
    planned: int = 0
    executed: int = 0


class Worker:
    """One worker process. ``run()`` blocks until stopped; ``run(once=True)`` does one round."""

    def __init__(
        self,
        config_path: Path,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] | None = None,
        connect: Connect = open_mailbox,
        rng: random.Random | None = None,
        post: Callable[[str, dict[str, str]], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.loaded = load(config_path)  # the first set must be valid: nothing to fall back on
        settings = self.loaded.settings
        self.clock = clock or wall_clock
        self.store = Store.open(settings.database.url, clock=self.clock)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.connect = connect
        self.post = post  # webhook posts; None: agent.webhooks.post_json under the policy
        self.rng = rng or random.Random()
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = False
        self.signals = 0
        self.connections: dict[str, Connection] = {}
        self.in_flight: dict[str, Future[PassResult]] = {}
        self.last_planned: dict[str, datetime] = {}
        self.bodies_checked: set[str] = set()  # mailboxes whose missing bodies were looked at
        # When this worker last synced each mailbox (and steered it by the labels then).
        self.synced: dict[str, datetime] = {}
        self.plan_whole: set[str] = set()  # mailboxes to plan whole at their next pass (reload)
        # Mailboxes whose whole plan waits for a slot, longest-waiting first: when a slot frees,
        # the first of them is made due at once rather than at its next poll.
        self.deferred: dict[str, None] = {}
        # Whole plans hold a mailbox's history in memory: at most `whole_plans` at once.
        self.whole_slots = threading.BoundedSemaphore(settings.service.whole_plans)
        # One round (`--once`) waits for a slot instead: it has no later pass to plan in.
        self.wait_for_slots = False
        self.go_live: dict[str, datetime] = {}  # per mailbox: acts on nothing caused before
        self.collector = Collector()
        self.promise_counts: dict[str, dict[str, int]] = {}
        self.refused_stamp: tuple[tuple[str, int, int], ...] | None = None
        self.last_reload_check = 0.0
        self.last_gauges = 0.0
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}  # when each pass in flight began (monotonic)
        self.given_up: set[str] = set()  # stuck passes whose lease was handed back
        self.lease_failures = 0  # failed lease attempts in a row (the store busy or down)
        self.unregistered = False  # a reload's mailboxes wait for the store to register them
        self.stuck_after = STUCK_AFTER
        self.store.register_mailboxes(self.loaded.enabled, self.clock())
        self.metrics.rules_loaded.set(1)

    # -- control -------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload_requested = True
        self.wake.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            os._exit(1)  # the operator insists: no drain
        log.info("%s: finishing in-flight mailboxes, then stopping", signal.Signals(signum).name)
        self.request_stop()

    def _health_server(self) -> HealthServer:
        """The /healthz and /metrics endpoint, bound; a port it cannot have is a config error
        with the fix, not a traceback."""
        listen = self.loaded.settings.service.listen
        try:
            return HealthServer(listen, self.metrics, self.health)
        except OSError as exc:
            raise ConfigError(
                [
                    Problem(
                        str(self.config_path),
                        "service.listen",
                        f"cannot listen on {listen} ({exc.strerror or exc}): choose another "
                        'port, stop what holds it, or set listen = "" for no endpoint',
                    )
                ]
            ) from exc

    def check_listen(self) -> None:
        """Bind the endpoint once and let it go: what ``--once`` checks, as a service would."""
        if self.loaded.settings.service.listen:
            self._health_server().httpd.server_close()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.request_reload()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def health(self) -> dict[str, bool]:
        return {
            "store": self.store.ping(),
            "rules": self.loaded.team.rules is not None,
            "running": not self.stopping.is_set(),
            "passes": not self.stuck(),
        }

    def stuck(self) -> list[str]:
        """Mailboxes whose pass has run longer than ``stuck_after``."""
        limit = self.stuck_after.total_seconds()
        now = time.monotonic()
        with self.lock:
            return sorted(n for n, began in self.started.items() if now - began > limit)

    def give_up_stuck(self) -> list[str]:
        """Hand back the lease of every newly stuck pass, the mailbox backing off; return them.

        The pass's thread cannot be stopped, but its mailbox is no longer held: another worker
        may take it, and this one is restarted by whoever watches ``/healthz``.
        """
        fresh = [n for n in self.stuck() if n not in self.given_up]
        for name in fresh:
            wait = self.loaded.settings.service.poll_seconds
            self.store.finish(
                self.owner,
                name,
                state=BACKOFF,
                next_run_at=self.clock() + timedelta(seconds=wait),
                failures=self.store.stream_failures(name) + 1,
                error=f"pass stuck for more than {self.stuck_after.total_seconds():g} s",
            )
            self.given_up.add(name)
            self.metrics.syncs.labels("stuck").inc()
            log.error(
                "pass stuck for more than %g s: lease given up",
                self.stuck_after.total_seconds(),
                extra={"mailbox": name, "state": BACKOFF},
            )
        return fresh

    # -- the loop ------------------------------------------------------------------------
    def run(self, *, once: bool = False) -> int:
        settings = self.loaded.settings
        self.stopping.clear()  # a worker may run again after run(once=True)
        self.wait_for_slots = once
        _fewer_malloc_arenas()
        if threading.current_thread() is threading.main_thread():
            self.install_signals()
        server = None
        if settings.service.listen and not once:
            server = self._health_server().start()
            log.info("health and metrics on http://%s/healthz and /metrics", server.address)
        pool = ThreadPoolExecutor(settings.service.concurrency, thread_name_prefix="mailbox")
        heart = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heart.start()
        log.info(
            "worker %s started: %d mailboxes, %d rules",
            self.owner,
            len(self.loaded.enabled),
            len(self.loaded.team.rules.promises),
        )
        sd_notify("READY=1")
        unfinished = 0
        try:
            if once:
                self._round(pool, wait=True)
            else:
                while not self.stopping.is_set():
                    self._maybe_reload()
                    self._round(pool, wait=False)
                    self._watchdog()
                    self._gauges()
                    with self.lock:
                        idle = not self.in_flight
                    self.collector.maybe_collect(idle=idle)
                    self.wake.wait(timeout=self._tick())
                    self.wake.clear()
            sd_notify("STOPPING=1")
            unfinished = self._drain()
        finally:
            self.stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            heart.join(timeout=5)  # a renewal in flight must not outlive the store
            try:
                handed = self.store.release(self.owner)
            except Exception as exc:  # busy or down: the leases run out on their own
                log.warning("could not hand back leases (they expire by themselves): %s", exc)
                handed = 0
            if handed:
                log.info("handed back %d leases", handed)
            if server is not None:
                server.stop()
            self.store.close()
        log.info("worker %s stopped", self.owner)
        if unfinished:
            # Threads still inside a provider call would keep the interpreter alive; their
            # outbox rows are reconciled by whichever worker takes the mailbox next.
            logging.shutdown()
            os._exit(0)
        return 0

    def _tick(self) -> float:
        return min(1.0, self.loaded.settings.service.poll_seconds / 10)

    def _round(self, pool: ThreadPoolExecutor, *, wait: bool) -> None:
        """Lease what is due and free, and start it. With ``wait``, work until nothing is due."""
        while not self.stopping.is_set():
            with self.lock:
                done = [n for n, f in self.in_flight.items() if f.done()]
                for name in done:
                    self.in_flight.pop(name)
                room = self.loaded.settings.service.concurrency - len(self.in_flight)
            if room > 0:
                now = self.clock()
                ttl = timedelta(seconds=self.loaded.settings.service.lease_seconds)
                try:
                    leased = self.store.lease(self.owner, now, ttl, room)
                except Exception as exc:  # the store busy or down: the worker waits it out
                    self._lease_failed(exc)
                    if not wait:
                        return
                    with self.lock:
                        idle = not self.in_flight
                    if idle:  # one round only: what is due is left to the next run
                        return
                    leased = {}
                else:
                    if self.lease_failures:
                        log.info("the store answers again: leasing mailboxes")
                        self.lease_failures = 0
                for name, due in leased.items():
                    with self.lock:
                        running = name in self.in_flight
                    if running:  # its stuck pass still runs here: leave it to another worker
                        # That pass will find its lease gone and record nothing: it counts as
                        # a failure here, so the mailbox's backoff keeps growing.
                        self.store.finish(
                            self.owner,
                            name,
                            state=BACKOFF,
                            next_run_at=now + ttl,
                            failures=self.store.stream_failures(name) + 1,
                            error="an earlier pass is stuck on this worker",
                        )
                        continue
                    self.metrics.leased.inc()
                    self.metrics.lag.set(max((now - due).total_seconds(), 0) if due else 0)
                    with self.lock:
                        future = pool.submit(self.work, name)
                        self.in_flight[name] = future
                    future.add_done_callback(lambda _f: self.wake.set())
            else:
                leased = {}
            self.metrics.leases.set(len(self.in_flight))
            if not wait:
                return
            if not leased and not self.in_flight:
                return
            self.wake.wait(timeout=0.5)
            self.wake.clear()

    def _lease_failed(self, exc: Exception) -> None:
        """Say once per outage that nothing can be leased, and count every failed attempt.
        ``/healthz`` reports the store meanwhile; the loop tries again at its next tick."""
        self.lease_failures += 1
        self.metrics.lease_errors.inc()
        if self.lease_failures == 1:
            log.warning(
                "cannot lease mailboxes, tried again until the store answers: %s",
                _first_line(exc),
            )

    def _drain(self) -> int:
        """Wait for in-flight passes up to the shutdown timeout; return how many did not end."""
        deadline = time.monotonic() + self.loaded.settings.service.shutdown_timeout
        while True:
            with self.lock:
                running = [n for n, f in self.in_flight.items() if not f.done()]
            if not running or time.monotonic() >= deadline:
                break
            self.wake.wait(timeout=0.2)
            self.wake.clear()
        if running:
            log.warning(
                "shutdown timeout: handing back %d mailboxes mid-pass (%s)",
                len(running),
                ", ".join(sorted(running)),
            )
        return len(running)

    def _heartbeat(self) -> None:
        """Renew the leases of mailboxes in flight, three times per lease period."""
        while True:
            ttl = self.loaded.settings.service.lease_seconds
            stopping = self.stopping.wait(timeout=ttl / 3)
            try:
                given_up = set(self.give_up_stuck())
            except Exception as exc:  # the store is down: tried again at the next beat
                log.warning("cannot give up stuck passes: %s", exc)
                given_up = set()
            with self.lock:
                names = [
                    n
                    for n, f in self.in_flight.items()
                    if not f.done() and n not in self.given_up and n not in given_up
                ]
            if not names:
                if stopping:
                    return
                continue
            try:
                held = self.store.renew(self.owner, names, self.clock() + timedelta(seconds=ttl))
                # A pass that ended while the renewal ran handed its lease back itself: only a
                # lease another worker now holds was lost.
                lost = [
                    str(r["mailbox"])
                    for name in sorted(set(names) - held)
                    for r in self.store.streams(name)
                    if r["kind"] == "mail" and r["lease_owner"] is not None
                ]
            except Exception as exc:  # the store is down: the passes will fail on their own
                log.warning("cannot renew leases: %s", exc)
                continue
            for name in lost:
                self.metrics.lost.inc()
                log.warning("lease lost (taken over after expiry)", extra={"mailbox": name})

    def _watchdog(self) -> None:
        if os.environ.get("WATCHDOG_USEC") and self.store.ping() and not self.stuck():
            sd_notify("WATCHDOG=1")

    # -- reload --------------------------------------------------------------------------
    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if not self.reload_requested and now - self.last_reload_check < RELOAD_CHECK_SECONDS:
            return
        self.last_reload_check = now
        if self.unregistered:
            self._register()
        current = stamp(self.config_path, self.loaded.settings)
        if not self.reload_requested and current in (self.loaded.stamp, self.refused_stamp):
            return
        self.reload_requested = False
        self.reload()

    def _register(self) -> None:
        """Give the loaded mailboxes their streams; with the store busy or down, tried again
        at the next check for changes on disk."""
        try:
            self.store.register_mailboxes(self.loaded.enabled, self.clock())
        except Exception as exc:
            log.warning("cannot register the reloaded mailboxes yet: %s", _first_line(exc))
            return
        self.unregistered = False

    def reload(self) -> bool:
        """Swap in a freshly loaded set; refuse an invalid one and keep the last good set."""
        try:
            new = load(self.config_path)
        except UserError as exc:
            self.refused_stamp = stamp(self.config_path, self.loaded.settings)
            self.metrics.reloads.labels("refused").inc()
            log.error(
                "reload refused, the last good configuration keeps running: %d problem(s)",
                len(exc.problems),
            )
            for problem in exc.problems:
                log.error("  %s", problem)
            return False
        except Exception as exc:  # a file no check foresaw: refused too, never the worker's end
            self.refused_stamp = stamp(self.config_path, self.loaded.settings)
            self.metrics.reloads.labels("refused").inc()
            log.error(
                "reload refused, the last good configuration keeps running: %s: %s",
                type(exc).__name__,
                str(exc)[:300],
                exc_info=exc,
            )
            return False
        old = self.loaded
        if new.settings.database.url != old.settings.database.url:
            log.warning("database.url changed: it takes effect at the next restart")
        changed = {m.name for m in new.settings.mailboxes if m not in old.settings.mailboxes} | {
            m.name for m in old.settings.mailboxes if m not in new.settings.mailboxes
        }
        with self.lock:
            self.loaded = new
            for name in changed:
                self._drop(name)
                self.last_planned.pop(name, None)
            self.last_planned.clear()  # new rules: plan every mailbox again at its next pass
            self.bodies_checked.clear()  # new clients: mail from strangers may be theirs now
            self.synced.clear()  # new clients: an unsubscribe may be a client's now
            self.plan_whole = set(new.enabled)
            if new.settings.service.whole_plans != old.settings.service.whole_plans:
                self.whole_slots = threading.BoundedSemaphore(new.settings.service.whole_plans)
        self.refused_stamp = None
        self.unregistered = True
        self._register()
        self.metrics.reloads.labels("ok").inc()
        log.info("reloaded: %d mailboxes, %d rules", len(new.enabled), len(new.team.rules.promises))
        return True

    # -- one mailbox ---------------------------------------------------------------------
    def work(self, name: str) -> PassResult:
        """One pass over one leased mailbox. Never raises: the outcome is the stream's state."""
        with self.lock:
            self.started[name] = time.monotonic()
        try:
            return self._work(name)
        except Exception:  # the store itself failed: the lease expires and the pass is redone
            log.exception("cannot record the pass", extra={"mailbox": name})
            self.metrics.syncs.labels("error").inc()
            return PassResult(name, "error")
        finally:
            with self.lock:
                self.started.pop(name, None)
                self.given_up.discard(name)

    def _work(self, name: str) -> PassResult:
        loaded = self.loaded
        service = loaded.settings.service
        poll = timedelta(seconds=service.poll_seconds)
        started = time.monotonic()
        now = self.clock()
        streams = {str(r["kind"]): r for r in self.store.streams(name)}  # one read for both
        failures = int(streams["mail"]["failures"] or 0) if "mail" in streams else 0
        try:
            result = self._pass(loaded, name, now, streams)
        except AuthRevoked as exc:
            self.metrics.provider_errors.labels("auth_revoked").inc()
            self.metrics.syncs.labels("needs_reconnect").inc()
            with self.lock:
                self._drop(name)
            log.warning(
                "needs reconnecting (followup connect ... --mailbox %s): %s",
                name,
                exc,
                extra={"mailbox": name, "state": NEEDS_RECONNECT},
            )
            self.store.finish(
                self.owner, name, state=NEEDS_RECONNECT, next_run_at=None, error=str(exc)
            )
            return PassResult(name, NEEDS_RECONNECT)
        except AccessDenied as exc:
            self.metrics.provider_errors.labels("access_denied").inc()
            self.metrics.syncs.labels(ACCESS_DENIED).inc()
            with self.lock:
                self._drop(name)
            log.warning(
                "access denied, an administrator must fix it: %s",
                exc,
                extra={"mailbox": name, "state": ACCESS_DENIED},
            )
            self.store.finish(
                self.owner,
                name,
                state=ACCESS_DENIED,
                next_run_at=self.clock() + ACCESS_RETRY,
                error=str(exc)[:500],
            )
            return PassResult(name, ACCESS_DENIED)
        except Exception as exc:
            failures += 1
            kind = type(exc).__name__
            label = "transient" if isinstance(exc, Transient) else "error"
            retry_after = exc.retry_after if isinstance(exc, Transient) else None
            wait = backoff(failures, poll, retry_after, self.rng.random())
            if isinstance(exc, ProviderError):
                self.metrics.provider_errors.labels(kind).inc()
            self.metrics.syncs.labels(label).inc()
            text = logs.redact(str(exc))[:500]  # redacted whole: a cut token would not be
            if isinstance(exc, FollowupError):
                log.warning(
                    "pass failed (%s: %s); retry in %ds",
                    kind,
                    text,
                    wait.total_seconds(),
                    extra={"mailbox": name, "state": BACKOFF},
                )
            else:  # a bug: say where, but never dump request arguments
                log.exception(
                    "pass failed unexpectedly; retry in %ds",
                    wait.total_seconds(),
                    extra={"mailbox": name, "state": BACKOFF},
                )
            with self.lock:
                self._drop(name)  # a fresh client next time
            self.store.finish(
                self.owner,
                name,
                state=BACKOFF,
                next_run_at=self.clock() + wait,
                failures=failures,
                error=f"{kind}: {text}",
            )
            return PassResult(name, label)
        finally:
            self.metrics.pass_seconds.observe(time.monotonic() - started)
        if loaded.settings.mailbox(name).provider in CHEAP_TO_OPEN:
            # An idle client costs ~90 KB; a thousand of them outweigh opening one per pass.
            with self.lock:
                self._drop(name)
        # Counted from the start of the pass, and jitter only ever shortens the wait (leaving
        # room for queueing), so no mailbox goes longer than poll_seconds between syncs.
        jitter = 0.8 + self.rng.random() * 0.15
        kept = self.store.finish(
            self.owner, name, state=INCREMENTAL, next_run_at=now + poll * jitter
        )
        if not kept:
            self.metrics.lost.inc()
            log.warning("lease expired during the pass", extra={"mailbox": name})
            return PassResult(name, "lost", result.new_messages, result.planned, result.executed)
        self.metrics.syncs.labels("ok").inc()
        return result

    def _drop(self, name: str) -> None:
        """Forget a mailbox's clients and close their connections (the caller holds the lock)."""
        conn = self.connections.pop(name, None)
        if conn is None:
            return
        for client in {id(conn.mail): conn.mail, id(conn.calendar): conn.calendar}.values():
            close = getattr(client, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # closing must never fail a pass
                    log.debug("closing a client failed: %s", exc)

    def _connection(self, loaded: Loaded, mailbox: Mailbox) -> Connection:
        with self.lock:
            found = self.connections.get(mailbox.name)
        if found is None:
            found = self.connect(mailbox, self.store, loaded.vault)
            with self.lock:
                self.connections[mailbox.name] = found
        return found

    def _pass(
        self, loaded: Loaded, name: str, now: datetime, streams: dict[str, Any]
    ) -> PassResult:
        mailbox = loaded.settings.mailbox(name)
        conn = self._connection(loaded, mailbox)
        cursors = {kind: r["cursor"] for kind, r in streams.items()}
        synced_at = streams["mail"]["synced_at"] if "mail" in streams else None
        new = pipeline.sync_mailbox(
            self.store, name, conn.mail, conn.calendar, cursors=cursors, at=now
        )
        self.metrics.messages.inc(new)
        # Labels and unsubscribe requests are read when mail came, changed or went, and when
        # another worker (or this one before a start or reload) synced the mailbox last: it
        # may have stopped between its sync and its steering. Otherwise a pass over an
        # unchanged mailbox has nothing new to be steered by.
        with self.lock:
            mine = name in self.synced and self.synced[name] == synced_at
            steer = bool(new.touched) or not mine
        if steer:
            steering.steer(self.store, name, loaded.team.clients, now, provider=mailbox.provider)
        with self.lock:
            self.synced[name] = now
        # Missing bodies are looked for when mail came (a stranger's thread may have become a
        # client's), and once per mailbox after a start, a reload or a lease move.
        with self.lock:
            look = bool(new) or name not in self.bodies_checked
        if look:
            self._fetch_bodies(loaded, mailbox, conn, now)
            with self.lock:
                self.bodies_checked.add(name)
        planned = 0
        last = self.last_planned.get(name)
        if new or last is None or now - last >= REPLAN_EVERY:
            done = self._plan(loaded, name, now)
            if done is None:  # a whole plan put off: tried when a slot frees, or at the next pass
                self.metrics.deferred.inc()
                with self.lock:
                    self.deferred.setdefault(name, None)
            else:
                planned = done
                self.last_planned[name] = now
                with self.lock:
                    self.deferred.pop(name, None)
        executed = self._execute(loaded, name, conn, now)
        return PassResult(name, "ok", new, planned, executed)

    def _fetch_bodies(
        self, loaded: Loaded, mailbox: Mailbox, conn: Connection, now: datetime
    ) -> None:
        """Fetch, in batches, the bodies planners read: recent inbound client mail only.

        Mail nobody reads the body of (lists, bounces, strangers) keeps no body and is looked at
        again when mail comes, so a stranger's thread that turns into a client's is read then.
        """
        missing, context = self.store.bodiless_threads(
            mailbox.name, now - BODY_WINDOW, mailbox.addresses
        )
        if not missing:
            return
        wanted = pipeline.bodies_needed(loaded.team, context, (m.provider_id for m in missing))
        for i in range(0, len(wanted), BODY_CHUNK):
            ids = [m.provider_id for m in wanted[i : i + BODY_CHUNK]]
            try:
                got = conn.mail.fetch_bodies(ids)
            except (Transient, AuthRevoked):
                raise
            except ProviderError:  # the batch itself refused: one by one, each bad one skipped
                got = _one_by_one(conn.mail, ids)
            for pid, reason in got.failed.items():
                self.store.record_skipped(mailbox.name, "body", pid, reason[:300])
            # Planners read a reply's top; a provider that converts the body itself (Graph)
            # may hand over megabytes.
            found = {pid: body[:MAX_TEXT_CHARS] for pid, body in got.found.items()}
            self.store.set_bodies(mailbox.name, {**dict.fromkeys(got.failed, ""), **found})

    def _plan(self, loaded: Loaded, name: str, now: datetime) -> int | None:
        """Plan ``name``; the number of notes added to the outbox, None when a whole plan was
        put off because every slot for whole plans is taken."""
        with self.lock:
            whole = name in self.plan_whole
            slots = self.whole_slots
            waiting = name in self.deferred
        held = False
        if waiting:  # put off before: with still no slot free, nothing of it is read again
            held = slots.acquire(blocking=self.wait_for_slots)
            if not held:
                return None

        def hold(messages: int) -> bool:
            nonlocal held
            if held or messages < SMALL_WHOLE_PLAN:
                return True  # a slot already held, or a few MB: planned at once
            held = slots.acquire(blocking=self.wait_for_slots)
            return held

        try:
            return self._plan_held(loaded, name, now, whole, hold)
        finally:
            if held:  # released only once the whole plan's objects are gone
                slots.release()
                self._hand_on(name)

    def _hand_on(self, name: str) -> None:
        """A slot for whole plans came free: the mailbox that has waited longest for one (and is
        not in a pass now) is due at once, so the slot does not stand idle until its next poll."""
        with self.lock:
            busy = {name, *self.in_flight}
            waiting = next((n for n in self.deferred if n not in busy), None)
            if waiting is not None:
                del self.deferred[waiting]  # put off again, it queues anew
        if waiting is None:
            return
        try:
            self.store.expedite(waiting, self.clock())
        except Exception as exc:  # the store busy: it is planned at its next poll instead
            log.debug("could not make %s due at once: %s", waiting, exc)
            return
        self.wake.set()

    def _plan_held(
        self, loaded: Loaded, name: str, now: datetime, whole: bool, hold: Callable[[int], bool]
    ) -> int | None:
        step = plan_mailbox(
            self.store, loaded.team, now, mailbox=name, digest=loaded.digest, whole=whole, hold=hold
        )
        if step is None:
            return 0  # nothing changed and nothing fell due
        if isinstance(step, Deferred):
            return None
        result = step.result
        gated = golive.gate(
            result.fresh.actions,
            self._go_live(loaded, name, now),
            result.planned.promises.promises,
        )
        by_hand = controls.Controls.from_decisions(
            self.store.control_decisions(name, team_wide=controls.TEAM_WIDE)
        )
        kept = controls.gate(gated.actions, by_hand, now)
        gated = golive.Gated(kept.actions, (*gated.decisions, *kept.decisions))
        fresh = result.fresh
        decided = (
            *fresh.promises.decisions,
            *fresh.notes.decisions,
            *fresh.meetings.decisions,
            *gated.decisions,
        )
        self.store.record_decisions(  # the planners' and the gates' decisions, in one batch
            (d.mailbox, d.thread_id, d.message_id, d.decision, d.reason) for d in decided
        )
        added = set(self.store.enqueue(gated.actions))
        cancelled = self._outbox(loaded, {}).cancel_obsolete(result.fresh.obsolete)
        # Only now is what was planned in the outbox: a pass failing before this leaves the same
        # threads due, and the next pass plans them again.
        step.save()
        with self.lock:
            self.plan_whole.discard(name)
        self.metrics.replanned.inc(result.threads)
        for action in gated.actions:
            if action.key in added:
                self.metrics.planned.labels(action.kind.value).inc()
                _log_action("planned", action)
        if cancelled:
            self.metrics.cancelled.inc(cancelled)
            log.info(
                "cancelled %d planned notes: the client was answered",
                cancelled,
                extra={"mailbox": name},
            )
        counts = {state: n for state, n in step.counts.items() if n}
        with self.lock:
            self.promise_counts[name] = counts
            totals: dict[str, int] = {}
            for per in self.promise_counts.values():
                for state, n in per.items():
                    totals[state] = totals.get(state, 0) + n
        for state, n in totals.items():
            self.metrics.promises.labels(state).set(n)
        return len(added)

    def _go_live(self, loaded: Loaded, name: str, now: datetime) -> datetime:
        """The configured go-live point, else the mailbox's first pass (recorded in the store,
        so a restart or another worker keeps it)."""
        configured = loaded.settings.outbox.go_live
        if configured is not None:
            return configured
        with self.lock:
            known = self.go_live.get(name)
        if known is None:
            known = self.store.go_live(name, now)
            with self.lock:
                self.go_live[name] = known
        return known

    def _outbox(
        self, loaded: Loaded, providers: dict[str, Any], calendars: dict[str, Any] | None = None
    ) -> Outbox:
        return Outbox.configured(
            loaded.settings,
            self.store,
            providers,
            loaded.composer,
            calendars=calendars or {},
            post=self.post,
        )

    def bounce(
        self, loaded: Loaded, name: str, now: datetime, rows: list[dict[str, Any]] | None = None
    ) -> list[str]:
        """Plan a note to the lead for each of ``name``'s rows parked past the attention limit
        (:mod:`agent.attention`); return the keys newly planned. ``rows`` are the parked rows
        when the caller read them already."""
        parked = []
        if rows is None:
            rows = self.store.outbox(statuses=(NEEDS_ATTENTION,), mailbox=name)
        for row in rows:
            try:
                action = action_from_json(row["action"])
            except Exception as exc:  # a row no longer readable is named, not fatal
                log.warning(
                    "unreadable parked row %s: %s", row["key"], exc, extra={"mailbox": name}
                )
                continue
            parked.append((action, row["updated_at"], str(row["last_error"] or "")))
        if not parked:
            return []
        added = self.store.enqueue(attention.bounces(parked, loaded.team.reps(), now))
        for key in added:
            log.warning(
                "told the lead of a note parked too long", extra={"mailbox": name, "key": key}
            )
        return added

    def weekly(self, loaded: Loaded, name: str, now: datetime) -> list[str]:
        """Plan this week's digests sent from ``name`` (agent/digest.py) once their slot has
        come; the outbox key makes each go out once. Return the keys newly planned."""
        from agent import digest, reporting

        added: list[str] = []
        for reader in digest.readers(loaded.settings):
            at = digest.slot(reader, now)
            if reader.sender != name or now - at > digest.LATE:
                continue  # not this mailbox's, or its day has passed: `followup digest` sends it
            if self.store.outbox_row(digest.key(reader, at)) is not None:
                continue
            try:
                since = at - timedelta(weeks=loaded.settings.report.weeks)
                title = loaded.settings.team.name if reader.kind == "lead" else reader.name
                mine = reporting.build(
                    loaded.settings, self.store, since, at, mailboxes=reader.mailboxes, title=title
                )
                added += self.store.enqueue([digest.action(reader, mine, at)])
            except Exception as exc:  # the figures failed: the mailbox's own work goes on
                log.warning("weekly digest for %s not planned: %s", reader.email, exc,
                            extra={"mailbox": name})  # fmt: skip
        return added

    def _execute(self, loaded: Loaded, name: str, conn: Connection, now: datetime) -> int:
        parked: list[dict[str, Any]] = []
        due, withdrawn = self.store.pass_outbox(name, now, parked=parked)  # one read
        added = self.bounce(loaded, name, now, parked)
        added += self.weekly(loaded, name, now)
        if added:  # notes to leads planned just now go out in this pass
            due, withdrawn = self.store.pass_outbox(name, now)
        before = {r["key"]: r["status"] for r in due}
        rows = {r["key"]: r for r in (*due, *withdrawn)}
        calendars = {name: conn.calendar} if conn.calendar is not None else {}
        outbox = self._outbox(loaded, {name: conn.mail}, calendars)
        outcomes = outbox.run(now, mailbox=name, due=due, withdrawn=withdrawn)
        for o in outcomes:
            if before.get(o.key) == o.status:
                continue  # a draft still waiting for the rep: said when it was made
            row = rows.get(o.key) or self.store.outbox_row(o.key) or {}
            kind = str((row.get("action") or {}).get("kind", "?"))
            rule = str((row.get("action") or {}).get("rule", ""))
            self.metrics.executed.labels(kind, o.status).inc()
            log.info(
                "%s %s%s",
                o.status,
                kind,
                f": {o.detail}" if o.detail else "",
                extra={"mailbox": name, "client": row.get("client"), "rule": rule, "key": o.key},
            )
        return sum(before.get(o.key) != o.status for o in outcomes)

    def _gauges(self) -> None:
        if time.monotonic() - self.last_gauges < 15:
            return
        self.last_gauges = time.monotonic()
        counts: dict[str, int] = {}
        try:
            rows = self.store.streams()
        except Exception as exc:  # the store busy or down: the gauges wait for the next beat
            log.debug("cannot read the streams for the gauges: %s", exc)
            return
        for row in rows:
            if row["kind"] == "mail":
                counts[row["state"]] = counts.get(row["state"], 0) + 1
                first = first_sync_of(row["cursor"])
                self.metrics.first_sync.labels(row["mailbox"]).set(
                    1.0 if first is None else first.done
                )
        for state, n in counts.items():
            self.metrics.mailboxes.labels(state).set(n)


def _first_line(exc: Exception) -> str:
    """A store error in one redacted line (a driver's message runs on with the SQL)."""
    text = str(exc).strip()
    return logs.redact(text.splitlines()[0] if text else type(exc).__name__)[:300]


def _one_by_one(mail: Any, ids: list[str]) -> Bodies:
    found: dict[str, str] = {}
    failed: dict[str, str] = {}
    for pid in ids:
        try:
            found[pid] = mail.fetch_body(pid)
        except (Transient, AuthRevoked):
            raise
        except ProviderError as exc:
            failed[pid] = str(exc)
    return Bodies(found, failed)


def _log_action(verb: str, action: Action) -> None:
    log.info(
        "%s %s due %s: %s",
        verb,
        action.kind.value,
        action.due.isoformat(timespec="minutes"),
        action.reason,
        extra={
            "mailbox": action.mailbox,
            "client": action.client,
            "rule": action.rule,
            "key": action.key,
        },
    )


def run(config_path: Path, *, once: bool = False, now: str | None = None) -> int:
    """``followup run``: start a worker (``now`` shifts its clock, for replaying a scenario)."""
    clock = None
    if now:
        from agent.app import shifted_clock

        clock = shifted_clock(now)
    worker = Worker(config_path, clock=clock)
    service = worker.loaded.settings.service
    logs.setup(service.log_format, level=logging.getLevelName(service.log_level.upper()))
    if once:
        worker.check_listen()
    return worker.run(once=once)
