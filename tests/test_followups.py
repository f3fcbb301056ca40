from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.businesstime import BusinessCalendar, parse_shifts
from agent.cadences import parse_cadences
from agent.followups import FollowupPlan, into_window, plan, return_date
from agent.matching import Directory, build_threads
from agent.model import Action, ActionKind, Address, Attendee, Client, Event, Message
from agent.pipeline import client_calendar
from agent.promises import Rep
from agent.rules import parse_rules

RULES = """
[[promise]]
name = "reply"
kind = "first_reply"
target = "8h"

[[follow_up]]
name = "chase"
after = "3d"
steps = 3
out_of_office_hold = "3d"
min_gap = "24h"

[[thank_you]]
name = "thanks"
delay = "2h"
feedback = true
delay_feedback = "1d"
"""
REP = Rep(
    mailbox="sam",
    name="Sam Lee",
    address="sam@acme.example",
    addresses=frozenset({"sam@acme.example", "s.lee@acme.example"}),
    language="en",
    zone="America/New_York",
    calendar=BusinessCalendar.simple("America/New_York", country="US"),
)
# Mexico City: UTC-6 all year; 09:00-17:00 local is 15:00-23:00 UTC.
CARLOS = Client(
    key="ruiz",
    name="Carlos Ruiz",
    emails=frozenset({"carlos@ruiz.mx"}),
    domains=frozenset({"ruiz.mx"}),
    company="Ruiz Industrial",
    language="es",
    zone="America/Mexico_City",
    country="MX",
)
ANNA = Client(
    key="hansa",
    name="Anna Becker",
    emails=frozenset({"anna@hansa.de"}),
    domains=frozenset({"hansa.de"}),
    company="Hansa GmbH",
    language="de",
    zone="Europe/Berlin",
    country="DE",
)
# California keeps Thanksgiving (Thu 26 Nov 2026) and the day after.
JEN = Client(
    key="pacific",
    name="Jen Park",
    emails=frozenset({"jen@pacific.example"}),
    domains=frozenset({"pacific.example"}),
    company="Pacific Supply",
    language="en",
    zone="America/Los_Angeles",
    country="US",
    subdivision="CA",
)
CLIENTS = (CARLOS, ANNA, JEN)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def msg(
    n: int,
    sender: str,
    to: str,
    when: datetime,
    *,
    thread: str = "t1",
    subject: str = "Propuesta",
    body: str = "Le envío la propuesta. ¿Qué le parece?",
    refs: Sequence[str] = (),
    **headers: str,
) -> Message:
    return Message(
        mailbox="sam",
        provider_id=f"p{n}",
        thread_id=thread,
        message_id=f"<m{n}@x>",
        sender=Address(sender, "Sam Lee" if sender.startswith("sam") else ""),
        to=(Address(to, "Carlos Ruiz" if to == "carlos@ruiz.mx" else ""),),
        date=when,
        subject=subject,
        references=tuple(refs),
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        body=body,
    )


ASKED = msg(1, "carlos@ruiz.mx", "sam@acme.example", at(18, 16), body="¿Nos manda una propuesta?")
# Thursday 19 Nov 10:00 in Mexico City.
ANCHOR = msg(2, "sam@acme.example", "carlos@ruiz.mx", at(19, 16), refs=["<m1@x>"])


def run(
    messages: Iterable[Message],
    now: datetime,
    events: Iterable[Event] = (),
    *,
    rules: str = RULES,
    clients: Sequence[Client] | Directory = CLIENTS,
    reps: dict[str, Rep] | None = None,
    **kwargs: Any,
) -> FollowupPlan:
    directory = (
        clients
        if isinstance(clients, Directory)
        else Directory(
            list(clients), team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses
        )
    )
    threads = build_threads(messages, {"sam": REP.addresses}, directory)
    ruleset, problems = parse_rules([("r.toml", rules)])
    cadences, more = parse_cadences(ruleset.raw)
    assert problems == more == []
    return plan(
        threads,
        events,
        cadences,
        reps or {"sam": REP},
        client_calendar,
        now,
        clients=clients,
        **kwargs,
    )


def follow_ups(result: FollowupPlan) -> list[Action]:
    return [a for a in result.actions if a.kind is ActionKind.FOLLOW_UP]


def keys_of(anchor: str, thread: str = "t1") -> set[str]:
    return {f"follow_up/sam/{thread}/{anchor}/{step}" for step in (1, 2, 3)}


def decided(result: FollowupPlan) -> list[str]:
    return [d.decision for d in result.decisions]


# -- the cadence ------------------------------------------------------------------------------


