"""Slot search benchmark: 10 attendees, a 60-day window, 5,000 busy intervals.

Run ``python tests/benchmarks/bench_slots.py``. A third of the busy intervals come from recurring
events expanded from iCalendar data; that expansion is timed on its own and is not part of the
proposal figure. The proposal figure is the median of several runs, each building fresh
calendars (so each party's open hours are computed inside the timing, as in a real request).
The target is under 50 ms on one core. It also shows how the time grows with 1k, 5k and 20k busy
intervals, and the time when no slot fits and near misses are computed instead.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.businesstime import BusinessCalendar
from agent.calendars import busy_from_ics, merge
from agent.model import Interval
from agent.slots import Party, SlotRequest, propose

TARGET_MS = 50.0
RUNS = 9
START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Interval(START, START + timedelta(days=60))

# (name, zone, hours, role, required): the client in Kolkata, three required colleagues whose
# hours overlap the client's afternoon, six optional ones around the world.
ATTENDEES = [
    ("Priya", "Asia/Kolkata", "09:00-18:00", "client", True),
    ("Jonas", "Europe/Berlin", "08:00-17:00", "internal", True),
    ("Amira", "Asia/Dubai", "08:00-17:00", "internal", True),
    ("Tom", "Europe/London", "08:00-17:00", "internal", True),
    ("Sita", "Asia/Kathmandu", "09:00-17:00", "internal", False),
    ("Kenji", "Asia/Tokyo", "09:00-18:00", "internal", False),
    ("Lena", "Europe/Helsinki", "09:00-17:00", "internal", False),
    ("Sam", "America/New_York", "08:00-17:00", "internal", False),
    ("Ana", "America/Sao_Paulo", "09:00-18:00", "internal", False),
    ("Kiri", "Pacific/Auckland", "09:00-17:00", "internal", False),
]


def recurring_ics(rng: random.Random, series: int, zone: str) -> bytes:
    """Weekly and daily series in ``zone``, with EXDATEs, as an .ics file."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Bench//EN"]
    for i in range(series):
        day = START + timedelta(days=rng.randrange(0, 5))
        local = day.replace(tzinfo=None) + timedelta(hours=rng.randrange(8, 17))
        stamp = local.strftime("%Y%m%dT%H%M%S")
        rule = rng.choice(
            ["FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2"]
        )
        excluded = (local + timedelta(days=7)).strftime("%Y%m%dT%H%M%S")
        lines += [
            "BEGIN:VEVENT",
            f"UID:series-{i}@bench",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID={zone}:{stamp}",
            f"DURATION:PT{rng.choice([15, 30, 45, 60])}M",
            f"RRULE:{rule}",
            f"EXDATE;TZID={zone}:{excluded}",
            "SUMMARY:Recurring",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines).encode()


def random_busy(rng: random.Random, n: int) -> list[Interval]:
    out = []
    for _ in range(n):
        start = START + timedelta(minutes=15 * rng.randrange(0, 60 * 24 * 4))
        out.append(Interval(start, start + timedelta(minutes=rng.choice([15, 30, 45, 60, 90]))))
    return out


def build_busy(total: int, seed: int = 7) -> tuple[list[list[Interval]], float, int]:
    """Busy intervals per attendee (a third from .ics series); seconds spent expanding .ics."""
    rng = random.Random(seed)
    from_ics_target = total // 3
    per_party_ics = from_ics_target // len(ATTENDEES)
    busy: list[list[Interval]] = []
    expand_seconds = 0.0
    expanded = 0
    for _name, zone, *_ in ATTENDEES:
        # About 19 occurrences per series in 60 days on average; trimmed to the share below.
        series = max(1, per_party_ics // 8)
        data = recurring_ics(rng, series, zone)
        t0 = time.perf_counter()
        from_ics = busy_from_ics(data, WINDOW, zone=zone)
        expand_seconds += time.perf_counter() - t0
        from_ics = from_ics[:per_party_ics]
        expanded += len(from_ics)
        busy.append(from_ics)
    singles = random_busy(rng, total - expanded)
    for i, interval in enumerate(singles):
        busy[i % len(ATTENDEES)].append(interval)
    return busy, expand_seconds, expanded


def make_request(busy: list[list[Interval]], client_hours: str | None = None) -> SlotRequest:
    parties = []
    for (name, zone, hours, role, required), intervals in zip(ATTENDEES, busy, strict=True):
        if client_hours is not None and role == "client":
            hours = client_hours
        calendar = BusinessCalendar.simple(zone, hours)
        parties.append(
            Party(name, f"{name.lower()}@example.com", calendar, intervals, role, required)
        )
    return SlotRequest(
        duration=timedelta(minutes=45),
        window=WINDOW,
        now=START - timedelta(days=1),
        parties=tuple(parties),
        step=timedelta(minutes=15),
        buffer_before=timedelta(minutes=5),
        buffer_after=timedelta(minutes=10),
        count=5,
    )


def median_ms(
    busy: list[list[Interval]], client_hours: str | None = None
) -> tuple[float, float, str]:
    """(median ms, fastest ms, what was found) over RUNS runs."""
    times = []
    found = ""
    for _ in range(RUNS):
        request = make_request(busy, client_hours)  # fresh calendars: nothing memoised
        t0 = time.perf_counter()
        proposal = propose(request)
        times.append((time.perf_counter() - t0) * 1000)
        found = f"{len(proposal.slots)} slots, {len(proposal.near_misses)} near misses"
    return statistics.median(times), min(times), found


def main() -> int:
    print(f"{len(ATTENDEES)} attendees, 60-day window, median of {RUNS} runs")
    failed = False
    for total in (1_000, 5_000, 20_000):
        busy, expand_s, from_ics = build_busy(total)
        count = sum(len(b) for b in busy)
        merged = sum(len(merge(b)) for b in busy)
        ms, fastest, found = median_ms(busy)
        mark = ""
        if total == 5_000:
            mark = "  <- target" + (" met" if ms < TARGET_MS else " MISSED")
            failed = ms >= TARGET_MS
        print(
            f"busy {count:>6,} ({from_ics:,} from .ics, {merged:,} after merging): "
            f"propose {ms:6.1f} ms (fastest {fastest:.1f}), {found}; "
            f".ics expansion {expand_s * 1000:7.1f} ms{mark}"
        )
    busy, _, _ = build_busy(5_000)
    ms, fastest, found = median_ms(busy, client_hours="19:00-23:00")
    print(f"no overlap, busy 5,000: propose {ms:6.1f} ms (fastest {fastest:.1f}), {found}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
