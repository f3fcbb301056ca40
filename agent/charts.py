"""The report's charts, drawn once with matplotlib and written as SVG (for the HTML page) or PNG
(for mail, where clients such as Gmail and Outlook show no SVG).

Why matplotlib: one drawing per chart gives both formats, it is maintained, needs no browser or
network, and its object API (``Figure``, no pyplot) keeps no global state, so the worker may draw
in any thread. Measured on the demo's report: importing it takes about 1 s (only ``report`` and
the digest import it), a chart renders in 0.05-0.13 s, an SVG chart is about 16 KB and a PNG
about 20 KB. Text in the SVG stays text (``svg.fonttype = none``) so the browser shapes it.

Chart text is language-neutral on purpose: numbers, dates as "16 Nov"-free ``MM-DD``, rep names.
Titles and explanations are written around the image, in the reader's language, because
matplotlib does not shape Indic or Arabic script. Pure: each function takes a report and returns
bytes or text; nothing is written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.teamreport import TeamReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#65a30d", "#db2777")
BINS = ((0, 1, "<1h"), (1, 2, "1-2h"), (2, 4, "2-4h"), (4, 8, "4-8h"), (8, 24, "8-24h"),
        (24, float("inf"), ">24h"))  # fmt: skip


def _figure(width: float = 6.4, height: float = 2.8) -> Figure:
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "followup"  # the same report gives the same SVG
    matplotlib.rcParams["font.size"] = 9
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _empty(ax: Axes, text: str = "no data in this period") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#6b7280")
    ax.set_xticks([])
    ax.set_yticks([])


def sla_trend(r: TeamReport) -> Figure:
    """SLA met % per rep and week (weeks with no decided promise are gaps)."""
    fig = _figure()
    ax = fig.add_subplot()
    _style(ax)
    groups = sorted({w.group for w in r.sla_weeks})
    drawn = False
    for i, g in enumerate(groups):
        weeks = [w for w in r.sla_weeks if w.group == g]
        xs = [w.week.strftime("%m-%d") for w in weeks]
        ys = [float("nan") if w.sla.value is None else w.sla.value for w in weeks]
        if all(y != y for y in ys):
            continue
        drawn = True
        label = r.reps.get(g, g)
        ax.plot(xs, ys, marker="o", color=PALETTE[i % len(PALETTE)], label=label, linewidth=1.8)
    if not drawn:
        _empty(ax)
        return fig
    ax.set_ylim(0, 105)
    ax.set_ylabel("SLA met %")
    fig.legend(loc="outside upper center", frameon=False, ncols=min(4, len(groups)))
    return fig


def first_response(r: TeamReport) -> Figure:
    """How many first replies came within each band of (business) hours."""
    fig = _figure()
    ax = fig.add_subplot()
    _style(ax)
    if not r.first_response_hours:
        _empty(ax)
        return fig
    counts = [sum(1 for h in r.first_response_hours if lo <= h < hi) for lo, hi, _ in BINS]
    bars = ax.bar([b[2] for b in BINS], counts, color=PALETTE[0])
    ax.bar_label(bars, padding=2)
    ax.set_ylabel("first replies")
    ax.set_xlabel(f"time to first reply (n={len(r.first_response_hours)})")
    return fig


def nps_csat(r: TeamReport) -> Figure:
    """NPS (-100..100) and CSAT % (0..100) per week, each point labelled with its n."""
    fig = _figure(6.4, 2.8)
    left, right = fig.subplots(1, 2)
    for ax, name, attr, low in ((left, "NPS", "nps", -100), (right, "CSAT %", "csat", 0)):
        _style(ax)
        weeks = [w for w in r.survey_weeks if getattr(w, attr).value is not None]
        if not weeks:
            _empty(ax, f"no {name.split()[0]} answers")
            continue
        xs = [w.week.strftime("%m-%d") for w in weeks]
        ys = [getattr(w, attr).value for w in weeks]
        color = PALETTE[0] if attr == "nps" else PALETTE[2]
        ax.plot(xs, ys, marker="o", color=color, linewidth=1.8)
        for x, y, w in zip(xs, ys, weeks, strict=True):
            ax.annotate(f"n={getattr(w, attr).n}", (x, y), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7, color="#6b7280")  # fmt: skip
        ax.set_ylim(low, 110)
        ax.set_title(name, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelrotation=45)
    return fig


def funnel(r: TeamReport) -> Figure:
    """Follow-up cadences: steps sent, replies after each step, meetings booked."""
    fig = _figure()
    ax = fig.add_subplot()
    _style(ax)
    row = r.funnel_row()
    if row is None or not row.cadences:
        _empty(ax)
        return fig
    labels = ["step 1 sent", "step 2 sent", "step 3 sent", "replied", "meeting booked"]
    values = [*row.steps_sent, sum(row.replied_after), row.meetings]
    colors = [PALETTE[0]] * 3 + [PALETTE[2], PALETTE[1]]
    bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.bar_label(bars, padding=3)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.8)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"follow-up cadences (n={row.cadences})")
    return fig


CHARTS: dict[str, Callable[[TeamReport], Figure]] = {
    "sla-trend": sla_trend,
    "first-response": first_response,
    "nps-csat": nps_csat,
    "funnel": funnel,
}


def svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog or DOCTYPE)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = re.sub(r"^.*?(?=<svg)", "", buf.getvalue(), count=1, flags=re.DOTALL)
    # The RDF block names the Dublin Core vocabularies; a page needs none of it.
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)


def png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
