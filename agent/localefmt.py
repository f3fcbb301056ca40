"""Dates, times, durations, numbers and zone names in the reader's locale and zone, by Babel.

Every function takes the locale as a BCP 47 tag (``pt-BR``) or a Babel identifier (``pt_BR``);
an unknown tag falls back to its base language and then to English, so a rare tag never stops a
message. Datetimes must be aware: a naive one raises ``ValueError`` (there is no right zone to
guess). Zones are IANA names (``Asia/Kolkata``) or ``ZoneInfo`` objects; an unknown name raises
``ValueError``.

Times are shown without seconds: a meeting at "10:00:00" reads like a machine wrote it.
"""

from __future__ import annotations

from datetime import date as date_type
from datetime import datetime as datetime_type
from datetime import timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import lists as babel_lists
from babel import numbers as babel_numbers

Width = Literal["full", "long", "medium", "short"]
WIDTHS: tuple[str, ...] = ("full", "long", "medium", "short")

# Languages written right to left; HTML for them carries dir="rtl".
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"})


@lru_cache(maxsize=256)
def locale_for(tag: str) -> Locale:
    """The Babel ``Locale`` for ``tag``: the tag itself, else its base language, else English."""
    cleaned = (tag or "en").strip().replace("_", "-")
    candidates = [cleaned, cleaned.split("-", 1)[0], "en"]
    for candidate in candidates:
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale("en")  # unreachable: Babel always has English


def is_rtl(tag: str) -> bool:
    """True when ``tag``'s language is written right to left (ar, he, fa, ur ...)."""
    return (tag or "").replace("_", "-").split("-", 1)[0].lower() in RTL_LANGUAGES


def zone_for(zone: str | ZoneInfo) -> ZoneInfo:
    """A ``ZoneInfo`` for an IANA name; raises ``ValueError`` for an unknown zone."""
    if isinstance(zone, ZoneInfo):
        return zone
    try:
        return ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone!r}") from exc


def _local(dt: datetime_type, zone: str | ZoneInfo) -> datetime_type:
    if not isinstance(dt, datetime_type):
        raise ValueError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no zone")
    return dt.astimezone(zone_for(zone))


def _width(format: str) -> Width:
    widths: dict[str, Width] = {
        "full": "full",
        "long": "long",
        "medium": "medium",
        "short": "short",
    }
    if format in widths:
        return widths[format]
    raise ValueError(f"format must be one of {', '.join(WIDTHS)}, not {format!r}")


def format_date(
    value: datetime_type | date_type,
    zone: str | ZoneInfo | None,
    locale: str,
    format: Width | str = "long",
) -> str:
    """The calendar date of ``value`` in ``zone`` ("14 March 2025", "2025年3月14日").

    A plain ``date`` needs no zone (pass ``None``); a datetime is first moved into ``zone``.
    """
    if isinstance(value, datetime_type):
        if zone is None:
            raise ValueError("a datetime needs a zone to become a calendar date")
        value = _local(value, zone).date()
    return babel_dates.format_date(value, _width(format), locale=locale_for(locale))


def format_time(
    dt: datetime_type,
    zone: str | ZoneInfo,
    locale: str,
    format: Width | str = "short",
    beside: str | ZoneInfo | None = None,
) -> str:
    """The wall-clock time of ``dt`` in ``zone`` ("10:00 AM", "10:00", "10:00 ص").

    ``short`` (the default) has no seconds. With ``beside`` (the zone of the time this one is
    shown next to) the short weekday is added when the two fall on different days ("Wed
    10:00 PM"), so "09:00 (your time) / 20:00 (mine)" can never hide a date change.
    """
    local = _local(dt, zone)
    loc = locale_for(locale)
    clock = babel_dates.format_time(local, _width(format), locale=loc)
    if beside is not None and _local(dt, beside).date() != local.date():
        day = babel_dates.format_date(local.date(), "EEE", locale=loc)
        return f"{day} {clock}"
    return str(clock)


def format_datetime(
    dt: datetime_type, zone: str | ZoneInfo, locale: str, format: Width | str = "long"
) -> str:
    """Date at ``format`` width and time without seconds, joined the locale's way.

    ``full`` gives "Friday, March 14, 2025, 10:00 AM" / "2025年3月14日金曜日 10:00".
    """
    loc = locale_for(locale)
    local = _local(dt, zone)
    width = _width(format)
    day = babel_dates.format_date(local.date(), width, locale=loc)
    clock = babel_dates.format_time(local, "short", locale=loc)
    pattern = str(babel_dates.get_datetime_format(width, locale=loc)).replace("'", "")
    return pattern.replace("{1}", day).replace("{0}", clock)


def format_weekday(dt: datetime_type | date_type, zone: str | ZoneInfo | None, locale: str) -> str:
    """The day of the week ("Friday", "金曜日", "శుక్రవారం", "الجمعة")."""
    if isinstance(dt, datetime_type):
        if zone is None:
            raise ValueError("a datetime needs a zone to find its weekday")
        dt = _local(dt, zone).date()
    return babel_dates.format_date(dt, "EEEE", locale=locale_for(locale))


def _is_offset_only(name: str, local: datetime_type, loc: Locale) -> bool:
    gmt = babel_dates.get_timezone_gmt(local, "long", locale=loc)
    return name == gmt or name.replace("\u200e", "") == gmt.replace("\u200e", "")


def zone_name(zone: str | ZoneInfo, locale: str, at: datetime_type | None = None) -> str:
    """A zone's name as a person from ``locale`` says it.

    With ``at`` the name says standard or summer time when the locale has such names ("Central
    European Summer Time"); without it, the generic name ("Central European Time"). Zones whose
    specific name CLDR lacks (India, Nepal) get the generic one ("India Time", "インド時間")
    rather than a bare "GMT+05:30".
    """
    tz = zone_for(zone)
    loc = locale_for(locale)
    if at is not None:
        local = _local(at, tz)
        name = babel_dates.get_timezone_name(local, "long", locale=loc)
        if not _is_offset_only(name, local, loc):
            return str(name)
    return str(babel_dates.get_timezone_name(tz, "long", locale=loc))


def _join_units(parts: list[str], loc: Locale) -> str:
    # The "standard" list style, because Babel's "unit" style is missing for some locales (es)
    # and repeats the last item for others (ar).
    return str(babel_lists.format_list(parts, style="standard", locale=loc))


def format_duration(td: timedelta, locale: str) -> str:
    """A span in whole days, hours and minutes ("2 hours", "2 घंटे", "1 day, 3 hours").

    The sign is dropped (callers say "overdue by" or "left" in their own words); spans under a
    minute read as seconds.
    """
    loc = locale_for(locale)
    total = abs(int(td.total_seconds()))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    spans = [
        timedelta(days=days),
        timedelta(hours=hours),
        timedelta(minutes=minutes),
    ]
    parts = [
        str(babel_dates.format_timedelta(span, threshold=1, locale=loc)) for span in spans if span
    ]
    if not parts:
        parts = [str(babel_dates.format_timedelta(timedelta(seconds=seconds), locale=loc))]
    return _join_units(parts, loc)


def format_number(value: float | int, locale: str) -> str:
    """A number with the locale's separators ("1,234.5", "1.234,5", "1 234,5")."""
    return str(babel_numbers.format_decimal(value, locale=locale_for(locale)))
