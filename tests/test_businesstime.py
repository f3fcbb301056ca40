"""Business-time arithmetic: examples for each edge case, then properties over many zones."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.businesstime import (
    WEEKDAYS,
    BusinessCalendar,
    Shift,
    WeeklyHours,
    parse_shifts,
)
from agent.model import Interval, utc
from tests import zones

H = timedelta(hours=1)
M = timedelta(minutes=1)


def at(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    """A local wall time in ``zone`` as a UTC instant, so comparisons never trip over folds."""
    return utc(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold))


def local(cal: BusinessCalendar, instant: datetime) -> datetime:
    return instant.astimezone(cal.tz)


# -- parsing ---------------------------------------------------------------------------------


def test_parse_shifts_reads_split_shifts_in_order() -> None:
    assert parse_shifts("13:30-18:00, 09:00-12:30") == (
        Shift(time(9), time(12, 30)),
        Shift(time(13, 30), time(18)),
    )


def test_parse_shifts_empty_is_closed_and_24_00_is_midnight() -> None:
    assert parse_shifts("") == ()
    assert parse_shifts("closed") == ()
    assert parse_shifts("22:00-24:00") == (Shift(time(22), time(0)),)
    assert parse_shifts("00:00-00:00") == (Shift(time(0), time(0)),)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("25:00-26:00", "25:00"),
        ("09:00-25:00", "25:00"),
        ("09:60-10:00", "09:60"),
        ("17:00-09:00", "ends before it starts"),
        ("09:00-09:00", "ends before it starts"),
        ("09:00-13:00,12:00-17:00", "overlap"),
        ("nine to five", "expected HH:MM"),
        ("09:00", "expected HH:MM-HH:MM"),
        ("24:00-24:00", "24:00"),
    ],
)
def test_parse_shifts_rejects_with_a_clear_message(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_shifts(spec)


def test_touching_shifts_are_allowed() -> None:
    assert len(parse_shifts("09:00-12:00,12:00-13:00")) == 2


def test_shift_refuses_end_before_start() -> None:
    with pytest.raises(ValueError):
        Shift(time(17), time(9))


def test_weekly_hours_from_a_string_closes_the_weekend() -> None:
    hours = WeeklyHours.parse("09:00-17:00", weekend=("fri", "sat"))
    open_days = [WEEKDAYS[i] for i, shifts in enumerate(hours.days) if shifts]
    assert open_days == ["mon", "tue", "wed", "thu", "sun"]


def test_weekly_hours_from_a_mapping_opens_only_named_days() -> None:
    hours = WeeklyHours.parse({"Mon": "09:00-17:00", "friday": "09:00-13:00", "sat": ""})
    assert hours.days[0] == (Shift(time(9), time(17)),)
    assert hours.days[4] == (Shift(time(9), time(13)),)
    assert all(hours.days[i] == () for i in (1, 2, 3, 5, 6))


def test_weekly_hours_name_the_bad_day() -> None:
    with pytest.raises(ValueError, match=r"tue: .*25:00"):
        WeeklyHours.parse({"mon": "09:00-17:00", "tue": "09:00-25:00"})
    with pytest.raises(ValueError, match="unknown weekday 'funday'"):
        WeeklyHours.parse({"funday": "09:00-17:00"})
    with pytest.raises(ValueError, match="unknown weekday 'caturday'"):
        WeeklyHours.parse("09:00-17:00", weekend=("caturday",))


def test_weekly_hours_need_seven_days() -> None:
    with pytest.raises(ValueError, match="7 days"):
        WeeklyHours(((),) * 6)


# -- construction ----------------------------------------------------------------------------


def test_unknown_zone_is_refused() -> None:
    for zone in ("Mars/Olympus", "", "../etc/passwd", "Europe/Berlin "):
        with pytest.raises(ValueError, match="unknown time zone"):
            BusinessCalendar.simple(zone)


def test_unknown_country_and_subdivision_name_the_valid_form() -> None:
    with pytest.raises(ValueError, match="ISO 3166-1 alpha-2"):
        BusinessCalendar.simple(zones.BERLIN, country="XX")
    with pytest.raises(ValueError, match=r"unknown subdivision 'ZZ' of DE: use one of .*BY"):
        BusinessCalendar.simple(zones.BERLIN, country="DE", subdivision="ZZ")


def test_country_and_subdivision_are_case_insensitive() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, country="de", subdivision="by")
    assert (cal.country, cal.subdivision) == ("DE", "BY")


def test_a_date_both_closed_and_overridden_is_refused() -> None:
    day = date(2026, 6, 1)
    with pytest.raises(ValueError, match="2026-06-01 is both closed"):
        BusinessCalendar(
            zones.BERLIN,
            WeeklyHours.parse("09:00-17:00"),
            closures=[day],
            overrides={day: parse_shifts("10:00-12:00")},
        )


def test_naive_datetimes_and_negative_durations_are_refused() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN)
    with pytest.raises(ValueError, match="naive"):
        cal.add(datetime(2026, 6, 1, 9), H)
    with pytest.raises(ValueError, match="naive"):
        cal.between(datetime(2026, 6, 1, 9), datetime(2026, 6, 2, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="negative"):
        cal.add(datetime(2026, 6, 1, 9, tzinfo=UTC), -H)


# -- ordinary days ---------------------------------------------------------------------------


def test_split_shift_skips_the_lunch_break() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "09:00-12:30,13:30-18:00")
    assert cal.add(at(zones.BERLIN, 2026, 6, 1, 12), H) == at(zones.BERLIN, 2026, 6, 1, 14)
    assert cal.between(at(zones.BERLIN, 2026, 6, 1, 9), at(zones.BERLIN, 2026, 6, 2, 9)) == 8 * H


def test_a_duration_that_ends_at_closing_returns_the_closing_instant() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "09:00-12:30,13:30-18:00")
    assert cal.add(at(zones.BERLIN, 2026, 6, 1, 12), 30 * M) == at(zones.BERLIN, 2026, 6, 1, 12, 30)
    # Friday's close, not Monday's opening.
    assert cal.add(at(zones.BERLIN, 2026, 6, 5, 17), H) == at(zones.BERLIN, 2026, 6, 5, 18)


def test_add_zero_is_next_open() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "09:00-12:30,13:30-18:00")
    lunch = at(zones.BERLIN, 2026, 6, 1, 12, 45)
    assert (
        cal.add(lunch, timedelta(0)) == cal.next_open(lunch) == at(zones.BERLIN, 2026, 6, 1, 13, 30)
    )
    inside = at(zones.BERLIN, 2026, 6, 1, 10)
    assert cal.next_open(inside) == inside


def test_closing_time_itself_is_closed() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN)
    assert cal.is_open(at(zones.BERLIN, 2026, 6, 1, 9))
    assert cal.is_open(at(zones.BERLIN, 2026, 6, 1, 16, 59))
    assert not cal.is_open(at(zones.BERLIN, 2026, 6, 1, 17))
    assert not cal.is_open(at(zones.BERLIN, 2026, 6, 1, 8, 59))


def test_saturday_night_message_starts_the_clock_monday_morning() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "09:00-17:00")
    saturday_night = at(zones.BERLIN, 2026, 3, 14, 22, 40)
    assert cal.next_open(saturday_night) == at(zones.BERLIN, 2026, 3, 16, 9)
    assert cal.add(saturday_night, 4 * H) == at(zones.BERLIN, 2026, 3, 16, 13)
    assert cal.between(saturday_night, at(zones.BERLIN, 2026, 3, 16, 13)) == 4 * H


def test_weeks_of_business_time_land_on_the_right_friday() -> None:
    cal = BusinessCalendar.simple(zones.NEW_YORK)
    start = at(zones.NEW_YORK, 2026, 1, 5, 9)  # a Monday; DST starts in between
    end = cal.add(start, 400 * H)  # ten 40-hour weeks
    assert end == at(zones.NEW_YORK, 2026, 3, 13, 17)
    assert cal.between(start, end) == 400 * H


def test_between_is_negative_when_reversed() -> None:
    cal = BusinessCalendar.simple(zones.TOKYO)
    a, b = at(zones.TOKYO, 2026, 6, 1, 10), at(zones.TOKYO, 2026, 6, 2, 10)
    assert cal.between(a, b) == 8 * H
    assert cal.between(b, a) == -8 * H
    assert cal.between(a, a) == timedelta(0)


def test_open_intervals_are_clipped_sorted_and_merged_across_midnight() -> None:
    cal = BusinessCalendar.simple(zones.TOKYO, "20:00-24:00,00:00-02:00")
    found = cal.open_intervals(at(zones.TOKYO, 2026, 6, 1, 21), at(zones.TOKYO, 2026, 6, 3, 1))
    assert found == [
        Interval(at(zones.TOKYO, 2026, 6, 1, 21), at(zones.TOKYO, 2026, 6, 2, 2)),
        Interval(at(zones.TOKYO, 2026, 6, 2, 20), at(zones.TOKYO, 2026, 6, 3, 1)),
    ]


# -- weekends and holidays -------------------------------------------------------------------
# Which days are holidays, and their names, are the holidays package's data: the tests take the
# name from the package and check only that the calendar uses it (for the right country and
# subdivision), and fail with a clear premise if a day the scenario needs stops being listed.


def listed(country: str, day: date, subdivision: str | None = None) -> str:
    name = holidays.country_holidays(country, subdiv=subdivision, years=day.year).get(day)
    assert name, f"premise: the holidays package lists {day} as a holiday in {country}"
    return str(name)


def test_riyadh_friday_saturday_weekend() -> None:
    cal = BusinessCalendar.simple(zones.RIYADH, "09:00-17:00", ("fri", "sat"), country="SA")
    thursday_evening = at(zones.RIYADH, 2026, 1, 15, 16)
    assert cal.add(thursday_evening, 2 * H) == at(zones.RIYADH, 2026, 1, 18, 10)  # Sunday
    assert not cal.is_business_day(date(2026, 1, 16))
    assert not cal.is_business_day(date(2026, 1, 17))
    assert cal.is_business_day(date(2026, 1, 18))


def test_riyadh_founding_day_falls_on_sunday_so_the_clock_waits_for_monday() -> None:
    cal = BusinessCalendar.simple(zones.RIYADH, "09:00-17:00", ("fri", "sat"), country="SA")
    assert cal.holiday_name(date(2026, 2, 22)) is not None
    assert cal.next_open(at(zones.RIYADH, 2026, 2, 19, 18)) == at(zones.RIYADH, 2026, 2, 23, 9)


# Countries whose week is not Monday to Friday, and two that are: what each day is (weekend,
# substituted working day, holiday) comes from the package, never from this file.
SHANGHAI = "Asia/Shanghai"
WEEKS = ("AE", "IL", "IR", "BN", "BD", "YE", "SD", "MV", "AF", "SA", "CN", "DE")


@pytest.mark.parametrize("country", WEEKS)
def test_a_clients_calendar_keeps_the_countrys_own_week(country: str) -> None:
    from agent.model import Client
    from agent.pipeline import client_calendar

    table = holidays.country_holidays(country, years=(2021, 2022, 2026, 2027))
    client = Client(key="c", name="C", zone="UTC", country=country)
    cal = client_calendar(client)
    # 2021-2022 takes in the UAE's change of weekend on 1 January 2022.
    for first in (date(2021, 10, 1), date(2026, 1, 1)):
        for offset in range(0, 200):
            day = first + timedelta(days=offset)
            assert cal.is_business_day(day) == table.is_working_day(day), (country, day)
            if table.is_weekend(day) and day not in table.weekend_workdays:
                assert cal.is_weekend(day), (country, day)


def test_substituted_working_days_are_open() -> None:
    table = holidays.country_holidays("CN", years=2026)
    moved = sorted(d for d in table.weekend_workdays if d.year == 2026)
    assert moved, "premise: the holidays package lists China's working weekend days for 2026"
    cal = BusinessCalendar.regional(SHANGHAI, "09:00-18:00", country="CN")
    for day in moved:
        assert day.weekday() in table.weekend
        assert cal.is_business_day(day) and not cal.is_weekend(day)
        midnight = at(SHANGHAI, day.year, day.month, day.day)
        assert cal.next_open(midnight) == at(SHANGHAI, day.year, day.month, day.day, 9)
    plain = BusinessCalendar.simple(SHANGHAI, "09:00-18:00", country="CN")
    assert not any(plain.is_business_day(day) for day in moved)  # the fixed week closes them


def test_a_calendar_following_a_country_needs_one() -> None:
    with pytest.raises(ValueError, match="needs a country"):
        BusinessCalendar(zones.BERLIN, WeeklyHours.parse("09:00-17:00"), country_week=True)


def test_german_christmas_and_the_weekend_after_it() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, country="DE")
    assert cal.holiday_name(date(2026, 12, 25)) == listed("DE", date(2026, 12, 25))
    assert cal.holiday_name(date(2026, 12, 24)) is None
    assert not cal.is_business_day(date(2026, 12, 25))
    christmas_eve = at(zones.BERLIN, 2026, 12, 24, 16)
    assert cal.add(christmas_eve, 2 * H) == at(zones.BERLIN, 2026, 12, 28, 10)


def test_subdivision_holidays_apply_only_there() -> None:
    bavaria = BusinessCalendar.simple(zones.BERLIN, country="DE", subdivision="BY")
    berlin = BusinessCalendar.simple(zones.BERLIN, country="DE", subdivision="BE")
    epiphany = date(2026, 1, 6)
    assert bavaria.holiday_name(epiphany) == listed("DE", epiphany, "BY")
    assert berlin.holiday_name(epiphany) is None
    assert not bavaria.is_business_day(epiphany)
    assert berlin.is_business_day(epiphany)


def test_indian_republic_day_in_kolkata() -> None:
    cal = BusinessCalendar.simple(zones.KOLKATA, "09:30-18:00", country="IN")
    assert cal.holiday_name(date(2026, 1, 26)) == listed("IN", date(2026, 1, 26))
    friday_evening = at(zones.KOLKATA, 2026, 1, 23, 19)
    assert cal.next_open(friday_evening) == at(zones.KOLKATA, 2026, 1, 27, 9, 30)
    assert cal.next_open(friday_evening) == datetime(2026, 1, 27, 4, 0, tzinfo=UTC)


def test_sunday_only_weekend() -> None:
    cal = BusinessCalendar.simple(zones.SAO_PAULO, "08:00-12:00", ("sun",))
    assert cal.between(at(zones.SAO_PAULO, 2026, 6, 1), at(zones.SAO_PAULO, 2026, 6, 8)) == 24 * H


# -- overrides, closures, absences -----------------------------------------------------------


def test_override_opens_a_saturday_and_beats_a_holiday() -> None:
    saturday, christmas = date(2026, 12, 19), date(2026, 12, 25)
    cal = BusinessCalendar(
        zones.BERLIN,
        WeeklyHours.parse("09:00-17:00"),
        country="DE",
        overrides={saturday: parse_shifts("10:00-14:00"), christmas: parse_shifts("10:00-12:00")},
    )
    assert cal.is_business_day(saturday)
    assert cal.holiday_name(christmas) == listed("DE", christmas)
    assert cal.is_business_day(christmas)
    assert cal.between(at(zones.BERLIN, 2026, 12, 25), at(zones.BERLIN, 2026, 12, 26)) == 2 * H


def test_empty_override_and_closure_close_a_weekday() -> None:
    cal = BusinessCalendar(
        zones.LONDON,
        WeeklyHours.parse("09:00-17:00"),
        closures=[date(2026, 6, 2)],
        overrides={date(2026, 6, 3): ()},
    )
    assert cal.next_open(at(zones.LONDON, 2026, 6, 1, 18)) == at(zones.LONDON, 2026, 6, 4, 9)


def test_absences_are_subtracted_from_open_time() -> None:
    vacation = Interval(at(zones.BERLIN, 2026, 6, 1, 12), at(zones.BERLIN, 2026, 6, 3, 12))
    cal = BusinessCalendar(zones.BERLIN, WeeklyHours.parse("09:00-17:00"), absences=[vacation])
    monday = at(zones.BERLIN, 2026, 6, 1, 9)
    assert cal.add(monday, 3 * H) == at(zones.BERLIN, 2026, 6, 1, 12)
    assert cal.add(monday, 4 * H) == at(zones.BERLIN, 2026, 6, 3, 13)
    assert cal.between(monday, at(zones.BERLIN, 2026, 6, 4, 9)) == 8 * H
    assert not cal.is_open(at(zones.BERLIN, 2026, 6, 2, 10))
    assert cal.is_business_day(date(2026, 6, 2))  # the office is open; the rep is not


def test_a_calendar_that_never_opens_raises_but_counts_zero() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, weekend=WEEKDAYS)
    start = at(zones.BERLIN, 2026, 6, 1)
    with pytest.raises(ValueError, match="no open hours within 366 days"):
        cal.next_open(start)
    with pytest.raises(ValueError, match="no open hours"):
        cal.add(start, H)
    assert cal.between(start, start + timedelta(days=800)) == timedelta(0)
    assert cal.open_intervals(start, start + timedelta(days=800)) == []


# -- DST gaps and folds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        (zones.BERLIN, date(2026, 3, 29), date(2026, 10, 25)),
        (zones.LOS_ANGELES, date(2026, 3, 8), date(2026, 11, 1)),
    ],
)
def test_night_shift_across_dst_counts_real_time(zone: str, spring: date, autumn: date) -> None:
    cal = BusinessCalendar.simple(zone, "01:30-03:30", weekend=())

    def on(day: date, hour: int = 0, minute: int = 0) -> datetime:
        return at(zone, day.year, day.month, day.day, hour, minute)

    # 01:30-03:30 on the spring-forward night lasts one real hour, on the fall-back night three.
    assert cal.between(on(spring), on(spring, 12)) == H
    assert cal.between(on(autumn), on(autumn, 12)) == 3 * H
    assert cal.add(on(autumn, 1, 30), 150 * M) == on(autumn, 3)
    assert cal.add(on(spring, 1, 30), H) == on(spring, 3, 30)


def test_shift_starting_in_the_gap_opens_when_the_gap_ends() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "02:30-04:00", weekend=())
    # 02:30 does not exist on 2026-03-29; the clock jumps from 02:00 CET to 03:00 CEST (01:00 UTC).
    assert cal.next_open(at(zones.BERLIN, 2026, 3, 29, 0)) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert cal.between(at(zones.BERLIN, 2026, 3, 29), at(zones.BERLIN, 2026, 3, 29, 12)) == H


def test_shift_entirely_inside_the_gap_is_empty() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "02:10-02:50", weekend=())
    assert not cal.is_business_day(date(2026, 3, 29))
    assert cal.is_business_day(date(2026, 3, 30))


def test_shift_ending_inside_the_fold_keeps_the_repeated_time() -> None:
    cal = BusinessCalendar.simple(zones.BERLIN, "00:00-02:30", weekend=())
    day = (2026, 10, 25)
    # From 00:00 CEST to the second 02:30 (CET) is three and a half real hours.
    assert cal.between(at(zones.BERLIN, *day), at(zones.BERLIN, *day, 12)) == 3 * H + 30 * M
    assert cal.is_open(at(zones.BERLIN, *day, 2, 45, fold=0))
    assert cal.is_open(at(zones.BERLIN, *day, 2, 15, fold=1))
    assert not cal.is_open(at(zones.BERLIN, *day, 2, 30, fold=1))


def test_lord_howe_moves_by_half_an_hour() -> None:
    cal = BusinessCalendar.simple(zones.LORD_HOWE, "01:30-03:30", weekend=())
    fold_day, gap_day = (2026, 4, 5), (2026, 10, 4)
    assert cal.between(at(zones.LORD_HOWE, *fold_day), at(zones.LORD_HOWE, *fold_day, 12)) == (
        2 * H + 30 * M
    )
    assert cal.between(at(zones.LORD_HOWE, *gap_day), at(zones.LORD_HOWE, *gap_day, 12)) == (
        H + 30 * M
    )


def test_sao_paulo_midnight_that_never_happened() -> None:
    # On 2018-11-04 clocks went from 00:00 straight to 01:00.
    cal = BusinessCalendar.simple(zones.SAO_PAULO, "00:00-06:00,20:00-24:00", weekend=())
    assert cal.between(at(zones.SAO_PAULO, 2018, 11, 4), at(zones.SAO_PAULO, 2018, 11, 4, 12)) == (
        5 * H
    )
    # The evening shift of 11-03 ends at the missing midnight, which is 01:00 on 11-04.
    assert cal.between(at(zones.SAO_PAULO, 2018, 11, 3, 12), at(zones.SAO_PAULO, 2018, 11, 4)) == (
        4 * H
    )
    # ... so the two shifts meet there and form one stretch of nine real hours.
    evening_to_morning = cal.open_intervals(
        at(zones.SAO_PAULO, 2018, 11, 3, 12), at(zones.SAO_PAULO, 2018, 11, 4, 12)
    )
    assert evening_to_morning == [
        Interval(datetime(2018, 11, 3, 23, tzinfo=UTC), datetime(2018, 11, 4, 8, tzinfo=UTC))
    ]


# -- quarter-hour offsets and the date line --------------------------------------------------


def test_kathmandu_quarter_hour_offset() -> None:
    cal = BusinessCalendar.simple(zones.KATHMANDU, "10:00-17:00", ("sat",))
    assert cal.next_open(datetime(2026, 6, 1, 0, tzinfo=UTC)) == datetime(
        2026, 6, 1, 4, 15, tzinfo=UTC
    )
    friday = at(zones.KATHMANDU, 2026, 6, 5, 16, 15)
    # Saturday is the weekend in Nepal; Sunday is a working day.
    assert cal.add(friday, H) == at(zones.KATHMANDU, 2026, 6, 7, 10, 15)
    assert local(cal, cal.add(friday, H)).utcoffset() == timedelta(hours=5, minutes=45)


def test_apia_skipped_friday_30_december_2011() -> None:
    cal = BusinessCalendar.simple(zones.APIA, "09:00-17:00")
    assert not cal.is_business_day(date(2011, 12, 30))
    thursday = at(zones.APIA, 2011, 12, 29, 16)
    assert cal.add(thursday, 2 * H) == at(zones.APIA, 2012, 1, 2, 10)
    assert cal.between(thursday, at(zones.APIA, 2012, 1, 2, 10)) == 2 * H
    # Only 25 real hours separate Thursday 16:00 from Saturday 17:00 local.
    assert at(zones.APIA, 2011, 12, 31, 17) - thursday == timedelta(hours=25)


def test_auckland_and_los_angeles_are_on_different_days() -> None:
    auckland = BusinessCalendar.simple(zones.AUCKLAND)
    la = BusinessCalendar.simple(zones.LOS_ANGELES)
    # Monday 09:00 in Auckland is still Sunday afternoon in Los Angeles.
    monday_auckland = at(zones.AUCKLAND, 2026, 6, 1, 9)
    assert auckland.is_open(monday_auckland)
    assert not la.is_open(monday_auckland)
    assert la.next_open(monday_auckland) == at(zones.LOS_ANGELES, 2026, 6, 1, 9)


# -- properties ------------------------------------------------------------------------------

PROPERTY_ZONES = (
    zones.APIA,
    zones.AUCKLAND,
    zones.KATHMANDU,
    zones.LORD_HOWE,
    zones.LOS_ANGELES,
    zones.BERLIN,
    zones.RIYADH,
    zones.SAO_PAULO,
    zones.SYDNEY,
)
HOURS = (
    "09:00-17:00",
    "09:00-12:30,13:30-18:00",
    "01:30-03:30,08:00-12:00",
    "00:00-02:30,22:00-24:00",
    "02:15-02:45,10:00-11:00",
    "00:00-24:00",
)
WEEKENDS = (("sat", "sun"), ("fri", "sat"), ("sun",), ())
COUNTRIES = {zones.BERLIN: "DE", zones.RIYADH: "SA", zones.AUCKLAND: "NZ", zones.SYDNEY: "AU"}


@functools.cache
def calendar(zone: str, hours: str, weekend: tuple[str, ...], holidays: bool) -> BusinessCalendar:
    # Shared across examples so each day's spans and holiday tables are built once.
    country = COUNTRIES.get(zone, "") if holidays else ""
    return BusinessCalendar.simple(zone, hours, weekend, country=country)


calendars = st.builds(
    calendar,
    st.sampled_from(PROPERTY_ZONES),
    st.sampled_from(HOURS),
    st.sampled_from(WEEKENDS),
    st.booleans(),
)
instants = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC)
)
durations = st.one_of(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=10)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
    st.sampled_from([timedelta(0), H, 8 * H, 40 * H]),
)
EPSILON = timedelta(microseconds=1)


def wall_time_in_shift(cal: BusinessCalendar, instant: datetime) -> bool:
    """Whether the local wall time of ``instant`` lies inside a shift of its local date.

    This reads the shifts directly and shares nothing with the UTC conversion under test.
    """
    wall = instant.astimezone(cal.tz)
    clock = wall.time().replace(tzinfo=None)
    for shift in cal.shifts_on(wall.date()):
        if shift.start <= clock and (shift.end == time(0) or clock < shift.end):
            return True
    return False


def in_fold(cal: BusinessCalendar, instant: datetime) -> bool:
    wall = instant.astimezone(cal.tz)
    return utc(wall.replace(fold=1 - wall.fold)) != instant


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_between_inverts_add(cal: BusinessCalendar, start: datetime, duration: timedelta) -> None:
    end = cal.add(start, duration)
    assert end >= start
    assert cal.between(start, end) == duration


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_add_lands_in_open_hours(
    cal: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    end = cal.add(start, duration)
    if duration:
        # The last instant counted was open, and nothing after it was needed.
        assert cal.is_open(end - EPSILON)
    else:
        assert cal.is_open(end)
        assert end == cal.next_open(start)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations, durations)
def test_add_is_monotonic(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    small, large = sorted((first, second))
    assert cal.add(start, small) <= cal.add(start, large)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, instants, instants)
def test_between_is_additive_and_antisymmetric(
    cal: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    assume(c - a < timedelta(days=120))
    assert cal.between(a, c) == cal.between(a, b) + cal.between(b, c)
    assert cal.between(c, a) == -cal.between(a, c)


@settings(max_examples=500, deadline=None)
@given(calendars, instants)
def test_open_exactly_when_the_wall_clock_is_inside_a_shift(
    cal: BusinessCalendar, instant: datetime
) -> None:
    # In a fold the repeated hour is open by design even where one occurrence lies outside
    # the shift's wall times; everywhere else open time and the wall clock agree exactly.
    assume(not in_fold(cal, instant))
    assert cal.is_open(instant) == wall_time_in_shift(cal, instant)


@settings(max_examples=200, deadline=None)
@given(calendars, instants, st.timedeltas(min_value=H, max_value=timedelta(days=21)))
def test_open_intervals_are_sorted_disjoint_and_open(
    cal: BusinessCalendar, start: datetime, span: timedelta
) -> None:
    found = cal.open_intervals(start, start + span)
    for interval in found:
        assert start <= interval.start < interval.end <= start + span
        assert cal.is_open(interval.start)
        assert cal.is_open(interval.end - EPSILON)
        assert wall_time_in_shift(cal, interval.start) or in_fold(cal, interval.start)
    for before, after in itertools.pairwise(found):
        assert before.end < after.start
        assert not cal.is_open(before.end)
    assert sum((i.end - i.start for i in found), timedelta(0)) == cal.between(start, start + span)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(PROPERTY_ZONES),
    instants,
    st.lists(
        st.tuples(instants, st.timedeltas(min_value=M, max_value=timedelta(days=9))), max_size=4
    ),
    durations,
)
def test_absences_are_never_open_and_add_still_inverts(
    zone: str,
    start: datetime,
    away: list[tuple[datetime, timedelta]],
    duration: timedelta,
) -> None:
    absences = [Interval(s, s + length) for s, length in away]
    cal = BusinessCalendar(
        zone, WeeklyHours.parse("09:00-12:30,13:30-18:00", ("fri", "sat")), absences=absences
    )
    end = cal.add(start, duration)
    assert cal.between(start, end) == duration
    for absence in absences:
        assert not cal.is_open(absence.start)
        assert cal.between(absence.start, absence.end) == timedelta(0)