def test_three_steps_three_business_days_apart_in_the_clients_calendar() -> None:
    result = run([ASKED, ANCHOR], at(20, 12))
    steps = follow_ups(result)
    assert [a.key for a in steps] == [f"follow_up/sam/t1/<m2@x>/{n}" for n in (1, 2, 3)]
    # Tue 24 Nov, Fri 27 Nov, Wed 2 Dec, each at 10:00 in Mexico City.
    assert [a.due for a in steps] == [at(24, 16), at(27, 16), at(2, 16, month=12)]
    first = steps[0]
    assert first.to == (Address("carlos@ruiz.mx", "Carlos Ruiz"),)
    assert first.reply_to_message_id == "<m2@x>"
    assert first.references == ("<m1@x>", "<m2@x>")
    assert first.subject == "Propuesta"
    assert first.language == "es"
    assert first.template == "follow_up"
    assert first.rule == "chase"
    assert first.client == "ruiz"
    assert first.context["client"]["first_name"] == "Carlos"
    assert first.context["client"]["company"] == "Ruiz Industrial"
    assert first.context["rep"]["name"] == "Sam Lee"
    assert first.context["thread"] == {"subject": "Propuesta"}
    assert [a.context["step"] for a in steps] == [1, 2, 3]
    assert first.context["last_sent"] == at(19, 16)
    assert first.reason == (
        "no reply from Carlos Ruiz for 3 business days in America/Mexico_City since "
        "Thu 19 Nov 2026; follow-up 1 of 3"
    )
    assert result.obsolete == frozenset()


def test_planning_twice_gives_the_same_keys_and_times() -> None:
    first = run([ASKED, ANCHOR], at(20, 12))
    again = run([ANCHOR, ASKED], at(20, 12))
    assert [(a.key, a.due) for a in first.actions] == [(a.key, a.due) for a in again.actions]


def test_languages_callback_chooses_the_language() -> None:
    result = run([ASKED, ANCHOR], at(20, 12), languages=lambda thread: "es-MX")
    assert {a.language for a in result.actions} == {"es-MX"}


def test_rule_mode_is_reported_per_key() -> None:
    rules = RULES.replace('min_gap = "24h"', 'min_gap = "24h"\nmode = "send"')
    result = run([ASKED, ANCHOR], at(20, 12), rules=rules)
    assert result.modes == {a.key: "send" for a in follow_ups(result)}
    assert run([ASKED, ANCHOR], at(20, 12)).modes == {}


def test_a_rep_message_that_needs_no_answer_starts_no_cadence() -> None:
    thanks = dataclasses.replace(ANCHOR, body="¡Muchas gracias!")
    result = run([ASKED, thanks], at(20, 12))
    assert follow_ups(result) == []
    assert decided(result) == ["no follow-up: the rep's message needs no answer"]


def test_no_matching_rule_is_a_decision() -> None:
    rules = RULES.replace('name = "chase"', 'name = "chase"\nmatch = { tier = ["gold"] }')
    result = run([ASKED, ANCHOR], at(20, 12), rules=rules)
    assert follow_ups(result) == []
    assert "no follow-up: no rule matches" in decided(result)


# -- stopping ---------------------------------------------------------------------------------


def test_a_colleague_at_the_client_answering_in_another_thread_stops_it() -> None:
    maria = msg(
        3,
        "maria@ruiz.mx",
        "sam@acme.example",
        at(23, 15),
        thread="t2",
        subject="Pedido",
        body="Carlos me pidió que le respondiera: vamos adelante.",
    )
    result = run([ASKED, ANCHOR, maria], at(23, 18))
    assert follow_ups(result) == []
    [decision] = result.decisions
    assert decision.decision == "follow-ups stopped: client replied"
    assert "maria@ruiz.mx" in decision.reason and "'Pedido'" in decision.reason
    assert decision.message_id == "<m2@x>"
    assert keys_of("<m2@x>") <= result.obsolete


def test_a_reply_before_now_only_counts_once_it_has_arrived() -> None:
    reply = msg(3, "carlos@ruiz.mx", "sam@acme.example", at(25, 15), body="Sí, adelante.")
    assert len(follow_ups(run([ASKED, ANCHOR, reply], at(24, 12)))) == 3
    assert follow_ups(run([ASKED, ANCHOR, reply], at(25, 16))) == []


def demo(status: str = "confirmed", partstat: str = "ACCEPTED", **kw: Any) -> Event:
    fields: dict[str, Any] = dict(
        mailbox="sam",
        provider_id="e1",
        summary="Demo Ruiz",
        start=at(23, 16),
        end=at(23, 17),
        status=status,
        attendees=(
            Attendee("Carlos@Ruiz.mx", "Carlos Ruiz", partstat),
            Attendee("sam@acme.example", "Sam Lee", "ACCEPTED"),
        ),
        uid="demo-1",
    )
    fields.update(kw)
    return Event(**fields)


def test_a_booked_meeting_stops_it() -> None:
    result = run([ASKED, ANCHOR], at(21, 12), [demo()])
    assert follow_ups(result) == []
    assert "follow-ups stopped: meeting booked" in decided(result)
    assert keys_of("<m2@x>") <= result.obsolete


@pytest.mark.parametrize(
    ("status", "partstat"), [("cancelled", "ACCEPTED"), ("confirmed", "DECLINED")]
)
def test_a_cancelled_or_declined_meeting_does_not_stop_it(status: str, partstat: str) -> None:
    result = run([ASKED, ANCHOR], at(21, 12), [demo(status, partstat)])
    assert len(follow_ups(result)) == 3


