"""How results look to a person (rich) and to a script (JSON). No decisions are made here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from agent.errors import Problem
from agent.logs import redact
from agent.model import Action, ActionKind


class Table(RichTable):
    """A rich table whose text cells are shown as they are: subjects, names and reasons come
    from strangers' mail, and "[/finance/q4]" must neither crash the table as bad markup nor
    style it. Cells that should be styled are passed as ``Text``."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(
            *(Text(r) if isinstance(r, str) else r for r in renderables),
            **kwargs,
        )


def action_json(action: Action, status: str = "", subject: str = "") -> dict[str, Any]:
    return {
        "key": action.key,
        "kind": action.kind.value,
        "client": action.client,
        "mailbox": action.mailbox,
        "due": action.due.isoformat().replace("+00:00", "Z"),
        "language": action.language,
        "to": [a.email for a in action.to],
        "subject": subject or action.subject,
        "rule": action.rule,
        "reason": action.reason,
        "status": status,
    }


def _stamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def row_json(row: dict[str, Any]) -> dict[str, Any]:
    """An outbox row for scripts: its identity, state and times in UTC (no action body)."""
    names = ("id", "key", "kind", "mailbox", "client", "thread_id", "status", "due", "attempts")
    out = {n: _stamp(row.get(n)) for n in names}
    out["last_error"] = row.get("last_error") or ""
    return out


def status_json(st: Any) -> dict[str, Any]:
    """``followup status --json``: every time in UTC, each deadline also in the rep's zone."""
    return {
        "now": _stamp(st.now),
        "promises": [
            {
                "key": p.key,
                "mailbox": p.mailbox,
                "client": p.client,
                "subject": p.subject,
                "rule": p.rule,
                "state": p.state.value,
                "received": _stamp(p.received),
                "deadline": _stamp(p.deadline),
                "deadline_local": local(p.deadline, st.zones.get(p.mailbox, "UTC")),
                "zone": st.zones.get(p.mailbox, "UTC"),
            }
            for p in st.promises
        ],
        "outbox": [row_json(r) for r in st.outbox],
        "shadowed": [row_json(r) for r in st.shadowed],
        "mailboxes": [
            {
                "mailbox": r["mailbox"],
                "state": r["state"],
                "synced_at": _stamp(r.get("synced_at")),
                "next_run_at": _stamp(r.get("next_run_at")),
                "last_error": r.get("last_error") or "",
                "hint": r.get("hint", ""),
            }
            for r in st.mailboxes
        ],
        "skipped": [
            {"mailbox": s["mailbox"], "item": s["item"], "reason": s["reason"]} for s in st.skipped
        ],
        "opted_out": [
            {"client": r["client"], "at": _stamp(r["at"]), "reason": r["reason"]}
            for r in st.opted_out
        ],
    }


def local(dt: datetime | None, zone: str) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")


def problems(console: Console, items: Iterable[Problem], title: str = "Problems") -> None:
    items = list(items)
    console.print(f"[bold red]{title}: {len(items)}[/]")
    for p in items:
        # Piped, an error keeps to one line, so a script or a log reads it whole.
        console.print(f"  [red]✗[/] {escape(str(p))}", soft_wrap=not console.is_terminal)


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
    invitations(console, result)

    decisions = Table(title="No clock, no note: decisions and their reasons (audited)", expand=True)
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


def service_round(console: Console, rnd: Any, out: Any) -> None:
    """The demo's last act: the worker (`followup run`) takes over an hour later."""
    table = Table(
        title=f"An hour later: one round of the worker (followup run --once) at {rnd.at:%H:%M} UTC",
        expand=True,
    )
    for col in ("kind", "mailbox", "client", "due (UTC)", "now"):
        table.add_column(col, overflow="fold")
    for r in rnd.moved:
        table.add_row(
            r["kind"], r["mailbox"], r["client"], r["due"].strftime("%a %d %b %H:%M"), r["status"]
        )
    console.print(
        table if rnd.moved else "[green]An hour later the worker had nothing new to do.[/]"
    )
    states = ", ".join(f"{m['mailbox']} {m['state'].replace('_', ' ')}" for m in rnd.mailboxes)
    config_path = out / "config.toml"
    console.print(
        Panel(
            Text(
                f"Mailboxes: {states}.\n"
                f"Planning: the round planned all {rnd.planned[0]} threads (a start or a reload "
                f"plans everything); the next, {rnd.after.seconds // 60} minutes on, planned "
                f"{rnd.planned[1]} of "
                f"{rnd.threads} again, those with new mail (the notes just sent) or a deadline "
                "come; the rest kept their plans (followup_threads_planned_total on /metrics).\n"
                f"Run the service on the demo: followup run --config {config_path} "
                f"--now {rnd.at:%Y-%m-%dT%H:%MZ}\n"
                f"(/healthz and /metrics on 127.0.0.1:9464; Ctrl-C stops it cleanly)\n"
                f"What is due now: followup status --config {config_path} "
                f"--now {rnd.at:%Y-%m-%dT%H:%MZ}"
            ),
            title="The agent as a service",
        )
    )


