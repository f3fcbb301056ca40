"""The lead's figures, from agent/report.py: one function per table the page shows, so a richer
report (charts) can take their place without touching the routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.app import Simulation
from agent.model import Action
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
    only_now: list[Fired]  # actions fired under the rules in force only
    only_draft: list[Fired]  # actions the draft would have fired that the rules in force did not


@dataclass(frozen=True)
class Fired:
    kind: str
    client: str
    due: datetime

    @classmethod
    def of(cls, action: Action) -> Fired:
        return cls(action.kind.value.replace("_", " "), action.client, action.due)


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
                sorted((Fired.of(a[k]) for k in a.keys() - b.keys()), key=lambda f: f.due),
                sorted((Fired.of(b[k]) for k in b.keys() - a.keys()), key=lambda f: f.due),
            )
        )
    return rows


# The charts a lead's page shows, in its order, from the team report (`followup report`).
CHART_NAMES = ("sla-trend", "first-response", "nps-csat", "funnel")


def team_chart_png(
    config_path: Path, boxes: list[str], team: str, name: str, now: datetime
) -> bytes:
    """One chart of the team's report (its reps' mailboxes, ``[report] weeks`` back) as PNG.

    PNG, not inline SVG: matplotlib's SVG carries a ``<style>`` element, which the console's
    Content-Security-Policy refuses, and an image needs no exception to it."""
    from agent import charts, config, reporting
    from agent.store import Store

    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        since = now - timedelta(weeks=settings.report.weeks)
        r = reporting.build(settings, store, since, now, mailboxes=boxes, title=team)
    finally:
        store.close()
    return charts.png(charts.CHARTS[name](r))
