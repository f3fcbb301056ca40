"""One worker, 1,000 Gmail mailboxes, the emulator 20 ms away: staleness and memory.

Run: ``python -m tests.benchmarks.bench_worker_emulator`` (about six minutes; ``--minutes`` sets the
steady-state window, ``--concurrency`` the worker's ``service.concurrency``, ``--mailboxes`` the
count, ``--database`` a PostgreSQL URL instead of a fresh SQLite file).

The Gmail and Calendar emulator runs in its own process, adding 20 ms to every HTTP request; every
mailbox is connected (a sealed grant in the store) and points at it through its ``endpoint``.
The worker is ``followup run`` in a process of its own, recording each pass (tests/
scaleout_helpers.py), with ``poll_seconds = 60``. Figures, checked and printed:

- staleness: for each mailbox the time between the starts of successive passes in steady state
  (from one poll period after the first round: a first round longer than the poll period leaves
  a backlog that takes a round to clear, printed apart); p50, p95 and max over all mailboxes.
  Target: max <= 60 s + the poll jitter (10 %) + 5 s;
- the worker's resident memory (VmRSS) after the first round and every 5 s through steady state
  (passes come and go; the worker is idle between them), with every mailbox configured.
  Target: < 150 MB, after the first round, at the end and at the highest sample;
- then the worker loads the language models (what its first detected client mail does) and its
  memory is read again: printed, not checked.

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from tests.scaleout_helpers import REPO, read_calls, write_config

LATENCY = 0.02
POLL = 60.0
STALE_TARGET = POLL * 1.1 + 5
RSS_TARGET_MB = 150


# -- the emulator's process --------------------------------------------------------------------
def serve(port_file: Path) -> int:
    """Run the Google emulator until killed; write its root URL and token URI to ``port_file``."""
    from tests.fakes.gmail import GoogleEmulator, raw_message

    emu = GoogleEmulator(latency=LATENCY).start()
    for n in range(3):
        emu.deliver(raw_message(n))
    port_file.write_text(json.dumps({"root": emu.root, "token_uri": emu.token_uri}))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    emu.stop()
    return 0


# -- set-up ------------------------------------------------------------------------------------
def _config(root: Path, n: int, url: str, endpoint: str, concurrency: int) -> Path:
    clients = ["name,emails,domains,company,language,time zone,country,tier,owner,tags"]
    clients += [
        f"Client {i},client{i}@customer.example,,Customer {i},en,Europe/Berlin,DE,,,"
        for i in range(3)
    ]
    (root / "clients.csv").write_text("\n".join(clients) + "\n")
    boxes = [
        f'[[mailboxes]]\nname = "m{i:04d}"\nprovider = "gmail"\naddress = "m{i:04d}@team.example"\n'
        f'rep_name = "Rep {i}"\nzone = "Europe/Berlin"\nendpoint = "{endpoint}"\n'
        for i in range(n)
    ]
    return write_config(
        root, url, "Bench", boxes, poll_seconds=POLL, lease_seconds=120, concurrency=concurrency
    )


def _connect_all(url: str, n: int, token_uri: str, key: str) -> None:
    """Store a sealed, unexpired grant for every mailbox, as ``followup connect gmail`` does."""
    from agent.providers.google_auth import SCOPES
    from agent.providers.tokens import Vault
    from agent.store import Store

    vault = Vault(key)
    store = Store.open(url)
    info = {
        "token": "bench-access-token",
        "refresh_token": "bench-refresh-token",
        "token_uri": token_uri,
        "client_id": "client-1.apps.example",
        "client_secret": "client-secret-1",
        "scopes": list(SCOPES),
        "expiry": "2099-01-01T00:00:00Z",
    }
    sealed = vault.seal(json.dumps(info).encode())
    for i in range(n):
        store.save_credentials(f"m{i:04d}", sealed)
    store.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the run -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the config's")
    parser.add_argument("--minutes", type=float, default=4.0, help="steady-state window")
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve)

    from agent.config import Service
    from agent.providers.tokens import new_key

    concurrency = args.concurrency or Service().concurrency
    work = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    records = work / "records"
    records.mkdir()
    port_file = work / "emulator.json"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.bench_worker_emulator", "--serve", str(port_file)],
        cwd=REPO,
    )
    worker = None
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.1)
        where = json.loads(port_file.read_text())
        url = args.database or f"sqlite:///{work / 'followup.db'}"
        key = new_key()
        config = _config(work, args.mailboxes, url, where["root"], concurrency)
        print(f"connecting {args.mailboxes:,} mailboxes ...", flush=True)
        _connect_all(url, args.mailboxes, where["token_uri"], key)

        started = time.time()
        with (records / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.scaleout_helpers", str(config), str(records), "w"],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "FOLLOWUP_SECRET_KEY": key},
            )
        everyone = {f"m{i:04d}" for i in range(args.mailboxes)}
        while True:
            done = {c.mailbox for c in read_calls(records) if c.call == "pass" and c.end}
            if done >= everyone:
                break
            if worker.poll() is not None:
                print((records / "worker.log").read_text()[-3000:])
                raise SystemExit("the worker exited")
            time.sleep(1)
        first_round = time.time() - started
        rss_idle = _rss_mb(worker.pid)
        first_round_end = time.time()
        print(f"first round: {first_round:.0f} s; settling for {POLL:.0f} s ...", flush=True)
        time.sleep(POLL)
        print(f"steady state for {args.minutes:g} min ...", flush=True)
        steady_from = time.time()
        cpu_from = _cpu_seconds(worker.pid)
        samples = [rss_idle, _rss_mb(worker.pid)]
        while time.time() - steady_from < args.minutes * 60:
            time.sleep(5)
            samples.append(_rss_mb(worker.pid))
        steady_seconds = time.time() - steady_from
        cpu = _cpu_seconds(worker.pid) - cpu_from
        rss_steady = _rss_mb(worker.pid)

        worker.send_signal(signal.SIGUSR1)
        deadline = time.time() + 180
        while not [c for c in read_calls(records) if c.call == "warm_up" and c.end]:
            if time.time() > deadline:
                raise SystemExit("the language models did not load within 3 minutes")
            time.sleep(1)
        time.sleep(2)
        rss_lingua = _rss_mb(worker.pid)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        for proc in (worker, emulator):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)

    calls = read_calls(records)
    starts: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        if c.call == "pass":
            starts[c.mailbox].append(c.start)
    gaps: list[float] = []
    settling: list[float] = []
    age_at_end = []
    for mailbox in everyone:
        times = [t for t in sorted(starts[mailbox]) if t <= steady_from + steady_seconds]
        # Every interval that ends in the steady window.
        gaps += [b - a for a, b in pairwise(times) if b >= steady_from]
        settling += [b - a for a, b in pairwise(times) if first_round_end <= b < steady_from]
        age_at_end.append(steady_from + steady_seconds - times[-1])
    passes = sum(len(v) for v in starts.values())
    problems = [
        line
        for line in (records / "worker.log").read_text().splitlines()
        if '"level": "warning"' in line or '"level": "error"' in line
    ]

    print()
    print(
        f"{args.mailboxes:,} Gmail mailboxes, emulator {LATENCY * 1000:.0f} ms per request, "
        f"poll {POLL:.0f} s, concurrency {concurrency}, "
        f"{'PostgreSQL' if args.database else 'SQLite'}; {os.cpu_count()} CPUs"
    )
    print(f"first round (every mailbox synced once, from start): {first_round:8.1f} s")
    print(f"passes in all: {passes:,}; worker CPU in steady state: {cpu / steady_seconds:.0%}")
    if settling:
        print(
            f"settling after the first round: staleness p50 {statistics.median(settling):.1f} s,"
            f" max {max(settling):.1f} s"
        )
    missed = False
    rows = [
        ("staleness p50 (s)", statistics.median(gaps), "", True),
        ("staleness p95 (s)", _pct(gaps, 0.95), "", True),
        ("staleness max (s)", max(gaps), f"<= {STALE_TARGET:.0f}", max(gaps) <= STALE_TARGET),
        (
            "age at the end, max (s)",
            max(age_at_end),
            f"<= {STALE_TARGET:.0f}",
            max(age_at_end) <= STALE_TARGET,
        ),
        (
            "RSS after the first round (MB)",
            rss_idle,
            f"< {RSS_TARGET_MB}",
            rss_idle < RSS_TARGET_MB,
        ),
        ("RSS median in steady state (MB)", statistics.median(samples), "", True),
        (
            "RSS at the end of steady state (MB)",
            rss_steady,
            f"< {RSS_TARGET_MB}",
            rss_steady < RSS_TARGET_MB,
        ),
        (
            "RSS max in steady state (MB)",
            max(samples),
            f"< {RSS_TARGET_MB}",
            max(samples) < RSS_TARGET_MB,
        ),
        ("RSS with the language models loaded (MB)", rss_lingua, "", True),
    ]
    for name, value, target, ok in rows:
        mark = "" if not target else ("ok" if ok else "MISSED")
        print(f"{name:<44} {value:>10.1f}   {target:<8} {mark}")
        missed |= not ok
    print(f"{len(gaps):,} intervals; {len(problems)} warnings in the worker's log")
    for line in problems[:5]:
        print("  ", line[:200])
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
