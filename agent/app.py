"""The use cases behind the CLI: load what a command needs, run the pure parts, return results.

cli.py parses and prints; this module wires config, store and planners together for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent import config, configcheck, controls, mime, pipeline, report, templatecheck
from agent import outbox as outbox_mod
from agent import promises as promises_mod
from agent.cadences import Cadences, FollowUpRule, ThankYouRule, parse_cadences
from agent.clients import load_clients
from agent.compose import FALLBACKS_FILE, Composer, cached_composer
from agent.durations import parse_duration
from agent.errors import ConfigError, Problem, RulesError, TemplateError, Transient
from agent.meetings import parse_meeting_rules
from agent.model import ActionKind, Client
from agent.providers.protocol import MailProvider, first_sync_of
from agent.providers.registry import MICROSOFT_LOGIN, open_mailbox
from agent.providers.tokens import Vault
from agent.rules import lint_against, load_order, load_rules, rule_files
from agent.store import (
    CANCELLED,
    DRAFTED,
    NEEDS_ATTENTION,
    NEEDS_RECONNECT,
    OPEN_STATES,
    PLANNED,
    SHADOWED,
    Store,
    action_from_json,
    wall_clock,
)
from agent.webhooks import check_url


def parse_since(text: str) -> timedelta:
    """``--since``: a span in the rules' grammar (``30d``, ``12h``, ``2w``, ``4h30m``)."""
    try:
        span = parse_duration(text)
    except ValueError as exc:
        raise ConfigError([Problem("--since", "", str(exc))]) from None
    if span <= timedelta(0):
        raise ConfigError([Problem("--since", "", f"{text!r} is no time at all; write e.g. 30d")])
    return span


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
    shadowed: list[dict[str, object]] = field(default_factory=list)  # shadow mode's record


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
        shadowed = [r for r in store.outbox(statuses=(SHADOWED,)) if start <= r["due"] <= at]
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
        shadowed=shadowed,
    )


@dataclass(frozen=True)
class Status:
    now: datetime
    promises: list[promises_mod.Promise]
    zones: dict[str, str]
    outbox: list[dict[str, object]]
    skipped: list[dict[str, object]]
    mailboxes: list[dict[str, object]]  # the mail stream of each mailbox: state, sync times
    shadowed: list[dict[str, object]] = field(default_factory=list)  # would have gone out
    opted_out: list[dict[str, object]] = field(default_factory=list)  # client, at, reason


SHADOW_SHOWN = timedelta(days=7)  # how far back status lists what shadow mode held back


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
        shadowed = [
            r
            for r in store.outbox(statuses=(SHADOWED,), mailbox=mailbox)
            if r["due"] >= at - SHADOW_SHOWN
        ]
        skipped = [s for s in store.skipped() if not mailbox or s["mailbox"] == mailbox]
        skipped += [
            {"mailbox": p.file, "item": p.where, "reason": p.message} for p in team.client_problems
        ]
        streams = [r for r in store.streams(mailbox) if r["kind"] == "mail"]
        by_hand = store.control_decisions()
        handled = controls.Controls.from_decisions(by_hand).handled
        opted_out = controls.opt_outs(by_hand)
        providers = {m.name: m.provider for m in settings.mailboxes}
        for r in streams:
            first = first_sync_of(r.get("cursor"))
            if first is not None:
                r["first_sync_done"] = first.done
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
    open_promises = [p for p in result.promises if p.met_at is None and p.key not in handled]
    return Status(
        now=at,
        promises=sorted(open_promises, key=lambda p: p.deadline),
        zones={m.name: m.zone for m in settings.mailboxes},
        outbox=rows,
        skipped=skipped,
        mailboxes=streams,
        shadowed=shadowed,
        opted_out=opted_out,
    )


def outbox_rows(config_path: Path, *, everything: bool = False) -> list[dict[str, object]]:
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        return store.outbox(statuses=None if everything else (*OPEN_STATES, NEEDS_ATTENTION))
    finally:
        store.close()


