"""Malformed calendars: a broken event is reported and skipped, the file's good events survive.

Each generated file holds one known-good event next to events damaged the ways real feeds are:
bad or missing DTSTART, zones nobody defines, RRULE garbage, missing or backwards DTEND, huge
COUNTs, raw bytes that are not UTF-8, and files cut short.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.calendars import busy_from_ics, events_from_ics, read_ics
from agent.model import Event, Interval

WINDOW = Interval(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
GOOD = (
    "BEGIN:VEVENT\r\nUID:good@example.com\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Good\r\n"
    "DTSTART:20260310T090000Z\r\nDTEND:20260310T100000Z\r\nEND:VEVENT\r\n"
)
GOOD_START = datetime(2026, 3, 10, 9, tzinfo=UTC)

starts = st.sampled_from(
    [
        "DTSTART:20260311T090000Z",
        "DTSTART:garbage",
        "DTSTART:2026-03-11 09:00",
        "DTSTART;TZID=Mars/Olympus:20260311T090000",
        "DTSTART;TZID=Europe/Berlin:20260311T090000",
        "DTSTART;TZID=W. Europe Standard Time:20260311T090000",
        'DTSTART;TZID="unterminated:20260311T090000',
        "DTSTART;TZID=:20260311T090000",
        "DTSTART:20261340T250000Z",
        "DTSTART;VALUE=DATE:20260311",
        "DTSTART;VALUE=DATE:20260311T090000Z",
        "DTSTART:99991231T235959Z",
        "DTSTART:00010101T000000Z",
        "DTSTART:20260311T090000",  # floating
        "DTSTART:",
        "",  # missing
    ]
)
ends = st.sampled_from(
    [
        "DTEND:20260311T100000Z",
        "DTEND:20260311T080000Z",  # before the start
        "DTEND:garbage",
        "DTEND;VALUE=DATE:20260312",
        "DTEND;TZID=Asia/Kolkata:20260311T140000",
        "DTEND:99991231T235959Z",
        "DURATION:PT1H",
        "DURATION:-PT1H",
        "DURATION:P99999999D",
        "DURATION:soon",
        "",  # missing
    ]
)
rules = st.sampled_from(
    [
        "",
        "RRULE:FREQ=DAILY;COUNT=5",
        "RRULE:FREQ=DAILY;COUNT=1000000000",
        "RRULE:FREQ=SECONDLY;COUNT=1000000000",
        "RRULE:FREQ=MINUTELY",
        "RRULE:FREQ=SOMETIMES",
        "RRULE:garbage",
        "RRULE:FREQ=WEEKLY;BYDAY=XX",
        "RRULE:FREQ=DAILY;UNTIL=garbage",
        "RRULE:FREQ=DAILY;UNTIL=20260320",
        "RRULE:FREQ=DAILY;INTERVAL=0",
        "RRULE:FREQ=DAILY;INTERVAL=-1",
        "RRULE:FREQ=YEARLY;BYMONTH=13",
        "RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=99999",
        "RRULE:FREQ=WEEKLY;COUNT=3;UNTIL=20260401T000000Z",
        "RRULE:FREQ=DAILY\r\nRRULE:FREQ=WEEKLY",
        "EXDATE:garbage",
        "EXDATE:20260312T090000Z",
        "RDATE:20260315T090000Z",
        "RDATE:garbage",
        "RECURRENCE-ID:20260311T090000Z",
        "RECURRENCE-ID:garbage",
    ]
)
extras = st.sampled_from(
    [
        "",
        "STATUS:maybe",
        "TRANSP:garbage",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:kai@client.example",
        "ATTENDEE:",
        'ATTENDEE;CN="unbalanced:mailto:x@y',
        "ORGANIZER:not an address",
        "X-MICROSOFT-CDO-BUSYSTATUS:OOF",
        "SUMMARY;LANGUAGE=ja:会議",
        "DTSTAMP:garbage",
        "SEQUENCE:many",
        "X-WR-TIMEZONE:Mars/Olympus",
    ]
)
uids = st.sampled_from(["bad@example.com", "good@example.com", "", "other@example.com"])


@st.composite
def bad_event(draw: st.DrawFn) -> str:
    uid = draw(uids)
    lines = ["BEGIN:VEVENT"]
    if uid:
        lines.append(f"UID:{uid}")
    lines += [draw(starts), draw(ends), draw(rules), draw(extras), draw(extras)]
    lines.append("END:VEVENT")
    return "\r\n".join(line for line in lines if line) + "\r\n"


@st.composite
def calendars(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A calendar and whether its good event is on its own (no generated event shares its UID)."""
    events = draw(st.lists(bad_event(), min_size=1, max_size=3))
    good_alone = not any("UID:good@example.com" in e for e in events)
    head = draw(
        st.sampled_from(
            ["", "X-WR-TIMEZONE:Europe/Berlin\r\n", "X-WR-TIMEZONE:Nowhere/Land\r\n", "BOGUS\r\n"]
        )
    )
    body = [GOOD, *events]
    body = draw(st.permutations(body))
    text = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{head}{''.join(body)}END:VCALENDAR\r\n"
    data = text.encode()
    damage = draw(st.sampled_from(["none", "none", "latin1", "junk", "cut", "lf"]))
    if damage == "latin1":
        data = data.replace(b"SUMMARY:Good", b"SUMMARY:Caf\xe9 \xff")
    elif damage == "junk":
        # A line that is no content line at all breaks the file's syntax, not one event.
        data = data.replace(b"END:VCALENDAR", draw(st.binary(max_size=30)) + b"\r\nEND:VCALENDAR")
        good_alone = False
    elif damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
        good_alone = False
    elif damage == "lf":
        data = data.replace(b"\r\n", b"\n")
    return data, good_alone and head in ("", "X-WR-TIMEZONE:Europe/Berlin\r\n")


