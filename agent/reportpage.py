"""``followup report --html``: one self-contained page (inline CSS and SVG, no script, nothing
fetched) showing a :class:`~agent.teamreport.TeamReport`. Pure: returns the page's text."""

from __future__ import annotations

import statistics

from jinja2 import Environment, select_autoescape

from agent import charts
from agent.relationship import Value
from agent.teamreport import TeamReport

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.team }} · Followup report · {{ day(r.since) }} – {{ day(r.now) }}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
  margin:0;color:#111827;background:#f9fafb}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#6b7280;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:22px} .card span{color:#6b7280;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:14px}
figure{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:0;padding:10px}
figure svg{width:100%;height:auto} figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#9ca3af}
</style>
</head>
<body><main>
<h1>{{ r.team }}: responsiveness, satisfaction and follow-ups</h1>
<p class="sub">{{ day(r.since) }} – {{ day(r.now) }} (UTC) · figures over fewer than {{ r.min_n }}
items are hidden and show only their n.</p>

<section class="cards" aria-label="At a glance">
{% for label, value in cards %}<div class="card"><b>{{ value }}</b><span>{{ label }}</span></div>
{% endfor %}</section>

<h2>Charts</h2>
<div class="grid">
{% for name, title, svg in figures %}<figure data-chart="{{ name }}">
<figcaption>{{ title }}</figcaption>
{{ svg | safe }}</figure>
{% endfor %}</div>

<h2>Responsiveness per rep and team</h2>
<table><thead><tr><th>level</th><th>group</th><th>SLA met</th><th>met</th><th>missed</th>
<th>open</th><th>first reply median (h)</th><th>p90 (h)</th></tr></thead><tbody>
{% for level, f in sla_rows %}<tr><td>{{ level }}</td><td>{{ name(f.group) }}</td>
<td class="n">{{ show(r.sla_value(f), "%") }}</td><td class="n">{{ f.met }}</td>
<td class="n">{{ f.missed }}</td><td class="n">{{ f.open }}</td>
<td class="n">{{ f.median_hours if f.median_hours is not none else "-" }}</td>
<td class="n">{{ f.p90_hours if f.p90_hours is not none else "-" }}</td></tr>
{% endfor %}</tbody></table>

<h2>NPS and CSAT</h2>
<table><thead><tr><th>by</th><th>group</th><th>NPS</th><th>CSAT (4–5 of 5)</th>
<th>surveys sent</th><th>answered</th><th>response rate</th></tr></thead><tbody>
{% for s in r.surveys %}<tr><td>{{ s.dimension }}</td><td>{{ name(s.group) }}</td>
<td class="n">{{ show(s.nps, "") }}</td><td class="n">{{ show(s.csat, "%") }}</td>
<td class="n">{{ s.sent }}</td><td class="n">{{ s.answered }}</td>
<td class="n">{{ show(s.response_rate, "%") }}</td></tr>
{% else %}<tr><td colspan="7" class="muted">No survey was sent in this period.</td></tr>
{% endfor %}</tbody></table>

{% if r.ambiguous %}<h3>Answers left unscored (read them yourself)</h3>
<table><thead><tr><th>answered</th><th>rep</th><th>client</th><th>why</th><th>answer</th></tr>
</thead><tbody>{% for a in r.ambiguous %}<tr><td>{{ day(a.answered_at) }}</td>
<td>{{ name(a.mailbox) }}</td><td>{{ a.client }}</td><td>{{ a.why }}</td>
<td>{{ a.comment }}</td></tr>{% endfor %}</tbody></table>{% endif %}

<h3>Latest comments</h3>
<table><thead><tr><th>answered</th><th>rep</th><th>client</th><th>score</th><th>comment</th></tr>
</thead><tbody>{% for a in comments %}<tr><td>{{ day(a.answered_at) }}</td>
<td>{{ name(a.mailbox) }}</td><td>{{ a.client }}</td>
<td class="n">{{ a.score }}/{{ 10 if a.scale == "nps" else 5 }}</td><td>{{ a.comment }}</td></tr>
{% else %}<tr><td colspan="5" class="muted">No comments.</td></tr>{% endfor %}</tbody></table>

<h2>Follow-up outcomes</h2>
<table><thead><tr><th>by</th><th>group</th><th>cadences</th><th>sent 1/2/3</th>
<th>replied after 1/2/3</th><th>reply rate</th><th>meetings</th><th>opt-outs</th>
<th>why cadences stopped</th></tr></thead><tbody>
{% for f in r.funnel %}<tr><td>{{ f.dimension }}</td><td>{{ name(f.group) }}</td>
<td class="n">{{ f.cadences }}</td><td class="n">{{ f.steps_sent | join(" / ") }}</td>
<td class="n">{{ f.replied_after | join(" / ") }}</td>
<td class="n">{{ show(f.reply_rate, "%") }}</td>
<td class="n">{{ f.meetings }}</td><td class="n">{{ f.opt_outs }}</td>
<td>{{ stops(f.stops) }}</td></tr>
{% else %}<tr><td colspan="9" class="muted">No follow-up went out in this period.</td></tr>
{% endfor %}</tbody></table>