def controls_round(console: Console, rnd: Any) -> None:
    """The demo's epilogue: steering by hand and shadow mode, and what the worker did with it."""
    lines = [f"• {act}" for act in rnd.acts]
    lines += [f"• held back: {why}" for why in dict.fromkeys(d["reason"] for d in rnd.held)]
    console.print(
        Panel(
            Text("\n".join(lines)),
            title=f"The team in control · a day later, {rnd.at:%a %H:%M} UTC",
        )
    )
    if rnd.shadowed:
        console.print(
            outbox_table(rnd.shadowed, "Shadow mode: what omar's mailbox would have sent")
        )


def invitations(console: Console, result: Any) -> None:
    """The calendar invitations among the demo's actions: the time as each side sees it."""
    invites = [a for a in result.actions if a.kind is ActionKind.INVITE]
    if not invites:
        return
    table = Table(
        title="Invitations (text/calendar; method=REQUEST: Accept / Decline; an update moves "
        "the same event)",
        expand=True,
    )
    for col in ("client", "their time", "rep's time", "lang", "event", "status", "file"):
        table.add_column(col, overflow="fold")
    for a in invites:
        meeting = a.context.get("meeting", {})
        sequence = int(meeting.get("sequence", 0) or 0)
        event = f"update, SEQUENCE {sequence}" if sequence else "new"
        start, zone = meeting.get("start"), str(meeting.get("zone", "UTC"))
        rep_zone = str(a.context.get("rep_zone") or result.zones.get(a.mailbox, "UTC"))
        outcome = result.outcomes.get(a.key)
        path = result.files.get(a.key)
        table.add_row(
            a.client,
            f"{local(start, zone)} {zone}",
            f"{local(start, rep_zone)} {rep_zone}",
            a.language,
            event,
            outcome.status if outcome else "due",
            path.name if path else "",
        )
    console.print(table)


def figures_table(title: str, rows: Iterable[Any]) -> Table:
    table = Table(title=title, expand=True)
    for col in (
        "",
        "applied",
        "met",
        "missed",
        "open",
        "SLA %",
        "median h",
        "p90 h",
        "reminders",
        "escalations",
    ):
        table.add_column(col, justify="left" if not col else "right")
    for f in rows:
        sla = "-" if f.sla is None else f"{f.sla * 100:.1f}"
        table.add_row(
            Text(f.group, style="bold" if f.group == "all" else ""),
            str(f.applied),
            str(f.met),
            str(f.missed),
            str(f.open),
            sla,
            "-" if f.median_hours is None else f"{f.median_hours:.2f}",
            "-" if f.p90_hours is None else f"{f.p90_hours:.2f}",
            str(f.reminders),
            str(f.escalations),
        )
    return table


def simulation(console: Console, sim: Any, *, show_actions: bool) -> None:
    console.rule(
        f"[bold]{sim.since:%Y-%m-%d %H:%M} → {sim.now:%Y-%m-%d %H:%M} UTC[/]"
        f" · rules: {sim.rules_source}"
    )
    if show_actions:
        table = Table(title="What the rules would have done", expand=True)
        for col in ("due (UTC)", "action", "mailbox", "client", "rule"):
            table.add_column(col)
        for a in sim.replay.fired:
            table.add_row(
                a.due.strftime("%a %d %b %H:%M"), a.kind.value, a.mailbox, a.client, a.rule
            )
        console.print(table)
    console.print(figures_table("Per rep", sim.per_rep))
    console.print(figures_table("Per team", [f for f in sim.per_team if f.group != "all"]))
    console.print(
        "SLA % = (applied - missed) / applied; response times in business hours "
        "(first replies, the rule's clock)."
    )
    if sim.shadowed:
        counts: dict[tuple[str, str], int] = {}
        for r in sim.shadowed:
            counts[(r["mailbox"], r["kind"])] = counts.get((r["mailbox"], r["kind"]), 0) + 1
        table = Table(title="Shadow mode: what would have gone out in the period", expand=True)
        for col in ("mailbox", "kind", "notes"):
            table.add_column(col)
        for (mailbox, kind), n in sorted(counts.items()):
            table.add_row(mailbox, kind, str(n))
        console.print(table)


def simulation_json(sim: Any) -> dict[str, Any]:
    return {
        "since": sim.since.isoformat(),
        "now": sim.now.isoformat(),
        "rules": sim.rules_source,
        "actions": [action_json(a) for a in sim.replay.fired],
        "shadowed": [row_json(r) for r in sim.shadowed],
        "promises": [
            {
                "key": p.key,
                "rule": p.rule,
                "kind": p.kind,
                "mailbox": p.mailbox,
                "client": p.client,
                "received": p.received.isoformat(),
                "deadline": p.deadline.isoformat(),
                "state": p.state.value,
                "met_at": p.met_at.isoformat() if p.met_at else None,
            }
            for p in sim.replay.promises
        ],
        "per_rep": [f.as_json() for f in sim.per_rep],
        "per_team": [f.as_json() for f in sim.per_team],
    }


