"""Business time: when a party is open, and how much open time lies between two instants.

A :class:`BusinessCalendar` belongs to one party (a rep, a team, a client). It combines an IANA
zone, weekly hours with any number of shifts per day and any weekend pattern, public holidays from
the ``holidays`` package (country and subdivision), per-date closures and overrides, and absences
given as UTC intervals. ``add(start, duration)`` and ``between(a, b)`` are exact to the
microsecond and inverse to each other: ``between(a, add(a, d)) == d``.

How a local day becomes UTC time
--------------------------------
Shifts are local wall-clock times on a local date; ``Shift(time(13, 30), time(0))`` ends at the
following midnight. Each boundary is converted to UTC on its own, so the open time of a day is
whatever real time elapses between its boundaries:

- A boundary inside a DST gap (a wall time that never happens) moves to the first instant after
  the gap, which is the transition instant itself. A shift 01:30-03:30 on Berlin's spring-forward
  night is open for one hour; a shift 02:15-02:45 that night is empty. A whole missing day, such as
  Samoa's 30 December 2011, contributes nothing.
- A boundary inside a fold (a wall time that happens twice) takes its first occurrence
  (``fold=0``) when it starts a shift and its second occurrence (``fold=1``) when it ends one. The
  repeated hour therefore counts as open time whenever it lies inside a shift: a shift 01:30-03:30
  on Berlin's fall-back night is open for three hours.

Which hours apply to a local date, first match wins:

1. ``overrides[date]`` (an empty tuple closes the day; an override beats a public holiday),
2. ``closures`` (a date may not be both overridden and closed: that is refused as ambiguous),
3. a public holiday of the country and subdivision,
4. with ``country_week`` (:meth:`BusinessCalendar.regional`), the country's own week as the
   ``holidays`` package has it: its weekend days are closed (the weekend in force on that date,
   so the UAE's Friday-Saturday before 2022 and Saturday-Sunday after), except the weekend days
   it lists as substituted working days (China's working Saturdays), which are open,
5. the weekly hours of that weekday.

Absences (a rep's vacation) are subtracted from the open time that results. A message that
arrives while the party is closed starts the clock at the next opening: ``add(x, 0)`` is
``next_open(x)``. When a duration ends exactly at a closing time, ``add`` returns that closing
instant, not the next opening.

Everything here is pure: no clock, no environment, no I/O beyond the zone database and the
``holidays`` tables. Every datetime taken must be aware (naive ones raise ``ValueError``); every
datetime returned is in UTC.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from agent.model import Interval, utc

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# How many consecutive local days without any shift make a calendar "never open".
_HORIZON_DAYS = 366

_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")

_Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Shift:
    """One open stretch of a local day, ``[start, end)`` in wall-clock time.

    ``end == time(0)`` means the following midnight (24:00). Raises ``ValueError`` when
    ``end <= start`` otherwise, or when either time carries a zone.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("shift times are local wall-clock times and take no zone")
        if self.end != _MIDNIGHT and self.end <= self.start:
            raise ValueError(
                f"shift {_fmt(self.start)}-{_fmt(self.end, end=True)} ends before it starts"
            )

    def __str__(self) -> str:
        return f"{_fmt(self.start)}-{_fmt(self.end, end=True)}"


def _fmt(t: time, *, end: bool = False) -> str:
    if end and t == _MIDNIGHT:
        return "24:00"
    return t.strftime("%H:%M") if not (t.second or t.microsecond) else t.isoformat()