def test_a_bounce_in_the_thread_stops_it() -> None:
    bounce = msg(
        3,
        "mailer-daemon@googlemail.com",
        "sam@acme.example",
        at(19, 16, 1),
        subject="Delivery Status Notification (Failure)",
        body="Address not found",
        content_type="multipart/report; report-type=delivery-status",
    )
    result = run([ASKED, ANCHOR, bounce], at(20, 12))
    assert follow_ups(result) == []
    assert decided(result) == ["follow-ups stopped: bounce"]


@pytest.mark.parametrize(
    "body", ["Please stop emailing me.", "Por favor, no me escriban más.", "Unsubscribe"]
)
def test_please_stop_in_any_language_stops_it(body: str) -> None:
    stop = msg(3, "carlos@ruiz.mx", "sam@acme.example", at(20, 15), body=body)
    result = run([ASKED, ANCHOR, stop], at(23, 18), [demo()])
    assert result.actions == ()
    assert "follow-ups stopped: asked to stop" in decided(result)
    assert "no thank-you: asked to stop" in decided(result)


def test_an_old_stop_request_in_another_thread_still_counts() -> None:
    stop = msg(
        0,
        "carlos@ruiz.mx",
        "sam@acme.example",
        at(2, 15),
        thread="t0",
        subject="Newsletter",
        body="Bitte keine weiteren E-Mails mehr.",
    )
    result = run([stop, ASKED, ANCHOR], at(20, 12))
    assert follow_ups(result) == []
    assert "follow-ups stopped: asked to stop" in decided(result)


def test_an_opted_out_client_gets_no_notes() -> None:
    marked = dataclasses.replace(CARLOS, opted_out=True)
    result = run([ASKED, ANCHOR], at(23, 18), [demo()], clients=(marked, ANNA, JEN))
    assert result.actions == ()
    assert decided(result) == ["follow-ups stopped: opted out", "no thank-you: opted out"]
    listed = run([ASKED, ANCHOR], at(20, 12), opted_out={"ruiz"})
    assert listed.actions == ()
    assert "on the opt-out list" in listed.decisions[0].reason


def test_a_new_rep_message_restarts_the_cadence_from_it() -> None:
    again = msg(3, "sam@acme.example", "carlos@ruiz.mx", at(23, 15), body="¿Pudo verla?")
    result = run([ASKED, ANCHOR, again], at(23, 18))
    assert {a.key for a in follow_ups(result)} == keys_of("<m3@x>")
    assert keys_of("<m2@x>") <= result.obsolete
    assert not keys_of("<m3@x>") & result.obsolete
    assert decided(result) == ["follow-ups restarted: the rep wrote again"]
    # Mon 23 Nov 09:00 in Mexico City + 3 business days = Thu 26 Nov 09:00.
    assert follow_ups(result)[0].due == at(26, 15)


def test_the_agents_own_note_is_not_a_new_rep_message() -> None:
    # Step 1 went out late, on Tue 24 at 12:00 local (the rep approved the draft then).
    note = msg(
        3,
        "sam@acme.example",
        "carlos@ruiz.mx",
        at(24, 18),
        body="Le escribo de nuevo.",
        x_followup_key="follow_up/sam/t1/<m2@x>/1",
    )
    result = run([ASKED, ANCHOR, note], at(25, 12))
    steps = follow_ups(result)
    assert {a.key for a in steps} == keys_of("<m2@x>")
    assert result.decisions == ()
    # Step 2 counts from when step 1 really went out: Fri 27 Nov 12:00 local.
    assert steps[1].due == at(27, 18)
    # Without the header, the outbox's record of the Message-ID says the same.
    bare = dataclasses.replace(note, headers={})
    known = run([ASKED, ANCHOR, bare], at(25, 12), notes={"<m3@x>": "follow_up/sam/t1/<m2@x>/1"})
    assert [(a.key, a.due) for a in known.actions] == [(a.key, a.due) for a in result.actions]


def test_an_agent_started_late_sends_one_overdue_step_and_spaces_the_rest() -> None:
    now = at(26, 20)  # Thu 26 Nov 14:00 local: step 1 was due Tue 24 and never went out
    steps = follow_ups(run([ASKED, ANCHOR], now))
    # Mexico City is open now, so the overdue step goes at once; the rest count from it.
    assert [a.due == now for a in steps] == [True, False, False]
    assert steps[1].due == at(1, 20, month=12)  # 3 business days after now
    assert "overdue" in steps[0].reason


def test_an_overdue_step_waits_for_the_clients_hours_not_the_night() -> None:
    # Step 1 was due Tue 24 Nov; the agent plans it on Sat 28 Nov at 02:00 in Mexico City.
    now = at(28, 8)
    steps = follow_ups(run([ASKED, ANCHOR], now))
    cal = client_calendar(CARLOS)
    assert steps[0].due == cal.next_open(now) > now
    assert cal.is_open(steps[0].due)


def test_an_overdue_step_keeps_to_the_send_window() -> None:
    rules = RULES.replace('min_gap = "24h"', 'min_gap = "24h"\nsend_window = "11:00-12:00"')
    now = at(26, 20)  # Thu 26 Nov 14:00 local: past today's window
    steps = follow_ups(run([ASKED, ANCHOR], now, rules=rules))
    local = steps[0].due.astimezone(client_calendar(CARLOS).tz)
    assert steps[0].due > now
    assert (local.hour, local.date().isoformat()) == (11, "2026-11-27")


