"""Outlook sync cost: Graph requests and wall time, delta sync beside a naive client.

Run: ``python -m tests.benchmarks.bench_outlook [--latency 0.02] [--full 10000] [--new 1000]``

Both clients run in the same process against the same emulator, which adds ``--latency``
seconds to every request. The naive client lists message ids page by page (``$top=100``) and
then GETs each message it does not know, four at a time (the per-mailbox concurrency limit).
Targets: an incremental sync of 1,000 new messages in at most 15 requests and a full sync of
10,000 in at most 30. Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from agent.providers.msal_auth import GraphAuth, connect_outlook_device
from agent.providers.outlook import MESSAGE_FIELDS, MailboxGate, OutlookProvider
from agent.providers.ratelimit import TokenBucket
from agent.providers.tokens import MemoryCredentials, Vault, new_key
from tests.fakes.graph import GraphEmulator

ADDRESS = "asha@contoso.example"
CLIENT_ID = "bench-client"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PREFER = 'IdType="ImmutableId"'


class Naive:
    """List, then get each message: what a client without delta queries does."""

    def __init__(self, graph: GraphEmulator, session: requests.Session, token: str) -> None:
        self.graph = graph
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}", "Prefer": PREFER}
        self.known: set[str] = set()

    def _get(self, url: str) -> Any:
        resp = self.session.get(url, headers=self.headers, timeout=60)
        resp.raise_for_status()
        return resp.json()

    def sync(self) -> int:
        url = f"{self.graph.graph_url}/me/mailFolders/inbox/messages?$select=id&$top=100"
        ids: list[str] = []
        while url:
            page = self._get(url)
            ids += [row["id"] for row in page["value"]]
            url = page.get("@odata.nextLink", "")
        new = [i for i in ids if i not in self.known]
        select = ",".join(MESSAGE_FIELDS)
        with ThreadPoolExecutor(max_workers=4) as pool:
            rows = list(
                pool.map(
                    lambda i: self._get(f"{self.graph.graph_url}/me/messages/{i}?$select={select}"),
                    new,
                )
            )
        self.known.update(row["id"] for row in rows)
        return len(rows)


def measure(graph: GraphEmulator, fn: Callable[[], int]) -> tuple[int, int, float]:
    before = len(graph.graph_requests())
    start = time.perf_counter()
    count = fn()
    return count, len(graph.graph_requests()) - before, time.perf_counter() - start


def fill(graph: GraphEmulator, n: int, offset: int) -> None:
    for i in range(offset, offset + n):
        graph.add_message(
            ADDRESS,
            sender=f"client{i % 300}@customer{i % 40}.example",
            subject=f"Question {i}",
            received=T0 + timedelta(minutes=i),
            headers={"Message-ID": f"<m{i}@customer.example>", "Auto-Submitted": "no"},
        )


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--latency", type=float, default=0.02)
    args.add_argument("--full", type=int, default=10_000)
    args.add_argument("--new", type=int, default=1_000)
    opts = args.parse_args(argv)

    with GraphEmulator(latency=opts.latency) as graph:
        graph.add_mailbox(ADDRESS, "Asha Rao")
        session = graph.session()
        vault, creds = Vault(new_key()), MemoryCredentials()
        connect_outlook_device(
            "asha",
            CLIENT_ID,
            graph.authority,
            vault,
            creds,
            prompt=lambda _: None,
            http_client=session,
            custom_authority=True,
        )
        auth = GraphAuth(
            "asha", CLIENT_ID, graph.authority, vault, creds, session, custom_authority=True
        )
        provider = OutlookProvider(
            "asha",
            ADDRESS,
            auth,
            session=session,
            base_url=graph.graph_url,
            bucket=TokenBucket(1_000, 1_000),
            gate=MailboxGate(),
        )
        naive = Naive(graph, session, auth.token())

        fill(graph, opts.full, 0)
        full_result: dict[str, Any] = {}

        def ours_full() -> int:
            full_result["r"] = provider.sync(None)
            return len(full_result["r"].messages)

        ours_f = measure(graph, ours_full)
        naive_f = measure(graph, naive.sync)
        fill(graph, opts.new, opts.full)
        ours_i = measure(graph, lambda: len(provider.sync(full_result["r"].cursor).messages))
        naive_i = measure(graph, naive.sync)
        session.close()

    print(f"Outlook sync, {opts.latency * 1000:.0f} ms added latency per request")
    print(f"{'scenario':<34}{'client':<8}{'messages':>10}{'requests':>10}{'seconds':>10}")
    rows = [
        (f"full sync of {opts.full:,}", "delta", ours_f),
        (f"full sync of {opts.full:,}", "naive", naive_f),
        (f"incremental, {opts.new:,} new", "delta", ours_i),
        (f"incremental, {opts.new:,} new", "naive", naive_i),
    ]
    for label, client, (count, reqs, secs) in rows:
        print(f"{label:<34}{client:<8}{count:>10,}{reqs:>10,}{secs:>10.2f}")
    ok = ours_f[1] <= 30 and ours_i[1] <= 15 and ours_f[0] == opts.full and ours_i[0] == opts.new
    print("targets (full <= 30 requests, incremental <= 15):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
