from __future__ import annotations

import json
import re
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agent.cli import main


def test_demo_json_shows_reminders_escalations_and_writes_eml(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    actions = json.loads(result.output)
    kinds = {a["kind"] for a in actions}
    assert {"reminder", "escalation", "follow_up", "thank_you", "feedback"} <= kinds
    by_client: dict = {}
    for a in actions:  # the first of each kind per client: actions come sorted by due time
        by_client.setdefault((a["client"], a["kind"]), a)
    # Thanksgiving in New York: Emily's first follow-up waits for Monday.
    assert by_client[("emily-clark", "follow_up")]["due"] == "2026-11-30T15:00:00Z"
    # Carlos's out-of-office gives a return date: his follow-up waits for it.
    assert by_client[("carlos-ruiz", "follow_up")]["due"].startswith("2026-11-30")
    assert by_client[("kenji-sato", "thank_you")]["language"] == "ja"
    for a in actions:
        assert {"kind", "client", "mailbox", "due", "language", "subject"} <= set(a)
        assert a["due"].endswith("Z")
    sent = [a for a in actions if a["status"] == "sent"]
    assert any(a["client"] == "fatima-al-sayed" and a["kind"] == "escalation" for a in sent)
    emls = sorted((out / "outbox").glob("*.eml"))
    # one .eml per message: each note, and one digest for the team notes due together
    mail = [a for a in actions if a["kind"] != "webhook" and a["status"] != "in digest"]
    assert len(emls) == len([a for a in mail if a["kind"] != "digest" or a["to"]])
    assert any(a["kind"] == "digest" and a["status"] == "sent" for a in actions)
    assert any(a["status"] == "in digest" for a in actions)
    sent_hooks = [a for a in actions if a["kind"] == "webhook" and a["status"] == "sent"]
    assert len(sorted((out / "outbox").glob("*webhook.json"))) == len(sent_hooks) >= 1
    msg = message_from_bytes(emls[0].read_bytes(), policy=default)
    assert msg["X-Followup-Key"] and msg["Subject"]


def test_demo_answers_a_chosen_time_with_an_invitation_in_the_clients_language(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    actions = json.loads(result.output)
    # Beatriz picked "a segunda opção, quinta-feira às 9h" from the proposal Asha sent Monday.
    [proposal] = [a for a in actions if a["client"] == "beatriz-costa" and a["kind"] == "proposal"]
    assert proposal["status"] == "sent" and proposal["due"] == "2026-11-23T12:00:00Z"
    [invite] = [a for a in actions if a["kind"] == "invite" and a["client"] == "beatriz-costa"]
    assert invite["language"] == "pt"
    assert invite["key"].endswith("/20261126T1200Z")  # Thursday 09:00 in São Paulo
    [eml] = sorted((out / "outbox").glob("*-invite-beatriz-costa.eml"))
    msg = message_from_bytes(eml.read_bytes(), policy=default)
    assert msg["Content-Language"] == "pt" and msg["Subject"].startswith("Re: ")
    [calendar] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_param("method") == "REQUEST"
    ics = calendar.get_content()
    assert "METHOD:REQUEST" in ics and "DTSTART;TZID=America/Sao_Paulo:20261126T090000" in ics
    assert 'ORGANIZER;CN="Asha Rao":mailto:asha@acme.example' in ics
    assert "mailto:beatriz@costaalimentos.com.br" in ics
    text = msg.get_body(("plain",)).get_content()
    assert "quinta-feira, 26 de novembro de 2026 09:00" in text


def test_demo_moves_a_meeting_with_an_update_and_offers_times_in_a_friday_saturday_week(
    tmp_path: Path,
) -> None:
    import holidays
    import icalendar

    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    actions = [a for a in json.loads(result.output) if a["client"] == "noa-levi"]
    # Noa is in Israel: her week, from the holidays package, is not Saudi Arabia's table.
    week = holidays.country_holidays("IL", years=2026)
    assert week.weekend != {5, 6}, "premise: Israel's weekend is not Saturday-Sunday"
    emls = sorted((out / "outbox").glob("*-noa-levi.eml"))
    events = []
    for eml in emls:
        msg = message_from_bytes(eml.read_bytes(), policy=default)
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                events.append(icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")[0])
    invites = [a for a in actions if a["kind"] == "invite"]
    assert [a["status"] for a in invites] == ["sent", "drafted"]
    # The first invitation went out; the second, for the new time, is the same event updated.
    first, moved = events
    assert str(first["UID"]) == str(moved["UID"])
    assert (int(first["SEQUENCE"]), int(moved["SEQUENCE"])) == (0, 1)
    assert moved["DTSTART"].dt != first["DTSTART"].dt
    day = moved["DTSTART"].dt.astimezone(ZoneInfo("Asia/Jerusalem")).date()
    # A day a Saturday-Sunday week would close, open in hers.
    assert week.is_working_day(day) and day.weekday() >= 5


def test_demo_prints_the_timeline_with_reasons(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "What the agent does, and why" in result.output
    assert "escalation" in result.output and "reminder" in result.output
    assert "Invitations" in result.output and "beatriz-costa" in result.output


def test_rules_check_reports_problems_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[promise]]\nname = "x"\nkind = "first_reply"\ntarget = "0h"\n')
    result = CliRunner().invoke(
        main, ["rules", "check", str(bad), "--config", str(tmp_path / "none.toml")]
    )
    assert result.exit_code == 1
    good = CliRunner().invoke(
        main,
        [
            "rules",
            "check",
            str(Path(__file__).parent.parent / "rules"),
            "--config",
            str(tmp_path / "none.toml"),
        ],
    )
    assert good.exit_code == 0, good.output


def test_connect_outlook_names_the_mailbox_that_is_not_an_outlook_one() -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    result = CliRunner().invoke(
        main, ["connect", "outlook", "--mailbox", "asha", "--config", str(example)]
    )
    assert result.exit_code == 1
    assert "mailboxes[asha]" in result.output and "client_id" in result.output


def test_slots_cli_answers_the_example_request_in_json() -> None:
    example = Path(__file__).parent.parent / "agent" / "demo" / "slots_request.json"
    result = CliRunner().invoke(main, ["slots", "--request", str(example), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert len(answer["slots"]) == 3
    assert all(s["start"].endswith("Z") or s["start"].endswith("+00:00") for s in answer["slots"])


def test_the_shipped_slots_example_runs_and_prints_its_request() -> None:
    answer = CliRunner().invoke(main, ["slots", "--example", "--json"])
    assert answer.exit_code == 0, answer.output
    assert len(json.loads(answer.output)["slots"]) == 3
    request = CliRunner().invoke(main, ["slots", "--example", "--print-request"])
    assert json.loads(request.output)["duration_minutes"] == 45
    neither = CliRunner().invoke(main, ["slots"])
    assert neither.exit_code != 0 and "--example" in neither.output


def test_slots_cli_reports_every_problem_in_a_bad_request(tmp_path: Path) -> None:
    bad = tmp_path / "req.json"
    bad.write_text(
        json.dumps(
            {
                "duration_minutes": 30,
                "window": {"start": "x", "end": "y"},
                "attendees": [{"name": "A", "zone": "Mars/Base"}],
            }
        )
    )
    result = CliRunner().invoke(main, ["slots", "--request", str(bad)])
    assert result.exit_code == 1
    assert "Mars/Base" in result.output and "window" in result.output


def test_templates_check_passes_on_the_shipped_templates_and_fails_on_a_broken_one(
    tmp_path: Path,
) -> None:
    none = str(tmp_path / "none.toml")
    shipped = Path(__file__).parent.parent / "templates"
    ok = CliRunner().invoke(main, ["templates", "check", str(shipped), "--config", none])
    assert ok.exit_code == 0, ok.output
    broken = tmp_path / "templates" / "reminder"
    broken.mkdir(parents=True)
    (broken / "en.j2").write_text(
        "{% block subject %}Hi {{ nobody.knows }}{% endblock %}\n{% block text %}x{% endblock %}\n"
    )
    bad = CliRunner().invoke(
        main, ["templates", "check", str(tmp_path / "templates"), "--config", none]
    )
    assert bad.exit_code == 1 and "en.j2" in bad.output


def test_demo_ends_with_the_worker_taking_over_an_hour_later(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "An hour later: one round of the worker" in text
    # At 09:00 the escalation about Priya and the reminder about Emily fall due; the worker
    # sends both, and nothing the demo already sent goes out again.
    assert re.search(r"escalation\s+│\s+asha\s+│\s+priya-reddy.*│\s+sent", text)
    # Then the team steers: a snoozed thread, an opt-out and a mailbox in shadow mode, each
    # honoured by the next round.
    assert "The team in control" in text
    assert "snoozed until" in text and "the client opted out" in text
    assert "would have sent" in text and "shadowed" in text
    assert re.search(r"reminder\s+│\s+lukas\s+│\s+emily-clark.*│\s+sent", text)
    assert "asha incremental, lukas incremental, omar incremental" in text
    assert "Run the service on the demo: followup run --config" in text


def test_the_demos_second_worker_round_plans_only_the_threads_that_changed(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from agent.demo import run_demo, service_round

    demo = run_demo(tmp_path / "demo")
    rnd = service_round(demo.out, demo.now + timedelta(hours=1))
    first, second = rnd.planned
    assert first >= len({(p.mailbox, p.thread_id) for p in demo.promises}) > 0
    assert 0 < second < first <= rnd.threads


def test_demo_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "notes.txt").write_text("a rep's notes")
    result = CliRunner().invoke(main, ["demo", "--out", str(mine), "--json"])
    assert result.exit_code == 1
    assert "not made by followup demo" in result.output
    assert (mine / "notes.txt").read_text() == "a rep's notes"
    # its own folder is emptied and written again, run after run
    out = tmp_path / "demo"
    for _ in range(2):
        again = CliRunner().invoke(main, ["demo", "--out", str(out), "--json"])
        assert again.exit_code == 0, again.output


def test_the_demo_posts_to_no_real_webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent import outbox, webhooks

    posted: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        posted.append(args)
        raise AssertionError("the demo posted to a real URL")

    monkeypatch.setattr(webhooks, "post_json", refuse)
    monkeypatch.setattr(outbox, "post_json", refuse)
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert posted == []
    assert sorted((tmp_path / "demo" / "outbox").glob("worker-*-webhook.json"))


def test_demo_holds_a_german_clients_follow_up_to_her_day_month_return_date(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--json"])
    assert result.exit_code == 0, result.output
    anna = [
        a
        for a in json.loads(result.output)
        if a["client"] == "anna-schmidt" and a["kind"] == "follow_up"
    ]
    # "bis zum 10.12." is 10 December in German; read month first it would be 12 October,
    # already past, and the follow-up would go out on Friday 27 November while she is away.
    assert anna[0]["due"].startswith("2026-12-10")
    assert (
        "held to Thu 10 Dec 09:00 Europe/Berlin by an out-of-office until 10 Dec"
        in (anna[0]["reason"])
    )


def test_demo_shows_a_bounce_in_another_thread_stopping_a_follow_up(tmp_path: Path) -> None:
    """Lukas's mail to Markus Weber, who has left, comes back in a thread of its own: no note
    follows it, and the reason names the failed address."""
    from agent.demo import run_demo

    demo = run_demo(tmp_path / "demo")
    stopped = [d for d in demo.decisions if d.decision == "follow-ups stopped: bounce"]
    assert len(stopped) == 1
    assert "mail to m.weber@schmidt-maschinenbau.de failed" in stopped[0].reason
    assert "'Mail delivery failed: returning message to sender'" in stopped[0].reason
    assert not any(to.email.startswith("m.weber@") for a in demo.actions for to in a.to)


def _plain(out: Path, pattern: str) -> str:
    [eml] = sorted((out / "outbox").glob(pattern))
    msg = message_from_bytes(eml.read_bytes(), policy=default)
    return msg.get_body(("plain",)).get_content()


def test_demo_notes_read_as_written_in_the_clients_language(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    actions = json.loads(result.output)
    # Priya writes Telugu: the thank-you after her call with Asha is in Telugu.
    [priya] = [a for a in actions if a["client"] == "priya-reddy" and a["kind"] == "thank_you"]
    assert priya["language"] == "te"
    assert _plain(out, "*-thank_you-priya-reddy.eml").startswith("నమస్కారం Priya గారు,\n")
    # The formal Arabic salutation, gendered from the clients file; Omar and Fatima are both on
    # Riyadh time, so each proposed time is written once, without a bracketed repeat.
    arabic = _plain(out, "*-proposal-fatima-al-sayed.eml")
    assert arabic.startswith("الأستاذة فاطمة السيد المحترمة،\nتحية طيبة وبعد،")
    times = arabic.split("\n\n")[2]
    assert times.count("\n- ") == 2 and "(" not in times
    # The Japanese invitation names the rep's company and greets by the family name.
    japanese = _plain(out, "*-invite-kenji-sato.eml")
    assert "佐藤様" in japanese and "Acme AnalyticsのAsha Raoです。" in japanese
    # One zone on both sides is named once in the reasons.
    for a in actions:
        zones = re.findall(r"times that suit (\S+) and (\S+)", a["reason"])
        assert all(x != y for x, y in zones), a["reason"]