def test_a_late_thank_you_goes_out_in_the_clients_hours() -> None:
    # The meeting ended Mon 23 Nov 12:00 in Mexico City, so the thank-you was due at 14:00;
    # the agent first looks on Tue 24 at 01:00.
    late = demo(start=at(23, 17), end=at(23, 18))
    now = at(24, 7)
    thank, survey = thanks_of(run([], now, [late]))
    cal = client_calendar(CARLOS)
    assert thank.due == cal.next_open(now) > now
    assert survey.due >= thank.due


def test_a_cadence_found_weeks_late_is_not_sent() -> None:
    old = dataclasses.replace(ANCHOR, date=at(1, 16, month=10))
    result = run([old], at(20, 12))
    assert follow_ups(result) == []
    assert decided(result) == ["follow-ups ended: too late"]


# -- out of office ----------------------------------------------------------------------------


def ooo(n: int, sender: str, when: datetime, body: str, subject: str) -> Message:
    return msg(
        n,
        sender,
        "sam@acme.example",
        when,
        body=body,
        subject=subject,
        auto_submitted="auto-replied",
    )


def test_an_out_of_office_in_spanish_holds_the_step_to_the_return_date() -> None:
    away = ooo(
        3,
        "carlos@ruiz.mx",
        at(20, 16, 5),
        "Estoy fuera de la oficina hasta el 30 de noviembre. Para urgencias, llame a Ana.",
        "Respuesta automática: Propuesta",
    )
    steps = follow_ups(run([ASKED, ANCHOR, away], at(20, 18)))
    assert steps[0].due == at(30, 15)  # Mon 30 Nov 09:00 in Mexico City
    assert "held to Mon 30 Nov 09:00 America/Mexico_City by an out-of-office until 30 Nov" in (
        steps[0].reason
    )
    assert steps[1].due == at(3, 15, month=12)
    assert len(steps) == 3


def test_an_out_of_office_in_german_holds_the_step_to_the_return_date() -> None:
    asked = msg(1, "anna@hansa.de", "sam@acme.example", at(18, 9), thread="b", body="Angebot?")
    anchor = msg(2, "sam@acme.example", "anna@hansa.de", at(19, 9), thread="b", body="Anbei.")
    away = ooo(
        3,
        "anna@hansa.de",
        at(20, 8),
        "Vielen Dank für Ihre Nachricht. Ich bin bis zum 30. November nicht im Büro.",
        "Abwesenheitsnotiz",
    )
    plain = follow_ups(run([asked, anchor], at(20, 9)))
    assert plain[0].due == at(24, 9)  # Tue 24 Nov 10:00 in Berlin
    held = follow_ups(run([asked, anchor, away], at(20, 9)))
    assert held[0].due == at(30, 8)  # Mon 30 Nov 09:00 in Berlin
    assert held[0].language == "de"


def test_a_german_numeric_return_date_is_read_day_first() -> None:
    asked = msg(1, "anna@hansa.de", "sam@acme.example", at(18, 9), thread="b", body="Angebot?")
    anchor = msg(2, "sam@acme.example", "anna@hansa.de", at(19, 9), thread="b", body="Anbei.")
    away = ooo(3, "anna@hansa.de", at(20, 8), "Ich bin bis zum 10.12. nicht im Büro.", "Abwesend")
    held = follow_ups(run([asked, anchor, away], at(20, 9)))
    # 10 December, not 12 October (which lies in the past and would hold nothing).
    assert held[0].due == at(10, 8, month=12)  # Thu 10 Dec 09:00 in Berlin
    assert "until 10 Dec" in held[0].reason


def test_a_last_day_away_holds_to_the_next_business_day() -> None:
    asked = msg(1, "anna@hansa.de", "sam@acme.example", at(18, 9), thread="b", body="Angebot?")
    anchor = msg(2, "sam@acme.example", "anna@hansa.de", at(19, 9), thread="b", body="Anbei.")
    text = "Ich bin bis einschließlich Freitag, 4. Dezember im Urlaub."
    away = ooo(3, "anna@hansa.de", at(20, 8), text, "Abwesend")
    held = follow_ups(run([asked, anchor, away], at(20, 9)))
    assert held[0].due == at(7, 8, month=12)  # Mon 7 Dec 09:00 in Berlin, not Fri 4 or Sat 5
    assert "last day" in held[0].reason


def test_a_date_without_a_return_cue_does_not_hold_a_step() -> None:
    text = "Out of office. Our next release is 2026-12-20; see the notes."
    away = ooo(3, "carlos@ruiz.mx", at(20, 16, 5), text, "Respuesta automática")
    steps = follow_ups(run([ASKED, ANCHOR, away], at(20, 18)))
    assert "no return date" in steps[0].reason


def test_an_out_of_office_without_a_date_holds_for_the_rules_hold() -> None:
    away = ooo(
        3,
        "carlos@ruiz.mx",
        at(20, 16, 5),
        "Estoy fuera de la oficina con acceso limitado al correo.",
        "Respuesta automática",
    )
    steps = follow_ups(run([ASKED, ANCHOR, away], at(20, 18)))
    # Fri 20 Nov 10:05 local + 3 business days = Wed 25 Nov 10:05 local.
    assert steps[0].due == at(25, 16, 5)
    assert "no return date" in steps[0].reason


