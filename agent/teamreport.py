"""What a team lead looks at, assembled for a period: responsiveness (SLA met %, first-response
times), NPS and CSAT, follow-up outcomes, time to a meeting and the clients going quiet. Pure.

``build`` takes what the store holds (threads, outbox rows, decisions, events, survey answers)
and ``now``; the HTML page, the CSV files, the JSON and the weekly digest are all views of the
one :class:`TeamReport` it returns, so they always show the same figures.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent import relationship as rel
from agent import report
from agent.model import Client, Event, Thread
from agent.promises import State


@dataclass(frozen=True)
class Breach:
    mailbox: str
    client: str
    subject: str
    rule: str
    deadline: datetime
    met_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "client": self.client,
            "subject": self.subject,
            "rule": self.rule,
            "deadline": rel._stamp(self.deadline),
            "answered_at": rel._stamp(self.met_at),
        }


@dataclass(frozen=True)
class TeamReport:
    team: str
    since: datetime
    now: datetime
    min_n: int
    reps: Mapping[str, str]  # mailbox -> rep name
    sla_rep: list[report.Figures]
    sla_team: list[report.Figures]
    sla_weeks: list[rel.WeekSla]
    first_response_hours: list[float]
    surveys: list[rel.SurveyFigures]
    survey_weeks: list[rel.WeekScores]
    answers: list[rel.Answer]
    funnel: list[rel.Funnel]
    to_meeting: list[rel.ToMeeting]
    quiet: list[rel.Quiet]
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ambiguous(self) -> list[rel.Answer]:
        return [a for a in self.answers if a.status == "ambiguous"]

    def sla_value(self, f: report.Figures) -> rel.Value:
        value = None if f.sla is None else round(f.sla * 100, 1)
        return rel.Value.of(value, f.applied, self.min_n)

    def survey_row(self, dimension: str = "all", group: str = "all") -> rel.SurveyFigures | None:
        return next((s for s in self.surveys if (s.dimension, s.group) == (dimension, group)), None)

    def funnel_row(self, dimension: str = "all", group: str = "all") -> rel.Funnel | None:
        return next((f for f in self.funnel if (f.dimension, f.group) == (dimension, group)), None)

    def as_json(self) -> dict[str, Any]:
        def sla(f: report.Figures) -> dict[str, Any]:
            out = f.as_json()
            out["sla_percent"] = self.sla_value(f).as_json()
            out["n"] = f.applied
            return out

        return {
            "team": self.team,
            "since": rel._stamp(self.since),
            "now": rel._stamp(self.now),
            "min_n": self.min_n,
            "sla": {
                "per_rep": [sla(f) for f in self.sla_rep],
                "per_team": [sla(f) for f in self.sla_team],
                "weekly": [w.as_json() for w in self.sla_weeks],
            },
            "first_response_hours": self.first_response_hours,
            "surveys": {
                "figures": [s.as_json() for s in self.surveys],
                "weekly": [w.as_json() for w in self.survey_weeks],
                "answers": [a.as_json() for a in self.answers],
                "ambiguous": [a.as_json() for a in self.ambiguous],
            },
            "follow_ups": [f.as_json() for f in self.funnel],
            "time_to_meeting": [t.as_json() for t in self.to_meeting],
            "going_quiet": [q.as_json() for q in self.quiet],
            "breaches": [b.as_json() for b in self.breaches],
        }


def build(
    *,
    team: str,
    reps: Mapping[str, str],
    teams: Mapping[str, str],
    clients: Mapping[str, Client],
    threads: list[Thread],
    replay: report.Replay,
    outbox_rows: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    events: list[Event],
    answers: list[rel.Answer],
    since: datetime,
    now: datetime,
    min_n: int = rel.MIN_N,
) -> TeamReport:
    grouping = rel.Grouping(teams, clients)
    in_period = [a for a in answers if since <= a.answered_at <= now]
    first = sorted(
        round(p.response / timedelta(hours=1), 2)
        for p in replay.promises
        if p.kind == "first_reply" and p.response is not None
    )
    breaches = [
        Breach(p.mailbox, p.client, p.subject, p.rule, p.deadline, p.met_at)
        for p in replay.promises
        if p.state is State.BREACHED and since <= p.deadline <= now
    ]
    return TeamReport(
        team=team,
        since=since,
        now=now,
        min_n=min_n,
        reps=reps,
        sla_rep=[f for f in report.figures(replay, now) if f.group != "all"],
        sla_team=report.figures(replay, now, lambda mb: teams.get(mb) or mb),
        sla_weeks=rel.sla_weeks(replay.promises, since, now),
        first_response_hours=first,
        surveys=rel.survey_figures(answers, outbox_rows, grouping, since, now, min_n),
        survey_weeks=rel.survey_weeks(answers, since, now),
        answers=in_period,
        funnel=rel.follow_up_funnel(outbox_rows, threads, decisions, grouping, since, now, min_n),
        to_meeting=rel.time_to_meeting(threads, events, grouping, since, now, min_n),
        quiet=rel.going_quiet(threads, clients, now),
        breaches=sorted(breaches, key=lambda b: b.deadline),
    )


def tables(r: TeamReport) -> dict[str, str]:
    """The report's figures as CSV files: name -> text. Hidden figures are empty cells."""

    def cell(v: rel.Value) -> object:
        return "" if v.value is None else v.value

    sheets: dict[str, list[list[object]]] = {
        "sla.csv": [
            [
                "level",
                "group",
                "n",
                "sla_percent",
                "met",
                "missed",
                "open",
                "median_first_response_hours",
                "p90_first_response_hours",
            ]
        ],
        "sla_weekly.csv": [["rep", "week", "n", "sla_percent"]],
        "first_response_hours.csv": [["hours"]],
        "surveys.csv": [
            [
                "dimension",
                "group",
                "nps",
                "nps_n",
                "csat_percent",
                "csat_n",
                "surveys_sent",
                "answered",
                "response_rate_percent",
            ]
        ],
        "survey_answers.csv": [
            [
                "answered_at",
                "mailbox",
                "client",
                "tier",
                "segment",
                "scale",
                "score",
                "status",
                "why",
                "comment",
            ]
        ],
        "follow_ups.csv": [
            [
                "dimension",
                "group",
                "cadences",
                "sent_step_1",
                "sent_step_2",
                "sent_step_3",
                "replied_after_1",
                "replied_after_2",
                "replied_after_3",
                "meetings_booked",
                "opt_outs",
                "stop_reasons",
            ]
        ],
        "time_to_meeting.csv": [["dimension", "group", "n", "median_days"]],
        "going_quiet.csv": [
            [
                "client",
                "mailbox",
                "tier",
                "segment",
                "silent_days",
                "usual_rhythm_days",
                "last_exchange_at",
                "last_exchange_from",
                "last_exchange_subject",
            ]
        ],
    }
    for level, rows in (("rep", r.sla_rep), ("team", r.sla_team)):
        for f in rows:
            v = r.sla_value(f)
            sheets["sla.csv"].append(
                [
                    level,
                    f.group,
                    f.applied,
                    cell(v),
                    f.met,
                    f.missed,
                    f.open,
                    f.median_hours,
                    f.p90_hours,
                ]
            )
    for w in r.sla_weeks:
        sheets["sla_weekly.csv"].append([w.group, rel._stamp(w.week), w.sla.n, cell(w.sla)])
    sheets["first_response_hours.csv"] += [[h] for h in r.first_response_hours]
    for s in r.surveys:
        sheets["surveys.csv"].append(
            [
                s.dimension,
                s.group,
                cell(s.nps),
                s.nps.n,
                cell(s.csat),
                s.csat.n,
                s.sent,
                s.answered,
                cell(s.response_rate),
            ]
        )
    for a in r.answers:
        sheets["survey_answers.csv"].append(
            [
                rel._stamp(a.answered_at),
                a.mailbox,
                a.client,
                a.tier,
                a.segment,
                a.scale,
                "" if a.score is None else a.score,
                a.status,
                a.why,
                a.comment,
            ]
        )
    for fu in r.funnel:
        sheets["follow_ups.csv"].append(
            [
                fu.dimension,
                fu.group,
                fu.cadences,
                *fu.steps_sent,
                *fu.replied_after,
                fu.meetings,
                fu.opt_outs,
                "; ".join(f"{k}: {v}" for k, v in fu.stops.items()),
            ]
        )
    for t in r.to_meeting:
        sheets["time_to_meeting.csv"].append(
            [t.dimension, t.group, t.median_days.n, cell(t.median_days)]
        )
    for q in r.quiet:
        sheets["going_quiet.csv"].append(
            [
                q.client,
                q.mailbox,
                q.tier,
                q.segment,
                q.silent_days,
                q.rhythm_days,
                rel._stamp(q.last_at),
                q.last_direction,
                q.last_subject,
            ]
        )
    out = {}
    for name, sheet in sheets.items():
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(sheet)
        out[name] = buf.getvalue()
    return out
