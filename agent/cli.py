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
EX_CONFIG = 78  # sysexits.h: the configuration is wrong


@cache
def console(*, stderr: bool = False) -> Console:
    """The terminal, through rich. rich and the views are loaded with the first thing printed:
    ``followup run`` prints through logging only, so its worker keeps neither resident."""
    from rich.console import Console

    # No emoji codes: ":free:" in a client's subject is text, not a picture.
    return Console(stderr=stderr, emoji=False)


def err_console() -> Console:
    return console(stderr=True)


def plain(text: str) -> str:
    """``text`` (from mail, a provider, a file) escaped so rich prints it as it is."""
    from rich.markup import escape

    return escape(text)


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


def _report_check(found: list[Any], summary: str, as_json: bool = False) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": not found,
                    "summary": "" if found else summary,
                    "problems": [
                        {"file": p.file, "where": p.where, "message": p.message} for p in found
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        sys.exit(1 if found else 0)
    if found:
        from agent import views

        views.problems(err_console(), found)
        sys.exit(1)
    console().print(f"[green]✓[/] {summary}")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

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
@click.option(
    "--web",
    is_flag=True,
    help="Then serve the console over the demo, with a sign-in as its people.",
)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="With --web.")
@reports_problems
def demo(out: Path, as_json: bool, web: bool, listen: str) -> None:
    """Run the whole pipeline over the bundled demo mailboxes, with a fixed 'now'."""
    from agent import views
    from agent.demo import run_demo

    if web:
        from agent.web.server import demo_data, serve

        config_path, clock = demo_data(out)
        serve(config_path, listen, demo=True, clock=clock, ready=console().print)
        return
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
    from agent.demo import controls_round

    views.controls_round(console(), controls_round(out, result.now + timedelta(days=1)))
    from agent.demo.relationship import report_round

    views.report_round(console(), report_round(out, result.now), out)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@reports_problems
def init(folder: Path) -> None:
    """Write a starting set into FOLDER: config.toml (in shadow mode), rules/, templates/ and
    an empty clients.csv."""
    from agent.starter import init as start

    started = start(folder)
    config = started.folder / "config.toml"
    console().print(f"[green]✓[/] Wrote {plain(', '.join(str(p) for p in started.written))}")
    console().print(
        "Next:\n"
        f"  1. Edit {config}: your team, one [[mailboxes]] table per rep (the three there are"
        " examples), the leads.\n"
        f"  2. Export your clients into {started.folder / 'clients.csv'}.\n"
        f"  3. followup rules check --config {config}\n"
        f"  4. followup connect gmail|outlook --mailbox NAME --config {config}\n"
        f"  5. followup run --config {config}   (shadow mode: nothing is sent until you change"
        " [outbox] mode; see the README's 'Switching on')",
        markup=False,
    )


@main.group()
def rules() -> None:
    """Check and preview the response-time rules in rules/*.toml."""


@rules.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@json_option
@config_option
@reports_problems
def rules_check(path: Path | None, as_json: bool, config_path: Path) -> None:
    """Load every rule file and report every problem as file:rule:key."""
    from agent.app import check_rules

    _report_check(*check_rules(path, config_path), as_json=as_json)


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
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the report as one self-contained HTML page with charts.",
)
@click.option(
    "--csv",
    "csv_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write every figure as CSV files into this folder.",
)
@config_option
@reports_problems
def report(
    since: str,
    now: str | None,
    as_json: bool,
    html_path: Path | None,
    csv_dir: Path | None,
    config_path: Path,
) -> None:
    """Figures for team leads: responsiveness, NPS and CSAT, follow-up outcomes, clients going
    quiet; per rep, team, tier and segment, for the period."""
    from agent import reporting, views

    found = reporting.team_report(config_path, since=since, now=now)
    if as_json:
        click.echo(json.dumps(found.as_json(), ensure_ascii=False, indent=2))
    if html_path is not None:
        reporting.write_html(found, html_path)
        err_console().print(f"[green]✓[/] wrote {plain(str(html_path))}")
    if csv_dir is not None:
        for path in reporting.write_csv(found, csv_dir):
            err_console().print(f"[green]✓[/] wrote {plain(str(path))}")
    if not (as_json or html_path or csv_dir):
        _simulation(config_path, since, None, now, False, show_actions=False)
        views.team_report(console(), found)


@main.command()
@now_option
@config_option
@reports_problems
def digest(now: str | None, config_path: Path) -> None:
    """Send the weekly digests that are due (each lead's, and the summaries reps asked for):
    each once a week, however often this runs (e.g. hourly from cron)."""
    from agent import reporting

    for reader, outcome in reporting.digests(config_path, now=now):
        console().print(f"{plain(reader.email)}: {plain(outcome.status)} {plain(outcome.detail)}")