def test_an_out_of_office_is_not_a_reply() -> None:
    away = ooo(3, "carlos@ruiz.mx", at(20, 16), "Out of office.", "Automatic reply")
    result = run([ASKED, ANCHOR, away], at(20, 18))
    assert len(follow_ups(result)) == 3
    assert result.decisions == ()


@pytest.mark.parametrize(
    ("text", "language", "zone", "day"),
    [
        ("I am out of the office until 30 November.", "en", "America/New_York", 30),
        ("Ich bin bis zum 30. November nicht im Büro.", "de", "Europe/Berlin", 30),
        ("Estoy fuera hasta el 30 de noviembre.", "es", "America/Mexico_City", 30),
        ("Je suis absent jusqu'au 30 novembre.", "fr", "Europe/Paris", 30),
        ("11月30日まで不在にしております。", "ja", "Asia/Tokyo", 30),
        ("I am away from 23 November to 27 November.", "", "Europe/London", 28),
    ],
)
def test_return_dates_are_read_in_many_languages(
    text: str, language: str, zone: str, day: int
) -> None:
    found = return_date(text, at(20, 12), zone, language)
    assert found is not None
    local = found.astimezone(BusinessCalendar.simple(zone).tz)
    assert (local.month, local.day, local.hour) == (11, day, 0)


@pytest.mark.parametrize(
    "text",
    [
        "Out of office. Limited access to email.",
        "I was out on 2 November and am catching up.",
        "Je suis absent.",
    ],
)
def test_no_return_date_when_none_lies_ahead(text: str) -> None:
    assert return_date(text, at(20, 12), "Europe/Paris", "") is None


# -- the client's calendar --------------------------------------------------------------------


def test_a_step_due_over_thanksgiving_waits_for_the_clients_monday() -> None:
    asked = msg(1, "jen@pacific.example", "sam@acme.example", at(20, 18), thread="j", body="Quote?")
    # Mon 23 Nov 10:00 in Los Angeles; Thu 26 and Fri 27 are holidays in California.
    anchor = msg(2, "sam@acme.example", "jen@pacific.example", at(23, 18), thread="j", body="Here.")
    steps = follow_ups(run([asked, anchor], at(23, 20)))
    assert steps[0].due == at(30, 18)  # Mon 30 Nov 10:00 in Los Angeles
    assert steps[0].language == "en"


def test_a_send_window_keeps_notes_inside_client_hours() -> None:
    rules = RULES.replace('min_gap = "24h"', 'min_gap = "24h"\nsend_window = "11:00-12:00"')
    steps = follow_ups(run([ASKED, ANCHOR], at(20, 12), rules=rules))
    # 10:00 local falls before the window: 11:00 local the same day.
    assert [a.due for a in steps] == [at(24, 17), at(27, 17), at(2, 17, month=12)]
    assert "moved to Tue 24 Nov 11:00" in steps[0].reason


def test_notes_to_one_client_keep_the_minimum_gap() -> None:
    other = msg(
        5,
        "sam@acme.example",
        "maria@ruiz.mx",
        at(19, 17),
        thread="t3",
        subject="Pedido",
        body="Aquí el pedido.",
    )
    result = run([ASKED, ANCHOR, other], at(20, 12))
    dues = sorted(a.due for a in follow_ups(result))
    assert len(dues) == 6
    assert all(b - a >= timedelta(hours=24) for a, b in itertools.pairwise(dues))
    pushed = next(a for a in result.actions if a.key == "follow_up/sam/t3/<m5@x>/1")
    assert pushed.due == at(25, 16)
    assert "to stay 24h after the previous note to ruiz" in pushed.reason
    assert pushed.to == (Address("maria@ruiz.mx"),)
    assert pushed.context["client"]["first_name"] == "Maria"  # not Carlos, the record's contact


# -- thank-yous -------------------------------------------------------------------------------


def thanks_of(result: FollowupPlan) -> list[Action]:
    return [a for a in result.actions if a.kind in (ActionKind.THANK_YOU, ActionKind.FEEDBACK)]


def test_a_thank_you_and_a_survey_after_the_meeting() -> None:
    result = run([ASKED], at(23, 18), [demo()])
    thank, survey = thanks_of(result)
    assert thank.key == "thank_you/sam/e1/ruiz"
    assert thank.kind is ActionKind.THANK_YOU
    assert thank.due == at(23, 19)  # 2h after the end, 13:00 in Mexico City
    assert thank.to == (Address("carlos@ruiz.mx", "Carlos Ruiz"),)
    assert thank.template == "thank_you"
    assert thank.language == "es"
    assert thank.context["meeting"]["summary"] == "Demo Ruiz"
    assert thank.context["meeting"]["start"] == at(23, 16)
    assert thank.context["meeting"]["zone"] == "America/Mexico_City"
    assert thank.context["client"]["first_name"] == "Carlos"
    assert thank.context["rep"]["name"] == "Sam Lee"
    assert survey.key == "feedback/sam/e1/ruiz"
    assert survey.template == "feedback"
    assert survey.due == at(24, 17)