def _end_key(t: time) -> timedelta:
    """An end time as an offset from the day's start, so that midnight sorts after 23:59."""
    if t == _MIDNIGHT:
        return _ONE_DAY
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _start_key(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _check_shifts(shifts: Iterable[Shift]) -> tuple[Shift, ...]:
    """Return ``shifts`` sorted by start; raise ``ValueError`` if two of them overlap.

    Shifts that merely touch (12:00-13:00 and 13:00-14:00) are allowed.
    """
    ordered = tuple(sorted(shifts, key=lambda s: _start_key(s.start)))
    for shift in ordered:
        if not isinstance(shift, Shift):
            raise ValueError(f"expected a Shift, got {shift!r}")
    for before, after in itertools.pairwise(ordered):
        if _end_key(before.end) > _start_key(after.start):
            raise ValueError(f"shifts {before} and {after} overlap")
    return ordered


def _parse_time(text: str, *, end: bool) -> time:
    match = _TIME_RE.match(text.strip())
    if not match:
        raise ValueError(f"bad time {text.strip()!r}: expected HH:MM such as 09:00 or 17:30")
    hour, minute = int(match[1]), int(match[2])
    if end and hour == 24 and minute == 0:
        return _MIDNIGHT
    if hour > 23 or minute > 59:
        raise ValueError(f"bad time {text.strip()!r}: hours run 00-23 (24:00 only as an end)")
    return time(hour, minute)


def parse_shifts(spec: str) -> tuple[Shift, ...]:
    """Parse ``"09:00-12:30,13:30-18:00"`` into shifts sorted by start.

    ``""`` (or ``"closed"``) is a closed day and gives ``()``. An end of ``24:00`` or ``00:00``
    means the following midnight. Raises ``ValueError`` naming the bad part: a malformed or
    out-of-range time ("25:00"), a shift that ends before it starts, overlapping shifts.
    """
    text = spec.strip()
    if not text or text.lower() == "closed":
        return ()
    shifts = []
    for part in text.split(","):
        pieces = part.split("-")
        if len(pieces) != 2:
            raise ValueError(
                f"bad shift {part.strip()!r}: expected HH:MM-HH:MM such as 09:00-17:00"
            )
        start = _parse_time(pieces[0], end=False)
        end = _parse_time(pieces[1], end=True)
        shifts.append(Shift(start, end))
    return _check_shifts(shifts)


def _weekday_index(name: str) -> int:
    key = name.strip().lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _FULL_NAMES:
        return _FULL_NAMES.index(key)
    raise ValueError(f"unknown weekday {name!r}: use one of {', '.join(WEEKDAYS)}")


@dataclass(frozen=True)
class WeeklyHours:
    """Shifts for each weekday: ``days[0]`` is Monday, ``days[6]`` Sunday; ``()`` is closed."""

    days: tuple[tuple[Shift, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError(f"weekly hours need 7 days, got {len(self.days)}")
        object.__setattr__(self, "days", tuple(_check_shifts(day) for day in self.days))

    @classmethod
    def parse(
        cls, hours: str | Mapping[str, str], weekend: Iterable[str] = ("sat", "sun")
    ) -> WeeklyHours:
        """Build weekly hours from a rule-file value.

        ``hours`` as a string (``"09:00-12:30,13:30-18:00"``) applies to every day not in
        ``weekend``. As a mapping (``{"mon": "09:00-17:00", "fri": "09:00-13:00"}``) it describes
        the whole week: only the named days open, so ``weekend`` is checked for valid names but
        changes nothing. Weekday names are ``mon`` .. ``sun`` or full English names, in any case.
        Raises ``ValueError`` with a message fit to follow a file and key.
        """
        weekend_days = {_weekday_index(name) for name in _names(weekend)}
        if isinstance(hours, str):
            shifts = parse_shifts(hours)
            return cls(tuple(() if i in weekend_days else shifts for i in range(7)))
        days: list[tuple[Shift, ...]] = [()] * 7
        seen: dict[int, str] = {}
        for name, spec in hours.items():
            index = _weekday_index(name)
            if index in seen:
                raise ValueError(f"{name!r} repeats {seen[index]!r}")
            seen[index] = name
            if not isinstance(spec, str):
                raise ValueError(f"{name}: expected a string such as '09:00-17:00', got {spec!r}")
            try:
                days[index] = parse_shifts(spec)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(tuple(days))


def _names(weekend: Iterable[str]) -> list[str]:
    # A bare string would otherwise be read letter by letter.
    if isinstance(weekend, str):
        return [part for part in re.split(r"[\s,]+", weekend) if part]
    return list(weekend)


def _load_zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {zone!r}: use an IANA name such as 'Europe/Berlin'"
        ) from None


def _check_region(country: str, subdivision: str) -> tuple[str, str]:
    """Return the country and subdivision as ``holidays`` spells them, or raise ``ValueError``."""
    if not country:
        if subdivision:
            raise ValueError(f"subdivision {subdivision!r} needs a country")
        return "", ""
    supported = holidays.list_supported_countries()
    code = country.strip().upper()
    if code not in supported:
        raise ValueError(
            f"unknown country {country!r} for public holidays: use an ISO 3166-1 alpha-2 code "
            "such as 'DE', 'IN' or 'US'"
        )
    if not subdivision:
        return code, ""
    valid = supported[code]
    for candidate in valid:
        if candidate.lower() == subdivision.strip().lower():
            return code, candidate
    listed = ", ".join(valid) if valid else "none"
    raise ValueError(
        f"unknown subdivision {subdivision!r} of {code}: use one of {listed} (ISO 3166-2 codes)"
    )


class BusinessCalendar:
    """The open hours of one party; see the module docstring for the rules.

    Attributes: ``zone`` (IANA name), ``tz`` (its ``ZoneInfo``), ``hours``, ``country``,
    ``subdivision``, ``closures`` (frozenset of dates), ``overrides`` (date -> shifts) and
    ``absences`` (merged UTC intervals). The object is not meant to be changed after
    construction; it memoises each local day's UTC spans.
    """

    def __init__(
        self,
        zone: str,
        hours: WeeklyHours,
        *,
        country: str = "",
        subdivision: str = "",
        closures: Iterable[date] = (),
        overrides: Mapping[date, tuple[Shift, ...]] = {},
        absences: Iterable[Interval] = (),
        country_week: bool = False,
    ) -> None:
        """Raise ``ValueError`` for an unknown zone, country or subdivision, overlapping shifts
        in an override, or a date that is both overridden and closed. ``country_week`` takes
        the weekend from the country's holiday data (see the module docstring); it needs a
        country."""
        self.tz = _load_zone(zone)
        self.zone = zone
        self.hours = hours
        self.country, self.subdivision = _check_region(country, subdivision)
        if country_week and not self.country:
            raise ValueError("a calendar that follows a country's week needs a country")
        self.country_week = country_week
        self.closures = frozenset(closures)
        checked: dict[date, tuple[Shift, ...]] = {}
        for day, shifts in overrides.items():
            try:
                checked[day] = _check_shifts(shifts)
            except ValueError as exc:
                raise ValueError(f"override for {day.isoformat()}: {exc}") from None
        both = sorted(self.closures.intersection(checked))
        if both:
            raise ValueError(
                f"{both[0].isoformat()} is both closed and given override hours: keep one"
            )
        self.overrides: Mapping[date, tuple[Shift, ...]] = checked
        self.absences: tuple[Interval, ...] = tuple(_merge_intervals(absences))
        self._absence_starts = [a.start for a in self.absences]
        self._holidays: dict[int, holidays.HolidayBase] = {}
        self._days: dict[date, tuple[_Span, ...]] = {}

    @classmethod
    def simple(
        cls,
        zone: str,
        hours: str = "09:00-17:00",
        weekend: Iterable[str] = ("sat", "sun"),
        country: str = "",
        subdivision: str = "",
    ) -> BusinessCalendar:
        """The same hours on every day outside ``weekend``; raises ValueError like __init__."""
        return cls(
            zone, WeeklyHours.parse(hours, weekend), country=country, subdivision=subdivision
        )

    @classmethod
    def regional(
        cls, zone: str, hours: str = "09:00-17:00", country: str = "", subdivision: str = ""
    ) -> BusinessCalendar:
        """``hours`` on the working days of ``country`` as the ``holidays`` package has them:
        its weekend (whichever applies on the date) closed, its substituted working days open,
        its public holidays closed. Without a country, Monday to Friday. Raises ValueError like
        __init__."""
        if not country:
            return cls.simple(zone, hours, ("sat", "sun"), subdivision=subdivision)
        shifts = parse_shifts(hours)
        return cls(
            zone,
            WeeklyHours((shifts,) * 7),
            country=country,
            subdivision=subdivision,
            country_week=True,
        )

    def __repr__(self) -> str:
        region = f" {self.country}" + (f"-{self.subdivision}" if self.subdivision else "")
        return f"<BusinessCalendar {self.zone}{region if self.country else ''}>"

    # -- local days -------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """The public holiday on local date ``day`` (names joined by "; "), or ``None``."""
        if not self.country:
            return None
        name = self._table(day.year).get(day)
        return str(name) if name else None

    def _table(self, year: int) -> holidays.HolidayBase:
        table = self._holidays.get(year)
        if table is None:
            table = holidays.country_holidays(
                self.country, subdiv=self.subdivision or None, years=year
            )
            self._holidays[year] = table
        return table

    def is_weekend(self, day: date) -> bool:
        """Whether local date ``day`` is closed by the week itself: a weekday without hours, or
        with ``country_week`` a weekend day of the country that is not a substituted working
        day. Holidays, closures and overrides are not considered."""
        if not self.hours.days[day.weekday()]:
            return True
        if not self.country_week:
            return False
        table = self._table(day.year)
        if not table.is_weekend(day):
            return False
        # A working day moved onto the weekend is listed with the holiday it makes up for,
        # which may fall in the next year (a Saturday in December for a January bridge).
        return not any(
            day in self._table(year).weekend_workdays for year in (day.year, day.year + 1)
        )

    def shifts_on(self, day: date) -> tuple[Shift, ...]:
        """The shifts that apply to local date ``day`` after overrides, closures, holidays and
        the week."""
        if day in self.overrides:
            return self.overrides[day]
        if day in self.closures or self.holiday_name(day) is not None:
            return ()
        if self.country_week and self.is_weekend(day):
            return ()
        return self.hours.days[day.weekday()]

    def is_business_day(self, day: date) -> bool:
        """Whether local date ``day`` has any open time; absences are not considered.

        A date whose shifts all fall into a DST gap or a skipped day (Samoa, 2011-12-30) is not.
        """
        return bool(self._day_spans(day))

    def _day_spans(self, day: date) -> tuple[_Span, ...]:
        spans = self._days.get(day)
        if spans is None:
            built = []
            for shift in self.shifts_on(day):
                start = self._boundary(day, shift.start, end=False)
                end = self._boundary(day, shift.end, end=True)
                if end > start:
                    built.append((start, end))
            spans = tuple(sorted(built))
            self._days[day] = spans
        return spans

    def _boundary(self, day: date, at: time, *, end: bool) -> datetime:
        """The UTC instant of wall time ``at`` on ``day``, with the gap and fold rules."""
        if end and at == _MIDNIGHT:
            day += _ONE_DAY
        wall = datetime.combine(day, at)
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return first
        if first < second:  # a fold: the wall time happens twice
            return second if end else first
        # A gap: PEP 495 maps fold=1 with the offset after the transition, which lands before
        # it, and fold=0 with the offset before, which lands after it. The transition is the
        # first instant whose offset differs from the one at ``second``.
        return self._transition(second, first)

    def _transition(self, before: datetime, after: datetime) -> datetime:
        offset_before = before.astimezone(self.tz).utcoffset()
        lo, hi = before, after
        while hi - lo > timedelta(microseconds=1):
            mid = lo + (hi - lo) // 2
            if mid.astimezone(self.tz).utcoffset() == offset_before:
                lo = mid
            else:
                hi = mid
        return hi

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    # -- open time --------------------------------------------------------------------------

    def _open_from(self, start: datetime, until: datetime | None = None) -> Iterator[_Span]:
        """Ascending open spans that end after ``start``, the first clipped to it.

        Spans never overlap but may touch (at midnight, or where two shifts meet); they are
        yielded day by day so that a calendar open around the clock is still walked lazily.
        Absences are removed. With ``until`` the walk stops after the local day of ``until``;
        without it, it raises ``ValueError`` after a year of local days without any shift.
        """
        day = self._local_date(start) - 2 * _ONE_DAY
        last_day = self._local_date(until) + _ONE_DAY if until is not None else None
        # Everything before ``floor`` has been yielded or lies before ``start``; clipping to it
        # keeps the spans disjoint even where a long fold makes two local days overlap.
        floor = start
        empty_days = 0
        known = self._days
        while last_day is None or day <= last_day:
            spans = known.get(day)
            if spans is None:
                spans = self._day_spans(day)
            if spans:
                empty_days = 0
            else:
                empty_days += 1
                if last_day is None and empty_days > _HORIZON_DAYS + 2:
                    raise ValueError(
                        f"{self!r} has no open hours within {_HORIZON_DAYS} days of "
                        f"{start.isoformat()}"
                    )
            for span_start, span_end in spans:
                span_start = max(span_start, floor)
                if span_end <= span_start:
                    continue
                if self.absences:
                    yield from self._without_absences((span_start, span_end))
                else:
                    yield span_start, span_end
                floor = span_end
            day += _ONE_DAY

    def _without_absences(self, span: _Span) -> Iterator[_Span]:
        start, end = span
        i = max(bisect.bisect_right(self._absence_starts, start) - 1, 0)
        while i < len(self.absences) and start < end:
            away = self.absences[i]
            if away.start >= end:
                break
            if away.end > start:
                if away.start > start:
                    yield (start, away.start)
                start = max(start, away.end)
            i += 1
        if start < end:
            yield (start, end)

    def open_intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Open time within ``[start, end)`` as sorted, merged, non-touching UTC intervals.

        Absences are removed. Returns ``[]`` when ``end <= start``. Raises ``ValueError`` for
        naive datetimes.
        """
        start, end = utc(start), utc(end)
        if end <= start:
            return []
        found: list[_Span] = []
        for span_start, span_end in self._open_from(start, end):
            if span_start >= end:
                break
            span_end = min(span_end, end)
            if found and found[-1][1] == span_start:
                found[-1] = (found[-1][0], span_end)
            else:
                found.append((span_start, span_end))
        return [Interval(s, e) for s, e in found]

    def is_open(self, at: datetime) -> bool:
        """Whether the party is open at instant ``at`` (shifts are half-open: closing is closed)."""
        at = utc(at)
        return bool(self.open_intervals(at, at + timedelta(microseconds=1)))

    def next_open(self, at: datetime) -> datetime:
        """``at`` (in UTC) if open, else the start of the next open interval.

        Raises ``ValueError`` if nothing opens within a year of local days.
        """
        at = utc(at)
        for span_start, _ in self._open_from(at):
            return span_start
        raise AssertionError("unreachable: the walk without an end either yields or raises")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The UTC instant after ``duration`` of open time counted from ``start``.

        ``add(x, timedelta(0)) == next_open(x)``. A duration that runs out exactly at a closing
        time returns that closing instant. Raises ``ValueError`` for a negative duration, a
        naive ``start``, or a calendar with no open hours for a year.
        """
        if duration < timedelta(0):
            raise ValueError(f"business time to add must not be negative, got {duration}")
        start = utc(start)
        remaining = duration
        for span_start, span_end in self._open_from(start):
            if remaining <= span_end - span_start:
                return span_start + remaining
            remaining -= span_end - span_start
        raise AssertionError("unreachable: the walk without an end either yields or raises")

    def add_days(self, start: datetime, days: int) -> datetime:
        """The first open instant at or after the local time of ``next_open(start)`` on the
        ``days``-th business day after its date: "two business days" from Thursday 15:00 is
        Monday 15:00 in a Monday-to-Friday week. Raises ``ValueError`` for a negative count or
        a calendar with no open hours for a year."""
        if days < 0:
            raise ValueError(f"business days to add must not be negative, got {days}")
        begin = self.next_open(start)
        local = begin.astimezone(self.tz)
        day, counted, empty = local.date(), 0, 0
        while counted < days:
            day += _ONE_DAY
            if self.is_business_day(day):
                counted, empty = counted + 1, 0
            else:
                empty += 1
                if empty > _HORIZON_DAYS:
                    raise ValueError(f"{self!r} has no business day within {_HORIZON_DAYS} days")
        wall = datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=self.tz)
        return self.next_open(utc(wall))

    def opens_within(self, window: Iterable[Shift]) -> bool:
        """Whether some weekday's hours meet ``window`` (local wall-clock shifts), so a note
        kept inside the window is ever sent. Holidays close only some days; this is the check
        for a window that can never be met, made without a clock."""
        spans = [(_start_key(w.start), _end_key(w.end)) for w in window]
        return any(
            _start_key(shift.start) < end and start < _end_key(shift.end)
            for shifts in self.hours.days
            for shift in shifts
            for start, end in spans
        )

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Open time within ``[a, b)``; negative when ``b < a`` (``-between(b, a)``)."""
        a, b = utc(a), utc(b)
        if b < a:
            return -self.between(b, a)
        total = timedelta(0)
        for span_start, span_end in self._open_from(a, b):
            if span_start >= b:
                break
            total += min(span_end, b) - span_start
        return total


def _merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for interval in sorted(intervals):
        if interval.end == interval.start:
            continue
        if merged and interval.start <= merged[-1].end:
            last = merged.pop()
            merged.append(Interval(last.start, max(last.end, interval.end)))
        else:
            merged.append(interval)
    return merged