def assert_valid(events: list[Event]) -> None:
    for e in events:
        assert e.start.tzinfo is UTC and e.end.tzinfo is UTC
        assert e.start <= e.end
        assert e.end > WINDOW.start and e.start < WINDOW.end


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(calendars())
def test_broken_events_are_reported_and_the_good_one_survives(case: tuple[bytes, bool]) -> None:
    data, good_alone = case
    began = time.monotonic()
    try:
        events, problems = read_ics(data, WINDOW, "asha")
    except ValueError as exc:
        # Only a file that is unreadable as a whole may be refused outright.
        assert str(exc).strip()
        assert not good_alone or "X-WR-TIMEZONE" in str(exc) or "time zone" in str(exc), exc
        return
    finally:
        # A huge COUNT must not make the worker expand a billion occurrences.
        assert time.monotonic() - began < 10
    assert_valid(events)
    assert all(reason.strip() for _, reason in problems)
    if good_alone:
        assert GOOD_START in {e.start for e in events if e.uid == "good@example.com"}
    # The strict readers agree: the same events, or a ValueError when anything was skipped.
    try:
        strict = events_from_ics(data, WINDOW, "asha")
    except ValueError:
        assert problems
    else:
        assert not problems
        assert strict == events
        busy_from_ics(data, WINDOW)


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_binary_junk_is_refused_with_a_value_error(data: bytes) -> None:
    try:
        events, _ = read_ics(data, WINDOW, "asha")
    except ValueError as exc:
        assert str(exc).strip()
    else:
        assert_valid(events)


def calendar(*events: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(events) + "END:VCALENDAR\r\n").encode()


def event(uid: str, *lines: str) -> str:
    return (
        "BEGIN:VEVENT\r\n"
        + f"UID:{uid}\r\n"
        + "".join(f"{x}\r\n" for x in lines)
        + "END:VEVENT\r\n"
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (event("b", "DTSTART:garbage"), "'b'.*DTSTART"),
        (event("b", "SUMMARY:no start"), "'b' has no DTSTART"),
        (event("b", "DTSTART:20260311T090000Z", "DTEND:20260311T080000Z"), "'b' ends before"),
        (event("b", "DTSTART:20260311T090000Z", "RRULE:FREQ=SOMETIMES"), "'b'.*RRULE"),
        (
            event("b", "DTSTART:20260311T090000Z", "DTEND;VALUE=DATE:20260312"),
            "'b'.*differ in value type",
        ),
    ],
)
def test_one_broken_event_is_named_and_the_others_are_kept(bad: str, reason: str) -> None:
    events, problems = read_ics(calendar(GOOD, bad), WINDOW, "asha")
    assert [e.start for e in events] == [GOOD_START]
    assert [uid for uid, _ in problems] == ["b"]
    assert re.search(reason, problems[0][1]), problems[0]


def test_a_huge_count_expands_only_the_window() -> None:
    data = calendar(
        event(
            "many", "DTSTART:20200101T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=1000000000"
        )
    )
    week = Interval(GOOD_START, GOOD_START + timedelta(days=7))
    events, problems = read_ics(data, week, "asha")
    assert len(events) == 7
    assert problems == []


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("RRULE:FREQ=HOURLY", "repeats more than 50000 times"),
        ("RRULE:FREQ=SECONDLY;COUNT=1000000000", "repeats more than 50000 times"),
        ("RRULE:FREQ=DAILY;INTERVAL=0", "INTERVAL 0 must be 1 or more"),
    ],
)
def test_a_series_too_costly_to_expand_is_refused_at_once(rule: str, reason: str) -> None:
    # Expanding an hourly series begun in 2000 takes minutes; INTERVAL=0 exhausts memory.
    data = calendar(GOOD, event("costly", "DTSTART:20000101T000000Z", "DURATION:PT1M", rule))
    began = time.monotonic()
    events, problems = read_ics(data, WINDOW, "asha")
    assert time.monotonic() - began < 2
    assert [e.start for e in events] == [GOOD_START]
    assert [("costly", reason)] == [(uid, reason) for uid, why in problems if reason in why]
