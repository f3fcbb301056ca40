"""The mistakes that pass every file's own checks and only show in how the files meet: a lead
address nobody configured, a local mailbox whose folder is not there, a rule naming a template
that does not exist, client rows that cannot be used. Each is one problem naming the file, the
key or line, and the fix. Pure: the caller reads the files; only folders are looked at.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from agent.cadences import Cadences, FollowUpRule, ThankYouRule
from agent.config import Settings
from agent.errors import Problem


def _near(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.8)
    return f"; did you mean {close[0]!r}?" if close else ""


def setup_problems(settings: Settings, source: str) -> list[Problem]:
    """Problems of the config as a whole (leads, folders)."""
    found: list[Problem] = []
    leads = {lead.email.lower() for lead in settings.leads}
    addresses = {a for m in settings.mailboxes for a in m.addresses}
    for m in settings.mailboxes:
        lead = m.lead.strip().lower()
        if lead and lead not in leads | addresses:
            found.append(
                Problem(
                    source,
                    f"mailboxes[{m.name}].lead",
                    f"{m.lead!r} is neither a [[leads]] email nor a mailbox's address"
                    + (_near(lead, leads | addresses) or ": add it under [[leads]]"),
                )
            )
        if m.provider == "local" and m.enabled and m.path is not None and not m.path.is_dir():
            found.append(
                Problem(
                    source,
                    f"mailboxes[{m.name}].path",
                    f"the folder {m.path} does not exist: fix the path, or create it with "
                    "inbox/, sent/ and drafts/ Maildirs (a mail fetcher such as mbsync "
                    "writes them)",
                )
            )
    found += _digest_problems(settings, source)
    found += web_problems(settings, source)
    return found


def _digest_problems(settings: Settings, source: str) -> list[Problem]:
    """Weekly digests that could never be sent as configured."""
    found = []
    for m in settings.mailboxes:
        if m.weekly_summary and not m.enabled:
            found.append(
                Problem(
                    source,
                    f"mailboxes[{m.name}].weekly_summary",
                    "is true but the mailbox is disabled, so no summary can be sent: "
                    "set enabled = true or remove weekly_summary",
                )
            )
    if settings.report.digest and settings.leads and not settings.mailboxes:
        found.append(
            Problem(
                source,
                "report.digest",
                "is on but no [[mailboxes]] is configured to send it from: add a mailbox, "
                "or set digest = false",
            )
        )
    return found


def web_problems(settings: Settings, source: str) -> list[Problem]:
    """Console users naming a mailbox or a team the config does not have, and a sign-in with
    no app registration to use."""
    found: list[Problem] = []
    names = {m.name for m in settings.mailboxes}
    teams = {m.team for m in settings.mailboxes if m.team}
    for u in settings.web.users:
        for name in u.mailboxes:
            if name not in names:
                found.append(
                    Problem(
                        source,
                        f"web.users[{u.email}].mailboxes",
                        f"{name!r} is not a [[mailboxes]] name"
                        + (_near(name, names) or f"; one of {', '.join(sorted(names))}"),
                    )
                )
        for team in u.lead_of:
            if team not in teams:
                found.append(
                    Problem(
                        source,
                        f"web.users[{u.email}].lead_of",
                        f"{team!r} is no mailbox's team"
                        + (_near(team, teams) or f"; one of {', '.join(sorted(teams))}"),
                    )
                )
        if not (u.mailboxes or u.lead_of or u.admin):
            found.append(
                Problem(
                    source,
                    f"web.users[{u.email}]",
                    "has no role: give mailboxes, lead_of or admin = true",
                )
            )
    secrets_file = settings.web.google_client_secrets
    if secrets_file is not None and not secrets_file.is_file():
        found.append(
            Problem(
                source,
                "web.google_client_secrets",
                f"{secrets_file} is not a file: download the Web application client's JSON "
                "from Google Cloud Console there",
            )
        )
    return found


def template_problems(cadences: Cadences, purposes: set[str], templates: Path) -> list[Problem]:
    """Rules naming a template purpose that has no folder under ``templates``."""
    found = []
    rules: list[FollowUpRule | ThankYouRule] = [*cadences.follow_ups, *cadences.thank_yous]
    for rule in rules:
        if rule.template not in purposes:
            found.append(
                Problem(
                    rule.source,
                    f"{rule.name}:template",
                    f"{rule.template!r} is not a template purpose under {templates}"
                    + (_near(rule.template, purposes) or f"; one of {', '.join(sorted(purposes))}"),
                )
            )
    return found
