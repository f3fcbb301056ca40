"""One duration grammar for rules, cadences, meeting rules and --since, with hints that name
the unit that was meant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.app import parse_since
from agent.cadences import Wait, parse_cadences
from agent.durations import business_days, parse_duration
from agent.errors import ConfigError
from agent.meetings import parse_meeting_rules
from agent.rules import parse_rules


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("4h30m", timedelta(hours=4, minutes=30)),
        ("4h 30m", timedelta(hours=4, minutes=30)),
        ("45min", timedelta(minutes=45)),
        ("1w2d", timedelta(days=9)),
    ],
)
def test_one_grammar_reads_weeks_days_hours_and_minutes(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span
    assert parse_since(text) == span


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("3 days", "write 3d"),
        ("1 week", "write 1w"),
        ("4 hours 30 minutes", "write 4h30m"),
        ("3M", "'m' is minutes"),
        ("3 months", "'m' is minutes"),
        ("30m4h", "largest unit first"),
    ],
)
def test_a_span_in_words_gets_the_short_form_to_write(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_duration(text)


def test_since_takes_the_rules_grammar_and_its_hints() -> None:
    assert parse_since("4h30m") == timedelta(hours=4, minutes=30)
    with pytest.raises(ConfigError) as caught:
        parse_since("3 days")
    assert "write 3d" in caught.value.problems[0].message
    assert caught.value.problems[0].file == "--since"


def test_business_days_are_read_only_where_a_rule_counts_them() -> None:
    assert business_days("2bd") == 2
    with pytest.raises(ValueError, match="write 2bd"):
        business_days("2 business days")
    with pytest.raises(ValueError, match="not counted here; write calendar days such as '2d'"):
        parse_duration("2bd")
    assert Wait.parse("2bd").days == 2
    with pytest.raises(ValueError, match="'5d' for a week"):
        Wait.parse("1w")


def _rule(target: str) -> str:
    return f'[[promise]]\nname = "d"\nkind = "first_reply"\ntarget = "{target}"\n'


def test_rules_cadences_and_meetings_give_the_same_hint() -> None:
    _, problems = parse_rules([("r.toml", _rule("1 week"))])
    assert [(p.where, p.message) for p in problems] == [("d:target", "'1 week': write 1w")]
    ruleset, problems = parse_rules([("r.toml", _rule("4h30m"))])
    assert not problems and ruleset.promises[0].target == timedelta(hours=4, minutes=30)
    _, problems = parse_cadences(
        {"follow_up": [{"name": "f", "after": "3 days", "_source": "r.toml"}]}
    )
    assert [p.message for p in problems] == ["'3 days': write 3d"]
    _, problems = parse_meeting_rules([{"name": "m", "within": "1 week", "_source": "r.toml"}])
    assert [p.message for p in problems] == ["'1 week': write 1w"]


def test_a_follow_up_minutes_after_is_read_as_minutes_and_said_so() -> None:
    _, problems = parse_cadences({"follow_up": [{"name": "f", "after": "3m", "_source": "r"}]})
    assert [p.message for p in problems] == [
        "'3m' is read as 3 minutes ('m' is minutes, there is no unit for months); wait business "
        "days, such as '3d' or '40d'"
    ]


@given(st.integers(0, 50), st.integers(0, 6), st.integers(0, 23), st.integers(0, 59))
def test_any_span_written_largest_unit_first_reads_back(w: int, d: int, h: int, m: int) -> None:
    span = timedelta(weeks=w, days=d, hours=h, minutes=m)
    text = "".join(f"{n}{u}" for n, u in ((w, "w"), (d, "d"), (h, "h"), (m, "m")) if n) or "0m"
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["1" * 10_000 + "h", "1h" * 5_000, " " * 10_000, "9" * 400 + "d"])
def test_hostile_spans_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than a year"):
        parse_duration(text)
