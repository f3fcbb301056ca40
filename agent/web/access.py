"""Who a signed-in person is in the console, and what they may see and do. Pure.

Roles come from the config's ``[[web.users]]``: rep of some mailboxes, lead of some teams, admin
of all. With ``--demo`` (and only over the demo's data) the demo's reps and leads are users too.
Every page and action asks :class:`Viewer` before it reads or changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import Settings


@dataclass(frozen=True)
class Viewer:
    email: str
    name: str
    mailboxes: frozenset[str]  # mailboxes this person is the rep of (all, for an admin)
    teams: frozenset[str]  # teams this person leads (all, for an admin)
    admin: bool
    zone: str
    language: str

    def may_see_mailbox(self, mailbox: str) -> bool:
        return mailbox in self.mailboxes

    def may_lead(self, team: str) -> bool:
        return team in self.teams

    @property
    def home(self) -> str:
        if self.mailboxes:
            return f"/rep/{sorted(self.mailboxes)[0]}"
        if self.teams:
            return f"/lead/{sorted(self.teams)[0]}"
        return "/signin"


def viewer(settings: Settings, email: str, *, demo: bool = False) -> Viewer | None:
    """The viewer signed in as ``email``, or None when the config lets them see nothing."""
    email = email.lower()
    user = settings.web.user(email)
    all_boxes = frozenset(m.name for m in settings.mailboxes)
    all_teams = frozenset(m.team for m in settings.mailboxes if m.team)
    if user is not None:
        boxes = all_boxes if user.admin else frozenset(user.mailboxes) & all_boxes
        teams = all_teams if user.admin else frozenset(user.lead_of) & all_teams
        name, language, zone = user.name, user.language, user.zone
    elif demo:
        boxes = frozenset(m.name for m in settings.mailboxes if email in m.addresses)
        teams = frozenset(m.team for m in settings.mailboxes if m.team and m.lead.lower() == email)
        name, language, zone = "", "", ""
        lead = settings.lead(email)
        if lead is not None:
            name, zone = lead.name, lead.zone
    else:
        return None
    if not boxes and not teams:
        return None
    own = [m for m in settings.mailboxes if m.name in boxes]
    if own and not name:
        name = own[0].rep_name
    if not zone:
        zone = own[0].zone if own else "UTC"
    return Viewer(email, name or email, boxes, teams, bool(user and user.admin), zone, language)


def demo_people(settings: Settings) -> list[tuple[str, str, str]]:
    """(email, name, role) of everyone the demo lets sign in."""
    people = [(m.address.lower(), m.rep_name, f"rep · {m.name}") for m in settings.mailboxes]
    for lead in settings.leads:
        teams = sorted({m.team for m in settings.mailboxes if m.lead.lower() == lead.email.lower()})
        if teams:
            people.append((lead.email.lower(), lead.name, f"lead · {', '.join(teams)}"))
    return people


def team_mailboxes(settings: Settings, team: str) -> list[str]:
    return [m.name for m in settings.mailboxes if m.team == team]
