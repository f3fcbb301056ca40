from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.businesstime import WEEKDAYS, BusinessCalendar
from agent.calendars import busy_from_ics
from agent.model import Interval
from agent.slots import Party, Proposal, SlotRequest, propose
from tests.zones import (
    ALL,
    AUCKLAND,
    BERLIN,
    KATHMANDU,
    LONDON,
    LORD_HOWE,
    LOS_ANGELES,
    NEW_YORK,
    RIYADH,
    TOKYO,
)

ICS = Path(__file__).parent / "ics"
MIN = timedelta(minutes=1)


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def party(
    name: str,
    zone: str,
    hours: str = "09:00-17:00",
    *,
    role: str = "internal",
    weekend: tuple[str, ...] = ("sat", "sun"),
    busy: tuple[Interval, ...] = (),
    required: bool = True,
    country: str = "",
) -> Party:
    calendar = BusinessCalendar.simple(zone, hours, weekend=weekend, country=country)
    return Party(name, f"{name.lower()}@example.com", calendar, busy, role, required)


def request(
    parties: list[Party],
    start: datetime,
    end: datetime,
    *,
    minutes: int = 60,
    step: int = 30,
    count: int = 3,
    notice: timedelta = timedelta(0),
    before: int = 0,
    after: int = 0,
) -> SlotRequest:
    return SlotRequest(
        duration=timedelta(minutes=minutes),
        window=Interval(start, end),
        now=start,
        parties=tuple(parties),
        min_notice=notice,
        step=timedelta(minutes=step),
        buffer_before=timedelta(minutes=before),
        buffer_after=timedelta(minutes=after),
        count=count,
    )


def local_starts(proposal: Proposal, zone: str) -> list[str]:
    tz = ZoneInfo(zone)
    return sorted(s.start.astimezone(tz).strftime("%H:%M%z") for s in proposal.slots)


# -- the invariants, checked independently of the search --------------------------------------


def feasible(req: SlotRequest, start: datetime) -> bool:
    """Whether a slot at ``start`` satisfies every rule, judged from the calendars alone."""
    end = start + req.duration
    if start < max(req.window.start, req.now + req.min_notice) or end > req.window.end:
        return False
    for p in req.parties:
        if not p.required:
            continue
        if p.calendar.open_intervals(start, end) != [Interval(start, end)]:
            return False
        guarded = Interval(start - req.buffer_before, end + req.buffer_after)
        if any(b.overlaps(guarded) for b in p.busy):
            return False
    return True


def grid(req: SlotRequest) -> list[datetime]:
    """Every start on the client's local wall-clock grid inside the window, both folds."""
    tz = req.client.calendar.tz
    day = req.window.start.astimezone(tz).date() - timedelta(days=1)
    last = req.window.end.astimezone(tz).date() + timedelta(days=1)
    starts = set()
    while day <= last:
        wall = datetime(day.year, day.month, day.day)
        while wall.date() == day:
            for fold in (0, 1):
                at = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
                if at.astimezone(tz).replace(tzinfo=None) == wall:
                    starts.add(at)
            wall += req.step
        day += timedelta(days=1)
    return sorted(starts)


def max_disjoint(starts: list[datetime], duration: timedelta) -> int:
    taken = 0
    free_from = None
    for s in starts:
        if free_from is None or s >= free_from:
            taken += 1
            free_from = s + duration
    return taken


def check_invariants(req: SlotRequest, proposal: Proposal) -> None:
    tz = req.client.calendar.tz
    step_minutes = int(req.step / MIN)
    for slot in proposal.slots:
        assert slot.end - slot.start == req.duration
        assert feasible(req, slot.start), slot
        local = slot.start.astimezone(tz)
        assert (local.hour * 60 + local.minute) % step_minutes == 0
        assert local.second == local.microsecond == 0
        for p in req.parties:
            if p.required:
                day = slot.start.astimezone(p.calendar.tz).date()
                assert p.calendar.is_business_day(day)
                assert p.calendar.holiday_name(day) is None
                assert p.calendar.hours.days[day.weekday()], (p.name, day)
        assert 0 <= slot.score <= 100
    for a, b in itertools.combinations(proposal.slots, 2):
        assert not Interval(a.start, a.end).overlaps(Interval(b.start, b.end))
    assert len(proposal.slots) <= req.count
    possible = [s for s in grid(req) if feasible(req, s)]
    if possible:
        assert proposal.slots
    else:
        assert not proposal.slots
    # Greedy picks by score can block at most two slots of any disjoint set per pick.
    if max_disjoint(possible, req.duration) >= 2 * req.count - 1:
        assert len(proposal.slots) == req.count