def outbox_decide(
    config_path: Path,
    ident: int,
    *,
    approve: bool,
    force: bool = False,
    who: str = "",
    mailbox: str | None = None,
    now: datetime | None = None,
) -> outbox_mod.Outcome:
    """Approve (send now) or cancel one outbox row; raises ConfigError for an unknown id, and
    for an approval of anything but a draft that is due, unless ``force``. ``mailbox``: only a
    row of that mailbox (another's reads as unknown). ``who``: recorded as an audited decision."""
    settings = config.load(config_path)
    now = now or wall_clock()
    store = Store.open(settings.database.url, clock=lambda: now)
    try:
        row = store.outbox_row(ident)
        if row is None or (mailbox is not None and row["mailbox"] != mailbox):
            raise ConfigError([Problem("outbox", str(ident), "no such outbox entry")])
        if who:
            store.record_decisions(
                [
                    (
                        str(row["mailbox"]),
                        str(row["thread_id"]),
                        f"audit:{now:%Y%m%dT%H%M%S.%f}:outbox/{ident}",
                        "approved" if approve else "cancelled",
                        f"{row['kind']} for {row['client'] or 'the team'}: {_by(who, '')}",
                    )
                ]
            )
        waiting = row["status"] == DRAFTED and row["due"] <= now  # what approve is for
        if approve and not force and row["status"] in (PLANNED, DRAFTED) and not waiting:
            what = "a draft" if row["status"] == DRAFTED else "not a draft"
            raise ConfigError(
                [
                    Problem(
                        "outbox",
                        str(ident),
                        f"{what}, a {row['kind'].replace('_', '-')} due "
                        f"{row['due']:%Y-%m-%d %H:%M} UTC: approve sends drafts that are "
                        "due; add --force to send it now",
                    )
                ]
            )
        providers = connect_providers(settings, store)
        box = outbox_box(settings, store, providers)
        return box.approve(ident, now) if approve else box.cancel(ident, now)
    finally:
        store.close()


def outbox_box(
    settings: config.Settings, store: Store, providers: dict[str, MailProvider]
) -> outbox_mod.Outbox:
    """The outbox as the worker runs it, for one command."""
    return outbox_mod.Outbox.configured(
        settings,
        store,
        providers,
        cached_composer(settings.paths.templates, team_default=settings.team.default_language),
    )


@dataclass(frozen=True)
class Shown:
    """One outbox row and the note as it reads (or read) when it goes out."""

    row: dict[str, object]
    headers: list[tuple[str, str]]
    text: str
    html_text: str
    attachments: list[tuple[str, str]]  # (file name, content type)


def outbox_show(config_path: Path, ident: int, *, mailbox: str | None = None) -> Shown:
    """Render one outbox row's note: headers, text, the HTML as text, attachments.
    ``mailbox``: only a row of that mailbox (another's reads as unknown)."""
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        row = store.outbox_row(ident)
        if row is None or (mailbox is not None and row["mailbox"] != mailbox):
            raise ConfigError([Problem("outbox", str(ident), "no such outbox entry")])
        action = action_from_json(row["action"])
        if action.kind in (ActionKind.WEBHOOK, ActionKind.HOLD):
            text = str(action.context.get("text") or action.reason)
            return Shown(row, [], text, "", [])
        message = outbox_box(settings, store, {}).compose(action, row["due"])
    finally:
        store.close()
    names = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To")
    headers = [(n, str(message[n])) for n in names if message[n] is not None]
    html = message.get_body(preferencelist=("html",))
    attachments = [
        (part.get_filename() or "", part.get_content_type()) for part in message.iter_attachments()
    ]
    return Shown(
        row,
        headers,
        mime.body_text(message) if message.get_body(preferencelist=("plain",)) else "",
        mime.body_text(html) if html is not None else "",
        attachments,
    )


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
        clients, client_problems = load_clients(settings.paths.clients)
        found += client_problems  # each bad row, with its line number
        found += configcheck.setup_problems(settings, str(config_path))
        try:
            composer = Composer(settings.paths.templates)
            purposes = composer.purposes()
            found += templatecheck.fallback_problems(composer)
        except TemplateError as exc:
            purposes = None  # a templates folder that does not load: `templates check` says why
            # ... but a broken fallbacks.toml is named here too: it decides who reads what.
            found += [p for p in exc.problems if Path(p.file).name == FALLBACKS_FILE]
        if purposes is not None:
            found += configcheck.template_problems(
                parse_cadences(ruleset.raw)[0], purposes, settings.paths.templates
            )
        if clients:
            found += lint_against(
                ruleset,
                clients,
                [m.name for m in settings.mailboxes],
                teams=[m.team for m in settings.mailboxes],
            )
            found += _windows_never_open(parse_cadences(ruleset.raw)[0], clients)
        # The webhook policy needs the config's allowed hosts; each post checks it again.
        allow = settings.team.webhook_allow_hosts
        found += [
            Problem(rule.source, f"{rule.name}:webhook", problem)
            for rule in ruleset.promises
            if rule.webhook and (problem := check_url(rule.webhook, allow))
        ]
    files = len(rule_files(target))
    cadences = parse_cadences(ruleset.raw)[0]
    return found, (
        f"{len(ruleset.promises)} promises, {len(cadences.follow_ups)} follow-up and "
        f"{len(cadences.thank_yous)} thank-you rules in {files} file(s) under {target}, "
        f"read in this order: {load_order(ruleset.sources)}: all good"
    )


