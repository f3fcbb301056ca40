"""Meeting slots across time zones, ranked for both sides (pure: no clock, no I/O).

:func:`propose` takes a :class:`SlotRequest` and returns a :class:`Proposal`.

How slots are found
-------------------
- All arithmetic is on UTC instants (integer microseconds internally, so nothing rounds).
- The search starts at ``max(window.start, now + min_notice)`` and a slot must end by
  ``window.end``.
- Each party's open time comes from its own :class:`~agent.businesstime.BusinessCalendar`, so
  hours, weekends and holidays apply on that party's local date: 09:00 Monday in Auckland is
  Sunday afternoon in Los Angeles, and Los Angeles' Sunday is closed.
- A slot ``[s, e)`` must lie inside open time of every required party, and ``[s - before,
  e + after)`` must not overlap any of their busy intervals (the buffers).
- Slots start on round local times for the client: multiples of ``step`` counted from the
  client's local midnight (10:00 and 10:30 in Kathmandu, even though that is 04:15Z and 04:45Z).
  Wall times inside a DST gap do not exist and are skipped; both occurrences of a folded wall
  time are candidates.

How they are ranked
-------------------
Each party has a comfort curve over its own local time of day: mid-morning is best, early
morning, lunch, late afternoon and evening are worse (see ``_COMFORT``). A slot's comfort for a
party is that curve averaged over the meeting. The score is the weighted mean over all parties
(client 2, internal 1, optional 0.5 unless a party's ``weight`` says otherwise); an optional
party counts with comfort 0 when busy or outside their hours. A preference for sooner slots
(half a percent a day, at most 15%) breaks near-ties. Then a varied set is picked greedily:
slots never overlap each other, and a slot on a client-local date already chosen, or in a half
of the day (client's morning or afternoon) that is already better represented, is marked down.

When there is not enough room
-----------------------------
If fewer than ``count`` slots exist, :class:`NearMiss` entries list the closest times that fail:
whose hours would have to stretch and by how much ("Yuki (Tokyo) would have to start 1h30
earlier"), or who is busy then. Near misses only use each party's business days.

Warnings name every clock change inside the search window in any party's zone, and say when the
window is too short or no time suits everyone.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.businesstime import BusinessCalendar
from agent.model import Interval, utc

ROLES = ("client", "internal")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_US = timedelta(microseconds=1)
_MINUTE = 60_000_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

# How far a party's hours may stretch for a near miss to be worth showing.
_MAX_STRETCH = 4 * _HOUR
# Penalties for the varied selection, on the 0..1 score scale.
_SAME_DAY_PENALTY = 0.3
_HALF_DAY_PENALTY = 0.08
# Sooner is better in sales: score lost per day after the earliest start, and at most.
_LATENESS_PER_DAY = 0.005
_LATENESS_MAX = 0.15

# Comfort by local time of day: (from minute, comfort) steps, averaged over the meeting.
_COMFORT_STEPS = (
    (0, 0.0),
    (7 * 60, 0.15),
    (8 * 60, 0.45),
    (9 * 60, 0.8),
    (10 * 60, 1.0),
    (11 * 60 + 30, 0.85),
    (12 * 60, 0.35),
    (13 * 60 + 30, 0.8),
    (15 * 60, 0.65),
    (16 * 60 + 30, 0.45),
    (17 * 60 + 30, 0.2),
    (19 * 60, 0.08),
    (21 * 60, 0.0),
)


def _comfort_prefix() -> list[float]:
    per_minute = []
    for minute in range(2 * 24 * 60):
        of_day = minute % (24 * 60)
        level = 0.0
        for start, value in _COMFORT_STEPS:
            if of_day >= start:
                level = value
        per_minute.append(level)
    prefix = [0.0]
    for value in per_minute:
        prefix.append(prefix[-1] + value)
    return prefix


_COMFORT = _comfort_prefix()


def _comfort(start_minute: int, minutes: int) -> float:
    """Mean comfort over ``minutes`` from local minute-of-day ``start_minute``."""
    minutes = max(1, min(minutes, 24 * 60))
    return (_COMFORT[start_minute + minutes] - _COMFORT[start_minute]) / minutes


def _label(start_minute: int, minutes: int) -> str:
    end_minute = start_minute + minutes
    if 12 * 60 <= start_minute < 13 * 60 + 30 or start_minute < 12 * 60 + 30 < end_minute:
        return "lunchtime"
    for upto, name in (
        (7 * 60, "very early"),
        (9 * 60, "early morning"),
        (10 * 60, "morning"),
        (11 * 60 + 30, "mid-morning"),
        (12 * 60, "late morning"),
        (15 * 60, "early afternoon"),
        (17 * 60, "afternoon"),
        (19 * 60, "late"),
    ):
        if start_minute < upto:
            return name
    return "evening"


@dataclass(frozen=True)
class Party:
    """One attendee: whose calendar, what they have on, and how much their comfort counts.

    ``role`` is ``"client"`` or ``"internal"``. An optional party (``required=False``) never
    blocks a slot; slots where they are free rank higher. ``weight`` defaults by role: client 2,
    internal 1, optional 0.5. ``busy`` is any iterable of UTC intervals, in any order.
    """

    name: str
    email: str
    calendar: BusinessCalendar
    busy: Sequence[Interval] = ()
    role: str = "internal"
    required: bool = True
    weight: float | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"party {self.name!r}: role must be one of {ROLES}, not {self.role!r}")
        if self.weight is not None and not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"party {self.name!r}: weight must be a finite number >= 0")
        object.__setattr__(self, "busy", tuple(self.busy))

    @property
    def effective_weight(self) -> float:
        if self.weight is not None:
            return self.weight
        if not self.required:
            return 0.5
        return 2.0 if self.role == "client" else 1.0

    @property
    def city(self) -> str:
        """A short place name for messages: the last part of the zone name."""
        return self.calendar.zone.rsplit("/", 1)[-1].replace("_", " ")


@dataclass(frozen=True)
class SlotRequest:
    """Everything :func:`propose` needs, ``now`` included. Raises ``ValueError`` when invalid."""

    duration: timedelta
    window: Interval
    now: datetime
    parties: tuple[Party, ...]
    min_notice: timedelta = timedelta(hours=4)
    step: timedelta = timedelta(minutes=30)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    count: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", utc(self.now))
        object.__setattr__(self, "parties", tuple(self.parties))
        problems = []
        if self.duration <= timedelta(0) or self.duration > timedelta(hours=24):
            problems.append("duration must be more than 0 and at most 24 hours")
        if self.step < timedelta(minutes=1) or self.step > timedelta(hours=24):
            problems.append("step must be between 1 minute and 24 hours")
        elif timedelta(days=1) % self.step:
            problems.append("step must divide a day evenly (5, 10, 15, 20, 30, 60 minutes ...)")
        if self.min_notice < timedelta(0):
            problems.append("minimum notice must not be negative")
        if self.buffer_before < timedelta(0) or self.buffer_after < timedelta(0):
            problems.append("buffers must not be negative")
        if self.count < 1:
            problems.append("count must be at least 1")
        if not any(p.required for p in self.parties):
            problems.append("at least one attendee must be required")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def client(self) -> Party:
        """The party whose local clock sets the grid: the first client, else the first party."""
        for party in self.parties:
            if party.role == "client":
                return party
        return self.parties[0]


@dataclass(frozen=True)
class Slot:
    """A proposed meeting ``[start, end)`` in UTC; ``score`` 0-100; ``reasons`` say why."""

    start: datetime
    end: datetime
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class NearMiss:
    """A time that almost works; ``reasons`` say what would have to give, ``stretch`` how much
    working hours would have to stretch in total."""

    start: datetime
    end: datetime
    reasons: tuple[str, ...]
    stretch: timedelta = timedelta(0)


@dataclass(frozen=True)
class Proposal:
    """Slots best first; near misses when fewer than the requested count exist; warnings."""

    slots: tuple[Slot, ...]
    near_misses: tuple[NearMiss, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


# -- integer-microsecond helpers --------------------------------------------------------------

_Span = tuple[int, int]


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _merge(spans: list[_Span]) -> list[_Span]:
    spans.sort()
    merged: list[_Span] = []
    for start, end in spans:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _subtract(base: list[_Span], holes: list[_Span]) -> list[_Span]:
    """``base`` minus ``holes``; both sorted and merged."""
    out: list[_Span] = []
    j = 0
    for start, end in base:
        while j < len(holes) and holes[j][1] <= start:
            j += 1
        k = j
        cur = start
        while k < len(holes) and holes[k][0] < end:
            if holes[k][0] > cur:
                out.append((cur, holes[k][0]))
            cur = max(cur, holes[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def _intersect(a: list[_Span], b: list[_Span]) -> list[_Span]:
    out: list[_Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _contains(spans: list[_Span], starts: list[int], s: int, e: int) -> bool:
    i = bisect.bisect_right(starts, s) - 1
    return i >= 0 and spans[i][1] >= e


def _overlapping(spans: list[_Span], starts: list[int], s: int, e: int) -> _Span | None:
    i = bisect.bisect_left(starts, e) - 1
    if i >= 0 and spans[i][1] > s:
        return spans[i]
    return None


def _grid(a: int, b: int, duration: int, step: int, p: _Prepared) -> Iterator[int]:
    """Starts ``s`` with ``a <= s`` and ``s + duration <= b`` whose local wall-clock time is a
    multiple of ``step`` (which divides a day, so the grid is anchored at local midnight).

    Per stretch of constant offset ``o``, wall time ``g`` is the instant ``g - o``; a wall time
    inside a DST gap belongs to no stretch and a folded one to two, so gaps are skipped and both
    occurrences of a fold are offered. Starts come in ascending order.
    """
    found: list[int] = []
    bounds = [*p.seg_starts[1:], None]
    for start, end, o in zip(p.seg_starts, bounds, p.seg_offsets, strict=True):
        lo = max(a, start)
        hi = b - duration if end is None else min(b - duration, end - 1)
        if hi < lo:
            continue
        g = -((-(lo + o)) // step) * step  # first grid wall time at or after lo
        while g - o <= hi:
            found.append(g - o)
            g += step
    found.sort()
    return iter(found)


# -- per-party precomputation -----------------------------------------------------------------


class _Prepared:
    """A party's open, free and busy time as sorted integer spans, and its UTC offsets.

    ``offsets`` is a step function over the search range: ``seg_starts[i]`` is the instant from
    which ``seg_offsets[i]`` applies, so local wall-clock arithmetic needs no datetime at all.
    """

    def __init__(
        self,
        party: Party,
        lo: int,
        hi: int,
        before: int,
        after: int,
        transitions: list[tuple[int, int, int]],
    ) -> None:
        self.party = party
        self.tz = party.calendar.tz
        self.weight = party.effective_weight
        self.open = [
            (_us(iv.start), _us(iv.end)) for iv in party.calendar.open_intervals(_dt(lo), _dt(hi))
        ]
        self.open_starts = [s for s, _ in self.open]
        # A slot [s, e) collides with busy [a, b) when [s - before, e + after) overlaps it.
        self.blocked = _merge(
            [
                ((iv.start - _EPOCH) // _US - after, (iv.end - _EPOCH) // _US + before)
                for iv in party.busy
            ]
        )
        self.blocked_starts = [s for s, _ in self.blocked]
        self.free = _subtract(self.open, self.blocked)
        self.free_starts = [s for s, _ in self.free]
        self.seg_starts = [lo]
        self.seg_offsets = [_offset(self.tz, lo)]
        for at, _, new in transitions:
            self.seg_starts.append(at)
            self.seg_offsets.append(new)
        self._business: dict[int, bool] = {}

    def offset(self, s: int) -> int:
        return self.seg_offsets[max(0, bisect.bisect_right(self.seg_starts, s) - 1)]

    def wall(self, s: int) -> int:
        """Local wall-clock time of instant ``s`` as microseconds since the local epoch."""
        return s + self.offset(s)

    def local(self, s: int) -> datetime:
        return _dt(s).astimezone(self.tz)

    def minute_of_day(self, s: int) -> int:
        return (self.wall(s) % _DAY) // _MINUTE

    def day(self, s: int) -> int:
        """The local date of ``s`` as a day number (days since 1970-01-01)."""
        return self.wall(s) // _DAY

    def is_business_day(self, day: int) -> bool:
        known = self._business.get(day)
        if known is None:
            known = self.party.calendar.is_business_day(date.fromordinal(_EPOCH_ORDINAL + day))
            self._business[day] = known
        return known

    def available(self, s: int, e: int) -> bool:
        return _contains(self.free, self.free_starts, s, e)


def _fmt_span(us: int) -> str:
    minutes = round(us / _MINUTE)
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours}h{rest:02d}" if rest else f"{hours}h"


def _fmt_local(dt: datetime) -> str:
    return f"{dt:%a} {dt.day} {dt:%b} {dt:%H:%M}"


# -- the search -------------------------------------------------------------------------------


@dataclass
class _Candidate:
    start: int
    score: float
    day: int  # the client's local date as days since 1970-01-01
    afternoon: bool


def propose(request: SlotRequest) -> Proposal:
    """Find and rank up to ``request.count`` slots; see the module docstring for the rules.

    Returns a :class:`Proposal`: slots best first, near misses when fewer than ``count`` slots
    exist, warnings. Raises ``ValueError`` only through the calendars (a calendar that cannot
    compute its hours); an empty result is a proposal with an explanation, not an error.
    """
    duration = request.duration // _US
    earliest = max(_us(request.window.start), _us(request.now + request.min_notice))
    latest = _us(request.window.end)
    warnings: list[str] = []
    if earliest + duration > latest:
        warnings.append(
            "the window leaves no room: a meeting of "
            f"{_fmt_span(duration)} cannot start after the minimum notice "
            f"({_dt(earliest):%Y-%m-%d %H:%M} UTC) and end by the window's end "
            f"({_dt(latest):%Y-%m-%d %H:%M} UTC)"
        )
        return Proposal((), (), tuple(warnings))

    before = request.buffer_before // _US
    after = request.buffer_after // _US
    lo, hi = earliest - _DAY, latest + _DAY
    transitions: dict[str, list[tuple[int, int, int]]] = {}
    for party in request.parties:
        if party.calendar.zone not in transitions:
            transitions[party.calendar.zone] = _transitions(party.calendar.tz, lo, hi)
    prepared = [
        _Prepared(p, lo, hi, before, after, transitions[p.calendar.zone]) for p in request.parties
    ]
    required = [p for p in prepared if p.party.required]
    optional = [p for p in prepared if not p.party.required]
    client = next(p for p in prepared if p.party is request.client)

    warnings.extend(_dst_warnings(prepared, earliest, latest))
    step = request.step // _US

    common = [(earliest, latest)]
    for p in required:
        common = _intersect(common, p.free)

    total_weight = sum(p.weight for p in prepared) or 1.0
    minutes = max(1, duration // _MINUTE)
    candidates: list[_Candidate] = []
    for a, b in common:
        for s in _grid(a, b, duration, step, client):
            e = s + duration
            total = 0.0
            for p in required:
                total += p.weight * _comfort(p.minute_of_day(s), minutes)
            for p in optional:
                if p.available(s, e):
                    total += p.weight * _comfort(p.minute_of_day(s), minutes)
            lateness = min(_LATENESS_MAX, _LATENESS_PER_DAY * (s - earliest) / _DAY)
            score = total / total_weight * (1 - lateness)
            wall = client.wall(s)
            candidates.append(_Candidate(s, score, wall // _DAY, wall % _DAY >= 12 * _HOUR))

    chosen = _select(candidates, request.count, duration)
    slots = tuple(_slot(c, duration, prepared, client) for c in chosen)

    near: tuple[NearMiss, ...] = ()
    if len(slots) < request.count:
        if not candidates:
            warnings.append(
                "no time in the window suits every required attendee; the nearest near misses "
                "say whose hours would have to stretch or who is busy"
            )
        else:
            warnings.append(
                f"only {len(slots)} of the {request.count} requested slots fit in the window"
            )
        near = _near_misses(request, prepared, earliest, latest, chosen)
    return Proposal(slots, near, tuple(warnings))


def _select(candidates: list[_Candidate], count: int, duration: int) -> list[_Candidate]:
    """Greedy varied choice: best adjusted score first, never overlapping a chosen slot."""
    chosen: list[_Candidate] = []
    remaining = sorted(candidates, key=lambda c: (-c.score, c.start))
    while len(chosen) < count:
        best: _Candidate | None = None
        best_value = -math.inf
        for c in remaining:
            if c.score <= best_value:
                break  # penalties only lower a score: nothing further down can win
            if any(abs(c.start - x.start) < duration for x in chosen):
                continue
            value = c.score
            value -= _SAME_DAY_PENALTY * sum(1 for x in chosen if x.day == c.day)
            same_half = sum(1 for x in chosen if x.afternoon == c.afternoon)
            value -= _HALF_DAY_PENALTY * max(0, 2 * same_half - len(chosen))
            if value > best_value:
                best, best_value = c, value
        if best is None:
            break
        chosen.append(best)
        remaining.remove(best)
    return chosen


def _slot(c: _Candidate, duration: int, prepared: list[_Prepared], client: _Prepared) -> Slot:
    s, e = c.start, c.start + duration
    minutes = max(1, duration // _MINUTE)
    reasons = []
    for p in prepared:
        local = p.local(s)
        end_local = p.local(e)
        when = f"{_fmt_local(local)}-{end_local:%H:%M} {p.party.calendar.zone}"
        tag = "client" if p.party.role == "client" else "internal"
        if not p.party.required:
            if p.available(s, e):
                state = "free"
            elif _overlapping(p.blocked, p.blocked_starts, s, e) is not None:
                state = "busy"
            else:
                state = "outside their hours"
            reasons.append(f"{p.party.name} (optional, {state}): {when}")
            continue
        label = _label(local.hour * 60 + local.minute, minutes)
        reasons.append(f"{p.party.name} ({tag}): {when}, {label}")
    half = "afternoon" if c.afternoon else "morning"
    reasons.append(f"the client's {half}")
    return Slot(_dt(s), _dt(e), round(100 * c.score, 1), tuple(reasons))


# -- near misses ------------------------------------------------------------------------------


def _stretch(p: _Prepared, s: int, e: int) -> tuple[int, _Span] | None:
    """How far ``p``'s hours must stretch to hold ``[s, e)`` on the same local date, with the
    open span to stretch; ``(0, (s, e))`` when no stretch is needed, ``None`` when that date is
    not a business day or the stretch is too long."""
    if _contains(p.open, p.open_starts, s, e):
        return 0, (s, e)
    day = p.day(s)
    if not p.is_business_day(day):
        return None
    best: tuple[int, _Span] | None = None
    i = bisect.bisect_right(p.open_starts, s)
    for j in (i - 2, i - 1, i, i + 1):
        if 0 <= j < len(p.open):
            a, b = p.open[j]
            if p.day(a) != day and p.day(b - 1) != day:
                continue
            cost = max(0, a - s) + max(0, e - b)
            if best is None or cost < best[0]:
                best = (cost, (a, b))
    if best is None or best[0] > _MAX_STRETCH:
        return None
    return best


def _stretch_text(p: _Prepared, s: int, e: int, a: int, b: int) -> list[str]:
    name = f"{p.party.name} ({p.party.city})"
    parts = []
    if a > s:
        parts.append(
            f"{name} would have to start {_fmt_span(a - s)} earlier "
            f"({p.local(s):%H:%M} instead of {p.local(a):%H:%M} on {p.local(s):%a %d %b})"
        )
    if e > b:
        parts.append(
            f"{name} would have to stay {_fmt_span(e - b)} later "
            f"(until {p.local(e):%H:%M} instead of {p.local(b):%H:%M} on {p.local(b - 1):%a %d %b})"
        )
    return parts


def _near_misses(
    request: SlotRequest,
    prepared: list[_Prepared],
    earliest: int,
    latest: int,
    chosen: list[_Candidate],
) -> tuple[NearMiss, ...]:
    """The closest failing times on the client's grid, one per client-local date: fewest busy
    attendees first, then least stretch of working hours, then most comfort."""
    duration = request.duration // _US
    client = next(p for p in prepared if p.party is request.client)
    required = [p for p in prepared if p.party.required]
    step = request.step // _US
    if step < 30 * _MINUTE and (30 * _MINUTE) % step == 0:
        step = 30 * _MINUTE  # a coarser grid is plenty for "nearly"
    minutes = max(1, duration // _MINUTE)
    found: list[tuple[int, int, float, int, list[tuple[_Prepared, int, int, bool]]]] = []
    for s in _grid(earliest, latest, duration, step, client):
        e = s + duration
        if any(abs(s - c.start) < duration for c in chosen):
            continue
        stretch = 0
        conflicts = 0
        details: list[tuple[_Prepared, int, int, bool]] = []
        for p in required:
            measured = _stretch(p, s, e)
            if measured is None:
                break
            cost, (a, b) = measured
            busy = _overlapping(p.blocked, p.blocked_starts, s, e) is not None
            stretch += cost
            conflicts += busy
            if cost or busy:
                details.append((p, a, b, busy))
        else:
            if details:
                comfort = sum(p.weight * _comfort(p.minute_of_day(s), minutes) for p in required)
                found.append((conflicts, stretch, -comfort, s, details))
    found.sort(key=lambda item: item[:4])
    picked: list[NearMiss] = []
    days: set[int] = set()
    for _, stretch, _, s, details in found:
        day = client.day(s)
        if day in days:
            continue
        days.add(day)
        e = s + duration
        reasons: list[str] = []
        for p, a, b, busy in details:
            reasons.extend(_stretch_text(p, s, e, a, b))
            if busy:
                reasons.append(f"{p.party.name} is busy then")
        picked.append(NearMiss(_dt(s), _dt(e), tuple(reasons), timedelta(microseconds=stretch)))
        if len(picked) == request.count:
            break
    return tuple(picked)


# -- clock changes ----------------------------------------------------------------------------


def _offset(tz: ZoneInfo, us: int) -> int:
    return (_dt(us).astimezone(tz).utcoffset() or timedelta(0)) // _US


def _transitions(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(instant, offset before, offset after) of every offset change in ``(lo, hi]``, exact to
    the microsecond; offsets in microseconds. Sampled daily: zones change at most once a day."""
    found = []
    t = lo
    current = _offset(tz, lo)
    while t < hi:
        nxt = min(t + _DAY, hi)
        after = _offset(tz, nxt)
        if after != current:
            a, b = t, nxt
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == current:
                    a = mid
                else:
                    b = mid
            found.append((b, current, after))
            current = after
        t = nxt
    return found