def status(console: Console, st: Any) -> None:
    console.rule(f"[bold]Followup status[/] · {st.now:%Y-%m-%d %H:%M} UTC")
    table = Table(title="Open promises", expand=True)
    for col in ("deadline (rep's zone)", "rep", "client", "subject", "rule", "state", "key"):
        table.add_column(col, overflow="fold")
    colours = {"active": "cyan", "warned": "yellow", "breached": "red"}
    for p in st.promises:
        zone = st.zones.get(p.mailbox, "UTC")
        table.add_row(
            local(p.deadline, zone) + f" {zone}",
            p.mailbox,
            p.client,
            p.subject,
            p.rule,
            Text(p.state.value, style=colours.get(p.state.value, "")),
            Text(p.key, style="dim"),
        )
    console.print(table if st.promises else "[green]No open promises.[/]")
    console.print(outbox_table(st.outbox, "Drafts waiting and notes scheduled"))
    if st.shadowed:
        console.print(
            outbox_table(st.shadowed, "Shadow mode: what would have gone out (last 7 days)")
        )
    if st.mailboxes:
        console.print(mailbox_table(st.mailboxes, st.zones))
    if st.opted_out:
        table = Table(title="Opted out: no notes go to these clients", expand=True)
        for col in ("client", "since (UTC)", "how"):
            table.add_column(col, overflow="fold")
        for r in st.opted_out:
            table.add_row(
                escape(str(r["client"])), f"{r['at']:%Y-%m-%d %H:%M}", escape(str(r["reason"]))
            )
        console.print(table)
    if st.skipped:
        problems(
            console,
            [Problem(s["mailbox"], s["item"], s["reason"]) for s in st.skipped],
            "Skipped input",
        )


def mailbox_table(rows: list[dict[str, Any]], zones: dict[str, str]) -> Table:
    """Each mailbox's sync state as the worker left it; the ones needing a person stand out."""
    table = Table(title="Mailboxes", expand=True)
    for col in ("mailbox", "state", "last synced", "next sync", "note"):
        table.add_column(col, overflow="fold")
    styles = {
        "needs_reconnect": "bold red",
        "access_denied": "bold red",
        "backoff": "yellow",
        "disabled": "dim",
    }
    for r in rows:
        zone = zones.get(r["mailbox"], "UTC")
        state = r["state"]
        note = _error_note(r)
        if r.get("first_sync"):
            note = f"{r['first_sync']}. {note}".strip()
        if r.get("hint"):
            note = f"run: {r['hint']}. {note}"
        table.add_row(
            r["mailbox"],
            Text(state.replace("_", " "), style=styles.get(state, "green")),
            f"{local(r.get('synced_at'), zone)} {zone}" if r.get("synced_at") else "-",
            f"{local(r.get('next_run_at'), zone)} {zone}"
            if state not in ("needs_reconnect", "disabled") and r.get("next_run_at")
            else "-",
            Text(note),
        )
    return table


def _error_note(row: dict[str, Any]) -> str:
    """A row's last error as a person may see it: redacted again (rows stored by older
    versions were not), and shown as plain text, never read as rich markup."""
    return redact(row.get("last_error") or "")


def outbox_table(rows: list[dict[str, Any]], title: str = "Outbox") -> Table:
    table = Table(title=title, expand=True)
    for col in ("id", "due (UTC)", "kind", "mailbox", "client", "status", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["due"].strftime("%a %d %b %H:%M"),
            r["kind"],
            r["mailbox"],
            r["client"],
            r["status"],
            Text(_error_note(r)),
        )
    return table


def team_report(console: Console, r: Any) -> None:
    """The relationship figures at a glance, under the SLA tables."""
    from agent.reportpage import cards

    table = Table(title="Relationship figures (all reps)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in cards(r):
        table.add_row(label, value)
    console.print(table)
    if r.quiet:
        quiet = Table(title="Clients going quiet")
        for col in ("client", "rep", "silent", "usual rhythm", "last exchange"):
            quiet.add_column(col)
        for q in r.quiet:
            quiet.add_row(
                q.name, q.mailbox, f"{q.silent_days} d", f"{q.rhythm_days} d", q.last_subject
            )
        console.print(quiet)
    if r.ambiguous:
        console.print(f"{len(r.ambiguous)} survey answers left unscored (see --html or --json)")


def report_round(console: Console, rnd: Any, out: Any) -> None:
    """The demo's last part: the history behind the figures, the report and the digests."""
    console.rule("[bold]What the leads see[/]")
    console.print(
        f"{rnd.messages} messages of earlier weeks filed; {rnd.answers} survey answers read."
    )
    console.print(f"  report: {escape(str(rnd.report))}  (open it in a browser)")
    for path in [*rnd.digests, *rnd.summaries]:
        console.print(f"  weekly mail: {escape(str(path))}")
