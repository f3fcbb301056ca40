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

A malformed file raises ``ValueError`` naming what is wrong (the event's UID and property where
possible); callers record it and skip the file.
"""

from __future__ import annotations

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

_FOLD = re.compile(r"\r?\n[ \t]")
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
    for malformed data or an unknown ``zone``.
    """
    owner_tz = zones.zoneinfo(zone)
    found = [
        _to_event(component, mailbox, owner_tz, in_series=in_series)
        for component, in_series in _occurrences(data, window, owner_tz)
    ]
    found = [e for e in found if e.end > window.start and e.start < window.end]
    found.sort(key=lambda e: (e.start, e.end, e.provider_id))
    return found


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
    for line in lines:
        upper = line.upper()
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


def _calendars(data: bytes) -> list[icalendar.Calendar]:
    if not data.strip():
        raise ValueError("empty iCalendar data")
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
        for component in cal.walk():
            for prop, message in component.errors:
                raise ValueError(
                    f"{_describe(component)}: bad {prop}: {_shorten(str(message))}"
                ) from None
        for event in cal.walk("VEVENT"):
            if "DTSTART" not in event:
                raise ValueError(f"{_describe(event)} has no DTSTART")
        calendars.append(cal)
    if not calendars:
        raise ValueError(
            "malformed iCalendar data: no complete VCALENDAR (is END:VCALENDAR missing?)"
        )
    return calendars


def _describe(component: Any) -> str:
    uid = component.get("UID")
    name = str(component.name or "component")
    return f"{name} {str(uid)!r}" if uid else name


def _occurrences(data: bytes, window: Interval, owner_tz: tzinfo) -> Iterator[tuple[Any, bool]]:
    """Each occurrence with whether it belongs to a series (its UID recurs or is moved)."""
    # Floating and all-day values are local to the owner, so widen the query by a day each side
    # and clip after conversion.
    start = (window.start - timedelta(days=1)).replace(tzinfo=None)
    end = (window.end + timedelta(days=1)).replace(tzinfo=None)
    for cal in _calendars(data):
        series = {
            str(e.get("UID", ""))
            for e in cal.walk("VEVENT")
            if "RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e
        }
        try:
            with warnings.catch_warnings():
                # A guessed vendor-prefixed TZID is an expected input here, not a test failure.
                warnings.simplefilter("ignore")
                standard = x_wr_timezone.to_standard(cal)
                found = list(recurring_ical_events.of(standard).between(start, end))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"cannot expand events: {_shorten(str(exc))}") from None
        for component in found:
            _check_times(component)
            yield component, str(component.get("UID", "")) in series


def _check_times(component: Any) -> None:
    start, end = component.get("DTSTART"), component.get("DTEND")
    if start is not None and end is not None:
        a, b = start.dt, end.dt
        if isinstance(a, datetime) != isinstance(b, datetime):
            raise ValueError(f"{_describe(component)}: DTSTART and DTEND differ in value type")


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
