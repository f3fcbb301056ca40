"""The use cases behind ``followup report`` and the weekly digest: load what the store holds,
read new survey answers into it, and hand the pure parts (teamreport, relationship) their data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent import config, digest, pipeline, report, teamreport
from agent import relationship as rel
from agent.app import parse_now, parse_since
from agent.model import ActionKind
from agent.outbox import Outbox, Outcome
from agent.store import Store


def read_surveys(team: pipeline.Team, store: Store) -> list[rel.Answer]:
    """Read every answer to a sent feedback note into the store; return all stored answers."""
    clients = {c.key: c for c in team.clients}
    rows = [r for r in store.outbox() if r["kind"] == "feedback"]
    threads = pipeline.threads(team, store.messages())
    found = rel.survey_answers(rows, threads, clients)
    store.save_survey_answers({k: v for k, v in asdict(a).items()} for a in found)
    return [_answer(r) for r in store.survey_answers()]


def _answer(row: dict[str, Any]) -> rel.Answer:
    return rel.Answer(
        survey=row["survey"],
        mailbox=row["mailbox"],
        client=row["client"],
        tier=row["tier"],
        segment=row["segment"],
        scale=row["scale"],
        score=row["score"],
        status=row["status"],
        comment=row["comment"],
        why=row["why"],
        answered_at=row["answered_at"],
        message_id=row["message_id"],
        meeting=row["meeting"],
    )


def build(
    settings: config.Settings,
    store: Store,
    since: datetime,
    now: datetime,
    *,
    mailboxes: Iterable[str] | None = None,
    title: str = "",
) -> teamreport.TeamReport:
    """The report over every mailbox, or only ``mailboxes`` (a lead's team, a rep's own)."""
    team = pipeline.load_team(settings)
    answers = read_surveys(team, store)
    keep = {m.name for m in settings.mailboxes} if mailboxes is None else set(mailboxes)
    messages = [m for m in store.messages() if m.mailbox in keep]
    threads = pipeline.threads(team, messages)
    replay = report.replay(threads, team.rules, team.reps(), pipeline.client_calendar, since, now)
    return teamreport.build(
        team=title or settings.team.name,
        reps={m.name: m.rep_name for m in settings.mailboxes if m.name in keep},
        teams={m.name: m.team or m.name for m in settings.mailboxes},
        clients={c.key: c for c in team.clients},
        threads=threads,
        replay=replay,
        outbox_rows=[r for r in store.outbox() if r["mailbox"] in keep],
        decisions=[d for d in store.decisions() if d["mailbox"] in keep],
        events=[e for e in store.events() if e.mailbox in keep],
        answers=[a for a in answers if a.mailbox in keep],
        since=since,
        now=now,
        min_n=settings.report.min_n,
    )


def team_report(
    config_path: Path, *, since: str | None = None, now: str | None = None
) -> teamreport.TeamReport:
    """The report for the period ending ``now`` (default: the present), ``since`` back
    (default: ``[report] weeks``)."""
    settings = config.load(config_path)
    at = parse_now(now)
    start = at - parse_since(since or f"{settings.report.weeks * 7}d")
    store = Store.open(settings.database.url)
    try:
        return build(settings, store, start, at)
    finally:
        store.close()


def write_csv(r: teamreport.TeamReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in teamreport.tables(r).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def write_html(r: teamreport.TeamReport, path: Path) -> None:
    from agent import reportpage  # matplotlib is loaded only for the page

    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reportpage.render(r), encoding="utf-8")


def send_digests(
    settings: config.Settings, store: Store, outbox: Outbox, now: datetime
) -> list[tuple[digest.Reader, Outcome]]:
    """Plan each reader's digest for this week (once: its key is unique in the outbox), then
    run the outbox for digests only. Returns what became of each digest planned or pending."""
    known = [r["key"] for r in store.outbox() if r["kind"] == ActionKind.WEEKLY]
    due = digest.due(settings, now, known)
    if due:
        since = now - timedelta(weeks=settings.report.weeks)
        planned = []
        for reader, at in due:
            title = settings.team.name if reader.kind == "lead" else reader.name
            mine = build(settings, store, since, at, mailboxes=reader.mailboxes, title=title)
            planned.append(digest.action(reader, mine, at))
        store.enqueue(planned)
    outcomes = {o.key: o for o in outbox.run(now, kinds=frozenset({ActionKind.WEEKLY}))}
    done = []
    for reader in digest.readers(settings):
        k = digest.key(reader, digest.slot(reader, now))
        if k in outcomes:
            done.append((reader, outcomes[k]))
    return done


def digests(config_path: Path, *, now: str | None = None) -> list[tuple[digest.Reader, Outcome]]:
    """``followup digest``: send the week's digests that are due, each once."""
    from agent.app import connect_providers
    from agent.compose import Composer

    settings = config.load(config_path)
    at = parse_now(now)
    store = Store.open(settings.database.url)
    try:
        providers = connect_providers(settings, store)
        composer = Composer(settings.paths.templates, team_default=settings.team.default_language)
        outbox = Outbox.configured(settings, store, providers, composer)
        return send_digests(settings, store, outbox, at)
    finally:
        store.close()
