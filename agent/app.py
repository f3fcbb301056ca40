"""The use cases behind the CLI: load what a command needs, run the pure parts, return results.

cli.py parses and prints; this module wires config, store and planners together for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent import config, pipeline, report
from agent.errors import ConfigError, Problem
from agent.store import Store

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
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError([Problem("--now", "", f"{text!r} is not an ISO 8601 time")]) from exc
    if value.tzinfo is None:
        raise ConfigError(
            [Problem("--now", "", f"{text!r} needs a zone, such as 2026-11-25T08:00Z")]
        )
    return value.astimezone(UTC)


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