def test_a_thank_you_after_closing_waits_for_the_next_morning() -> None:
    late = demo(start=at(23, 22), end=at(23, 23))  # 16:00-17:00 in Mexico City
    thank, _ = thanks_of(run([], at(23, 23, 30), [late]))
    assert thank.due == at(24, 15)  # Tue 09:00 local
    assert thank.language == "es"


def test_an_agent_started_days_after_a_meeting_does_not_thank_for_it() -> None:
    result = run([], at(27, 18), [demo()])
    assert result.actions == ()
    assert decided(result) == ["no thank-you: too late"]
    assert len(thanks_of(run([], at(25, 18), [demo()]))) == 2


def test_a_meeting_is_thanked_for_only_once_it_has_ended() -> None:
    assert run([], at(23, 16, 30), [demo()]).actions == ()
    thank, _ = thanks_of(run([], at(23, 17), [demo()]))
    assert thank.due == at(23, 19)  # still in the future: scheduled


@pytest.mark.parametrize(
    ("event", "decision"),
    [
        (demo(status="cancelled"), "no thank-you: meeting cancelled"),
        (demo(partstat="DECLINED"), "no thank-you: client declined"),
        (
            demo(
                attendees=(Attendee("carlos@ruiz.mx"), Attendee("sam@acme.example", "", "DECLINED"))
            ),
            "no thank-you: rep declined",
        ),
    ],
)
def test_no_thank_you_for_a_meeting_that_did_not_happen(event: Event, decision: str) -> None:
    result = run([], at(23, 18), [event])
    assert thanks_of(result) == []
    assert decided(result) == [decision]
    assert {"thank_you/sam/e1/ruiz", "feedback/sam/e1/ruiz"} <= result.obsolete


def test_no_thank_you_when_the_rep_already_wrote_after_the_meeting() -> None:
    by_hand = msg(
        4,
        "s.lee@acme.example",
        "carlos@ruiz.mx",
        at(23, 17, 30),
        thread="t9",
        subject="Gracias por la reunión",
        body="Gracias por su tiempo hoy.",
    )
    result = run([by_hand], at(23, 18), [demo()])
    assert thanks_of(result) == []
    assert "no thank-you: the rep already wrote" in decided(result)
    assert "thank_you/sam/e1/ruiz" in result.obsolete


def test_no_thank_you_after_each_occurrence_of_a_recurring_meeting() -> None:
    weekly = [demo(), demo(provider_id="e2", start=at(30, 16), end=at(30, 17))]
    result = run([], at(30, 18), weekly)
    assert thanks_of(result) == []
    assert set(decided(result)) == {"no thank-you: recurring meeting"}


def test_a_meeting_two_reps_attend_is_thanked_once_by_the_organizer() -> None:
    kim = dataclasses.replace(
        REP,
        mailbox="kim",
        name="Kim",
        address="kim@acme.example",
        addresses=frozenset({"kim@acme.example"}),
    )
    shared = demo(organizer="kim@acme.example")
    copy = dataclasses.replace(shared, mailbox="kim", provider_id="k1")
    result = run([], at(23, 18), [shared, copy], reps={"sam": REP, "kim": kim})
    assert [a.key for a in thanks_of(result)] == ["thank_you/kim/k1/ruiz", "feedback/kim/k1/ruiz"]
    assert decided(result) == ["no thank-you: a colleague sends it"]
    assert "thank_you/sam/e1/ruiz" in result.obsolete


def test_an_internal_meeting_gets_nothing() -> None:
    internal = demo(attendees=(Attendee("kim@acme.example"), Attendee("sam@acme.example")))
    result = run([], at(23, 18), [internal])
    assert result.actions == () and result.decisions == ()


# -- send windows as a property ---------------------------------------------------------------

ZONES = ["America/Mexico_City", "Asia/Tokyo", "Asia/Kathmandu", "Asia/Riyadh", "Europe/Berlin"]


@settings(max_examples=80, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
    ),
    window=st.sampled_from(["09:30-16:30", "10:00-11:00", "08:00-10:00,15:00-18:00"]),
)
def test_a_windowed_note_is_open_inside_the_window_and_not_early(
    zone: str, start: datetime, window: str
) -> None:
    weekend = ("fri", "sat") if zone == "Asia/Riyadh" else ("sat", "sun")
    country = {"Asia/Tokyo": "JP", "Europe/Berlin": "DE", "America/Mexico_City": "MX"}.get(zone, "")
    cal = BusinessCalendar.simple(zone, "09:00-17:00", weekend, country=country)
    shifts = parse_shifts(window)
    due = into_window(cal, shifts, start)
    assert due >= start
    assert cal.is_open(due)
    local = due.astimezone(cal.tz).time()
    assert any(s.start <= local < s.end for s in shifts)
    assert cal.holiday_name(due.astimezone(cal.tz).date()) is None
    # Nothing earlier qualifies: the minute before was closed or outside the window.
    if due > start:
        before = due - timedelta(minutes=1)
        t = before.astimezone(cal.tz).time()
        assert not (cal.is_open(before) and any(s.start <= t < s.end for s in shifts))


