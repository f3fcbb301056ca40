from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.businesstime import BusinessCalendar, Shift
from agent.cadences import Cadences, Wait, parse_cadences
from agent.errors import Problem
from agent.model import Client
from agent.rules import load_rules, parse_rules

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[[follow_up]]
name = "gold-chase"
description = "Gold clients: two gentle nudges, in the morning."
match = { tier = ["gold"] }
after = "2d"
steps = 2
mode = "draft"
out_of_office_hold = "48h"
send_window = "09:30-11:30"
min_gap = "2d"

[[follow_up]]
name = "chase"
after = "3d"

[[thank_you]]
name = "thanks"
delay = "2h"
feedback = true
delay_feedback = "1d"
mode = "send"
"""


def parse(text: str) -> tuple[Cadences, list[Problem]]:
    ruleset, problems = parse_rules(
        [("rules/t.toml", '[[promise]]\nname="p"\nkind="first_reply"\ntarget="4h"\n' + text)]
    )
    assert problems == []
    return parse_cadences(ruleset.raw)


def wheres(problems: list[Problem]) -> list[str]:
    return [p.where for p in problems]


def test_a_good_file_gives_every_key_its_value() -> None:
    cadences, problems = parse(GOOD)
    assert problems == []
    gold, chase = cadences.follow_ups
    assert gold.name == "gold-chase"
    assert gold.source == "rules/t.toml"
    assert gold.match.tier == frozenset({"gold"})
    assert gold.after == Wait("2d", days=2)
    assert gold.steps == 2
    assert gold.mode == "draft"
    assert gold.out_of_office_hold == Wait("48h", business=timedelta(hours=48))
    assert gold.send_window == (Shift(time(9, 30), time(11, 30)),)
    assert gold.min_gap == timedelta(days=2)
    assert chase.steps == 3
    assert chase.mode == ""
    assert chase.send_window == ()
    assert chase.min_gap == timedelta(hours=24)
    assert chase.template == "follow_up"
    [thanks] = cadences.thank_yous
    assert thanks.delay == timedelta(hours=2)
    assert thanks.feedback is True
    assert thanks.delay_feedback == timedelta(days=1)
    assert thanks.mode == "send"
    assert thanks.template == "thank_you"


def test_the_first_matching_rule_wins() -> None:
    cadences, _ = parse(GOOD)
    gold = Client(key="g", name="G", tier="gold")
    plain = Client(key="p", name="P", tier="silver")
    chosen_gold = cadences.follow_up_for(gold, "sam")
    chosen_plain = cadences.follow_up_for(plain, "sam")
    assert chosen_gold is not None and chosen_gold.name == "gold-chase"
    assert chosen_plain is not None and chosen_plain.name == "chase"
    thanks = cadences.thank_you_for(plain, "sam")
    assert thanks is not None and thanks.name == "thanks"
    assert Cadences().follow_up_for(plain, "sam") is None


@pytest.mark.parametrize(
    ("table", "where", "words"),
    [
        ('after = "3d"\nsteps = 3\nsendwindow = "09:00-10:00"', "x:sendwindow", "unknown key"),
        ('after = "three days"', "x:after", "not a duration"),
        ('after = "1d4h"', "x:after", "not both"),
        ('after = "0d"', "x:after", "no wait"),
        ('after = "0h"', "x:after", "no wait"),
        ("after = 3", "x:after", "not a duration"),
        ("steps = 0", "x:steps", "between 1 and"),
        ("steps = 40", "x:steps", "between 1 and"),
        ('steps = "3"', "x:steps", "whole number"),
        ("steps = true", "x:steps", "whole number"),
        ('mode = "auto"', "x:mode", "draft, send"),
        ('send_window = "9-17"', "x:send_window", "09:30-16:30"),
        ('send_window = "17:00-09:00"', "x:send_window", "ends before it starts"),
        ('send_window = ""', "x:send_window", "nothing would ever be sent"),
        ('min_gap = "a day"', "x:min_gap", "not a duration"),
        ('out_of_office_hold = "-1d"', "x:out_of_office_hold", "not a duration"),
        ('template = "Follow Up"', "x:template", "template purpose"),
        ('match = { tier = "gold", colour = "red" }', "x:match.colour", "unknown key"),
        ("match = { tier = [] }", "x:match.tier", "non-empty list"),
        ('match = "gold"', "x:match", "must be a table"),
        ('propose_slots = "yes"', "x:propose_slots", "propose_slots = true"),
        ("propose_slots = [4]", "x:propose_slots", "step 4 does not exist"),
        ("propose_slots = []", "x:propose_slots", "such as [2]"),
    ],
)
def test_each_bad_follow_up_key_is_named_with_what_would_be_right(
    table: str, where: str, words: str
) -> None:
    cadences, problems = parse(f'[[follow_up]]\nname = "x"\n{table}\n')
    assert [where] == wheres(problems), problems
    assert words in problems[0].message
    assert problems[0].file == "rules/t.toml"
    assert cadences.follow_ups == ()


@pytest.mark.parametrize(
    ("table", "where", "words"),
    [
        ('delay = "soon"', "t:delay", "not a duration"),
        ('feedback = "yes"', "t:feedback", "feedback = true"),
        ('delay_feedback = "1d"', "t:delay_feedback", "feedback is off"),
        ('feedback = true\ndelay = "2h"\ndelay_feedback = "1h"', "t:delay_feedback", "before"),
        ("steps = 2", "t:steps", "unknown key"),
        ('mode = "later"', "t:mode", "not a mode"),
    ],
)
def test_each_bad_thank_you_key_is_named(table: str, where: str, words: str) -> None:
    cadences, problems = parse(f'[[thank_you]]\nname = "t"\n{table}\n')
    assert [where] == wheres(problems), problems
    assert words in problems[0].message
    assert cadences.thank_yous == ()


@pytest.mark.parametrize(
    ("value", "steps"),
    [("true", {1, 2, 3}), ("false", set()), ("[2]", {2}), ("[1, 3]", {1, 3})],
)
def test_propose_slots_names_the_steps_whose_note_proposes_times(value: str, steps: set) -> None:
    cadences, problems = parse(f'[[follow_up]]\nname = "x"\nsteps = 3\npropose_slots = {value}\n')
    assert not problems
    assert cadences.follow_ups[0].propose_slots == frozenset(steps)


def test_every_problem_is_reported_at_once() -> None:
    _, problems = parse(
        '[[follow_up]]\nafter = "x"\nsteps = 0\n'
        '[[follow_up]]\nname = "a"\n[[follow_up]]\nname = "a"\n'
        '[[thank_you]]\nname = "all"\n[[thank_you]]\nname = "vip"\nmatch = { tier = "gold" }\n'
    )
    assert wheres(problems) == [
        "follow_up[0]:name",
        "follow_up[0]:after",
        "follow_up[0]:steps",
        "a:name",
        "a:match",
        "vip:match",
    ]
    assert "can never apply" in problems[-1].message
    assert "'all'" in problems[-1].message


def test_the_shipped_rule_files_parse_without_problems() -> None:
    ruleset = load_rules(ROOT / "rules")
    _, problems = parse_cadences(ruleset.raw)
    assert problems == []


# -- waits ------------------------------------------------------------------------------------

NY = BusinessCalendar.simple("America/New_York", "09:00-17:00", country="US", subdivision="CA")


def test_business_days_skip_the_weekend_and_holidays() -> None:
    # Monday 23 Nov 2026 10:00 in New York; CA keeps Thanksgiving and the day after.
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert Wait.parse("2d").after(NY, monday) == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    assert Wait.parse("3d").after(NY, monday) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def test_a_day_wait_started_after_hours_counts_from_the_next_opening() -> None:
    friday_night = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 18:30 in New York
    # The clock starts Monday 09:00; one business day later is Tuesday 09:00.
    assert Wait.parse("1d").after(NY, friday_night) == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


def test_hours_are_business_hours() -> None:
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    # 7h on Monday, 8h on Tuesday, 1h on Wednesday.
    assert Wait.parse("16h").after(NY, monday) == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    # Ending exactly at closing time lands on the next opening, never on a closed instant.
    assert Wait.parse("7h").after(NY, monday) == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


ZONES = ["America/New_York", "Asia/Riyadh", "Asia/Kathmandu", "Pacific/Auckland", "Asia/Tokyo"]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    zone = draw(st.sampled_from(ZONES))
    weekend = ("fri", "sat") if zone == "Asia/Riyadh" else ("sat", "sun")
    country = {"America/New_York": "US", "Asia/Tokyo": "JP", "Pacific/Auckland": "NZ"}.get(zone, "")
    return BusinessCalendar.simple(zone, "09:00-17:00", weekend, country=country)


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None)
@given(cal=calendars(), start=instants, days=st.integers(1, 6))
def test_a_day_wait_ends_open_on_the_nth_business_day(
    cal: BusinessCalendar, start: datetime, days: int
) -> None:
    end = Wait(f"{days}d", days=days).after(cal, start)
    assert end > start
    assert cal.is_open(end)
    first = cal.next_open(start).astimezone(cal.tz).date()
    last = end.astimezone(cal.tz).date()
    between = [first + timedelta(n) for n in range(1, (last - first).days)]
    counted = sum(cal.is_business_day(d) for d in between)
    # The end lies on the nth business day, or on a later one when the nth closed early.
    assert counted >= days - 1
    assert cal.is_business_day(last)


@settings(max_examples=60, deadline=None)
@given(cal=calendars(), start=instants, hours=st.integers(1, 40))
def test_an_hour_wait_spends_exactly_that_much_open_time(
    cal: BusinessCalendar, start: datetime, hours: int
) -> None:
    end = Wait(f"{hours}h", business=timedelta(hours=hours)).after(cal, start)
    assert cal.is_open(end)
    assert cal.between(start, end) == timedelta(hours=hours)


def test_a_wait_reads_as_words() -> None:
    assert str(Wait.parse("3d")) == "3 business days"
    assert str(Wait.parse("1d")) == "1 business day"
    assert str(Wait.parse("1h30m")) == "1.5 business hours"


def test_bd_counts_business_days_like_d() -> None:
    assert Wait.parse("2bd").days == Wait.parse("2d").days == 2
    cal = BusinessCalendar.simple("Europe/Berlin")  # no holidays: only the weekend in between
    start = datetime(2026, 11, 19, 14, 0, tzinfo=UTC)  # Thursday 15:00 in Berlin
    assert Wait.parse("2bd").after(cal, start) == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
