"""The weekly digest: each lead's mail with the team's week, and a rep's own weekly summary.

Planning is pure: :func:`readers` says who gets one (every ``[[leads]]`` entry unless
``digest = false``, and every rep with ``weekly_summary = true``), :func:`slot` when this
week's falls (``[report] digest_day`` / ``digest_hour``, or the lead's own, in the reader's
zone), and :func:`action` turns a :class:`~agent.teamreport.TeamReport` into one outbox action
keyed ``weekly/<reader>/<ISO week>``: planning it twice never sends it twice. The charts travel in
the action as PNG (mail clients show no SVG) and become inline ``cid:`` images when the outbox
composes the message (:func:`attach_charts`).
"""

from __future__ import annotations

import base64
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.model import Action, ActionKind, Address
from agent.teamreport import TeamReport

if TYPE_CHECKING:
    from agent.config import Settings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
IMAGES = "images"  # context key: cid -> base64 PNG
# The charts a digest carries, and what each is about (its title is in the template).
DIGEST_CHARTS = (("sla", "sla-trend"), ("nps", "nps-csat"), ("funnel", "funnel"))
SUMMARY_CHARTS = (("sla", "sla-trend"), ("nps", "nps-csat"))
MAX_LISTED = 15  # breaches and quiet clients listed in one mail
# The worker plans a digest only this soon after its slot: a worker down for longer does not
# mail last week's figures days late (``followup digest`` sends them on request).
LATE = timedelta(hours=24)


@dataclass(frozen=True)
class Reader:
    kind: str  # "lead" | "rep"
    name: str
    email: str
    language: str
    zone: str
    day: str
    hour: int
    mailboxes: tuple[str, ...]  # whose figures the mail shows
    sender: str  # the mailbox it is sent from

    @property
    def slug(self) -> str:
        return self.email.split("@")[0].replace("/", "-") or "reader"


def readers(settings: Settings) -> list[Reader]:
    if not settings.mailboxes:
        return []
    out = []
    if settings.report.digest:
        for lead in settings.leads:
            if not lead.digest:
                continue
            team = tuple(
                m.name for m in settings.mailboxes if m.lead.lower() == lead.email.lower()
            ) or tuple(m.name for m in settings.mailboxes)
            out.append(
                Reader(
                    kind="lead",
                    name=lead.name,
                    email=lead.email,
                    language=lead.language,
                    zone=lead.zone,
                    day=lead.digest_day or settings.report.digest_day,
                    hour=lead.digest_hour if lead.digest_hour >= 0 else settings.report.digest_hour,
                    mailboxes=team,
                    sender=team[0],
                )
            )
    for m in settings.mailboxes:
        if m.weekly_summary and m.enabled:
            out.append(
                Reader(
                    kind="rep",
                    name=m.rep_name,
                    email=m.address,
                    language=m.language,
                    zone=m.zone,
                    day=settings.report.digest_day,
                    hour=settings.report.digest_hour,
                    mailboxes=(m.name,),
                    sender=m.name,
                )
            )
    return out


def slot(reader: Reader, now: datetime) -> datetime:
    """This week's send time for ``reader``: the latest ``day`` at ``hour`` in the reader's zone
    at or before ``now`` (UTC). Across a DST change the hour stays the local hour."""
    zone = ZoneInfo(reader.zone)
    local = now.astimezone(zone)
    days_back = (local.weekday() - DAYS.index(reader.day)) % 7
    day = (local - timedelta(days=days_back)).date()
    at = datetime(day.year, day.month, day.day, reader.hour, tzinfo=zone)
    if at > now:
        day = day - timedelta(days=7)
        at = datetime(day.year, day.month, day.day, reader.hour, tzinfo=zone)
    return at.astimezone(now.tzinfo)


def key(reader: Reader, at: datetime) -> str:
    year, week, _ = at.astimezone(ZoneInfo(reader.zone)).isocalendar()
    return f"weekly/{reader.kind}/{reader.email.lower()}/{year}-W{week:02d}"


def _value(v: object) -> tuple[str, int]:
    from agent.relationship import Value

    assert isinstance(v, Value)
    if v.hidden or v.value is None:
        return "", v.n
    return f"{v.value:g}", v.n


