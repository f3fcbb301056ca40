"""The use cases behind the CLI: load what a command needs, run the pure parts, return results.

cli.py parses and prints; this module wires config, store and planners together for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent import config, pipeline, report, templatecheck
from agent import outbox as outbox_mod
from agent import promises as promises_mod
from agent.cadences import parse_cadences
from agent.clients import load_clients
from agent.compose import Composer
from agent.errors import ConfigError, Problem, RulesError, Transient
from agent.meetings import parse_meeting_rules
from agent.model import Address
from agent.providers.protocol import MailProvider, first_sync_of
from agent.providers.registry import MICROSOFT_LOGIN, open_mailbox
from agent.providers.tokens import Vault
from agent.rules import lint_against, load_rules, rule_files
from agent.store import NEEDS_ATTENTION, NEEDS_RECONNECT, OPEN_STATES, Store, wall_clock

SINCE = re.compile(r"^(\d+)\s*([dhw])$")


def parse_since(text: str) -> timedelta:
    m = SINCE.match(text.strip())
    if not m:
        raise ConfigError(
            [Problem("--since", "", f"{text!r}: write a span such as 30d, 12h or 2w")]
        )
    n, unit = int(m.group(1)), m.group(2)
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "w": timedelta(weeks=n)}[unit]


def parse_now(text: str | None) -> datetime:
    if not text:
        return wall_clock()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError([Problem("--now", "", f"{text!r} is not an ISO 8601 time")]) from exc
    if value.tzinfo is None:
        raise ConfigError(
            [Problem("--now", "", f"{text!r} needs a zone, such as 2026-11-25T08:00Z")]
        )
    return value.astimezone(UTC)


def shifted_clock(now: str | None) -> Callable[[], datetime]:
    """The wall clock, or with ``now`` a clock that starts there and runs on in real time: what
    ``followup run --now`` uses to replay a scenario, and what a sign-in made beside such a
    worker must use too, or the two schedule the mailbox by different clocks."""
    if not now:
        return wall_clock
    offset = parse_now(now) - wall_clock()

    def clock() -> datetime:
        return wall_clock() + offset

    return clock


@dataclass(frozen=True)
class Simulation:
    since: datetime
    now: datetime
    rules_source: str
    replay: report.Replay
    per_rep: list[report.Figures]
    per_team: list[report.Figures]


def simulate(
    config_path: Path, since: str, *, rules_path: Path | None = None, now: str | None = None
) -> Simulation:
    """Replay stored mail against the rules in force, or the draft rules at ``rules_path``."""
    settings = config.load(config_path)
    at = parse_now(now)
    start = at - parse_since(since)
    team = pipeline.load_team(settings, rules_path)
    store = Store.open(settings.database.url)
    try:
        messages = store.messages()
    finally:
        store.close()
    threads = pipeline.threads(team, messages)
    result = report.replay(threads, team.rules, team.reps(), pipeline.client_calendar, start, at)
    teams = {m.name: m.team or m.name for m in settings.mailboxes}
    return Simulation(
        since=start,
        now=at,
        rules_source=", ".join(team.rules.sources),
        replay=result,
        per_rep=report.figures(result, at),
        per_team=report.figures(result, at, lambda mb: teams.get(mb, mb)),
    )


@dataclass(frozen=True)
class Status:
    now: datetime
    promises: list[promises_mod.Promise]
    zones: dict[str, str]
    outbox: list[dict[str, object]]
    skipped: list[dict[str, object]]
    mailboxes: list[dict[str, object]]  # the mail stream of each mailbox: state, sync times


def status(config_path: Path, *, mailbox: str | None = None, now: str | None = None) -> Status:
    """Open promises with deadlines, pending drafts and scheduled notes, for one rep or all."""
    settings = config.load(config_path)
    if mailbox:
        settings.mailbox(mailbox)  # a clear error for an unknown name
    at = parse_now(now)
    team = pipeline.load_team(settings)
    store = Store.open(settings.database.url)
    try:
        messages = store.messages(mailbox)
        rows = store.outbox(statuses=(*OPEN_STATES, NEEDS_ATTENTION), mailbox=mailbox)
        skipped = [s for s in store.skipped() if not mailbox or s["mailbox"] == mailbox]
        streams = [r for r in store.streams(mailbox) if r["kind"] == "mail"]
        providers = {m.name: m.provider for m in settings.mailboxes}
        for r in streams:
            first = first_sync_of(r.get("cursor"))
            if first is not None:
                r["first_sync"] = (
                    f"first sync: {first.done:.0%} of the window read, "
                    f"back to {first.reached:%Y-%m-%d} of {first.floor:%Y-%m-%d}"
                )
            if r["state"] == NEEDS_RECONNECT:
                r["hint"] = (
                    f"followup connect {providers.get(r['mailbox'])} --mailbox {r['mailbox']}"
                )
    finally:
        store.close()
    result = pipeline.plan(team, messages, at)
    open_promises = [p for p in result.promises if p.met_at is None]
    return Status(
        now=at,
        promises=sorted(open_promises, key=lambda p: p.deadline),
        zones={m.name: m.zone for m in settings.mailboxes},
        outbox=rows,
        skipped=skipped,
        mailboxes=streams,
    )


def outbox_rows(config_path: Path, *, everything: bool = False) -> list[dict[str, object]]:
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        return store.outbox(statuses=None if everything else (*OPEN_STATES, NEEDS_ATTENTION))
    finally:
        store.close()


def outbox_decide(config_path: Path, ident: int, *, approve: bool) -> outbox_mod.Outcome:
    """Approve (send now) or cancel one outbox row; raises ConfigError for an unknown id."""
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        if store.outbox_row(ident) is None:
            raise ConfigError([Problem("outbox", str(ident), "no such outbox entry")])
        providers = connect_providers(settings, store)
        box = outbox_mod.Outbox(
            store,
            providers,
            Composer(settings.paths.templates, team_default=settings.team.default_language),
            {m.name: Address(m.address, m.rep_name) for m in settings.mailboxes},
            mode=settings.outbox.mode,
            domain=settings.team.domains[0] if settings.team.domains else "followup.invalid",
        )
        return box.approve(ident, wall_clock()) if approve else box.cancel(ident)
    finally:
        store.close()


def connect_providers(settings: config.Settings, store: Store) -> dict[str, MailProvider]:
    """The provider of each configured mailbox that is connected (a local folder, or a stored
    sign-in sealed with the operator's key)."""
    providers: dict[str, MailProvider] = {}
    vault: Vault | None = None
    for m in settings.mailboxes:
        if m.provider == "local" and m.path is None:
            continue
        if m.provider != "local":
            if not store.load_credentials(m.name):
                continue
            vault = vault or Vault.from_environment()
        providers[m.name] = open_mailbox(m, store, vault).mail
    return providers


def connect_gmail(
    config_path: Path,
    mailbox: str,
    *,
    port: int = 0,
    open_browser: bool = True,
    now: str | None = None,
) -> str:
    """Sign a rep's Google account in through a browser; return the account's address."""
    from agent.providers import google_auth  # the consent flow's libraries load here only

    settings = config.load(config_path)
    m = settings.mailbox(mailbox)
    if m.provider != "gmail" or m.client_secrets is None:
        raise ConfigError(
            [
                Problem(
                    str(config_path),
                    f"mailboxes[{mailbox}]",
                    'needs provider = "gmail" and client_secrets = "<OAuth client JSON>"',
                )
            ]
        )
    vault = Vault.from_environment()
    store = Store.open(settings.database.url, clock=shifted_clock(now))
    try:
        return google_auth.connect_gmail(
            m.name, m.client_secrets, vault, store, port=port, open_browser=open_browser
        )
    finally:
        store.close()


def check_rules(path: Path | None, config_path: Path) -> tuple[list[Problem], str]:
    """Return (problems, summary). With a config file, rules are also checked against the
    clients and mailboxes it names: a tier no client has, a mailbox that does not exist."""
    settings = config.load(config_path) if config_path.exists() else None
    target = path or (settings.paths.rules if settings else Path("rules"))
    try:
        ruleset = load_rules(target)
    except RulesError as exc:
        return exc.problems, ""
    found: list[Problem] = list(parse_cadences(ruleset.raw)[1])
    found += parse_meeting_rules(ruleset.raw.get("meeting", []))[1]
    if settings is not None:
        clients, _ = load_clients(settings.paths.clients)
        if clients:
            found += lint_against(ruleset, clients, [m.name for m in settings.mailboxes])
    files = len(rule_files(target))
    cadences = parse_cadences(ruleset.raw)[0]
    return found, (
        f"{len(ruleset.promises)} promises, {len(cadences.follow_ups)} follow-up and "
        f"{len(cadences.thank_yous)} thank-you rules in {files} file(s) under {target}: all good"
    )


def check_templates(config_path: Path, templates: Path | None) -> tuple[list[Problem], str]:
    """Every template problem, checked against the languages the clients use."""
    settings = config.load(config_path) if config_path.exists() else None
    folder = templates or (settings.paths.templates if settings else Path("templates"))
    languages: set[str] = set()
    default = "en"
    if settings is not None:
        clients, _ = load_clients(settings.paths.clients)
        languages = {c.language for c in clients if c.language}
        languages |= {m.language for m in settings.mailboxes}
        languages |= {lead.language for lead in settings.leads}
        default = settings.team.default_language
    found = templatecheck.check_templates(folder, sorted(languages), default)
    count = len(list(folder.glob("*/*.j2")))
    return found, f"{count} templates under {folder}: all render, every language is covered"


def connect_outlook(
    config_path: Path,
    mailbox: str,
    *,
    browser: bool,
    prompt: Callable[[str], None],
    now: str | None = None,
) -> str:
    """Sign a rep's Microsoft 365 / Outlook.com mailbox in; return the account's username."""
    import requests  # MSAL's transport, loaded for sign-in only

    from agent.providers.msal_auth import connect_outlook_device, connect_outlook_interactive

    settings = config.load(config_path)
    m = settings.mailbox(mailbox)
    if m.provider != "outlook" or not m.client_id:
        raise ConfigError(
            [
                Problem(
                    str(config_path),
                    f"mailboxes[{mailbox}]",
                    'needs provider = "outlook" and the Entra app\'s client_id',
                )
            ]
        )
    vault = Vault.from_environment()
    store = Store.open(settings.database.url, clock=shifted_clock(now))
    authority = f"{MICROSOFT_LOGIN}/{m.tenant}"
    try:
        if browser:
            return connect_outlook_interactive(m.name, m.client_id, authority, vault, store)
        return connect_outlook_device(m.name, m.client_id, authority, vault, store, prompt=prompt)
    except requests.RequestException as exc:
        raise Transient(
            f"cannot reach Microsoft sign-in at {authority}: {type(exc).__name__}"
        ) from exc
    finally:
        store.close()