def _windows_never_open(cadences: Cadences, clients: list[Client]) -> list[Problem]:
    """Send windows that no business hour of some client meets: nothing would ever be sent to
    that client, and planning would fail for it at run time."""
    found = []
    rules: list[FollowUpRule | ThankYouRule] = [*cadences.follow_ups, *cadences.thank_yous]
    for rule in rules:
        if not rule.send_window:
            continue
        for client in clients:
            cal = pipeline.client_calendar(client)
            if not cal.opens_within(rule.send_window):
                window = ", ".join(map(str, rule.send_window))
                found.append(
                    Problem(
                        rule.source,
                        f"{rule.name}:send_window",
                        f"{window} never meets {client.key}'s business hours "
                        f"({', '.join(map(str, next(d for d in cal.hours.days if d)))} in "
                        f"{cal.zone}), so nothing would be sent; use hours inside them",
                    )
                )
                break
    return found


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


# -- acts by hand: a promise handled, a thread snoozed or stopped, a client opted out --------


@dataclass(frozen=True)
class Acted:
    summary: str
    withdrawn: int  # open outbox rows cancelled or moved by the act


def _by(who: str, note: str) -> str:
    return f"by {who}" + (f": {note}" if note else "")


def promise_done(
    config_path: Path,
    key: str,
    *,
    who: str,
    note: str = "",
    now: datetime | None = None,
    mailbox: str | None = None,
) -> Acted:
    """Mark the promise ``key`` handled: its reminders and escalations stop. ``now``: when it
    happened (default: the present; the demo passes its own)."""
    settings = config.load(config_path)
    now = now or wall_clock()
    store = Store.open(settings.database.url, clock=lambda: now)
    try:
        parts = key.split("/")
        if len(parts) < 4 or parts[0] != "promise":
            raise ConfigError(
                [Problem("promise", key, "not a promise key; `followup status` lists them")]
            )
        if mailbox is not None and parts[1] != mailbox:
            raise ConfigError([Problem("promise", key, "not a promise of this mailbox")])
        mailbox, thread_id = parts[1], "/".join(parts[2:-1])
        store.record_control(
            mailbox, thread_id, controls.subject(key, now), controls.HANDLED, _by(who, note)
        )
        withdrawn = sum(
            store.transition(r["key"], [PLANNED, DRAFTED], CANCELLED)
            for r in store.outbox(statuses=(PLANNED, DRAFTED), mailbox=mailbox)
            if str(r["key"]).startswith(f"{key}/")
        )
        return Acted(f"promise {key} marked handled", withdrawn)
    finally:
        store.close()


