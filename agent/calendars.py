"""iCalendar data -> events and busy time, with no I/O: bytes in, UTC values out.

What is busy, first match wins (each rule reads one field the expansion library ignores):

- ``STATUS:CANCELLED``: free.
- ``TRANSP:TRANSPARENT`` or ``X-MICROSOFT-CDO-BUSYSTATUS:FREE``: free.
- One of ``attendee_emails`` answered ``PARTSTAT=DECLINED``: free.
- ``STATUS:TENTATIVE``, ``X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE`` or one of ``attendee_emails``
  answered ``PARTSTAT=TENTATIVE``: busy only when ``tentative_busy``.
- Anything else: busy (``OOF``, ``BUSY``, ``WORKINGELSEWHERE`` included).

How the data is prepared before it is expanded:

- Every ``TZID`` that :mod:`agent.zones` knows (IANA names, legacy aliases, Windows names from
  Outlook) is rewritten to its canonical IANA name, so the tz database is used rather than the
  file's own VTIMEZONE, which Outlook fills with the current year's rule only.
- A TZID that only the file's VTIMEZONE defines ("Customized Time Zone") is renamed after a hash
  of that definition: icalendar caches such zones process-wide by TZID, and two files defining
  the same name differently must not share one.
- Google's ``X-WR-TIMEZONE`` feeds are repaired with ``x_wr_timezone.to_standard``.
- Recurrences are expanded with ``recurring_ical_events`` (RRULE, RDATE, EXDATE, moved instances
  whose RECURRENCE-ID is in another zone).

All-day events and floating times (no zone) are read in the calendar owner's ``zone`` (default
UTC): an all-day event is busy from local midnight to local midnight of its end date.

Bad input: :func:`read_ics` leaves out each event whose time it cannot read and names it (UID
and property) so the caller can record it, keeping the file's other events; a broken property
that has nothing to do with time (a stray ``X-APPLE-RADIUS=...`` line, a bad SEQUENCE) costs
only that property, and alarms (VALARM) are not read at all. Lines are unfolded as icalendar
unfolds them. Only data unreadable as a whole raises ``ValueError``. The strict
:func:`events_from_ics` and :func:`busy_from_ics` raise ``ValueError`` for either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import icalendar
import recurring_ical_events
import x_wr_timezone

from agent import zones
from agent.model import Attendee, Event, Interval

# Expanding a series costs time for every repetition since its first, not only for those in the
# window: an hourly series begun in 2000 would hold the worker for minutes. Beyond this many
# repetitions before the window ends, a series is left out and reported.
MAX_REPEATS = 50_000
# A calendar file is read whole by a library that takes about 50 µs a line; past these a file is
# refused with the reason (split it, or export a shorter range), so one file cannot hold a pass.
MAX_EVENTS = 2_000
MAX_LINES = 20_000
# Every BY* list multiplies a rule's occurrences (BYMONTH=1..12;BYMONTHDAY=1..31;BYHOUR=0..23;
# BYMINUTE=0..59 makes a yearly rule of 545 bytes 535,680 events a year).
_BY_PARTS = (
    "BYMONTH",
    "BYWEEKNO",
    "BYYEARDAY",
    "BYMONTHDAY",
    "BYDAY",
    "BYHOUR",
    "BYMINUTE",
    "BYSECOND",
)
_PERIOD = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,
    "YEARLY": 365 * 86400,
}
# Unfolding as icalendar does (``(\r?\n)+[ \t]``: blank lines may come before a continuation, as
# in Mozilla's exports), in its linear form: the lookbehinds pin a match to the first line break
# of a run, so a long run of bare newlines is not rescanned from every break.
_FOLD = re.compile(r"(?:(?<!\n)\r\n|(?<![\r\n])\n)(?:\r?\n)*[ \t]")
# The properties that decide when an event is; a broken one of these drops the event, a broken
# property of any other kind (a stray ``X-APPLE-RADIUS=...`` line) is left out on its own.
_TIME_PROPS = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")
_TZID_PARAM = re.compile(r';TZID=("[^"]*"|[^;:]*)', re.IGNORECASE)
_MAX_SHOWN = 80


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted intervals with overlapping or touching ones joined; empty intervals dropped."""
    merged: list[Interval] = []
    for interval in sorted(intervals):
        if interval.end <= interval.start:
            continue
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def events_from_ics(
    data: bytes, window: Interval, mailbox: str, *, zone: str = "UTC"
) -> list[Event]:
    """Every event occurrence overlapping ``window``, sorted by start, times in UTC.

    ``provider_id`` is the UID, followed by ``@`` and the occurrence's original start in UTC for
    occurrences of a series. ``status`` is ``confirmed``, ``tentative`` or ``cancelled``;
    ``transparent`` is true for ``TRANSP:TRANSPARENT`` and ``X-MICROSOFT-CDO-BUSYSTATUS:FREE``;
    Outlook's ``TENTATIVE`` busy status reads as ``status="tentative"``. Raises ``ValueError``
    for malformed data (any event that :func:`read_ics` would skip) or an unknown ``zone``.
    """
    found, problems = read_ics(data, window, mailbox, zone=zone)
    if problems:
        raise ValueError(problems[0][1])
    return found