# -- property tests ---------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn) -> SlotRequest:
    start = utc(2026, 1, 1) + timedelta(hours=draw(st.integers(0, 365 * 24 - 1)))
    days = draw(st.integers(1, 8))
    end = start + timedelta(days=days)
    parties = []
    n = draw(st.integers(1, 3))
    for i in range(n):
        zone = draw(st.sampled_from(ALL))
        open_at = draw(st.integers(0, 14 * 4)) * 15
        length = draw(st.integers(2 * 4, 10 * 4)) * 15
        close_at = min(open_at + length, 24 * 60 - 15)
        hours = f"{open_at // 60:02d}:{open_at % 60:02d}-{close_at // 60:02d}:{close_at % 60:02d}"
        weekend = draw(st.sampled_from([("sat", "sun"), ("fri", "sat"), ("sun",), ()]))
        country = draw(st.sampled_from(["", "US", "DE", "IN", "JP", "SA"]))
        busy = []
        for _ in range(draw(st.integers(0, 12))):
            b = start + timedelta(minutes=draw(st.integers(-600, days * 24 * 60)))
            busy.append(Interval(b, b + timedelta(minutes=draw(st.integers(5, 300)))))
        role = "client" if i == 0 else "internal"
        required = i == 0 or draw(st.booleans())
        calendar = BusinessCalendar.simple(zone, hours, weekend=weekend, country=country)
        parties.append(Party(f"p{i}", f"p{i}@example.com", calendar, busy, role, required))
    return SlotRequest(
        duration=timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60, 90]))),
        window=Interval(start, end),
        now=start - timedelta(hours=draw(st.integers(0, 48))),
        parties=tuple(parties),
        min_notice=timedelta(hours=draw(st.integers(0, 30))),
        step=timedelta(minutes=draw(st.sampled_from([15, 30, 60]))),
        buffer_before=timedelta(minutes=draw(st.sampled_from([0, 5, 15]))),
        buffer_after=timedelta(minutes=draw(st.sampled_from([0, 10, 30]))),
        count=draw(st.integers(1, 5)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_slots_respect_busy_hours_weekends_holidays_and_the_grid(req: SlotRequest) -> None:
    check_invariants(req, propose(req))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(ALL), st.sampled_from(ALL), st.integers(1, 4))