# -- the templates' contract ------------------------------------------------------------------


def test_every_planned_note_renders_in_every_language_we_ship() -> None:
    from pathlib import Path

    from agent.compose import Composer

    templates = Path(__file__).resolve().parents[1] / "templates"
    composer = Composer(templates)
    details = {"sam": {"company": "Acme"}}
    result = run([ASKED, ANCHOR], at(20, 12), rep_details=details)
    thanks = run([], at(23, 18), [demo()], rep_details=details)
    actions = [*result.actions, *thanks.actions]
    assert {a.template for a in actions} == {"follow_up", "thank_you", "feedback"}
    for action in actions:
        assert action.context["rep"]["company"] == "Acme"
        for language in sorted(composer.languages(action.template)):
            rendered = composer.render(action.template, language, dict(action.context))
            assert rendered.subject and rendered.text.strip()


# -- who a note may go to ---------------------------------------------------------------------


def test_no_follow_up_to_a_stranger_who_wrote_into_the_clients_thread() -> None:
    # Mallory quotes the thread's References, so the thread stays Carlos's; the rep answers
    # Mallory, and that message must not start a cadence chasing Mallory.
    stranger = msg(3, "mallory@evil.example", "sam@acme.example", at(19, 17), refs=["<m1@x>"])
    answer = msg(4, "sam@acme.example", "mallory@evil.example", at(19, 18), refs=["<m1@x>"])
    result = run([ASKED, stranger, answer], at(20, 12))
    assert follow_ups(result) == []
    assert "no follow-up: the rep wrote to nobody of the client's" in decided(result)


def test_a_follow_up_prefers_a_person_to_a_list_at_the_client() -> None:
    anchor = dataclasses.replace(
        ANCHOR, to=(Address("sales@ruiz.mx"), Address("lupe@ruiz.mx", "Lupe Ortiz"))
    )
    [first, *_] = follow_ups(run([ASKED, anchor], at(20, 12)))
    assert first.to == (Address("lupe@ruiz.mx", "Lupe Ortiz"),)


def test_no_thank_you_for_a_strangers_invitation_the_rep_never_accepted() -> None:
    invitation = demo(
        organizer="mallory@evil.example",
        attendees=(
            Attendee("carlos@ruiz.mx", "Carlos Ruiz", "ACCEPTED"),
            Attendee("sam@acme.example", "Sam Lee", "NEEDS-ACTION"),
        ),
    )
    result = run([], at(23, 18), [invitation])
    assert thanks_of(result) == []
    assert decided(result) == ["no thank-you: not the rep's meeting"]


def test_a_meeting_the_rep_accepted_or_organised_is_thanked_for() -> None:
    accepted = demo(organizer="carlos@ruiz.mx")  # Sam's attendee row says ACCEPTED
    organised = demo(
        organizer="s.lee@acme.example",
        attendees=(Attendee("carlos@ruiz.mx", "Carlos Ruiz", "ACCEPTED"),),
    )
    for event in (accepted, organised):
        assert len(thanks_of(run([], at(23, 18), [event]))) == 2


def test_a_thank_you_never_goes_to_a_list_address_at_the_client() -> None:
    event = demo(
        attendees=(
            Attendee("carlos@ruiz.mx", "Carlos Ruiz", "ACCEPTED"),
            Attendee("all-staff@ruiz.mx", "", "ACCEPTED"),
            Attendee("board@ruiz.mx", "", "ACCEPTED"),
            Attendee("sam@acme.example", "Sam Lee", "ACCEPTED"),
        )
    )
    thank, _ = thanks_of(run([], at(23, 18), [event]))
    assert thank.to == (Address("carlos@ruiz.mx", "Carlos Ruiz"),)
    only_lists = demo(
        attendees=(
            Attendee("board@ruiz.mx", "", "ACCEPTED"),
            Attendee("sam@acme.example", "Sam Lee", "ACCEPTED"),
        )
    )
    result = run([], at(23, 18), [only_lists])
    assert thanks_of(result) == []
    assert decided(result) == ["no thank-you: only list addresses"]


def test_a_list_address_the_client_record_names_is_thanked() -> None:
    board = dataclasses.replace(CARLOS, emails=frozenset({"carlos@ruiz.mx", "board@ruiz.mx"}))
    event = demo(
        attendees=(
            Attendee("board@ruiz.mx", "", "ACCEPTED"),
            Attendee("sam@acme.example", "Sam Lee", "ACCEPTED"),
        )
    )
    thank, _ = thanks_of(run([], at(23, 18), [event], clients=(board, ANNA, JEN)))
    assert thank.to == (Address("board@ruiz.mx"),)


def test_a_note_tagged_with_its_opaque_key_is_known_as_the_step_it_was() -> None:
    from agent.providers.protocol import key_tag

    key = "follow_up/sam/t1/<m2@x>/1"
    raw = msg(3, "sam@acme.example", "carlos@ruiz.mx", at(24, 18), x_followup_key=key)
    tagged = msg(3, "sam@acme.example", "carlos@ruiz.mx", at(24, 18), x_followup_key=key_tag(key))
    steps = [(a.key, a.due) for a in follow_ups(run([ASKED, ANCHOR, tagged], at(25, 12)))]
    assert steps == [(a.key, a.due) for a in follow_ups(run([ASKED, ANCHOR, raw], at(25, 12)))]
    assert steps[1][1] == at(27, 18)  # step 2 counts from when step 1 went out