def read_ics(
    data: bytes, window: Interval, mailbox: str, *, zone: str = "UTC"
) -> tuple[list[Event], list[tuple[str, str]]]:
    """``(events, problems)``: as :func:`events_from_ics`, but a broken event is left out.

    ``problems`` holds ``(uid, reason)`` once per event left out (``uid`` is "" when it has
    none); all events sharing its UID go with it, so a series is never half read. Raises
    ``ValueError`` only when the data is unreadable as a whole: not iCalendar, cut short, a
    TZID nobody defines, a broken VTIMEZONE, or an unknown ``zone``.
    """
    owner_tz = zones.zoneinfo(zone)
    problems: list[tuple[str, str]] = []
    found: list[Event] = []
    for component, in_series, original in _occurrences(data, window, owner_tz, problems):
        try:
            event = _to_event(component, mailbox, owner_tz, in_series=in_series)
            if original is not None:
                event = _exact_end(event, original, owner_tz)
        except (ValueError, OverflowError) as exc:
            # OverflowError: a date at the very edge of the calendar, moved into UTC.
            _note(problems, component, str(exc))
            continue
        if event.end > window.start and event.start < window.end:
            found.append(event)
    failed = {uid for uid, _ in problems if uid}
    found = [e for e in found if not e.uid or e.uid not in failed]
    found.sort(key=lambda e: (e.start, e.end, e.provider_id))
    return found, problems


def is_busy(
    event: Event, *, tentative_busy: bool = True, attendee_emails: Iterable[str] = ()
) -> bool:
    """Whether ``event`` blocks its owner's time, by the rules in the module docstring."""
    if event.status == "cancelled" or event.transparent or event.end <= event.start:
        return False
    mine = {email.strip().lower() for email in attendee_emails}
    answers = {a.partstat for a in event.attendees if a.email in mine}
    if "DECLINED" in answers:
        return False
    if event.status == "tentative" or "TENTATIVE" in answers:
        return tentative_busy
    return True


def busy_from_events(
    events: Iterable[Event],
    window: Interval,
    *,
    tentative_busy: bool = True,
    attendee_emails: Iterable[str] = (),
) -> list[Interval]:
    """The busy time of ``events`` clipped to ``window``, merged (see :func:`merge`)."""
    mine = tuple(attendee_emails)
    spans = []
    for event in events:
        if not is_busy(event, tentative_busy=tentative_busy, attendee_emails=mine):
            continue
        start, end = max(event.start, window.start), min(event.end, window.end)
        if start < end:
            spans.append(Interval(start, end))
    return merge(spans)


