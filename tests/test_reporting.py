"""The report and the weekly digest over the demo with its weeks of history."""

from __future__ import annotations

import base64
import csv
import email
import json
import os
import re
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import config, digest, reporting
from agent.cli import main
from agent.demo import run_demo
from agent.demo.relationship import ReportRound, report_round
from agent.store import Store

NOW = "2026-11-25T08:00Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReportRound]:
    out = tmp_path_factory.mktemp("demo")
    result = run_demo(out)
    return out, report_round(out, result.now)


def test_the_demo_writes_the_report_and_one_digest_per_lead(demo: tuple[Path, ReportRound]) -> None:
    out, rnd = demo
    assert rnd.report == out / "report.html"
    assert sorted(p.name for p in rnd.digests) == ["digest-meera.eml", "digest-sofia.eml"]
    assert [p.name for p in rnd.summaries] == ["summary-asha.eml"]  # Asha opted in
    assert rnd.answers >= 20


def test_survey_answers_in_several_scripts_are_stored_with_scores(
    demo: tuple[Path, ReportRound],
) -> None:
    out, _ = demo
    settings = config.load(out / "config.toml")
    store = Store.open(settings.database.url)
    try:
        rows = store.survey_answers()
    finally:
        store.close()
    scored = {
        (r["client"], r["comment"] or "", r["score"]) for r in rows if r["status"] == "scored"
    }
    assert ("priya-reddy", "", 10) in scored  # "౧౦"
    assert ("fatima-al-sayed", "", 10) in scored  # "١٠"
    ambiguous = [r for r in rows if r["status"] == "ambiguous"]
    assert [(r["client"], r["why"]) for r in ambiguous] == [("ravi-menon", "several numbers: 7, 8")]