def thread_control(
    config_path: Path,
    thread_id: str,
    act: str,
    *,
    who: str,
    until: str | None = None,
    note: str = "",
    now: datetime | None = None,
    mailbox: str | None = None,
) -> Acted:
    """Snooze (``until`` an ISO date or time), stop or resume the follow-ups of a thread
    (``mailbox``: in that mailbox only)."""
    settings = config.load(config_path)
    now = now or wall_clock()
    store = Store.open(settings.database.url, clock=lambda: now)
    try:
        mailboxes = sorted({m.mailbox for m in store.messages(mailbox) if m.thread_id == thread_id})
        if not mailboxes:
            raise ConfigError([Problem("thread", thread_id, "no stored thread has this id")])
        decision = {"stop": controls.STOPPED, "resume": controls.RESUMED}.get(act, "")
        moved_to: datetime | None = None
        if act == "snooze":
            moved_to = _until(until)
            if moved_to <= now:
                raise ConfigError([Problem("--until", until or "", "is not in the future")])
            decision = controls.SNOOZED + moved_to.isoformat()
        withdrawn = 0
        for mailbox in mailboxes:
            store.record_control(
                mailbox, thread_id, controls.subject(thread_id, now), decision, _by(who, note)
            )
            for r in store.outbox(statuses=(PLANNED,), mailbox=mailbox):
                if r["thread_id"] != thread_id or r["kind"] not in controls.CHASES:
                    continue
                if act == "stop":
                    withdrawn += store.transition(r["key"], [PLANNED], CANCELLED)
                elif moved_to is not None and r["due"] < moved_to:
                    withdrawn += store.reschedule(r["key"], moved_to, [PLANNED])
        done = {"stop": "stopped", "resume": "resumed"}.get(act, "")
        if moved_to is not None:
            done = f"snoozed until {moved_to:%Y-%m-%d %H:%M} UTC"
        return Acted(f"thread {thread_id}: follow-ups {done}", withdrawn)
    finally:
        store.close()


def _until(text: str | None) -> datetime:
    if not text:
        raise ConfigError([Problem("--until", "", "give a date, such as 2026-12-10")])
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            [Problem("--until", text, "not a date: write 2026-12-10 or 2026-12-10T09:00Z")]
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a plain date: from midnight UTC
    return value.astimezone(UTC)


def client_optout(
    config_path: Path, who_out: str, *, who: str, note: str = "", now: datetime | None = None
) -> Acted:
    """Stop every future note to a client (by address, or by client key)."""
    settings = config.load(config_path)
    clients, _ = load_clients(settings.paths.clients)
    wanted = who_out.strip().lower()
    match = next(
        (c for c in clients if c.key == wanted or wanted in {e.lower() for e in c.emails}),
        None,
    )
    target = match.key if match else wanted
    if match is None and "@" not in wanted:
        raise ConfigError(
            [Problem("client", who_out, "no client has this key; give an e-mail address")]
        )
    now = now or wall_clock()
    store = Store.open(settings.database.url, clock=lambda: now)
    try:
        store.record_control(
            "", "", controls.subject(target, now), controls.OPTED_OUT, _by(who, note)
        )
        withdrawn = sum(
            store.transition(r["key"], [PLANNED, DRAFTED], CANCELLED)
            for r in store.outbox(statuses=(PLANNED, DRAFTED))
            if r["kind"] in controls.TO_CLIENT
            and (
                r["client"] == target
                or wanted in {a.email.lower() for a in action_from_json(r["action"]).to}
            )
        )
        name = match.name if match else wanted
        return Acted(f"{name} opted out: no further notes", withdrawn)
    finally:
        store.close()


def decisions(config_path: Path, mailbox: str, *, limit: int = 200) -> list[dict[str, object]]:
    """The latest decisions recorded for one mailbox (why a note went or did not, acts by
    hand and who did them), newest first."""
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        rows = store.decisions(mailbox)
    finally:
        store.close()
    return list(reversed(rows[-limit:]))


def _span(span: timedelta) -> str:
    """A rule's target as the rule files write it: 4h, 1h30m, 2d."""
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return "".join(parts) or "0m"


def rules_in_force(config_path: Path) -> list[dict[str, str]]:
    """The promise rules the worker keeps: name, file and what the rule promises."""
    settings = config.load(config_path)
    ruleset = load_rules(settings.paths.rules)
    # Never the rule's webhook: its URL is a credential.
    return [
        {
            "name": r.name,
            "source": Path(r.source).name,
            "kind": r.kind,
            "target": f"{r.target_days}bd" if r.target_days else _span(r.target),
            "clock": r.clock,
            "description": r.description,
        }
        for r in ruleset.promises
    ]


# -- connecting a mailbox from the console (the web-server flow) ------------------------------