def busy_from_ics(
    data: bytes,
    window: Interval,
    *,
    tentative_busy: bool = True,
    attendee_emails: Iterable[str] = (),
    zone: str = "UTC",
) -> list[Interval]:
    """Busy time in ``window`` from iCalendar ``data``: sorted, merged, clipped UTC intervals.

    ``attendee_emails`` are the calendar owner's addresses, used to read their own answer
    (declined, tentative) on invitations. ``zone`` is the owner's zone for all-day events and
    floating times. Raises ``ValueError`` for malformed data or an unknown ``zone``.
    """
    return busy_from_events(
        events_from_ics(data, window, "", zone=zone),
        window,
        tentative_busy=tentative_busy,
        attendee_emails=attendee_emails,
    )


# -- preparing the data -----------------------------------------------------------------------


def _shorten(text: str) -> str:
    text = text.replace("\r", "").replace("\n", " ")
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _normalise_zones(text: str) -> str:
    """Rewrite TZIDs as described in the module docstring; raise ValueError for unknown ones."""
    lines = _FOLD.sub("", text).splitlines()
    defined: dict[str, str] = {}
    block: list[str] | None = None
    block_id = ""
    for line in lines:
        upper = line.upper()
        if upper.startswith("BEGIN:VTIMEZONE"):
            block, block_id = [], ""
        elif block is not None and upper.startswith("END:VTIMEZONE"):
            digest = hashlib.sha256("\n".join(block).encode()).hexdigest()[:12]
            defined[block_id] = f"{block_id}~{digest}"
            block = None
        elif block is not None:
            if upper.startswith("TZID:") or upper.startswith("TZID;"):
                block_id = line.partition(":")[2].strip()
            else:
                block.append(line)

    renamed: dict[str, str] = {}

    def rename(tzid: str) -> str:
        if tzid not in renamed:
            try:
                renamed[tzid] = zones.to_iana(tzid)
            except ValueError:
                if tzid not in defined:
                    raise ValueError(
                        f"unknown time zone TZID {tzid!r}: neither an IANA or Windows zone name "
                        "nor defined by a VTIMEZONE in the file"
                    ) from None
                renamed[tzid] = defined[tzid]
        return renamed[tzid]

    def param(match: re.Match[str]) -> str:
        value = match[1]
        quoted = value.startswith('"')
        new = rename(value.strip('"'))
        return f';TZID="{new}"' if quoted or ":" in new or ";" in new else f";TZID={new}"

    out = []
    in_vtimezone = False
    alarms = 0
    for line in lines:
        upper = line.upper()
        # Alarms never bear on busy time, and icalendar refuses a whole file for one bad TRIGGER.
        if upper.startswith("BEGIN:VALARM"):
            alarms += 1
        if alarms:
            if upper.startswith("END:VALARM"):
                alarms -= 1
            continue
        if upper.startswith("BEGIN:VTIMEZONE"):
            in_vtimezone = True
        elif upper.startswith("END:VTIMEZONE"):
            in_vtimezone = False
        elif in_vtimezone and upper.startswith("TZID:"):
            line = "TZID:" + rename(line.partition(":")[2].strip())
        elif upper.startswith("X-WR-TIMEZONE:"):
            value = line.partition(":")[2].strip()
            try:
                line = "X-WR-TIMEZONE:" + zones.to_iana(value)
            except ValueError:
                raise ValueError(f"unknown time zone in X-WR-TIMEZONE: {value!r}") from None
        elif ";" in line and "TZID=" in upper.partition(":")[0]:
            head, sep, tail = line.partition(":")
            # The head ends at the first colon outside quotes; re-split if a quote was open.
            while head.count('"') % 2 and sep:
                more, sep, tail = tail.partition(":")
                head = f"{head}:{more}"
            line = _TZID_PARAM.sub(param, head) + sep + tail
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _note(problems: list[tuple[str, str]], component: Any, reason: str) -> None:
    uid = str(component.get("UID", "")).strip()
    if not any(uid and uid == seen for seen, _ in problems):
        problems.append((uid, reason))


