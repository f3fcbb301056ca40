"""What bench_gmail and bench_outlook share: a team whose one mailbox points at an emulator, the
mail that arrives between two passes, and the worker's whole pass (sync, bodies, plan, send)
run by the real :class:`agent.worker.Worker` and timed.

The team is the demo's (its clients, rules and templates); the mailbox is Asha's, with the
provider and endpoint the benchmark gives. The worker reaches the emulator through a
``connect`` factory that builds the real adapter.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.demo import HERE as DEMO_DIR
from agent.store import Store
from agent.worker import Worker
from tests.worker_helpers import team_lines

ADDRESS = "asha@acme.example"
# Clients of the demo's clients.csv, by address or company domain.
CLIENTS = (
    "priya@reddytextiles.in",
    "kenji.sato@sato-trading.co.jp",
    "a.schmidt@schmidt-maschinenbau.de",
    "procurement@ruizlogistica.mx",
    "fatima@alsayed-trading.sa",
    "emily@clarkandco.com",
    "beatriz@costaalimentos.com.br",
)
NEWSLETTER = {"List-Id": "<news.tradefair.example>", "Precedence": "list"}


@dataclass(frozen=True)
class Arrival:
    """One inbound message: who from, about what, when, with which extra headers."""

    n: int
    sender: str
    subject: str
    date: datetime
    headers: dict[str, str]
    client: bool


def arrivals(
    count: int, end: datetime, *, client_share: float, spacing: timedelta, first: int = 0
) -> Iterator[Arrival]:
    """``count`` inbound messages numbered from ``first``, the last at ``end``, ``spacing``
    apart: ``client_share`` of them questions from clients, the rest alternately a newsletter
    and a stranger's mail."""
    clients = round(count * client_share)
    for i in range(count):
        n = first + i
        when = end - spacing * (count - 1 - i)
        if i * clients // count != (i + 1) * clients // count:
            sender = CLIENTS[n % len(CLIENTS)]
            yield Arrival(n, sender, f"Question {n} about our order", when, {}, True)
        elif n % 2:
            yield Arrival(
                n, "news@tradefair.example", f"Trade fair news {n}", when, NEWSLETTER, False
            )
        else:
            yield Arrival(n, f"someone{n}@elsewhere.example", f"Hello {n}", when, {}, False)


def write_config(
    folder: Path,
    *,
    provider: str,
    endpoint: str,
    db_url: str,
    extra: dict[str, Any] | None = None,
    endpoints: dict[str, str] | None = None,
    service: dict[str, Any] | None = None,
) -> Path:
    """A config.toml for the demo team with Asha's mailbox on ``provider`` at ``endpoint``, or
    with one mailbox like hers per name of ``endpoints`` (``name@acme.example``)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_DIR / "clients.csv", folder / "clients.csv")
    demo = tomllib.loads((DEMO_DIR / "config.toml").read_text(encoding="utf-8"))
    asha = dict(next(m for m in demo["mailboxes"] if m["name"] == "asha"))
    asha.pop("path", None)
    asha.pop("aliases", None)
    lines = [
        *team_lines(db_url),
        "[outbox]",
        'mode = "send"',
        "[service]",
        'listen = ""',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (service or {}).items()]
    for lead in demo["leads"]:
        lines.append("[[leads]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in lead.items()]
    for name, url in (endpoints or {"asha": endpoint}).items():
        rep = {**asha, "provider": provider, "endpoint": url, **(extra or {})}
        if name != "asha":
            rep.update(name=name, address=f"{name}@acme.example", rep_name=name.title())
        lines.append("[[mailboxes]]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in rep.items()]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class VirtualPacing:
    """A clock for the per-mailbox token bucket in which waiting costs no wall time: the
    bucket sleeps on it, and the benchmark adds the seconds slept to the wall time measured."""

    def __init__(self) -> None:
        self.slept = 0.0

    def clock(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


@dataclass(frozen=True)
class PassCost:
    requests: int
    units: int
    seconds: float
    bodies: int  # bodies fetched in the pass


def run_pass(
    config: Path,
    now: datetime,
    connect: Callable[..., Any],
    counters: Callable[[], tuple[int, int]],
    store: Store,
) -> PassCost:
    """One ``run(once=True)`` of a fresh worker at ``now``: what it cost at the emulator."""
    bodies_before = sum(m.body is not None for m in store.messages())
    requests, units = counters()
    started = time.perf_counter()
    Worker(config, owner="bench", clock=lambda: now, connect=connect).run(once=True)
    seconds = time.perf_counter() - started
    after_requests, after_units = counters()
    bodies = sum(m.body is not None for m in store.messages()) - bodies_before
    return PassCost(after_requests - requests, after_units - units, seconds, bodies)


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"
