"""The lead's figures, from agent/report.py: one function per table the page shows, so a richer
report (charts) can take their place without touching the routes."""

from __future__ import annotations

from dataclasses import dataclass

from agent.app import Simulation
from agent.report import Figures


def team_figures(sim: Simulation, mailboxes: list[str], team: str) -> list[Figures]:
    """The team's reps, one row each, then the team's own row."""
    rows = [f for f in sim.per_rep if f.group in mailboxes]
    rows += [f for f in sim.per_team if f.group == team]
    return rows


@dataclass(frozen=True)
class RepDiff:
    """What a draft rule set would have done for one rep next to the rules in force."""

    mailbox: str
    now: Figures | None
    draft: Figures | None
    only_now: list[str]  # actions fired under the rules in force only: "kind · client · due"
    only_draft: list[str]  # actions the draft would have fired that the rules in force did not


def _describe(kind: str, client: str, due: str) -> str:
    return f"{kind} · {client or 'the team'} · {due}"


def diff(in_force: Simulation, draft: Simulation, mailboxes: list[str]) -> list[RepDiff]:
    rows = []
    for mb in mailboxes:
        a = {x.key: x for x in in_force.replay.fired if x.mailbox == mb}
        b = {x.key: x for x in draft.replay.fired if x.mailbox == mb}
        rows.append(
            RepDiff(
                mb,
                next((f for f in in_force.per_rep if f.group == mb), None),
                next((f for f in draft.per_rep if f.group == mb), None),
                [
                    _describe(a[k].kind.value, a[k].client, f"{a[k].due:%Y-%m-%d %H:%M} UTC")
                    for k in sorted(a.keys() - b.keys())
                ],
                [
                    _describe(b[k].kind.value, b[k].client, f"{b[k].due:%Y-%m-%d %H:%M} UTC")
                    for k in sorted(b.keys() - a.keys())
                ],
            )
        )
    return rows
