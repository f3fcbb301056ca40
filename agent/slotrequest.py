"""The JSON interface of ``followup slots --request FILE.json [--json]``.

:func:`load_request` reads and validates a request file into a :class:`~agent.slots.SlotRequest`
(every problem at once, each named by its JSON path); :func:`answer_json` and
:func:`render_text` present a :class:`~agent.slots.Proposal` with each slot in UTC and in every
attendee's own local time.

A request file::

    {
      "duration_minutes": 45,
      "window": {"start": "2026-03-09T00:00:00Z", "end": "2026-03-21T00:00:00Z"},
      "now": "2026-03-06T15:00:00Z",
      "min_notice_minutes": 240, "step_minutes": 30, "count": 3,
      "buffer_before_minutes": 0, "buffer_after_minutes": 10, "tentative_busy": true,
      "attendees": [
        {"name": "Yuki Tanaka", "email": "yuki@client.jp", "role": "client",
         "zone": "Asia/Tokyo", "hours": "09:00-18:00", "country": "JP"},
        {"name": "Sam Rivera", "email": "sam@example.com", "role": "internal",
         "zone": "Pacific Standard Time", "hours": {"mon": "08:00-17:00", "fri": "08:00-13:00"},
         "country": "US", "subdivision": "CA",
         "busy": [{"start": "2026-03-10T16:00:00Z", "end": "2026-03-10T17:00:00Z"}],
         "busy_ics": ["calendars/sam.ics"]}
      ]
    }

``busy_ics`` paths are relative to the request file. Zones may be IANA names, legacy aliases or
Windows names; they are normalised by :mod:`agent.zones`. Unknown keys are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent import calendars, zones
from agent.businesstime import BusinessCalendar, WeeklyHours
from agent.errors import Problem, UserError
from agent.model import Interval, utc
from agent.slots import NearMiss, Party, Proposal, Slot, SlotRequest

_TOP_KEYS = {
    "duration_minutes",
    "window",
    "now",
    "min_notice_minutes",
    "step_minutes",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "count",
    "tentative_busy",
    "attendees",
}
_ATTENDEE_KEYS = {
    "name",
    "email",
    "role",
    "required",
    "weight",
    "zone",
    "hours",
    "weekend",
    "country",
    "subdivision",
    "busy",
    "busy_ics",
}
_DEFAULTS = {
    "min_notice_minutes": 240,
    "step_minutes": 30,
    "buffer_before_minutes": 0,
    "buffer_after_minutes": 0,
    "count": 3,
}


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.found.append(Problem(self.file, where, message))


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str, out: _Problems) -> None:
    for key in data:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            out.add(f"{where}{key}" if where else key, f"unknown key; known keys: {known}")


def _instant(value: Any, where: str, out: _Problems) -> datetime | None:
    if not isinstance(value, str):
        out.add(where, "expected an ISO 8601 date-time string such as 2026-03-09T09:00:00Z")
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        out.add(where, f"{value!r} is not an ISO 8601 date-time such as 2026-03-09T09:00:00Z")
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        out.add(where, f"{value!r} has no offset; add Z or an offset such as +05:30")
        return None
    return utc(parsed)


def _span(value: Any, where: str, out: _Problems) -> Interval | None:
    if not isinstance(value, Mapping):
        out.add(where, 'expected {"start": ..., "end": ...}')
        return None
    _unknown_keys(value, {"start", "end"}, f"{where}.", out)
    if "start" not in value or "end" not in value:
        out.add(where, "needs both start and end")
        return None
    start = _instant(value["start"], f"{where}.start", out)
    end = _instant(value["end"], f"{where}.end", out)
    if start is None or end is None:
        return None
    if end <= start:
        out.add(where, "end must be after start")
        return None
    return Interval(start, end)


def _minutes(data: Mapping[str, Any], key: str, out: _Problems, *, least: int) -> int | None:
    value = data.get(key, _DEFAULTS.get(key))
    if value is None:
        out.add(key, "required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        out.add(key, f"expected a whole number of at least {least}, got {value!r}")
        return None
    return value


def _text(data: Mapping[str, Any], key: str, where: str, out: _Problems, default: str = "") -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        out.add(f"{where}.{key}", f"expected a string, got {value!r}")
        return default
    return value.strip()


def load_request(path: Path, *, now: datetime | None = None) -> SlotRequest:
    """Read a slot request file; ``now`` is used when the file gives none.

    Returns a validated :class:`SlotRequest`. Raises :class:`UserError` listing every problem
    found, each with the file and the JSON path (``attendees[1].zone``), including unreadable or
    malformed ``busy_ics`` files.
    """
    out = _Problems(str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError([Problem(str(path), "", f"cannot read the file: {exc.strerror}")]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError([Problem(str(path), "", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, Mapping):
        raise UserError([Problem(str(path), "", "expected a JSON object at the top")])
    _unknown_keys(data, _TOP_KEYS, "", out)

    duration = _minutes(data, "duration_minutes", out, least=1)
    notice = _minutes(data, "min_notice_minutes", out, least=0)
    step = _minutes(data, "step_minutes", out, least=1)
    before = _minutes(data, "buffer_before_minutes", out, least=0)
    after = _minutes(data, "buffer_after_minutes", out, least=0)
    count = _minutes(data, "count", out, least=1)
    tentative_busy = data.get("tentative_busy", True)
    if not isinstance(tentative_busy, bool):
        out.add("tentative_busy", f"expected true or false, got {tentative_busy!r}")
        tentative_busy = True

    window = _span(data["window"], "window", out) if "window" in data else None
    if "window" not in data:
        out.add("window", 'required: {"start": ..., "end": ...}')
    if "now" in data:
        now = _instant(data["now"], "now", out)
    elif now is None:
        out.add("now", "required: the instant the search counts notice from")
    else:
        now = utc(now)

    attendees = data.get("attendees")
    parties: list[Party] = []
    if not isinstance(attendees, list) or not attendees:
        out.add("attendees", "expected a non-empty list of attendees")
    else:
        for index, raw in enumerate(attendees):
            party = _party(raw, f"attendees[{index}]", path, window, tentative_busy, out)
            if party is not None:
                parties.append(party)
        if not any(p.required for p in parties) and len(parties) == len(attendees):
            out.add("attendees", "at least one attendee must be required")

    if out.found:
        raise UserError(out.found)
    assert duration is not None and notice is not None and step is not None
    assert before is not None and after is not None and count is not None
    assert window is not None and now is not None
    try:
        return SlotRequest(
            duration=timedelta(minutes=duration),
            window=window,
            now=now,
            parties=tuple(parties),
            min_notice=timedelta(minutes=notice),
            step=timedelta(minutes=step),
            buffer_before=timedelta(minutes=before),
            buffer_after=timedelta(minutes=after),
            count=count,
        )
    except ValueError as exc:
        raise UserError([Problem(str(path), "", str(exc))]) from None


def _party(
    raw: Any,
    where: str,
    path: Path,
    window: Interval | None,
    tentative_busy: bool,
    out: _Problems,
) -> Party | None:
    if not isinstance(raw, Mapping):
        out.add(where, "expected an object with name, email, zone ...")
        return None
    before = len(out.found)
    _unknown_keys(raw, _ATTENDEE_KEYS, f"{where}.", out)
    name = _text(raw, "name", where, out)
    email = _text(raw, "email", where, out).lower()
    if not name and not email:
        out.add(where, "needs a name or an email")
    role = _text(raw, "role", where, out, "internal")
    if role not in ("client", "internal"):
        out.add(f"{where}.role", f"expected 'client' or 'internal', got {role!r}")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        out.add(f"{where}.required", f"expected true or false, got {required!r}")
        required = True
    weight = raw.get("weight")
    if weight is not None and (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or weight < 0
        or not math.isfinite(weight)
    ):
        out.add(f"{where}.weight", f"expected a number of at least 0, got {weight!r}")
        weight = None

    zone = ""
    raw_zone = raw.get("zone")
    if not isinstance(raw_zone, str) or not raw_zone.strip():
        out.add(f"{where}.zone", "required: an IANA time zone such as Asia/Kolkata")
    else:
        try:
            zone = zones.to_iana(raw_zone)
        except ValueError:
            out.add(
                f"{where}.zone",
                f"unknown time zone {raw_zone!r}; use an IANA name such as Asia/Kolkata",
            )

    hours_value = raw.get("hours", "09:00-17:00")
    weekend = raw.get("weekend", ["sat", "sun"])
    hours = None
    if not isinstance(weekend, list | str) or (
        isinstance(weekend, list) and not all(isinstance(d, str) for d in weekend)
    ):
        out.add(f"{where}.weekend", 'expected a list of weekday names such as ["fri", "sat"]')
    elif not isinstance(hours_value, str | Mapping):
        out.add(f"{where}.hours", 'expected "09:00-17:00" or a map such as {"mon": "09:00-17:00"}')
    else:
        try:
            hours = WeeklyHours.parse(hours_value, weekend)
        except ValueError as exc:
            key = "weekend" if "weekday" in str(exc) and isinstance(hours_value, str) else "hours"
            out.add(f"{where}.{key}", str(exc))

    country = _text(raw, "country", where, out)
    subdivision = _text(raw, "subdivision", where, out)
    calendar = None
    if zone and hours is not None:
        try:
            calendar = BusinessCalendar(zone, hours, country=country, subdivision=subdivision)
        except ValueError as exc:
            key = "subdivision" if "subdivision" in str(exc) else "country"
            out.add(f"{where}.{key}", str(exc))

    busy: list[Interval] = []
    spans = raw.get("busy", [])
    if not isinstance(spans, list):
        out.add(f"{where}.busy", 'expected a list of {"start": ..., "end": ...}')
    else:
        for i, span in enumerate(spans):
            interval = _span(span, f"{where}.busy[{i}]", out)
            if interval is not None:
                busy.append(interval)
    files = raw.get("busy_ics", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        out.add(f"{where}.busy_ics", "expected a list of .ics paths relative to this file")
    elif window is None:
        # Without a window nothing can be expanded, but a missing file is still worth naming.
        for i, name_ in enumerate(files):
            if not (path.parent / name_).is_file():
                out.add(
                    f"{where}.busy_ics[{i}]", f"cannot read {path.parent / name_}: no such file"
                )
    else:
        for i, name_ in enumerate(files):
            busy.extend(
                _busy_file(
                    path.parent / name_,
                    f"{where}.busy_ics[{i}]",
                    window,
                    tentative_busy=tentative_busy,
                    email=email,
                    zone=zone or "UTC",
                    out=out,
                )
            )

    if len(out.found) > before or calendar is None:
        return None
    return Party(
        name=name or email,
        email=email,
        calendar=calendar,
        busy=tuple(calendars.merge(busy)),
        role=role,
        required=required,
        weight=float(weight) if weight is not None else None,
    )


def _busy_file(
    file: Path,
    where: str,
    window: Interval,
    *,
    tentative_busy: bool,
    email: str,
    zone: str,
    out: _Problems,
) -> list[Interval]:
    try:
        data = file.read_bytes()
    except OSError as exc:
        out.add(where, f"cannot read {file}: {exc.strerror}")
        return []
    try:
        return calendars.busy_from_ics(
            data,
            window,
            tentative_busy=tentative_busy,
            attendee_emails=[email] if email else [],
            zone=zone,
        )
    except ValueError as exc:
        out.add(where, f"{file.name}: {exc}")
        return []


# -- presenting a proposal --------------------------------------------------------------------


def _iso_utc(dt: datetime) -> str:
    return utc(dt).isoformat().replace("+00:00", "Z")


def _local(request: SlotRequest, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "email": p.email,
            "role": p.role,
            "required": p.required,
            "zone": p.calendar.zone,
            "start": start.astimezone(p.calendar.tz).isoformat(),
            "end": end.astimezone(p.calendar.tz).isoformat(),
        }
        for p in request.parties
    ]


def _slot_json(request: SlotRequest, slot: Slot) -> dict[str, Any]:
    return {
        "start": _iso_utc(slot.start),
        "end": _iso_utc(slot.end),
        "score": slot.score,
        "reasons": list(slot.reasons),
        "local": _local(request, slot.start, slot.end),
    }


def _miss_json(request: SlotRequest, miss: NearMiss) -> dict[str, Any]:
    return {
        "start": _iso_utc(miss.start),
        "end": _iso_utc(miss.end),
        "reasons": list(miss.reasons),
        "stretch_minutes": round(miss.stretch.total_seconds() / 60),
        "local": _local(request, miss.start, miss.end),
    }


def answer_json(request: SlotRequest, proposal: Proposal) -> dict[str, Any]:
    """The proposal as plain JSON data.

    Shape: ``{"duration_minutes", "window": {"start", "end"}, "now", "slots": [{"start",
    "end", "score", "reasons", "local": [{"name", "email", "role", "required", "zone",
    "start", "end"}]}], "near_misses": [{..., "stretch_minutes"}], "warnings": [str]}``.
    ``start``/``end`` at the top of a slot are UTC (``Z``); those under ``local`` carry the
    attendee's offset.
    """
    return {
        "duration_minutes": round(request.duration.total_seconds() / 60),
        "window": {
            "start": _iso_utc(request.window.start),
            "end": _iso_utc(request.window.end),
        },
        "now": _iso_utc(request.now),
        "slots": [_slot_json(request, s) for s in proposal.slots],
        "near_misses": [_miss_json(request, m) for m in proposal.near_misses],
        "warnings": list(proposal.warnings),
    }


def render_text(request: SlotRequest, proposal: Proposal) -> Any:
    """A rich renderable (a Group of tables and lines) for ``console.print``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []

    def table(title: str, last: str, rows: list[tuple[str, datetime, datetime, str]]) -> Table:
        t = Table(title=title, title_justify="left", show_lines=True)
        t.add_column("#", justify="right")
        for p in request.parties:
            label = p.name + ("" if p.required else " (optional)")
            t.add_column(f"{label}\n{p.calendar.zone}")
        t.add_column(last)
        for rank, start, end, why in rows:
            cells = [rank]
            for p in request.parties:
                a = start.astimezone(p.calendar.tz)
                b = end.astimezone(p.calendar.tz)
                cells.append(f"{a:%a} {a.day} {a:%b}\n{a:%H:%M}-{b:%H:%M} ({a:%z})")
            cells.append(why)
            t.add_row(*cells)
        return t

    if proposal.slots:
        rows = [
            (str(i), s.start, s.end, f"{s.score:.1f}")
            for i, s in enumerate(proposal.slots, start=1)
        ]
        parts.append(table("Proposed slots", "score", rows))
    else:
        parts.append(Text("No slot suits every required attendee.", style="bold red"))
    if proposal.near_misses:
        rows = [
            (str(i), m.start, m.end, "\n".join(m.reasons))
            for i, m in enumerate(proposal.near_misses, start=1)
        ]
        parts.append(table("Near misses", "what would have to give", rows))
    for warning in proposal.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)