@main.command()
@click.option("--mailbox", default=None, help="One rep's mailbox (default: all).")
@now_option
@json_option
@click.option("--check", is_flag=True, help="Exit 1 when a promise is breached (for monitoring).")
@config_option
@reports_problems
def status(
    mailbox: str | None, now: str | None, as_json: bool, check: bool, config_path: Path
) -> None:
    """Open promises with their deadlines, pending drafts and scheduled notes."""
    from agent import views
    from agent.app import status as get_status

    st = get_status(config_path, mailbox=mailbox, now=now)
    if as_json:
        click.echo(json.dumps(views.status_json(st), ensure_ascii=False, indent=2))
    else:
        views.status(console(), st)
    if check and any(p.state.value == "breached" for p in st.promises):
        sys.exit(1)


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
    """Run the worker: sync, plan and send for every mailbox until SIGTERM.

    A configuration (config, rules, templates, clients) it cannot start with exits with 78
    (EX_CONFIG), which the systemd unit does not restart on: restarting cannot mend a file."""
    from agent.errors import UserError
    from agent.worker import run as run_worker

    try:
        code = run_worker(config_path, once=once, now=now)
    except UserError as exc:  # the config, rules, templates or clients it cannot start with
        from agent import views

        views.problems(err_console(), exc.problems)
        sys.exit(EX_CONFIG)
    sys.exit(code)


@main.group()
def outbox() -> None:
    """The notes the agent has planned: list them, approve a draft, cancel one."""


@outbox.command("list")
@click.option("--all", "everything", is_flag=True, help="Include sent and cancelled entries.")
@json_option
@config_option
@reports_problems
def outbox_list(everything: bool, as_json: bool, config_path: Path) -> None:
    """List pending and scheduled entries."""
    from agent import views
    from agent.app import outbox_rows

    rows = outbox_rows(config_path, everything=everything)
    if as_json:
        click.echo(json.dumps([views.row_json(r) for r in rows], ensure_ascii=False, indent=2))
        return
    console().print(views.outbox_table(rows))


@outbox.command("show")
@click.argument("ident", type=int)
@json_option
@config_option
@reports_problems
def outbox_show(ident: int, as_json: bool, config_path: Path) -> None:
    """Print one note as it reads: headers, text, the HTML as text, attachments."""
    from agent import views
    from agent.app import outbox_show as show

    shown = show(config_path, ident)
    row = shown.row
    if as_json:
        data = {
            **views.row_json(row),
            "headers": dict(shown.headers),
            "text": shown.text,
            "html_as_text": shown.html_text,
            "attachments": [{"name": n, "type": t} for n, t in shown.attachments],
        }
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    lines = [
        f"#{ident} {row['kind']} for {row['client'] or 'the team'} · {row['status']} · "
        f"due {row['due']:%Y-%m-%d %H:%M} UTC · {row['mailbox']}",
        "",
        *(f"{name}: {value}" for name, value in shown.headers),
        "",
        shown.text.rstrip(),
    ]
    if shown.html_text and shown.html_text.strip() != shown.text.strip():
        lines += ["", "--- the HTML part, as text ---", shown.html_text.rstrip()]
    for name, kind in shown.attachments:
        lines.append(f"[attachment: {name or '(unnamed)'} {kind}]")
    console().print("\n".join(lines), markup=False, highlight=False)


@outbox.command("approve")
@click.argument("ident", type=int)
@click.option("--force", is_flag=True, help="Send it now even if it is not a draft that is due.")
@config_option
@reports_problems
def outbox_approve(ident: int, force: bool, config_path: Path) -> None:
    """Send a draft that is due (with --force: any planned note, now)."""
    from agent.app import outbox_decide

    outcome = outbox_decide(config_path, ident, approve=True, force=force, who=_who())
    console().print(f"{ident}: {outcome.status} {plain(outcome.detail)}")
    if outcome.status not in ("sent", "sending"):
        sys.exit(1)


@outbox.command("cancel")
@click.argument("ident", type=int)
@config_option
@reports_problems
def outbox_cancel(ident: int, config_path: Path) -> None:
    """Cancel a planned note or a draft; a sent invitation is cancelled with the client."""
    from agent.app import outbox_decide

    outcome = outbox_decide(config_path, ident, approve=False, who=_who())
    if outcome.status == "sent":
        err_console().print(
            f"{ident}: already sent{f' ({plain(outcome.detail)})' if outcome.detail else ''}; "
            "a sent note cannot be called back"
        )
        sys.exit(1)
    console().print(f"{ident}: {outcome.status} {plain(outcome.detail)}")
    if outcome.status != "cancelled":
        sys.exit(1)


def _who() -> str:
    import getpass

    try:
        return f"{getpass.getuser()} (CLI)"
    except (KeyError, OSError):
        return "the CLI"


@main.group()
def promise() -> None:
    """A promise kept another way: mark it handled."""


@promise.command("done")
@click.argument("key")
@click.option("--note", default="", help="What was done, for the audit (e.g. 'phoned them').")
@config_option
@reports_problems
def promise_done(key: str, note: str, config_path: Path) -> None:
    """Mark the promise KEY (from `followup status`) handled: no more reminders or escalations."""
    from agent.app import promise_done as act

    acted = act(config_path, key, who=_who(), note=note)
    console().print(
        f"[green]✓[/] {plain(acted.summary)}; {acted.withdrawn} planned notes withdrawn"
    )