def test_count_is_met_when_the_hours_overlap_widely(a: str, b: str, count: int) -> None:
    # Both sides open around the clock on weekdays: there is always room for four slots.
    req = request(
        [party("C", a, "00:00-24:00", role="client"), party("I", b, "00:00-24:00")],
        utc(2026, 3, 2),
        utc(2026, 3, 14),
        count=count,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert len(proposal.slots) == count


# -- DST gaps and folds -----------------------------------------------------------------------


def test_gap_in_the_client_zone_skips_wall_times_that_never_happen() -> None:
    # Berlin springs forward on 29 March 2026: 02:00-03:00 local does not exist.
    req = request(
        [
            party("C", BERLIN, "01:00-05:00", role="client", weekend=()),
            party("I", "UTC", "00:00-24:00", weekend=()),
        ],
        utc(2026, 3, 28, 12),
        utc(2026, 3, 29, 12),
        minutes=30,
        count=10,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert local_starts(proposal, BERLIN) == [
        "01:00+0100",
        "01:30+0100",
        "03:00+0200",
        "03:30+0200",
        "04:00+0200",
        "04:30+0200",
    ]
    assert any("clocks change in Europe/Berlin on Sun 29 Mar 2026" in w for w in proposal.warnings)


def test_fold_in_the_client_zone_offers_both_occurrences() -> None:
    # New York falls back on 1 November 2026: 01:00-02:00 local happens twice.
    req = request(
        [
            party("C", NEW_YORK, "00:00-03:00", role="client", weekend=()),
            party("I", "UTC", "00:00-24:00", weekend=()),
        ],
        utc(2026, 11, 1, 0),
        utc(2026, 11, 2, 0),
        minutes=30,
        count=10,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    starts = sorted(s.start for s in proposal.slots)
    assert [utc(2026, 11, 1, 4) + i * timedelta(minutes=30) for i in range(8)] == starts
    assert local_starts(proposal, NEW_YORK).count("01:00-0400") == 1
    assert local_starts(proposal, NEW_YORK).count("01:00-0500") == 1


def test_lord_howe_half_hour_fold() -> None:
    # Lord Howe falls back 30 minutes on 5 April 2026: 01:30-02:00 local happens twice.
    req = request(
        [
            party("C", LORD_HOWE, "00:00-03:00", role="client", weekend=()),
            party("I", "UTC", "00:00-24:00", weekend=()),
        ],
        utc(2026, 4, 4, 12),
        utc(2026, 4, 5, 12),
        minutes=30,
        count=10,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert len(proposal.slots) == 7
    assert local_starts(proposal, LORD_HOWE).count("01:30+1100") == 1
    assert local_starts(proposal, LORD_HOWE).count("01:30+1030") == 1
    assert any("UTC+11:00 -> UTC+10:30" in w for w in proposal.warnings)


def test_gap_in_the_other_zone_shortens_their_day() -> None:
    # The internal party's 01:00-05:00 Berlin shift is 3 hours long on 29 March.
    req = request(
        [
            party("C", "UTC", "00:00-24:00", role="client", weekend=()),
            party("I", BERLIN, "01:00-05:00", weekend=()),
        ],
        utc(2026, 3, 28, 12),
        utc(2026, 3, 29, 12),
        minutes=60,
        count=10,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert [utc(2026, 3, 29, h) for h in (0, 1, 2)] == sorted(s.start for s in proposal.slots)


# -- zone pairs -------------------------------------------------------------------------------


def test_us_and_eu_dst_mismatch_weeks_open_a_longer_overlap() -> None:
    # Berlin and New York overlap 2 hours, but 3 hours between 8 and 29 March 2026.
    req = request(
        [party("Client", BERLIN, role="client"), party("Rep", NEW_YORK)],
        utc(2026, 3, 2),
        utc(2026, 4, 10),
        minutes=180,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert len(proposal.slots) == 3
    for slot in proposal.slots:
        assert date(2026, 3, 9) <= slot.start.date() <= date(2026, 3, 27)
        assert (slot.start.hour, slot.start.minute) == (13, 0)
    joined = " | ".join(proposal.warnings)
    assert "America/New_York on Sun 8 Mar 2026" in joined
    assert "Europe/Berlin on Sun 29 Mar 2026" in joined


def test_kathmandu_client_gets_round_local_times() -> None:
    req = request(
        [party("Sita", KATHMANDU, role="client"), party("Rep", LONDON)],
        utc(2026, 3, 2),
        utc(2026, 3, 14),
        minutes=45,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert len(proposal.slots) == 3
    for slot in proposal.slots:
        local = slot.start.astimezone(ZoneInfo(KATHMANDU))
        assert local.minute in (0, 30)
        assert slot.start.minute in (15, 45)


def test_auckland_monday_is_sunday_in_los_angeles() -> None:
    req = request(
        [party("Kiri", AUCKLAND, role="client"), party("Rep", LOS_ANGELES)],
        utc(2026, 2, 1),
        utc(2026, 2, 14),
        count=5,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert len(proposal.slots) == 5
    for slot in proposal.slots:
        nz = slot.start.astimezone(ZoneInfo(AUCKLAND))
        la = slot.start.astimezone(ZoneInfo(LOS_ANGELES))
        assert nz.weekday() != 0  # Monday in Auckland is Sunday in Los Angeles
        assert la.weekday() != 4  # Friday in Los Angeles is Saturday in Auckland
        assert nz.date() == la.date() + timedelta(days=1)


def test_friday_saturday_weekend() -> None:
    req = request(
        [
            party("Faisal", RIYADH, role="client", weekend=("fri", "sat"), country="SA"),
            party("Rep", LONDON),
        ],
        utc(2026, 3, 1),
        utc(2026, 3, 15),
        count=5,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert len(proposal.slots) == 5
    for slot in proposal.slots:
        assert WEEKDAYS[slot.start.astimezone(ZoneInfo(RIYADH)).weekday()] in (
            "mon",
            "tue",
            "wed",
            "thu",
        )


def test_varied_set_uses_different_days_and_both_halves_of_the_client_day() -> None:
    req = request(
        [party("Client", LONDON, role="client"), party("Rep", BERLIN)],
        utc(2026, 3, 2),
        utc(2026, 3, 14),
        count=4,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    days = {s.start.astimezone(ZoneInfo(LONDON)).date() for s in proposal.slots}
    halves = {s.start.astimezone(ZoneInfo(LONDON)).hour >= 12 for s in proposal.slots}
    assert len(days) == 4
    assert halves == {True, False}
    # Ranked, not first-come: the best slot is not simply the earliest possible start.
    assert proposal.slots[0].start != utc(2026, 3, 2, 9)
    assert proposal.slots[0].score >= proposal.slots[-1].score


# -- no overlap at all ------------------------------------------------------------------------


def test_no_overlap_returns_near_misses_saying_whose_hours_must_stretch() -> None:
    # In April Tokyo opens at 10:00 (01:00Z) and Los Angeles closes at 16:30 PDT (23:30Z).
    req = request(
        [
            party("Yuki", TOKYO, "10:00-17:00", role="client"),
            party("Sam", LOS_ANGELES, "06:00-16:30"),
        ],
        utc(2026, 4, 6),
        utc(2026, 4, 18),
        minutes=30,
    )
    proposal = propose(req)
    assert proposal.slots == ()
    assert any("no time in the window suits" in w for w in proposal.warnings)
    assert 1 <= len(proposal.near_misses) <= 3
    for miss in proposal.near_misses:
        # 1h30 between closing and opening, plus the 30-minute meeting itself.
        assert miss.stretch == timedelta(hours=2)
        for reason in miss.reasons:
            assert re.search(r"^(Yuki \(Tokyo\)|Sam \(Los Angeles\)) would have to", reason)
    texts = [r for m in proposal.near_misses for r in m.reasons]
    assert any("would have to" in t and ("earlier" in t or "later" in t) for t in texts)
    assert len({m.start.date() for m in proposal.near_misses}) == len(proposal.near_misses)


def test_near_miss_names_a_partial_stretch() -> None:
    # Tokyo 09:30-17:00 and Los Angeles 09:00-17:00 PDT: Tokyo would have to start 1h30 earlier
    # to meet at 16:00-17:00 in Los Angeles.
    yuki = party("Yuki", TOKYO, "09:30-17:00", role="client")
    sam = party("Sam", LOS_ANGELES, "09:00-16:00")
    sam_late = party("Sam", LOS_ANGELES, "09:00-17:00")
    req = request([yuki, sam_late], utc(2026, 4, 6), utc(2026, 4, 10), minutes=60)
    proposal = propose(req)
    assert proposal.slots == ()
    texts = [r for m in proposal.near_misses for r in m.reasons]
    assert all(m.stretch == timedelta(hours=1, minutes=30) for m in proposal.near_misses)
    assert any(t.startswith("Yuki (Tokyo) would have to start 1h30 earlier") for t in texts) or any(
        t.startswith("Sam (Los Angeles) would have to stay 1h30 later") for t in texts
    )
    del sam


def test_busy_calendars_give_near_misses_naming_who_is_busy() -> None:
    rep_busy = (Interval(utc(2026, 3, 2), utc(2026, 3, 7)),)
    req = request(
        [party("Client", LONDON, role="client"), party("Rep", LONDON, busy=rep_busy)],
        utc(2026, 3, 2),
        utc(2026, 3, 7),
    )
    proposal = propose(req)
    assert proposal.slots == ()
    assert proposal.near_misses
    assert all(m.reasons == ("Rep is busy then",) for m in proposal.near_misses)


# -- busy time, buffers, optional attendees ---------------------------------------------------


def test_buffers_keep_distance_from_busy_time() -> None:
    busy = (Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11)),)
    req = request(
        [
            party("Client", LONDON, "09:00-13:00", role="client", weekend=()),
            party("Rep", LONDON, "09:00-13:00", busy=busy, weekend=()),
        ],
        utc(2026, 3, 2),
        utc(2026, 3, 3),
        minutes=30,
        count=10,
        before=15,
        after=15,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    # 09:00-09:30 ends 30 min before 10:00; 09:30 would end at 10:00, inside the 15-min buffer.
    assert local_starts(proposal, LONDON) == [
        "09:00+0000",
        "11:30+0000",
        "12:00+0000",
        "12:30+0000",
    ]


def test_minimum_notice_is_respected() -> None:
    req = request(
        [party("Client", LONDON, role="client", weekend=()), party("Rep", LONDON, weekend=())],
        utc(2026, 3, 2),
        utc(2026, 3, 3),
        count=10,
        notice=timedelta(hours=14),
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert [s.start for s in proposal.slots]
    assert min(s.start for s in proposal.slots) >= utc(2026, 3, 2, 14)


def test_optional_attendee_is_preferred_free_but_never_required() -> None:
    optional_busy = (Interval(utc(2026, 3, 2, 9), utc(2026, 3, 2, 17)),)
    dana = party("Dana", LONDON, busy=optional_busy, required=False)
    req = request(
        [party("Client", LONDON, role="client"), party("Rep", LONDON), dana],
        utc(2026, 3, 2),
        utc(2026, 3, 4),
        count=2,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert proposal.slots[0].start.date() == date(2026, 3, 3)
    assert any("Dana (optional, free)" in r for r in proposal.slots[0].reasons)
    always_busy = party(
        "Dana", LONDON, busy=(Interval(utc(2026, 3, 1), utc(2026, 3, 5)),), required=False
    )
    alone = request(
        [party("Client", LONDON, role="client"), party("Rep", LONDON), always_busy],
        utc(2026, 3, 2),
        utc(2026, 3, 4),
        count=2,
    )
    assert len(propose(alone).slots) == 2


def test_recurring_meeting_moved_to_another_zone_blocks_its_new_time_only() -> None:
    window = Interval(utc(2026, 3, 16), utc(2026, 3, 24))
    busy = tuple(busy_from_ics((ICS / "moved_instance_other_zone.ics").read_bytes(), window))
    rep = party("Rep", BERLIN, "09:00-12:00", busy=busy)
    client = party("Client", LONDON, "08:00-20:00", role="client")
    on_16th = request([client, rep], utc(2026, 3, 16), utc(2026, 3, 17), count=3)
    # The 10:00 Berlin instance moved to 14:00 New York (18:00Z), so the morning is free.
    assert [utc(2026, 3, 16, h) for h in (8, 9, 10)] == sorted(
        s.start for s in propose(on_16th).slots
    )
    on_23rd = request([client, rep], utc(2026, 3, 23), utc(2026, 3, 24), count=3)
    assert [utc(2026, 3, 23, 8), utc(2026, 3, 23, 10)] == sorted(
        s.start for s in propose(on_23rd).slots
    )


def test_window_without_room_is_explained() -> None:
    req = request(
        [party("Client", LONDON, role="client")],
        utc(2026, 3, 2, 9),
        utc(2026, 3, 2, 10),
        notice=timedelta(hours=1),
    )
    proposal = propose(req)
    assert proposal.slots == ()
    assert "the window leaves no room" in proposal.warnings[0]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("duration", timedelta(0), "duration"),
        ("step", timedelta(minutes=7), "divide a day"),
        ("count", 0, "count"),
        ("buffer_after", timedelta(minutes=-5), "buffers"),
    ],
)
def test_invalid_requests_are_refused(field: str, value: object, message: str) -> None:
    args: dict[str, object] = {
        "duration": timedelta(minutes=30),
        "window": Interval(utc(2026, 3, 2), utc(2026, 3, 3)),
        "now": utc(2026, 3, 1),
        "parties": (party("C", LONDON, role="client"),),
    }
    args[field] = value
    with pytest.raises(ValueError, match=message):
        SlotRequest(**args)  # type: ignore[arg-type]


def test_lord_howe_half_hour_gap_never_yields_off_grid_starts() -> None:
    # Lord Howe springs forward 30 minutes on 4 October 2026: 02:00-02:30 never happens, and
    # 02:00 read with the old offset would be 02:30, which is off an hourly grid.
    req = request(
        [
            party("C", LORD_HOWE, "00:00-05:00", role="client", weekend=()),
            party("I", "UTC", "00:00-24:00", weekend=()),
        ],
        utc(2026, 10, 3, 12),
        utc(2026, 10, 4, 12),
        minutes=30,
        step=60,
        count=10,
    )
    proposal = propose(req)
    check_invariants(req, proposal)
    assert local_starts(proposal, LORD_HOWE) == [
        "00:00+1030",
        "01:00+1030",
        "03:00+1100",
        "04:00+1100",
    ]
