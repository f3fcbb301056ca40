"""Gmail sync cost against the emulator with added per-request latency, beside a naive client.

Run: ``python -m tests.benchmarks.bench_gmail`` (about four minutes, most of it the naive client's
10,000 single requests; ``--naive-full-limit N`` measures the naive full sync on N messages and
scales it). Targets, checked and printed:

- incremental sync of 1,000 new messages: at most 25 HTTP requests and 5,100 quota units;
- full sync of 10,000 messages: at most 230 HTTP requests;
- local processing (metadata -> Message): at least 5,000 messages/second.

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from google.oauth2.credentials import Credentials

from agent.mime import to_message
from agent.providers.gmail import METADATA_HEADERS, GmailProvider, google_services, parse_metadata
from agent.providers.ratelimit import TokenBucket
from tests.fakes.gmail import GoogleEmulator, raw_message

FULL = 10_000
NEW = 1_000
LATENCY = 0.02


def _measure(emu: GoogleEmulator, run: Callable[[], Any]) -> tuple[Any, int, int, float]:
    emu.reset_counters()
    started = time.perf_counter()
    result = run()
    return result, emu.requests, emu.quota_units, time.perf_counter() - started


def _naive_full(service: Any, limit: int | None) -> int:
    """List every id, then one messages.get per message: how a first client is usually written."""
    users = service.users()
    profile = users.getProfile(userId="me").execute()
    assert profile["historyId"]
    ids: list[str] = []
    token = None
    while True:
        page = users.messages().list(userId="me", pageToken=token).execute()
        ids += [m["id"] for m in page.get("messages", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    for mid in ids[:limit] if limit else ids:
        users.messages().get(
            userId="me", id=mid, format="metadata", metadataHeaders=list(METADATA_HEADERS)
        ).execute()
    return len(ids)


def _naive_incremental(service: Any, cursor: str) -> int:
    users = service.users()
    ids: list[str] = []
    token = None
    while True:
        page = users.history().list(userId="me", startHistoryId=cursor, pageToken=token).execute()
        for record in page.get("history", []):
            ids += [a["message"]["id"] for a in record.get("messagesAdded", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    for mid in ids:
        users.messages().get(
            userId="me", id=mid, format="metadata", metadataHeaders=list(METADATA_HEADERS)
        ).execute()
    return len(ids)


def _row(name: str, ours: float, naive: float, target: str, ok: bool, unit: str = "") -> str:
    mark = "ok" if ok else "MISSED"
    return f"{name:<44} {ours:>12,.0f}{unit} {naive:>12,.0f}{unit}   {target:<12} {mark}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-full-limit", type=int, default=None)
    args = parser.parse_args(argv)
    results: list[str] = []
    missed = False

    with GoogleEmulator(latency=LATENCY) as emu:
        print(f"seeding {FULL:,} messages ...", flush=True)
        for n in range(FULL):
            emu.deliver(raw_message(n))
        factory = google_services(Credentials(token="t"), root=emu.root)
        # The benchmark measures requests and units, not pacing: an unlimited bucket here; the
        # default bucket's pacing is printed separately.
        provider = GmailProvider("bench", emu.address, factory, bucket=TokenBucket(1e9, 1e9))
        naive_service = factory("gmail", "v1")

        full, f_req, f_units, f_time = _measure(emu, lambda: provider.sync(None))
        assert len(full.messages) == FULL, len(full.messages)
        limit = args.naive_full_limit
        count, n_req, n_units, n_time = _measure(emu, lambda: _naive_full(naive_service, limit))
        gets = min(limit or count, count)
        scaled = gets < count
        n_req_full = n_req - gets + count
        n_units_full = n_units + (count - gets) * 5
        n_time_full = n_time * count / gets

        for n in range(FULL, FULL + NEW):
            emu.deliver(raw_message(n))
        inc, i_req, i_units, i_time = _measure(emu, lambda: provider.sync(full.cursor))
        assert len(inc.messages) == NEW, len(inc.messages)
        _, ni_req, ni_units, ni_time = _measure(
            emu, lambda: _naive_incremental(naive_service, full.cursor)
        )

        resources = [
            emu._message_resource(m, "metadata", list(METADATA_HEADERS))
            for m in list(emu.messages.values())[:FULL]
        ]
        raws = [m.raw for m in list(emu.messages.values())[:FULL]]
        provider.close()
        naive_service.close()

    started = time.perf_counter()
    for resource in resources:
        parse_metadata("bench", resource)
    parse_rate = len(resources) / (time.perf_counter() - started)
    started = time.perf_counter()
    for i, raw in enumerate(raws):
        to_message(raw, mailbox="bench", provider_id=str(i))
    naive_rate = len(raws) / (time.perf_counter() - started)

    print()
    print(f"Gmail emulator, {LATENCY * 1000:.0f} ms added per HTTP request")
    print(f"{'figure':<44} {'batched':>12} {'naive':>12}   {'target':<12}")
    rows = [
        ("incremental 1,000 new: HTTP requests", i_req, ni_req, "<= 25", i_req <= 25),
        ("incremental 1,000 new: quota units", i_units, ni_units, "<= 5,100", i_units <= 5100),
        ("full 10,000: HTTP requests", f_req, n_req_full, "<= 230", f_req <= 230),
        ("full 10,000: quota units", f_units, n_units_full, "", True),
        (
            "parse metadata -> Message: messages/s",
            parse_rate,
            naive_rate,
            ">= 5,000",
            parse_rate >= 5000,
        ),
    ]
    for name, ours, naive, target, ok in rows:
        results.append(_row(name, ours, naive, target, ok))
        missed |= not ok
    results.append(_row("incremental 1,000 new: wall seconds", i_time, ni_time, "", True))
    results.append(_row("full 10,000: wall seconds", f_time, n_time_full, "", True))
    print("\n".join(results))
    print(
        f"(naive full sync {f'extrapolated from {gets} gets' if scaled else 'measured'};"
        f" the default per-mailbox bucket of 100 units/s would pace the full sync to"
        f" {f_units / 100:,.0f} s and the incremental one to {i_units / 100:,.0f} s)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