def test_a_meeting_title_or_name_from_outside_becomes_no_link_in_the_thank_you() -> None:
    event = demo(
        summary="Demo Ruiz – https://evil.example/login",
        attendees=(
            Attendee("carlos@ruiz.mx", "www.evil.example", "ACCEPTED"),
            Attendee("sam@acme.example", "Sam Lee", "ACCEPTED"),
        ),
    )
    thank, _ = thanks_of(run([], at(23, 18), [event]))
    assert thank.context["meeting"]["summary"] == "Demo Ruiz"
    assert thank.context["client"]["name"] == "Carlos Ruiz"
    only_link = demo(summary="evil.example/login")
    thank, _ = thanks_of(run([], at(23, 18), [only_link]))
    assert thank.context["meeting"]["summary"] == "Ruiz Industrial"


# -- the client's own week --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "zone"),
    [("IL", "Asia/Jerusalem"), ("AE", "Asia/Dubai"), ("IR", "Asia/Tehran"), ("BD", "Asia/Dhaka")],
)
def test_no_note_falls_on_the_clients_weekend(country: str, zone: str) -> None:
    import holidays

    client = Client(
        key="far",
        name="Dana Levi",
        emails=frozenset({"dana@far.example"}),
        domains=frozenset({"far.example"}),
        language="en",
        zone=zone,
        country=country,
    )
    table = holidays.country_holidays(country, years=(2026, 2027))
    for day in range(16, 23):  # an anchor on every day of the week
        anchor = msg(2, "sam@acme.example", "dana@far.example", at(day, 10), body="The offer.")
        steps = follow_ups(run([anchor], at(day, 11), clients=(client,)))
        assert len(steps) == 3
        for step in steps:
            local = step.due.astimezone(ZoneInfo(zone))
            assert table.is_working_day(local.date()), (local, step.reason)
            assert time(9) <= local.time() < time(17)


def test_every_note_carries_the_stretches_it_may_go_out_in() -> None:
    rules = RULES.replace('min_gap = "24h"', 'min_gap = "24h"\nsend_window = "11:00-12:00"')
    result = run([ASKED, ANCHOR], at(20, 12), rules=rules)
    cal = client_calendar(CARLOS)
    for action in result.actions:
        spans = action.context["send_spans"]
        assert spans[0]["start"] == action.due
        for span in spans:
            local = span["start"].astimezone(cal.tz)
            assert cal.is_open(span["start"]) and local.hour == 11
            assert span["end"] - span["start"] <= timedelta(hours=1)


def test_thank_yous_and_follow_ups_carry_the_name_in_parts() -> None:
    # The attendee wrote "Ruiz, Carlos" in the calendar; the clients file gives the rest.
    carlos = dataclasses.replace(CARLOS, last_name="Ruiz", honorific="Sr.", gender="male")
    event = demo(
        attendees=(
            Attendee("carlos@ruiz.mx", "Ruiz, Carlos", "ACCEPTED"),
            Attendee("sam@acme.example", "Sam Lee", "ACCEPTED"),
        )
    )
    thank, survey = thanks_of(run([ASKED], at(23, 18), [event], clients=(carlos, ANNA, JEN)))
    [first, *_] = follow_ups(run([ASKED, ANCHOR], at(20, 12), clients=(carlos, ANNA, JEN)))
    for action in (thank, survey, first):
        person = action.context["client"]
        assert {k: person.get(k) for k in ("first_name", "last_name", "honorific", "gender")} == {
            "first_name": "Carlos",
            "last_name": "Ruiz",
            "honorific": "Sr.",
            "gender": "male",
        }, action.kind


class _Untouchable(list):  # type: ignore[type-arg]
    """A team's client list that a planning pass must look things up in, never walk."""

    def __iter__(self) -> Any:
        raise AssertionError("the planner walked the whole client list")


def test_a_pass_looks_clients_up_in_the_teams_directory_without_walking_it() -> None:
    """With tens of thousands of clients, indexing them all on every pass cost more than the
    pass's mail: a directory handed over is read by lookup, and still finds a client who met
    the rep without writing first (thanked after the call) and one with a thread."""
    many = [
        *CLIENTS,
        *(
            dataclasses.replace(
                ANNA, key=f"c{i}", emails=frozenset({f"c{i}@x.example"}), domains=frozenset()
            )
            for i in range(2000)
        ),
    ]
    directory = Directory(
        many, team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses
    )
    object.__setattr__(directory, "clients", _Untouchable())
    looked_up = run([], at(23, 18), [demo()], clients=directory)
    listed = run([], at(23, 18), [demo()], clients=CLIENTS)
    assert thanks_of(looked_up) and thanks_of(looked_up) == thanks_of(listed)
    steps = follow_ups(run([ASKED, ANCHOR], at(20, 12), clients=directory))  # type: ignore[arg-type]
    assert steps and steps == follow_ups(run([ASKED, ANCHOR], at(20, 12)))