@main.group()
def thread() -> None:
    """A thread's follow-ups: snooze them until a date, stop them, or resume them."""


def _thread_act(act: str, thread_id: str, until: str | None, note: str, config_path: Path) -> None:
    from agent.app import thread_control

    acted = thread_control(config_path, thread_id, act, who=_who(), until=until, note=note)
    console().print(f"[green]✓[/] {plain(acted.summary)}; {acted.withdrawn} planned notes moved")


note_option = click.option("--note", default="", help="Why, for the audit.")


@thread.command("snooze")
@click.argument("thread_id")
@click.option("--until", required=True, help="A date (2026-12-10) or time (2026-12-10T09:00Z).")
@note_option
@config_option
@reports_problems
def thread_snooze(thread_id: str, until: str, note: str, config_path: Path) -> None:
    """No follow-ups in THREAD_ID until a date."""
    _thread_act("snooze", thread_id, until, note, config_path)


@thread.command("stop")
@click.argument("thread_id")
@note_option
@config_option
@reports_problems
def thread_stop(thread_id: str, note: str, config_path: Path) -> None:
    """No more follow-ups in THREAD_ID."""
    _thread_act("stop", thread_id, None, note, config_path)


@thread.command("resume")
@click.argument("thread_id")
@note_option
@config_option
@reports_problems
def thread_resume(thread_id: str, note: str, config_path: Path) -> None:
    """Follow-ups in THREAD_ID again, as the rules plan them."""
    _thread_act("resume", thread_id, None, note, config_path)


@main.group()
def client() -> None:
    """A client who asked not to hear from the agent again."""


@client.command("optout")
@click.argument("who")
@note_option
@config_option
@reports_problems
def client_optout(who: str, note: str, config_path: Path) -> None:
    """Stop every future note to the client with address (or key) WHO."""
    from agent.app import client_optout as act

    acted = act(config_path, who, who=_who(), note=note)
    console().print(
        f"[green]✓[/] {plain(acted.summary)}; {acted.withdrawn} planned notes withdrawn"
    )


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
        err_console().print(f"[red]Sign-in did not complete:[/] {plain(str(exc))}")
        sys.exit(1)
    console().print(f"[green]✓[/] Connected {mailbox} as {plain(username)}.")


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
        err_console().print(f"[red]Sign-in did not complete:[/] {plain(str(exc))}")
        sys.exit(1)
    console().print(f"[green]✓[/] Connected {mailbox} as {plain(account)}.")


@main.group()
def templates() -> None:
    """Check and preview the notes' templates in templates/."""


@templates.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@json_option
@config_option
@reports_problems
def templates_check(path: Path | None, as_json: bool, config_path: Path) -> None:
    """Render every template with sample data; every client language must be covered."""
    from agent.app import check_templates

    _report_check(*check_templates(config_path, path), as_json=as_json)


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
    default=None,
    help="The JSON request (schema in the README).",
)
@click.option("--example", is_flag=True, help="Answer the example request shipped with Followup.")
@click.option(
    "--print-request", is_flag=True, help="Print the request (to start your own) and stop."
)
@json_option
@reports_problems
def slots(request_path: Path | None, example: bool, print_request: bool, as_json: bool) -> None:
    """Propose meeting times that suit every attendee in their own time zone."""
    from datetime import UTC, datetime

    from agent.demo import SLOTS_EXAMPLE
    from agent.slotrequest import answer_json, load_request, render_text
    from agent.slots import propose

    if request_path is None and not example:
        raise click.UsageError("give --request FILE.json, or --example")
    path = SLOTS_EXAMPLE if example else request_path
    assert path is not None
    if print_request:
        click.echo(path.read_text(encoding="utf-8"), nl=False)
        return
    request = load_request(path, now=datetime.now(UTC))  # a "now" in the file wins
    proposal = propose(request)
    if as_json:
        click.echo(json.dumps(answer_json(request, proposal), ensure_ascii=False, indent=2))
    else:
        console().print(render_text(request, proposal))


@main.command()
@config_option
@click.option(
    "--listen",
    default=None,
    help="HOST:PORT to serve on (default: [web] listen, 127.0.0.1:8080).",
)
@click.option(
    "--demo",
    "demo_mode",
    is_flag=True,
    help="Serve the demo's data (made afresh in --out) with a sign-in as the demo's people.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("followup-demo-out"),
    show_default=True,
    help="With --demo: the folder for the demo's data.",
)
@now_option
@reports_problems
def web(config_path: Path, listen: str | None, demo_mode: bool, out: Path, now: str | None) -> None:
    """Serve the web console: reps steer their notes, leads see their team."""
    from agent.app import shifted_clock
    from agent.web.server import demo_data, serve

    clock = shifted_clock(now)
    if demo_mode:
        config_path, clock = demo_data(out)
    serve(config_path, listen, demo=demo_mode, clock=clock, ready=console().print)


@main.command()
def keygen() -> None:
    """Print a new key for sealing stored credentials (FOLLOWUP_SECRET_KEY)."""
    from agent.providers.tokens import new_key

    click.echo(new_key())


if __name__ == "__main__":  # pragma: no cover
    main()
