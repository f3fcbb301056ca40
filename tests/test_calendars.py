from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.calendars import busy_from_ics, events_from_ics, merge, read_ics
from agent.model import Interval

ICS = Path(__file__).parent / "ics"
MARCH = Interval(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def span(a: datetime, b: datetime) -> Interval:
    return Interval(a, b)


def load(name: str) -> bytes:
    return (ICS / name).read_bytes()


def test_weekly_series_keeps_local_time_across_us_dst_and_honours_exdate() -> None:
    busy = busy_from_ics(load("weekly_standup_across_dst.ics"), MARCH)
    # 09:00 New York is 14:00Z in EST and 13:00Z in EDT (from 8 March); 16 March is excluded.
    assert [
        span(at(23, 14, month=2), at(23, 14, 30, month=2)),
        span(at(2, 14), at(2, 14, 30)),
        span(at(9, 13), at(9, 13, 30)),
        span(at(23, 13), at(23, 13, 30)),
        span(at(30, 13), at(30, 13, 30)),
    ] == busy


def test_moved_instance_with_recurrence_id_in_another_windows_zone() -> None:
    events = events_from_ics(load("moved_instance_other_zone.ics"), MARCH, "rep@example.com")
    by_day = {e.start.date(): e for e in events}
    # The series is 10:00 Berlin; the 16 March instance (RECURRENCE-ID 05:00 Eastern = 10:00
    # Berlin) moved to 14:00 Eastern, which is 18:00Z after the US change on 8 March.
    moved = by_day[at(16, 0).date()]
    assert (at(16, 18), at(16, 19)) == (moved.start, moved.end)
    assert moved.provider_id == "review-series@example.com@20260316T090000Z"
    assert at(16, 9) not in {e.start for e in events}
    # Berlin changes on 29 March: 10:00 local is 09:00Z before and 08:00Z after.
    assert at(23, 9) == by_day[at(23, 0).date()].start
    assert at(30, 8) == by_day[at(30, 0).date()].start
    assert len(events) == 7


def test_google_feed_with_x_wr_timezone_follows_the_calendar_zone() -> None:
    busy = busy_from_ics(load("google_x_wr_timezone.ics"), MARCH)
    # DTSTART is 09:00Z (10:00 Berlin); the series stays at 10:00 Berlin after 29 March.
    assert [at(16, 9), at(23, 9), at(30, 8), at(6, 8, month=4)] == [b.start for b in busy]


def test_declined_transparent_cancelled_tentative_and_outlook_free() -> None:
    data = load("declined_and_transparent.ics")
    mine = ["rep@example.com"]
    strict = busy_from_ics(data, MARCH, attendee_emails=mine, tentative_busy=False)
    assert [span(at(10, 9), at(10, 10))] == strict
    lenient = busy_from_ics(data, MARCH, attendee_emails=mine, tentative_busy=True)
    assert [
        span(at(10, 9), at(10, 10)),
        span(at(11, 9), at(11, 10)),
        span(at(11, 13), at(11, 14)),
    ] == lenient
    # Without knowing whose calendar it is, a decline by someone cannot be read as the owner's.
    anonymous = busy_from_ics(data, MARCH, tentative_busy=False)
    assert span(at(10, 11), at(10, 12)) in anonymous


def test_all_day_and_floating_events_are_local_to_the_owner() -> None:
    data = load("all_day.ics")
    in_utc = busy_from_ics(data, MARCH)
    assert span(at(10, 0), at(12, 0)) == in_utc[0]
    in_kolkata = busy_from_ics(data, MARCH, zone="Asia/Kolkata")
    assert span(at(9, 18, 30), at(11, 18, 30)) == in_kolkata[0]
    assert span(at(13, 9, 30), at(13, 10, 30)) == in_kolkata[1]
    events = events_from_ics(data, MARCH, "rep", zone="Asia/Kolkata")
    assert [e.all_day for e in events] == [True, False]


def test_windows_zone_names_map_through_agent_zones() -> None:
    busy = busy_from_ics(load("outlook_windows_zone.ics"), MARCH)
    assert [
        span(at(10, 4, 30), at(10, 5, 30)),  # 10:00 India Standard Time, +05:30
        span(at(10, 8, 45), at(10, 9, 30)),  # 14:30 Nepal Standard Time, +05:45
        span(at(11, 6), at(11, 7)),  # 09:00 in the file's own "Customized Time Zone", +03:00
    ] == busy


def test_two_files_defining_the_same_custom_zone_differently_do_not_share_it() -> None:
    first = load("outlook_windows_zone.ics")
    second = first.replace(
        b"TZOFFSETFROM:+0300\nTZOFFSETTO:+0300", b"TZOFFSETFROM:+0100\nTZOFFSETTO:+0100"
    )
    assert first != second
    a = busy_from_ics(first, MARCH)[-1]
    b = busy_from_ics(second, MARCH)[-1]
    assert timedelta(hours=2) == b.start - a.start


def test_window_clips_busy_time() -> None:
    window = Interval(at(10, 9, 30), at(10, 12))
    busy = busy_from_ics(load("declined_and_transparent.ics"), window)
    assert [span(at(10, 9, 30), at(10, 10)), span(at(10, 11), at(10, 12))] == busy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((ICS / "broken.ics").read_bytes(), "broken-date@example.com.*DTSTART"),
        (b"", "empty"),
        (b"hello world", "not iCalendar"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n", "malformed"),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nSUMMARY:s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "no DTSTART",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Mars/Base:20260310T100000\r\n"
            b"END:VEVENT\r\nEND:VCALENDAR\r\n",
            "Mars/Base",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260310T100000Z\r\n"
            b"RRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "RRULE",
        ),
    ],
)
def test_malformed_data_raises_a_value_error_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        busy_from_ics(data, MARCH)