def _calendars(
    data: bytes, until: datetime, problems: list[tuple[str, str]]
) -> list[icalendar.Calendar]:
    """The calendars in ``data`` without the events that cannot be read or would take too long
    to expand up to ``until`` (naive); those go in ``problems``. Raise ValueError when nothing
    can be read."""
    if not data.strip():
        raise ValueError("empty iCalendar data")
    lines = data.count(b"\n") + 1
    if lines > MAX_LINES:
        raise ValueError(
            f"{lines} lines is over the limit of {MAX_LINES} per calendar file: "
            "split the file or export a shorter range"
        )
    events = data.upper().count(b"BEGIN:VEVENT")
    if events > MAX_EVENTS:
        raise ValueError(
            f"{events} events is over the limit of {MAX_EVENTS} per calendar file: "
            "split the file or export a shorter range"
        )
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
        raise ValueError(f"not iCalendar data: it starts with {_shorten(text.lstrip())!r}")
    text = _normalise_zones(text)
    try:
        parsed = icalendar.Calendar.from_ical(text, multiple=True)
    except ValueError as exc:
        raise ValueError(f"malformed iCalendar data: {_shorten(str(exc))}") from None
    calendars = []
    for cal in parsed:
        if cal.name != "VCALENDAR":
            raise ValueError(f"expected VCALENDAR, found {cal.name}")
        for prop, message in cal.errors:
            raise ValueError(f"VCALENDAR: bad {prop}: {_shorten(str(message))}") from None
        broken: set[int] = set()
        for component in cal.subcomponents:
            if component.name == "VTIMEZONE":
                for zone in component.walk():
                    for prop, message in zone.errors:
                        raise ValueError(
                            f"{_describe(component)}: bad {prop}: {_shorten(str(message))}"
                        ) from None
            if component.name != "VEVENT":
                continue
            reason = next(
                (
                    f"{_describe(component)}: bad {prop}: {_shorten(str(message))}"
                    for prop, message in component.errors
                    if _about_time(prop, str(message))
                ),
                None,
            )
            if reason is None:
                _drop_broken(component)
            if reason is None and "DTSTART" not in component:
                reason = f"{_describe(component)} has no DTSTART"
            if reason is None:
                reason = _time_problem(component)
            if reason is None:
                reason = _rule_problem(component, until)
            if reason is not None:
                _note(problems, component, reason)
                broken.add(id(component))
        failed = {uid for uid, _ in problems if uid}
        cal.subcomponents = [
            c
            for c in cal.subcomponents
            if id(c) not in broken
            and not (c.name == "VEVENT" and str(c.get("UID", "")).strip() in failed)
        ]
        calendars.append(cal)
    if not calendars:
        raise ValueError(
            "malformed iCalendar data: no complete VCALENDAR (is END:VCALENDAR missing?)"
        )
    return calendars


def _drop_broken(event: Any) -> None:
    """Remove the values icalendar kept as unreadable (``vBroken``): the expansion library
    would trip over them (it compares SEQUENCE), and nothing here reads them."""
    for name in list(event.keys()):
        value = event[name]
        if isinstance(value, list):
            kept = [v for v in value if not isinstance(v, icalendar.vBroken)]
            if len(kept) != len(value):
                del event[name]
                for v in kept:
                    event.add(name, v, encode=False)
        elif isinstance(value, icalendar.vBroken):
            del event[name]


def _about_time(prop: str | None, message: str) -> bool:
    """Whether a property icalendar could not read may bear on the event's time: one of
    :data:`_TIME_PROPS`, or a line it could not even name that mentions one of them."""
    if prop is not None:
        return prop.upper() in _TIME_PROPS
    upper = message.upper()
    return any(name in upper for name in _TIME_PROPS)


def _time_problem(event: Any) -> str | None:
    """What is wrong with DTSTART and DTEND together, checked before the expansion library,
    which would quietly swap backwards ends and recast a mismatched type."""
    start, end = event.get("DTSTART"), event.get("DTEND")
    if start is None or end is None:
        return None
    a, b = start.dt, end.dt
    if isinstance(a, datetime) != isinstance(b, datetime):
        return f"{_describe(event)}: DTSTART and DTEND differ in value type"
    try:
        backwards = bool(b < a)
    except TypeError:  # floating against zoned: read later in the owner's zone
        backwards = False
    return f"{_describe(event)} ends before it starts" if backwards else None


