"""One way to write a span of time, wherever a rule file or a command takes one.

The grammar: one or more ``<number><unit>`` parts, largest unit first, each unit once:

- ``w`` weeks, ``d`` days (24 hours), ``h`` hours, ``m`` (or ``min``) minutes: ``3d``, ``1w``,
  ``4h30m``, ``1.5h``;
- ``bd`` business days, on its own (``2bd``), where the key counts in business days.

``m`` is always minutes; there is no unit for months or years (nothing a team promises or waits
for is that long). A span written out in words (``3 days``, ``1 week``) is refused with the short
form to write instead, so a typo never silently means something else. Rules (``target``,
``warn``, ``escalate_after``), cadences (``after``, ``delay``, ``min_gap``), meeting rules and
``--since`` all read spans here.
"""

from __future__ import annotations

import re
from datetime import timedelta

# Longer input is not a span anyone writes by hand; refusing it keeps the scan bounded.
_LONGEST_TEXT = 40
# Nothing a team promises, waits for or searches is counted in years: a longer span is a typo,
# and business-time arithmetic would walk the calendar for centuries to honour it.
LONGEST = timedelta(days=366)
# A number and the word after it; the scan below is linear (no nested repetition).
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "min": "minutes"}
_ORDER = ("weeks", "days", "hours", "minutes")
# Words people write for a unit we have, and the letter to write instead.
_SPELLED = {
    "wk": "w",
    "wks": "w",
    "week": "w",
    "weeks": "w",
    "day": "d",
    "days": "d",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "s": "",
    "sec": "",
    "secs": "",
    "second": "",
    "seconds": "",
}
_MONTHS = {"mo", "mon", "mos", "month", "months"}
_YEARS = {"y", "yr", "yrs", "year", "years"}
_BUSINESS = re.compile(r"^\s*(\d+)\s*(bd|business\s*days?|working\s*days?|bdays?)\s*$", re.I)
GRAMMAR = "w = weeks, d = days, h = hours, m = minutes"


def _number(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def business_days(text: str) -> int | None:
    """``"2bd"`` -> 2; ``None`` when ``text`` is not written in business days.

    ``"2 business days"`` raises ``ValueError`` saying to write ``2bd``.
    """
    if not isinstance(text, str) or len(text) > _LONGEST_TEXT:
        return None
    m = _BUSINESS.match(text)
    if not m:
        return None
    if m[2] != "bd":
        raise ValueError(f"{text!r}: write {m[1]}bd for {m[1]} business days")
    return int(m[1])


def parts(text: str, *, business: bool = False) -> dict[str, float]:
    """``"4h30m"`` -> ``{"hours": 4.0, "minutes": 30.0}``; ``ValueError`` with the fix otherwise.

    ``business`` says whether the key also takes business days, for the hint only.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; write it in quotes, such as '4h' or '3d'")
    if len(text) > _LONGEST_TEXT:
        raise ValueError(f"a duration of {len(text)} characters; write it like '4h' or '3d'")
    if not text.strip():
        raise ValueError("is empty; write a duration such as '4h', '3d' or '1w'")
    if days := _BUSINESS.match(text):
        if business:
            raise ValueError(f"{text!r}: write {days[1]}bd for {days[1]} business days")
        raise ValueError(
            f"{text!r}: business days are not counted here; write calendar days such as "
            f"'{days[1]}d'"
        )
    found: dict[str, float] = {}
    at = 0
    while at < len(text):
        m = _PART.match(text, at)
        if not m:
            raise ValueError(_unreadable(text, business))
        number, word = m[1], m[2]
        at = m.end()
        unit = word if word in _UNITS else word.lower()
        if word == "M":
            raise ValueError(
                f"{text!r}: 'm' is minutes and there is no unit for months; write {number}m for "
                f"{number} minutes, or weeks such as '4w'"
            )
        if unit in _UNITS:
            name = _UNITS[unit]
            if name in found:
                raise ValueError(f"{text!r} gives {name} twice; write each unit once, like '4h30m'")
            found[name] = float(number)
            continue
        if unit == "bd":
            raise ValueError(f"{text!r}: business days stand alone; write '{number}bd' on its own")
        if unit in _MONTHS:
            weeks = max(1, round(float(number) * 4.345))
            raise ValueError(
                f"{text!r}: there is no unit for months ('m' is minutes); write weeks, such as "
                f"'{weeks}w'"
            )
        if unit in _YEARS:
            raise ValueError(f"{text!r}: there is no unit for years; write weeks, at most '52w'")
        if unit in _SPELLED:
            short = _SPELLED[unit]
            if not short:
                raise ValueError(f"{text!r}: seconds are too fine for a rule; write minutes, '1m'")
            raise ValueError(f"{text!r}: write {_written_short(text)}")
        raise ValueError(_unreadable(text, business))
    if [u for u in _ORDER if u in found] != list(found):
        raise ValueError(
            f"{text!r}: write the largest unit first, like '1w2d' or '4h30m' ({GRAMMAR})"
        )
    return found


def _written_short(text: str) -> str:
    """'3 days' -> '3d'; '1 hour 30 minutes' -> '1h30m'."""
    out = []
    for m in _PART.finditer(text):
        word = m[2].lower()
        unit = _SPELLED.get(word) or word
        out.append(_number(m[1]) + ("m" if unit == "min" else unit))
    return "".join(out)


def _unreadable(text: str, business: bool) -> str:
    days = " or business days '2bd'" if business else ""
    return f"{text!r} is not a duration; write it like '3d', '1w' or '4h30m'{days} ({GRAMMAR})"


def parse_duration(text: str, *, business: bool = False) -> timedelta:
    """``'4h'``, ``'4h30m'``, ``'3d'`` (days of 24 hours), ``'1w'`` -> timedelta.

    ``ValueError`` naming the fix for anything else and for spans longer than ``LONGEST``;
    ``business`` only tunes the hint for keys that also take business days (``2bd``), which
    callers read first with :func:`business_days`.
    """
    found = parts(text, business=business)
    try:
        span = timedelta(**found)
    except OverflowError:
        span = timedelta.max
    if span > LONGEST:
        raise ValueError(f"{text!r} is longer than a year; write a span such as '4h' or '3d'")
    return span