def figures(r: TeamReport) -> list[dict[str, object]]:
    """The week's figures for the template: ``value`` is "" when hidden (too few items)."""
    from agent.relationship import Value

    out: list[dict[str, object]] = []
    team = [f for f in r.sla_team if f.group == "all"]
    if team:
        value, n = _value(r.sla_value(team[0]))
        out.append({"name": "sla", "value": f"{value}%" if value else "", "n": n})
    first = sorted(r.first_response_hours)
    middle = round(statistics.median(first), 2) if first else None
    median = Value.of(middle, len(first), r.min_n)
    value, n = _value(median)
    out.append({"name": "first", "value": value, "n": n})
    s = r.survey_row()
    if s is not None:
        value, n = _value(s.nps)
        out.append({"name": "nps", "value": value, "n": n})
        value, n = _value(s.csat)
        out.append({"name": "csat", "value": f"{value}%" if value else "", "n": n})
        value, n = _value(s.response_rate)
        out.append({"name": "rate", "value": f"{value}%" if value else "", "n": n})
    f = r.funnel_row()
    if f is not None:
        value, n = _value(f.reply_rate)
        out.append({"name": "replied", "value": f"{value}%" if value else "", "n": n})
        out.append({"name": "meetings", "value": str(f.meetings), "n": f.cadences})
    out.append({"name": "quiet", "value": str(len(r.quiet)), "n": len(r.quiet)})
    return out


def action(
    reader: Reader,
    r: TeamReport,
    at: datetime,
    *,
    draw: Callable[[str, TeamReport], bytes] | None = None,
) -> Action:
    """The digest for ``reader`` from ``r``, the report over the reader's mailboxes, due ``at``."""
    week_start = at - timedelta(days=7)
    if draw is None:
        draw = _draw
    wanted = DIGEST_CHARTS if reader.kind == "lead" else SUMMARY_CHARTS
    ident = key(reader, at).replace("/", ".").replace("@", ".")
    charts, images = [], {}
    for kind, chart in wanted:
        cid = f"{kind}.{ident}@followup"
        charts.append({"kind": kind, "cid": cid})
        images[cid] = base64.b64encode(draw(chart, r)).decode("ascii")
    names = dict(r.reps)
    return Action(
        key=key(reader, at),
        kind=ActionKind.WEEKLY,
        mailbox=reader.sender,
        due=at,
        to=(Address(reader.email, reader.name),),
        language=reader.language,
        template="weekly",
        reason=f"weekly {'digest' if reader.kind == 'lead' else 'summary'} for {reader.name}",
        context={
            "reader": {"name": reader.name},
            "team": r.team,
            "start": week_start,
            "end": at,
            "zone": reader.zone,
            "figures": figures(r),
            "charts": charts,
            "breaches": [
                {
                    "client": b.client,
                    "rep": names.get(b.mailbox, b.mailbox),
                    "subject": b.subject,
                    "deadline": b.deadline,
                }
                for b in r.breaches
                if b.deadline >= week_start
            ][:MAX_LISTED],
            "quiet": [
                {
                    "client": q.name,
                    "rep": names.get(q.mailbox, q.mailbox),
                    "silent_days": round(q.silent_days),
                    "subject": q.last_subject,
                }
                for q in r.quiet
            ][:MAX_LISTED],
            IMAGES: images,
        },
    )


def _draw(name: str, r: TeamReport) -> bytes:
    from agent import charts

    return charts.png(charts.CHARTS[name](r))


def attach_charts(msg: EmailMessage, action: Action) -> None:
    """Turn the HTML part of a composed digest into multipart/related with its charts as inline
    PNG images, each under the Content-ID its ``<img src="cid:...">`` names."""
    images = action.context.get(IMAGES) or {}
    html = msg.get_body(("html",))
    if html is None or not isinstance(html, EmailMessage):
        return
    for cid, data in images.items():
        html.add_related(
            base64.b64decode(data),
            maintype="image",
            subtype="png",
            cid=f"<{cid}>",
            disposition="inline",
            filename=f"{cid.split('@')[0].split('.')[0]}.png",
        )


def due(settings: Settings, now: datetime, known: Iterable[str]) -> list[tuple[Reader, datetime]]:
    """The readers whose digest for this week is due and not yet in the outbox (``known``)."""
    have = set(known)
    out = []
    for reader in readers(settings):
        at = slot(reader, now)
        if key(reader, at) not in have:
            out.append((reader, at))
    return out


def file_name(reader: Reader) -> str:
    return f"{'digest' if reader.kind == 'lead' else 'summary'}-{reader.slug}.eml"


__all__ = [
    "Reader",
    "action",
    "attach_charts",
    "due",
    "figures",
    "file_name",
    "key",
    "readers",
    "slot",
]
