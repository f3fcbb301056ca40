"""How results look to a person (rich) and to a script (JSON). No decisions are made here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agent.errors import Problem
from agent.model import Action


def action_json(action: Action, status: str = "") -> dict[str, Any]:
    return {
        "key": action.key,
        "kind": action.kind.value,
        "client": action.client,
        "mailbox": action.mailbox,
        "due": action.due.isoformat().replace("+00:00", "Z"),
        "language": action.language,
        "to": [a.email for a in action.to],
        "subject": action.subject,
        "rule": action.rule,
        "reason": action.reason,
        "status": status,
    }


def local(dt: datetime | None, zone: str) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")


def problems(console: Console, items: Iterable[Problem], title: str = "Problems") -> None:
    items = list(items)
    console.print(f"[bold red]{title}: {len(items)}[/]")
    for p in items:
        console.print(f"  [red]✗[/] {p}")


def demo(console: Console, result: Any) -> None:
    zones = result.zones
    console.rule(f"[bold]Followup demo[/] · now = {result.now.isoformat()}")
    table = Table(title="Promises", show_lines=False, expand=True)
    for col in ("client", "rep", "rule", "received", "deadline (rep's zone)", "state"):
        table.add_column(col)
    colours = {"met": "green", "active": "cyan", "warned": "yellow", "breached": "red"}
    for p in sorted(result.promises, key=lambda p: p.deadline):
        zone = zones.get(p.mailbox, "UTC")
        state = p.state.value + (" (late)" if p.late else "")
        table.add_row(
            p.client,
            p.mailbox,
            p.rule,
            local(p.received, zone),
            local(p.deadline, zone),
            Text(state, style=colours.get(p.state.value, "")),
        )
    console.print(table)

    timeline = Table(title="What the agent does, and why", expand=True, show_lines=True)
    timeline.add_column("due (UTC)", width=12)
    timeline.add_column("action", width=10)
    timeline.add_column("to", overflow="fold", width=14)
    timeline.add_column("lang", width=4)
    timeline.add_column("status", width=9)
    timeline.add_column("why", overflow="fold", ratio=1)
    for a in result.actions:
        outcome = result.outcomes.get(a.key)
        status = outcome.status if outcome else ("scheduled" if a.due > result.now else "due")
        timeline.add_row(
            a.due.strftime("%a %d %b %H:%M"),
            a.kind.value,
            ", ".join(x.email for x in a.to),
            a.language,
            status,
            a.reason,
        )
    console.print(timeline)

    decisions = Table(title="Messages that start no clock (audited)", expand=True)
    for col in ("mailbox", "decision", "reason"):
        decisions.add_column(col, overflow="fold")
    for d in result.decisions:
        decisions.add_row(d.mailbox, d.decision, d.reason)
    console.print(decisions)
    if result.skipped:
        problems(
            console,
            [Problem(s["mailbox"], s["item"], s["reason"]) for s in result.skipped],
            "Skipped input",
        )
    console.print(
        Panel(
            Group(*(Text(str(path)) for path in sorted(result.files.values()))),
            title=f"Every outgoing message, as .eml, in {result.out / 'outbox'}",
        )
    )