def _client_zone(prepared: list[_Prepared]) -> str:
    for p in prepared:
        if p.party.role == "client":
            return p.party.calendar.zone
    return prepared[0].party.calendar.zone


def _dst_warnings(prepared: list[_Prepared], lo: int, hi: int) -> list[str]:
    """One line per clock change inside ``[lo, hi]`` in any party's zone, with how the
    difference to every other zone present changes."""
    zones_seen: dict[str, _Prepared] = {}
    for p in prepared:
        zones_seen.setdefault(p.party.calendar.zone, p)
    out = []
    for zone, p in zones_seen.items():
        changes = zip(p.seg_starts[1:], p.seg_offsets, p.seg_offsets[1:], strict=False)
        for at, old, new in changes:
            if not lo <= at <= hi:
                continue
            local = p.local(at)
            names = ", ".join(q.party.name for q in prepared if q.party.calendar.zone == zone)
            text = (
                f"clocks change in {zone} on {local:%a} {local.day} {local:%b %Y} "
                f"({_fmt_offset(old)} -> {_fmt_offset(new)}) for {names}"
            )
            others = []
            # Against the client's zone; a change in the client's zone, against everyone's.
            client_zone = _client_zone(prepared)
            for other_zone, q in zones_seen.items():
                if other_zone == zone or (zone != client_zone and other_zone != client_zone):
                    continue
                # Zones with the same rules change together: their gap stays as it was.
                gap_before, gap_after = old - q.offset(at - 1), new - q.offset(at)
                if gap_before != gap_after:
                    others.append(
                        f"{p.party.city} is {_gap(gap_before)} {q.party.city} before and "
                        f"{_gap(gap_after)} {q.party.city} after"
                    )
            if others:
                text += ": " + "; ".join(others)
            out.append(text)
    return out


def _fmt_offset(us: int) -> str:
    minutes = us // _MINUTE
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _gap(us: int) -> str:
    if us == 0:
        return "the same time as"
    word = "ahead of" if us > 0 else "behind"
    return f"{_fmt_span(abs(us))} {word}"