def test_report_json_gives_every_figure_with_its_n(demo: tuple[Path, ReportRound]) -> None:
    out, _ = demo
    result = CliRunner().invoke(
        main, ["report", "--config", str(out / "config.toml"), "--now", NOW, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    everyone = next(s for s in data["surveys"]["figures"] if s["dimension"] == "all")
    assert everyone["nps"]["n"] >= 5 and everyone["nps"]["value"] is not None
    assert {s["dimension"] for s in data["surveys"]["figures"]} == {
        "all",
        "rep",
        "team",
        "tier",
        "segment",
    }
    funnel = next(f for f in data["follow_ups"] if f["dimension"] == "all")
    assert funnel["steps_sent"][0] >= funnel["steps_sent"][1] >= funnel["steps_sent"][2] > 0
    assert funnel["meetings_booked"] > 0
    quiet = {q["client"] for q in data["going_quiet"]}
    assert {"ravi-menon", "julien-moreau"} <= quiet
    assert all(q["last_exchange"]["subject"] for q in data["going_quiet"])
    # A figure over fewer than min_n items carries its n but no value.
    hidden = [s["nps"] for s in data["surveys"]["figures"] if s["nps"]["hidden"]]
    assert hidden and all(h["value"] is None and h["n"] < data["min_n"] for h in hidden)


def test_report_csv_and_html_are_written(demo: tuple[Path, ReportRound], tmp_path: Path) -> None:
    out, _ = demo
    page = tmp_path / "r.html"
    result = CliRunner().invoke(
        main,
        ["report", "--config", str(out / "config.toml"), "--now", NOW,
         "--html", str(page), "--csv", str(tmp_path / "csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    files = {p.name for p in (tmp_path / "csv").iterdir()}
    assert {"sla.csv", "surveys.csv", "follow_ups.csv", "going_quiet.csv"} <= files
    text = (tmp_path / "csv" / "surveys.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert any(r["dimension"] == "all" and r["nps"] for r in rows)
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 4
    assert set(re.findall(r"https?://[^\s\"'<]+", html)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }
    assert "<script" not in html


def _message(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_a_digest_is_in_the_leads_language_with_its_charts_inline(
    demo: tuple[Path, ReportRound],
) -> None:
    out, _ = demo
    msg = _message(out / "digest-meera.eml")
    assert msg["To"] == "Meera Iyer <meera@acme.example>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "समाप्त सप्ताह" in str(msg["Subject"])  # Hindi, Meera's language
    html = msg.get_body(("html",))
    assert html is not None
    cids = set(re.findall(r'src="cid:([^"]+)"', html.get_content()))
    images = {
        str(p["Content-ID"]).strip("<>"): p.get_payload(decode=True)
        for p in msg.walk()
        if p.get_content_type() == "image/png"
    }
    assert len(cids) == 3 and cids == set(images)
    assert all(data.startswith(b"\x89PNG") and len(data) > 5000 for data in images.values())
    sofia = _message(out / "digest-sofia.eml")
    assert "la semana hasta" in str(sofia["Subject"])


def test_a_digest_goes_out_once_a_week_however_often_it_is_planned(
    demo: tuple[Path, ReportRound],
) -> None:
    out, _ = demo
    config_path = out / "config.toml"
    again = reporting.digests(config_path, now=NOW)
    assert again == []  # this week's are sent: nothing is planned or sent twice
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        weekly = [r for r in store.outbox() if r["kind"] == "weekly"]
    finally:
        store.close()
    assert sorted(r["status"] for r in weekly) == ["sent", "sent", "sent"]
    assert len({r["key"] for r in weekly}) == 3


def test_the_digest_slot_is_the_leads_day_and_hour_in_the_leads_zone() -> None:
    reader = digest.Reader(
        "lead", "Meera", "m@x", "hi", "Asia/Kolkata", "mon", 8, ("asha",), "asha"
    )
    wednesday = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert digest.slot(reader, wednesday) == datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
    # Monday 02:00 UTC is 07:30 in Kolkata: this week's slot has not come, last week's stands.
    early = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert digest.slot(reader, early) == datetime(2026, 11, 16, 2, 30, tzinfo=UTC)
    assert digest.key(reader, digest.slot(reader, wednesday)) == "weekly/lead/m@x/2026-W48"
    # Across the end of DST in Europe the hour stays 08:00 local.
    berlin = digest.Reader("lead", "S", "s@x", "de", "Europe/Berlin", "mon", 8, ("l",), "l")
    assert digest.slot(berlin, datetime(2026, 10, 27, tzinfo=UTC)) == datetime(
        2026, 10, 26, 7, 0, tzinfo=UTC
    )


def test_a_bad_digest_key_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[report]\ndigest_day = "someday"\ndigest_hour = 25\n', encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    where = [p.where for p in caught.value.problems]
    assert any("report.digest_day" in w for w in where)
    assert any("report.digest_hour" in w for w in where)
    assert all("\n" not in str(p) for p in caught.value.problems)


# -- in a real browser -------------------------------------------------------------------------


def _screenshot(page: object, name: str) -> None:
    """Keep a screenshot for a person to look at, when FOLLOWUP_SCREENSHOTS names a folder."""
    folder = os.environ.get("FOLLOWUP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)  # type: ignore[attr-defined]


def test_the_report_page_loads_offline_with_every_chart_drawn(open_page, demo) -> None:  # type: ignore[no-untyped-def]
    _, rnd = demo
    page, log = open_page(viewport={"width": 1200, "height": 900})
    page.goto(rnd.report.as_uri())
    charts = page.locator("figure[data-chart]")
    assert sorted(charts.evaluate_all("els => els.map(e => e.dataset.chart)")) == [
        "first-response",
        "funnel",
        "nps-csat",
        "sla-trend",
    ]
    for i in range(charts.count()):
        svg = charts.nth(i).locator("svg")
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        # Drawn marks, not an empty frame: lines, bars and points are paths.
        assert svg.locator("path").count() > 10
    assert page.locator("table[data-list=going-quiet] tbody tr").count() >= 2
    _screenshot(page, "report-page.png")
    assert log.clean, log


def _digest_html(path: Path) -> str:
    """The digest's HTML with each cid: image resolved, as a mail client shows it."""
    msg = _message(path)
    body = msg.get_body(("html",))
    assert body is not None
    html = body.get_content()
    for part in msg.walk():
        if part.get_content_type() == "image/png":
            data = base64.b64encode(part.get_payload(decode=True)).decode("ascii")
            cid = str(part["Content-ID"]).strip("<>")
            html = html.replace(f"cid:{cid}", f"data:image/png;base64,{data}")
    return html


@pytest.mark.parametrize(
    ("name", "charts"), [("digest-meera.eml", 3), ("digest-sofia.eml", 3), ("summary-asha.eml", 2)]
)
def test_the_digest_shows_every_chart_in_a_browser(open_page, demo, name: str, charts: int) -> None:  # type: ignore[no-untyped-def]
    out, _ = demo
    page, log = open_page(viewport={"width": 760, "height": 900})
    page.set_content(_digest_html(out / name))
    images = page.locator("img")
    assert images.count() == charts
    widths = images.evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : 0)")
    assert all(w > 300 for w in widths), widths
    _screenshot(page, "report-" + name.replace(".eml", ".png"))
    assert log.clean, log


def test_a_summary_for_a_disabled_mailbox_is_reported_by_the_config_check(tmp_path: Path) -> None:
    from agent.configcheck import setup_problems

    settings = config.parse_settings(
        {
            "mailboxes": [
                {"name": "asha", "provider": "gmail", "address": "asha@acme.example",
                 "rep_name": "Asha", "zone": "Asia/Kolkata", "enabled": False,
                 "weekly_summary": True}
            ]
        },
        "config.toml",
    )  # fmt: skip
    problems = setup_problems(settings, "config.toml")
    assert [p.where for p in problems] == ["mailboxes[asha].weekly_summary"]
    assert "enabled = true" in str(problems[0]) and "\n" not in str(problems[0])


def test_next_weeks_digests_go_out_once_from_the_command_and_the_worker(
    demo: tuple[Path, ReportRound],
) -> None:
    """Last in this file: it moves the shared demo a week on."""
    from agent.worker import Worker

    out, _ = demo
    config_path = out / "config.toml"
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # after every reader's Monday slot
    result = CliRunner().invoke(
        main, ["digest", "--config", str(config_path), "--now", "2026-11-30T09:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(": sent") == 3
    Worker(config_path, clock=lambda: monday, post=lambda url, payload: None).run(once=True)
    settings = config.load(config_path)
    store = Store.open(settings.database.url)
    try:
        weekly = [r for r in store.outbox() if r["kind"] == "weekly"]
    finally:
        store.close()
    assert len([r for r in weekly if r["key"].endswith("2026-W49")]) == 3
    assert all(r["status"] == "sent" for r in weekly)


def test_the_worker_plans_a_digest_in_its_slot_and_not_days_late(tmp_path: Path) -> None:
    reader = digest.Reader("lead", "M", "m@x", "en", "UTC", "mon", 8, ("a",), "a")
    slot = digest.slot(reader, datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    assert datetime(2026, 12, 2, 9, 0, tzinfo=UTC) - slot > digest.LATE  # Wednesday: too late
    assert datetime(2026, 11, 30, 9, 0, tzinfo=UTC) - slot <= digest.LATE


def test_names_and_subjects_from_mail_are_text_in_the_page_and_its_charts() -> None:
    from datetime import timedelta

    from agent import relationship as rel
    from agent import reportpage, teamreport

    now = datetime(2026, 11, 25, tzinfo=UTC)
    r = teamreport.TeamReport(
        team="<b>T</b>",
        since=now - timedelta(days=14),
        now=now,
        min_n=1,
        reps={"x": "<script>alert(1)</script>"},
        sla_rep=[],
        sla_team=[],
        sla_weeks=[rel.WeekSla("x", rel.week_of(now), rel.Value(50.0, 2))],
        first_response_hours=[],
        surveys=[],
        survey_weeks=[],
        answers=[],
        funnel=[],
        to_meeting=[],
        quiet=[
            rel.Quiet(
                "c", "<img src=x onerror=alert(1)>", "x", "-", "-", now, 20, 7, "s", now, "client"
            )
        ],
    )
    html = reportpage.render(r)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the legend in the SVG, as text
    # A period with no data still draws every chart, saying so.
    assert html.count("<svg") == 4 and "no data in this period" in html
