"""Response-time figures for team leads, and the replay behind ``rules simulate``. Pure.

A replay runs the promise planner over each thread at every moment its state changes (each
message's time, then ``now``): an action fired if its due time came before the next change.
That is exactly what the worker would have done, because the worker runs the same planner.

SLA achievement = (applied - missed) / applied, where *applied* counts promises that are decided
(met, or past their deadline) and *missed* those breached. Response times are counted in the
rule's own clock (business hours unless a rule says calendar hours).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from agent import promises
from agent.model import Action, ActionKind, Thread
from agent.promises import Promise, Rep, State
from agent.rules import RuleSet


@dataclass(frozen=True)
class Replay:
    promises: tuple[Promise, ...]
    fired: tuple[Action, ...]


def replay(
    threads: Iterable[Thread],
    rules: RuleSet,
    reps: Mapping[str, Rep],
    client_calendar: promises.ClientCalendar,
    since: datetime,
    now: datetime,
) -> Replay:
    final: list[Promise] = []
    fired: dict[str, Action] = {}
    for thread in threads:
        moments = sorted(
            {c.message.date for c in thread.messages if since <= c.message.date <= now}
        )
        if not moments:
            continue
        checkpoints = [*moments, now]
        for at, until in pairwise(checkpoints):
            step = promises.plan([thread], rules, reps, client_calendar, at)
            for action in step.actions:
                if action.due < until or (until == now and action.due <= now):
                    fired.setdefault(action.key, action)
        last = promises.plan([thread], rules, reps, client_calendar, now)
        final.extend(p for p in last.promises if p.received >= since)
    return Replay(tuple(final), tuple(sorted(fired.values(), key=lambda a: a.due)))


@dataclass(frozen=True)
class Figures:
    group: str
    applied: int = 0
    met: int = 0
    missed: int = 0
    open: int = 0
    reminders: int = 0
    escalations: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def sla(self) -> float | None:
        return None if not self.applied else (self.applied - self.missed) / self.applied

    def as_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "applied": self.applied,
            "met": self.met,
            "missed": self.missed,
            "open": self.open,
            "sla_percent": None if self.sla is None else round(self.sla * 100, 1),
            "median_first_response_hours": self.median_hours,
            "p90_first_response_hours": self.p90_hours,
            "reminders": self.reminders,
            "escalations": self.escalations,
            "promises_by_rule": self.by_rule,
        }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


def figures(
    result: Replay, now: datetime, group_of: Callable[[str], str] = lambda mailbox: mailbox
) -> list[Figures]:
    """Figures per group (a rep's mailbox by default, or a team), plus an "all" row."""
    groups: dict[str, list[Promise]] = defaultdict(list)
    for p in result.promises:
        groups[group_of(p.mailbox)].append(p)
        groups["all"].append(p)
    actions: dict[str, list[Action]] = defaultdict(list)
    for a in result.fired:
        actions[group_of(a.mailbox)].append(a)
        actions["all"].append(a)
    rows = []
    for name in sorted(groups, key=lambda g: (g == "all", g)):
        items = groups[name]
        decided = [p for p in items if p.met_at is not None or p.deadline <= now]
        missed = [p for p in decided if p.state is State.BREACHED]
        first = [
            p.response / timedelta(hours=1)
            for p in items
            if p.kind == "first_reply" and p.response is not None
        ]
        by_rule: dict[str, int] = defaultdict(int)
        for p in items:
            by_rule[p.rule] += 1
        rows.append(
            Figures(
                group=name,
                applied=len(decided),
                met=len([p for p in decided if p.state is State.MET]),
                missed=len(missed),
                open=len(items) - len(decided),
                reminders=len([a for a in actions[name] if a.kind is ActionKind.REMINDER]),
                escalations=len([a for a in actions[name] if a.kind is ActionKind.ESCALATION]),
                median_hours=round(statistics.median(first), 2) if first else None,
                p90_hours=round(_percentile(first, 0.9), 2) if first else None,
                by_rule=dict(by_rule),
            )
        )
    return rows
