"""``followup rules check``: every problem in the rule files, and rules that can never fire."""

from __future__ import annotations

from pathlib import Path

from agent import config
from agent.cadences import parse_cadences
from agent.clients import load_clients
from agent.errors import Problem, RulesError
from agent.meetings import parse_meeting_rules
from agent.rules import lint_against, load_rules, rule_files


def check(path: Path | None, config_path: Path) -> tuple[list[Problem], str]:
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