<h2>Time from first contact to a meeting</h2>
<table><thead><tr><th>by</th><th>group</th><th>median days</th></tr></thead><tbody>
{% for t in r.to_meeting %}<tr><td>{{ t.dimension }}</td><td>{{ name(t.group) }}</td>
<td class="n">{{ show(t.median_days, " d", 1) }}</td></tr>
{% else %}<tr><td colspan="3" class="muted">No meeting in this period.</td></tr>{% endfor %}
</tbody></table>

<h2 id="quiet">Clients going quiet</h2>
<table data-list="going-quiet"><thead><tr><th>client</th><th>rep</th><th>tier</th><th>silent</th>
<th>usual rhythm</th><th>last exchange</th></tr></thead><tbody>
{% for q in r.quiet %}<tr><td>{{ q.name }}</td><td>{{ name(q.mailbox) }}</td><td>{{ q.tier }}</td>
<td class="n">{{ q.silent_days }} d</td><td class="n">every {{ q.rhythm_days }} d</td>
<td>{{ day(q.last_at) }},
{{ "from the client" if q.last_direction == "client" else "from the rep" }}:
“{{ q.last_subject }}”</td></tr>
{% else %}<tr><td colspan="6" class="muted">Nobody is quieter than usual.</td></tr>{% endfor %}
</tbody></table>

{% if r.breaches %}<h2>Breached promises</h2>
<p class="sub">{{ r.breaches | length }} in the period{% if r.breaches | length > 25 %}; the latest
25 are listed (all of them: --csv or --json){% endif %}.</p>
<table><thead><tr><th>deadline</th><th>rep</th><th>client</th><th>subject</th><th>rule</th></tr>
</thead><tbody>{% for b in (r.breaches[-25:] | reverse) %}<tr><td>{{ stamp(b.deadline) }}</td>
<td>{{ name(b.mailbox) }}</td>
<td>{{ b.client }}</td><td>{{ b.subject }}</td><td>{{ b.rule }}</td></tr>{% endfor %}</tbody>
</table>{% endif %}
</main></body></html>
"""

TITLES = {
    "sla-trend": "SLA met % per rep, by week",
    "first-response": "Time to first reply",
    "nps-csat": "NPS and CSAT by week",
    "funnel": "Follow-up funnel",
}

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def show(v: Value, unit: str = "", digits: int = 0) -> str:
    if v.hidden:
        return f"n={v.n} (too few)"
    if v.value is None:
        return "-"
    return f"{v.value:.{digits}f}{unit} (n={v.n})"


def cards(r: TeamReport) -> list[tuple[str, str]]:
    all_sla = next((f for f in r.sla_team if f.group == "all"), None)
    s = r.survey_row()
    fu = r.funnel_row()
    first = r.first_response_hours
    median = f"{statistics.median(first):.1f} h (n={len(first)})" if first else "-"
    return [
        ("SLA met", show(r.sla_value(all_sla), "%") if all_sla else "-"),
        ("first reply, median", median),
        ("NPS", show(s.nps) if s else "-"),
        ("CSAT", show(s.csat, "%") if s else "-"),
        ("survey response rate", show(s.response_rate, "%") if s else "-"),
        ("follow-ups replied", show(fu.reply_rate, "%") if fu else "-"),
        ("meetings booked from follow-ups", str(fu.meetings) if fu else "0"),
        ("clients going quiet", str(len(r.quiet))),
    ]


def render(r: TeamReport) -> str:
    figures = [(name, TITLES[name], charts.svg(draw(r))) for name, draw in charts.CHARTS.items()]
    return _ENV.from_string(PAGE).render(
        r=r,
        cards=cards(r),
        figures=figures,
        sla_rows=[("rep", f) for f in r.sla_rep] + [("team", f) for f in r.sla_team],
        comments=[a for a in reversed(r.answers) if a.score is not None and a.comment][:12],
        show=show,
        stops=lambda d: ", ".join(f"{k}: {v}" for k, v in d.items()),
        name=lambda g: r.reps.get(g, g),
        day=lambda d: d.strftime("%d %b %Y"),
        stamp=lambda d: d.strftime("%Y-%m-%d %H:%M"),
    )
