"""The ``followup`` command: parse, call, print. Every decision lives in the modules it calls.

A ``UserError`` becomes a list of problems and exit status 1 here, and nowhere else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agent import __version__
from agent.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


@cache
def console(*, stderr: bool = False) -> Console:
    """The terminal, through rich. rich and the views are loaded with the first thing printed:
    ``followup run`` prints through logging only, so its worker keeps neither resident."""
    from rich.console import Console

    return Console(stderr=stderr)


def err_console() -> Console:
    return console(stderr=True)


def reports_problems(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            from agent import views

            views.problems(err_console(), exc.problems)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _report_check(found: list[Any], summary: str) -> None:
    if found:
        from agent import views

        views.problems(err_console(), found)
        sys.exit(1)
    console().print(f"[green]✓[/] {summary}")


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("config.toml"),
    envvar="FOLLOWUP_CONFIG",
    show_default=True,
    help="The configuration file (see config.example.toml).",
)


@click.group()
@click.version_option(__version__, prog_name="followup")
def main() -> None:
    """Followup keeps a sales team's promises to its clients."""


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("followup-demo-out"),
    show_default=True,
    help="Folder for the demo's mailboxes, store and .eml files.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
@reports_problems
def demo(out: Path, as_json: bool) -> None:
    """Run the whole pipeline over the bundled demo mailboxes, with a fixed 'now'."""
    from agent import views
    from agent.demo import run_demo

    result = run_demo(out)
    if as_json:
        rows = [
            views.action_json(
                a,
                result.outcomes[a.key].status if a.key in result.outcomes else "scheduled",
                result.subjects.get(a.key, ""),
            )
            for a in result.actions
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    views.demo(console(), result)
    from datetime import timedelta

    from agent.demo import service_round

    views.service_round(console(), service_round(out, result.now + timedelta(hours=1)), out)


@main.group()
def rules() -> None:
    """Check and preview the response-time rules in rules/*.toml."""


@rules.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@config_option
@reports_problems
def rules_check(path: Path | None, config_path: Path) -> None:
    """Load every rule file and report every problem as file:rule:key."""
    from agent.app import check_rules

    _report_check(*check_rules(path, config_path))


def _simulation(
    config_path: Path,
    since: str,
    rules_path: Path | None,
    now: str | None,
    as_json: bool,
    show_actions: bool,
) -> None:
    from agent import views
    from agent.app import simulate

    sim = simulate(config_path, since, rules_path=rules_path, now=now)
    if as_json:
        click.echo(json.dumps(views.simulation_json(sim), ensure_ascii=False, indent=2))
    else:
        views.simulation(console(), sim, show_actions=show_actions)


since_option = click.option(
    "--since", default="30d", show_default=True, help="How far back: 30d, 12h, 2w."
)
now_option = click.option(
    "--now", default=None, help="Replay up to this ISO 8601 time instead of the present."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@rules.command("simulate")
@since_option
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Draft rules (file or folder) to try instead of the rules in force.",
)
@now_option
@json_option
@config_option
@reports_problems
def rules_simulate(
    since: str, rules_path: Path | None, now: str | None, as_json: bool, config_path: Path
) -> None:
    """Replay stored mail against a rule set and show what it would have done."""
    _simulation(config_path, since, rules_path, now, as_json, show_actions=True)


@main.command()
@since_option
@now_option
@json_option
@config_option
@reports_problems
def report(since: str, now: str | None, as_json: bool, config_path: Path) -> None:
    """Response-time figures per rep and per team for the period."""
    _simulation(config_path, since, None, now, as_json, show_actions=False)


@main.command()
@click.option("--mailbox", default=None, help="One rep's mailbox (default: all).")
@now_option
@config_option
@reports_problems
def status(mailbox: str | None, now: str | None, config_path: Path) -> None:
    """Open promises with their deadlines, pending drafts and scheduled notes."""
    from agent import views
    from agent.app import status as get_status

    views.status(console(), get_status(config_path, mailbox=mailbox, now=now))


@main.command()
@click.option("--once", is_flag=True, help="Work every due mailbox once, then exit.")
@click.option(
    "--now",
    default=None,
    help="Run as if it were this time (ISO 8601), e.g. to replay the demo: 2026-11-25T08:00Z.",
)
@config_option
@reports_problems
def run(once: bool, now: str | None, config_path: Path) -> None:
    """Run the worker: sync, plan and send for every mailbox until SIGTERM."""
    from agent.worker import run as run_worker

    sys.exit(run_worker(config_path, once=once, now=now))


@main.group()
def outbox() -> None:
    """The notes the agent has planned: list them, approve a draft, cancel one."""


@outbox.command("list")
@click.option("--all", "everything", is_flag=True, help="Include sent and cancelled entries.")
@config_option
@reports_problems
def outbox_list(everything: bool, config_path: Path) -> None:
    """List pending and scheduled entries."""
    from agent import views
    from agent.app import outbox_rows

    console().print(views.outbox_table(outbox_rows(config_path, everything=everything)))


@outbox.command("approve")
@click.argument("ident", type=int)
@config_option
@reports_problems
def outbox_approve(ident: int, config_path: Path) -> None:
    """Send a draft now."""
    from agent.app import outbox_decide

    outcome = outbox_decide(config_path, ident, approve=True)
    console().print(f"{ident}: {outcome.status} {outcome.detail}")


@outbox.command("cancel")
@click.argument("ident", type=int)
@config_option
@reports_problems
def outbox_cancel(ident: int, config_path: Path) -> None:
    """Cancel a planned note or a draft; a sent invitation is cancelled with the client."""
    from agent.app import outbox_decide

    outcome = outbox_decide(config_path, ident, approve=False)
    console().print(f"{ident}: {outcome.status} {outcome.detail}")


@main.group()
def connect() -> None:
    """Connect a rep's mailbox: sign in once, the agent keeps the grant sealed."""


@connect.command("outlook")
@click.option("--mailbox", required=True, help="The mailbox's name in the config.")
@click.option(
    "--browser",
    is_flag=True,
    help="Open a browser on this machine instead of showing a device code.",
)
@click.option(
    "--now",
    default=None,
    help="The time a worker started with --now runs at (ISO 8601), so both schedule alike.",
)
@config_option
@reports_problems
def connect_outlook(mailbox: str, browser: bool, now: str | None, config_path: Path) -> None:
    """Microsoft 365 or Outlook.com, with a device code (works on a headless server)."""
    from agent.app import connect_outlook as run
    from agent.errors import ProviderError

    try:
        username = run(config_path, mailbox, browser=browser, prompt=console().print, now=now)
    except ProviderError as exc:
        err_console().print(f"[red]Sign-in did not complete:[/] {exc}")
        sys.exit(1)
    console().print(f"[green]✓[/] Connected {mailbox} as {username}.")


@connect.command("gmail")
@click.option("--mailbox", required=True, help="The mailbox's name in the config.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    help="Loopback port for Google's redirect (forward it over SSH on a server).",
)
@click.option("--no-browser", is_flag=True, help="Print the consent URL instead of opening it.")
@click.option(
    "--now",
    default=None,
    help="The time a worker started with --now runs at (ISO 8601), so both schedule alike.",
)
@config_option
@reports_problems
def connect_gmail(
    mailbox: str, port: int, no_browser: bool, now: str | None, config_path: Path
) -> None:
    """Gmail and Google Workspace, with Google's consent screen in a browser."""
    from agent.app import connect_gmail as run
    from agent.errors import ProviderError

    try:
        account = run(config_path, mailbox, port=port, open_browser=not no_browser, now=now)
    except ProviderError as exc:
        err_console().print(f"[red]Sign-in did not complete:[/] {exc}")
        sys.exit(1)
    console().print(f"[green]✓[/] Connected {mailbox} as {account}.")


@main.group()
def templates() -> None:
    """Check and preview the notes' templates in templates/."""


@templates.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@config_option
@reports_problems
def templates_check(path: Path | None, config_path: Path) -> None:
    """Render every template with sample data; every client language must be covered."""
    from agent.app import check_templates

    _report_check(*check_templates(config_path, path))


@templates.command("preview")
@click.argument("purpose")
@click.argument("language")
@click.option("--step", default=1, show_default=True, help="Follow-up step.")
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part.")
@click.option(
    "--templates",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("templates"),
    show_default=True,
)
@reports_problems
def templates_preview(purpose: str, language: str, step: int, as_html: bool, folder: Path) -> None:
    """Render one template with sample data."""
    from agent.templatecheck import preview

    rendered = preview(folder, purpose, language, step=step)
    click.echo(f"Subject: {rendered.subject}\n")
    click.echo(rendered.html if as_html and rendered.html else rendered.text)


@main.command()
@click.option(
    "--request",
    "request_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The JSON request (schema in the README).",
)
@json_option
@reports_problems
def slots(request_path: Path, as_json: bool) -> None:
    """Propose meeting times that suit every attendee in their own time zone."""
    from datetime import UTC, datetime

    from agent.slotrequest import answer_json, load_request, render_text
    from agent.slots import propose

    request = load_request(request_path, now=datetime.now(UTC))  # a "now" in the file wins
    proposal = propose(request)
    if as_json:
        click.echo(json.dumps(answer_json(request, proposal), ensure_ascii=False, indent=2))
    else:
        console().print(render_text(request, proposal))


@main.command()
def keygen() -> None:
    """Print a new key for sealing stored credentials (FOLLOWUP_SECRET_KEY)."""
    from agent.providers.tokens import new_key

    click.echo(new_key())


if __name__ == "__main__":  # pragma: no cover
    main()