def _for_web(settings: config.Settings, config_path: Path, mailbox: str) -> config.Mailbox:
    m = settings.mailbox(mailbox)
    google = m.provider == "gmail" and (m.client_secrets or settings.web.google_client_secrets)
    if not (google or (m.provider == "outlook" and m.client_id)):
        raise ConfigError(
            [
                Problem(
                    str(config_path),
                    f"mailboxes[{mailbox}]",
                    'is connected from the console with provider = "gmail" and a Google client '
                    'JSON, or provider = "outlook" and its client_id',
                )
            ]
        )
    return m


def _web_client(settings: config.Settings, m: config.Mailbox) -> Path:
    found = settings.web.google_client_secrets or m.client_secrets
    assert found is not None
    return found


def _authority(settings: config.Settings, m: config.Mailbox) -> tuple[str, bool]:
    """The Microsoft authority for the mailbox's tenant, and whether it is a private one."""
    base = settings.web.microsoft_authority or MICROSOFT_LOGIN
    return f"{base}/{m.tenant}", base != MICROSOFT_LOGIN


def connect_begin(
    config_path: Path, mailbox: str, redirect_uri: str
) -> tuple[str, dict[str, object]]:
    """The first leg of connecting a mailbox from the console: the URL of the vendor's consent
    page, and what the second leg must be given back (keep it private to the browser's
    session: it holds the state, nonce and PKCE verifier)."""
    settings = config.load(config_path)
    m = _for_web(settings, config_path, mailbox)
    if m.provider == "gmail":
        from agent.providers import google_auth

        url, state, verifier = google_auth.consent_url(_web_client(settings, m), redirect_uri)
        return url, {"state": state, "v": verifier}
    from agent.providers.msal_auth import begin_outlook_web

    authority, custom = _authority(settings, m)
    flow = begin_outlook_web(m.client_id, authority, redirect_uri, custom_authority=custom)
    return str(flow["auth_uri"]), {"state": str(flow["state"]), "flow": flow}


def connect_finish(
    config_path: Path,
    mailbox: str,
    redirect_uri: str,
    pending: dict[str, object],
    params: dict[str, str],
    *,
    now: datetime | None = None,
) -> str:
    """The second leg: store the grant sealed, exactly as ``followup connect`` does (which
    wakes a parked mailbox). Return the account's address."""
    settings = config.load(config_path)
    m = _for_web(settings, config_path, mailbox)
    vault = Vault.from_environment()
    at = now or wall_clock()
    store = Store.open(settings.database.url, clock=lambda: at)
    try:
        if m.provider == "gmail":
            from agent.providers import google_auth

            return google_auth.finish_consent(
                m.name,
                _web_client(settings, m),
                redirect_uri,
                state=str(pending.get("state", "")),
                verifier=str(pending.get("v", "")),
                code=params.get("code", ""),
                vault=vault,
                creds=store,
                api_endpoint=m.endpoint or None,
            )
        from agent.providers.msal_auth import finish_outlook_web

        authority, custom = _authority(settings, m)
        flow = pending.get("flow")
        return finish_outlook_web(
            m.name,
            m.client_id,
            authority,
            dict(flow) if isinstance(flow, dict) else {},
            params,
            vault,
            store,
            custom_authority=custom,
        )
    finally:
        store.close()


def disconnect(config_path: Path, mailbox: str, *, who: str, now: datetime | None = None) -> Acted:
    """Delete a mailbox's stored sign-in and park it until it is connected again."""
    settings = config.load(config_path)
    settings.mailbox(mailbox)
    at = now or wall_clock()
    store = Store.open(settings.database.url, clock=lambda: at)
    try:
        gone = store.forget_credentials(mailbox, f"disconnected {_by(who, '')}")
        store.record_decisions(
            [(mailbox, "", f"audit:{at:%Y%m%dT%H%M%S.%f}:connection", "disconnected", _by(who, ""))]
        )
    finally:
        store.close()
    return Acted(f"{mailbox} disconnected" if gone else f"{mailbox} was not connected", 0)


def connected(config_path: Path, mailbox: str) -> bool:
    """Whether a sign-in is stored for the mailbox (a local folder needs none)."""
    settings = config.load(config_path)
    if settings.mailbox(mailbox).provider == "local":
        return True
    store = Store.open(settings.database.url)
    try:
        return store.load_credentials(mailbox) is not None
    finally:
        store.close()