def _rule_problem(event: Any, until: datetime) -> str | None:
    """Why ``event``'s RRULE must not be expanded up to ``until`` (naive, wall clock), if so.

    Counted is an upper estimate of the steps from the first occurrence, not only those in the
    window; a rule too broken to estimate is left to the expansion library to report.
    """
    rule, start = event.get("RRULE"), event.get("DTSTART")
    if start is None:
        return None
    total = 0
    for one in [] if rule is None else rule if isinstance(rule, list) else [rule]:
        try:
            interval = int(one.get("INTERVAL", [1])[0])
            if interval < 1:
                # The expansion library would repeat one instant until memory runs out.
                return f"{_describe(event)}: RRULE INTERVAL {interval} must be 1 or more"
            first = start.dt
            if not isinstance(first, datetime):
                first = datetime.combine(first, time(0))
            last = until
            for end in one.get("UNTIL", ()):
                if not isinstance(end, datetime):
                    end = datetime.combine(end, time(0))
                last = min(last, end.replace(tzinfo=None))
            period = _PERIOD[str(one["FREQ"][0]).upper()] * interval
            # + 1: the first period has its occurrences too, which BY* lists multiply.
            steps = max(0, int((last - first.replace(tzinfo=None)).total_seconds() // period)) + 1
            if "COUNT" in one:
                steps = min(steps, max(0, int(one["COUNT"][0])))
            for part in _BY_PARTS:
                steps *= max(1, len(one.get(part, ())))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError):
            continue
        total += steps
    for dates in event.get("RDATE", []) if isinstance(event.get("RDATE"), list) else []:
        total += len(getattr(dates, "dts", ()))
    if isinstance(event.get("RDATE"), icalendar.prop.vDDDLists):
        total += len(event["RDATE"].dts)
    if total > MAX_REPEATS:
        return (
            f"{_describe(event)} repeats more than {MAX_REPEATS} times before "
            f"{until:%Y-%m-%d}, which would take too long to expand"
        )
    return None


def _describe(component: Any) -> str:
    uid = component.get("UID")
    name = str(component.name or "component")
    return f"{name} {str(uid)!r}" if uid else name


# What the expansion libraries raise on data they cannot follow; anything else is our bug.
_EXPANSION_ERRORS = (ValueError, KeyError, TypeError, AttributeError, OverflowError, IndexError)


def _expand(cal: icalendar.Calendar, start: datetime, end: datetime) -> list[Any]:
    with warnings.catch_warnings():
        # A guessed vendor-prefixed TZID is an expected input here, not a test failure.
        warnings.simplefilter("ignore")
        standard = x_wr_timezone.to_standard(cal)
        return list(recurring_ical_events.of(standard).between(start, end))


def _by_uid(cal: icalendar.Calendar) -> Iterator[tuple[Any, icalendar.Calendar]]:
    """One calendar per UID (events without one alone), each with the zones and properties."""
    groups: dict[str, list[Any]] = {}
    for i, c in enumerate(cal.subcomponents):
        if c.name == "VEVENT":
            uid = str(c.get("UID", "")).strip()
            groups.setdefault(uid or f"#{i}", []).append(c)
    shared = [c for c in cal.subcomponents if c.name != "VEVENT"]
    for members in groups.values():
        single = icalendar.Calendar()
        single.update(cal)
        single.subcomponents = [*shared, *members]
        yield members[0], single


def _occurrences(
    data: bytes, window: Interval, owner_tz: tzinfo, problems: list[tuple[str, str]]
) -> Iterator[tuple[Any, bool, Any]]:
    """Each occurrence with whether it belongs to a series (its UID recurs or is moved), and
    for a single event its VEVENT as written (``None`` for a series)."""
    # Floating and all-day values are local to the owner, so widen the query by a day each side
    # and clip after conversion.
    start = (window.start - timedelta(days=1)).replace(tzinfo=None)
    end = (window.end + timedelta(days=1)).replace(tzinfo=None)
    for cal in _calendars(data, end, problems):
        series = {
            str(e.get("UID", ""))
            for e in cal.walk("VEVENT")
            if "RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e
        }
        try:
            found = _expand(cal, start, end)
        except _EXPANSION_ERRORS:
            # One event the libraries cannot follow: expand each UID alone to find it.
            found = []
            for first, single in _by_uid(cal):
                try:
                    found += _expand(single, start, end)
                except _EXPANSION_ERRORS as exc:
                    reason = f"{_describe(first)}: cannot expand: {_shorten(str(exc))}"
                    _note(problems, first, reason)
        written: dict[str, list[Any]] = {}
        for e in cal.walk("VEVENT"):
            written.setdefault(str(e.get("UID", "")), []).append(e)
        for component in found:
            uid = str(component.get("UID", ""))
            alone = written.get(uid, []) if uid and uid not in series else []
            yield component, uid in series, alone[0] if len(alone) == 1 else None


# -- occurrences -> events --------------------------------------------------------------------


def _as_utc(value: date | datetime, owner_tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=owner_tz)
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=owner_tz).astimezone(UTC)