_minutes = st.integers(min_value=0, max_value=60 * 24 * 3)


@given(st.lists(st.tuples(_minutes, st.integers(min_value=0, max_value=600)), max_size=40))
def test_merge_keeps_exactly_the_covered_minutes(raw: list[tuple[int, int]]) -> None:
    base = at(1, 0)
    spans = [Interval(base + timedelta(minutes=a), base + timedelta(minutes=a + d)) for a, d in raw]
    merged = merge(spans)
    covered = {a + i for a, d in raw for i in range(d)}
    got: set[int] = set()
    for m in merged:
        start = int((m.start - base).total_seconds() // 60)
        end = int((m.end - base).total_seconds() // 60)
        got.update(range(start, end))
    assert covered == got
    assert all(x.end < y.start for x, y in itertools.pairwise(merged))


# -- calendar files from the wild -------------------------------------------------------------


def test_a_broken_property_unrelated_to_time_costs_only_that_property() -> None:
    # Apple writes X-APPLE-RADIUS as a parameter; a stray line of it (no colon) has been seen
    # on its own, here with a SEQUENCE that is no number and an alarm whose TRIGGER is cut.
    found, problems = read_ics(load("apple_stray_property_line.ics"), MARCH, "rep")
    assert problems == []
    visit = next(e for e in found if e.uid == "site-visit@example.com")
    assert (visit.start, visit.end) == (at(12, 13), at(12, 14, 30))  # 14:00-15:30 CET
    assert [e.uid for e in found] == ["site-visit@example.com", "plain@example.com"]


def test_a_broken_time_property_still_drops_its_event() -> None:
    data = load("apple_stray_property_line.ics").replace(
        b"DTEND;TZID=Europe/Berlin:20260312T153000", b"DTEND;TZID=Europe/Berlin:half past three"
    )
    found, problems = read_ics(data, MARCH, "rep")
    assert [e.uid for e in found] == ["plain@example.com"]
    assert [uid for uid, _ in problems] == ["site-visit@example.com"]


def test_lines_are_unfolded_as_icalendar_unfolds_them() -> None:
    # Mozilla's exports have been seen with a blank line before a continuation line.
    data = load("mozilla_blank_line_before_continuation.ics")
    [theirs] = icalendar.Calendar.from_ical(data).walk("VEVENT")
    [event] = events_from_ics(data, MARCH, "rep")
    assert event.start == theirs["DTSTART"].dt.astimezone(UTC) == at(31, 7, 30)
    assert event.end == theirs["DTEND"].dt.astimezone(UTC) == at(31, 9)
    assert event.summary == str(theirs["SUMMARY"])


def test_an_end_in_another_zone_is_read_exactly_across_a_change_of_offset() -> None:
    # Start 00:59 EDT, end 01:29 EST written in UTC: 90 minutes, across New York's fall back.
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nBEGIN:VEVENT\r\n"
        b"UID:fallback@example.com\r\nDTSTAMP:20250101T000000Z\r\n"
        b"DTSTART;TZID=America/New_York:20251102T005900\r\nDTEND:20251102T062900Z\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    window = Interval(datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 11, 3, tzinfo=UTC))
    [event] = events_from_ics(data, window, "rep")
    assert event.start == datetime(2025, 11, 2, 4, 59, tzinfo=UTC)
    assert event.end == datetime(2025, 11, 2, 6, 29, tzinfo=UTC)
    [theirs] = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert event.end == theirs["DTEND"].dt
