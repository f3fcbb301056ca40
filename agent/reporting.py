"""The use cases behind ``followup report`` and the weekly digest: load what the store holds,
read new survey answers into it, and hand the pure parts (teamreport, relationship) their data.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import config, pipeline, report, teamreport
from agent import relationship as rel
from agent.app import parse_now, parse_since
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
    settings: config.Settings, store: Store, since: datetime, now: datetime
) -> teamreport.TeamReport:
    team = pipeline.load_team(settings)
    answers = read_surveys(team, store)
    messages = store.messages()
    threads = pipeline.threads(team, messages)
    replay = report.replay(threads, team.rules, team.reps(), pipeline.client_calendar, since, now)
    return teamreport.build(
        team=settings.team.name,
        reps={m.name: m.rep_name for m in settings.mailboxes},
        teams={m.name: m.team or m.name for m in settings.mailboxes},
        clients={c.key: c for c in team.clients},
        threads=threads,
        replay=replay,
        outbox_rows=store.outbox(),
        decisions=store.decisions(),
        events=store.events(),
        answers=answers,
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