def _email(value: Any) -> str:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _exact_end(event: Event, written: Any, owner_tz: tzinfo) -> Event:
    """``event`` with its end read from the VEVENT as written. The expansion library moves
    DTEND into DTSTART's zone by wall-clock arithmetic, so an end given in UTC or another zone
    across a change of offset (a start in New York's zone, an end in UTC in the repeated hour)
    would come out an hour off."""
    if event.all_day:
        return event
    end = written.get("DTEND")
    if end is not None and isinstance(end.dt, datetime):
        exact = _as_utc(end.dt, owner_tz)
    elif end is None and written.get("DURATION") is not None:
        length = written["DURATION"].dt
        if not isinstance(length, timedelta):
            return event
        exact = event.start + length
    else:
        return event
    if exact < event.start:
        raise ValueError(f"{_describe(written)} ends before it starts")
    return dataclasses.replace(event, end=exact)


def _to_event(component: Any, mailbox: str, owner_tz: tzinfo, *, in_series: bool) -> Event:
    start_value = component["DTSTART"].dt
    all_day = not isinstance(start_value, datetime)
    start = _as_utc(start_value, owner_tz)
    end = _as_utc(component.end, owner_tz) if component.end is not None else start
    if end < start:
        raise ValueError(f"{_describe(component)} ends before it starts")

    status = str(component.get("STATUS", "CONFIRMED")).strip().lower()
    if status not in ("tentative", "cancelled"):
        status = "confirmed"
    busy_status = str(component.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).strip().upper()
    if busy_status == "TENTATIVE" and status == "confirmed":
        status = "tentative"
    transparent = (
        str(component.get("TRANSP", "OPAQUE")).strip().upper() == "TRANSPARENT"
        or busy_status == "FREE"
    )

    raw_attendees = component.get("ATTENDEE", [])
    if not isinstance(raw_attendees, list):
        raw_attendees = [raw_attendees]
    attendees = tuple(
        Attendee(
            email=_email(a),
            name=str(a.params.get("CN", "")),
            partstat=str(a.params.get("PARTSTAT", "NEEDS-ACTION")).upper(),
        )
        for a in raw_attendees
    )

    uid = str(component.get("UID", "")).strip()
    recurrence = component.get("RECURRENCE-ID")
    provider_id = uid or "no-uid-" + hashlib.sha256(component.to_ical()).hexdigest()[:16]
    if in_series:
        original = _as_utc(recurrence.dt if recurrence is not None else start_value, owner_tz)
        provider_id = f"{provider_id}@{original.strftime('%Y%m%dT%H%M%SZ')}"

    return Event(
        mailbox=mailbox,
        provider_id=provider_id,
        summary=str(component.get("SUMMARY", "")),
        start=start,
        end=end,
        status=status,
        transparent=transparent,
        all_day=all_day,
        organizer=_email(component.get("ORGANIZER")),
        attendees=attendees,
        uid=uid,
    )
