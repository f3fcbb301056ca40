from __future__ import annotations

import dataclasses
import functools
import hashlib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.calendars import events_from_ics
from agent.invites import attach_invite, build_invite, hold_for, invite_for, invite_uid
from agent.model import Action, ActionKind, Address, Interval, Invite
from tests.zones import KATHMANDU, LORD_HOWE, NEW_YORK, SYDNEY

STAMP = datetime(2026, 3, 20, 9, tzinfo=UTC)


def make(**changes: object) -> Invite:
    args: dict[str, object] = {
        "key": "slots:acme:intro",
        "summary": "Introduction",
        "start": datetime(2026, 3, 30, 8, tzinfo=UTC),
        "end": datetime(2026, 3, 30, 8, 45, tzinfo=UTC),
        "zone": "India Standard Time",
        "organizer": Address("jonas@example.com", "Jonas\r\nWeber"),
        "attendees": (
            Address("priya@client.example.in", 'Priya "P" Rāman\n'),
            Address("dana@example.com", "Dana"),
        ),
        "description": "Agenda:\n1. goals\n2. timeline",
        "location": "Video call",
    }
    args.update(changes)
    return Invite(**args)  # type: ignore[arg-type]


def parse(ics: bytes) -> Any:
    # Any: the tests index into components; icalendar's precise types add nothing here.
    return icalendar.Calendar.from_ical(ics)


def test_invite_round_trips_with_method_tzid_and_vtimezone() -> None:
    invite = make()
    cal = parse(build_invite(invite, stamp=STAMP))
    assert str(cal["METHOD"]) == "REQUEST"
    [tz] = cal.walk("VTIMEZONE")
    assert str(tz["TZID"]) == "Asia/Kolkata"
    [event] = cal.walk("VEVENT")
    assert event["DTSTART"].params["TZID"] == "Asia/Kolkata"
    assert event["DTSTART"].dt == invite.start
    assert event["DTEND"].dt == invite.end
    assert event["DTSTART"].dt.utcoffset() == timedelta(hours=5, minutes=30)
    assert event["DTSTAMP"].dt == STAMP
    assert int(event["SEQUENCE"]) == 0
    assert str(event["UID"]) == invite_uid(invite)
    assert str(event["ORGANIZER"]) == "mailto:jonas@example.com"
    assert event["ORGANIZER"].params["CN"] == "Jonas Weber"
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == [
        "mailto:priya@client.example.in",
        "mailto:dana@example.com",
    ]
    for a in attendees:
        assert a.params["RSVP"] == "TRUE"
        assert a.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendees[0].params["CN"] == "Priya 'P' Rāman"
    assert str(event["DESCRIPTION"]) == "Agenda:\n1. goals\n2. timeline"


def test_uid_is_stable_per_key_and_differs_between_keys() -> None:
    a = parse(build_invite(make(), stamp=STAMP)).walk("VEVENT")[0]["UID"]
    b = parse(build_invite(make(), stamp=STAMP + timedelta(days=1))).walk("VEVENT")[0]["UID"]
    c = parse(build_invite(make(key="other"), stamp=STAMP)).walk("VEVENT")[0]["UID"]
    assert a == b
    assert a != c
    assert str(a).endswith("@example.com")


@pytest.mark.parametrize("zone", [KATHMANDU, LORD_HOWE, "Europe/Berlin"])
def test_vtimezone_gives_the_right_offset_for_the_event(zone: str) -> None:
    # 28-29 March straddles Berlin's change; Lord Howe is in its 30-minute DST then.
    invite = make(
        zone=zone,
        start=datetime(2026, 3, 29, 8, tzinfo=UTC),
        end=datetime(2026, 3, 29, 9, tzinfo=UTC),
    )
    ics = build_invite(invite, stamp=STAMP)
    # Read the times through the file's own VTIMEZONE, not the tz database.
    # A name per zone: icalendar caches zones built from a VTIMEZONE by TZID, process-wide.
    renamed = ics.replace(zone.encode(), f"Own/{zone.replace('/', '-')}".encode())
    event = parse(renamed).walk("VEVENT")[0]
    assert event["DTSTART"].dt == invite.start
    assert event["DTEND"].dt == invite.end


def test_bad_invites_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        build_invite(make(zone="Mars/Base"), stamp=STAMP)
    with pytest.raises(ValueError, match="address"):
        build_invite(make(attendees=(Address("not an address"),)), stamp=STAMP)
    with pytest.raises(ValueError, match="ends before"):
        build_invite(make(end=datetime(2026, 3, 30, 7, tzinfo=UTC)), stamp=STAMP)


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "jonas@example.com"
    msg["To"] = "priya@client.example.in"
    msg["Subject"] = "Introduction"
    msg.set_content("Looking forward to it.")
    return msg


def test_attach_invite_adds_a_request_alternative() -> None:
    msg = _message()
    ics = build_invite(make(), stamp=STAMP)
    attach_invite(msg, ics)
    back = message_from_bytes(msg.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert back.get_content_type() == "multipart/alternative"
    parts = [p for p in back.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/calendar"]
    calendar_part = parts[1]
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    cal = parse(calendar_part.get_content().encode())
    assert str(cal["METHOD"]) == "REQUEST"
    assert cal.walk("VEVENT")[0]["DTSTART"].dt == make().start


def test_attach_invite_in_a_mixed_message_and_as_attachment() -> None:
    msg = _message()
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="deck.pdf")
    ics = build_invite(make(), stamp=STAMP)
    attach_invite(msg, ics, as_attachment=True)
    types = [p.get_content_type() for p in msg.walk()]
    assert types[0] == "multipart/mixed"
    assert "multipart/alternative" in types
    alternative = next(p for p in msg.walk() if p.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/calendar",
    ]
    names = [p.get_filename() for p in msg.walk() if p.get_filename()]
    assert names == ["deck.pdf", "invite.ics"]


def test_attach_refuses_anything_but_a_request_or_a_cancel() -> None:
    with pytest.raises(ValueError, match="REQUEST or CANCEL"):
        attach_invite(_message(), b"BEGIN:VCALENDAR\r\nMETHOD:PUBLISH\r\nEND:VCALENDAR\r\n")
    msg = _message()
    attach_invite(msg, build_invite(make(cancelled=True, sequence=2), stamp=STAMP))
    [part] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "CANCEL"


def test_a_moved_meeting_is_the_same_event_with_a_higher_sequence() -> None:
    first = make(key="invite/sam/<t@x>/20260330T0800Z")
    moved = make(
        key="invite/sam/<t@x>/20260401T0800Z",
        uid_key=first.key,
        sequence=1,
        start=datetime(2026, 4, 1, 8, tzinfo=UTC),
        end=datetime(2026, 4, 1, 8, 45, tzinfo=UTC),
    )
    cancelled = dataclasses.replace(moved, key="cancel/x", sequence=2, cancelled=True)
    events = [parse(build_invite(i, stamp=STAMP)) for i in (first, moved, cancelled)]
    assert [str(c["METHOD"]) for c in events] == ["REQUEST", "REQUEST", "CANCEL"]
    vevents = [c.walk("VEVENT")[0] for c in events]
    assert len({str(e["UID"]) for e in vevents}) == 1
    assert [int(e["SEQUENCE"]) for e in vevents] == [0, 1, 2]
    assert [str(e["STATUS"]) for e in vevents] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert vevents[1]["DTSTART"].dt.astimezone(UTC) == moved.start


def action(kind: ActionKind, **context: object) -> Action:
    return Action(
        key="invite/lukas/<t@x>/20261126T1300Z",
        kind=kind,
        mailbox="lukas",
        due=STAMP,
        to=(Address("beatriz@costa.example", "Beatriz Costa"),),
        language="pt",
        template="invitation",
        reason="chosen",
        context=context,
    )


def test_an_invite_action_becomes_an_invitation_from_the_rep_to_the_client() -> None:
    start = datetime(2026, 11, 26, 13, tzinfo=UTC)
    meeting = {"summary": "Costa – Lukas", "start": start, "end": start + timedelta(minutes=30)}
    invite = invite_for(
        action(ActionKind.INVITE, meeting={**meeting, "zone": "America/Sao_Paulo"}),
        Address("lukas@acme.example", "Lukas Becker"),
    )
    event = parse(build_invite(invite, stamp=STAMP)).walk("VEVENT")[0]
    assert str(event["ORGANIZER"]) == "mailto:lukas@acme.example"
    assert str(event["ATTENDEE"]) == "mailto:beatriz@costa.example"  # one attendee
    assert event["DTSTART"].dt == start and str(event["DTSTART"].dt.tzinfo) == "America/Sao_Paulo"
    with pytest.raises(ValueError, match="no usable meeting"):
        invite_for(action(ActionKind.INVITE, meeting=meeting), Address("lukas@acme.example"))
    with pytest.raises(ValueError, match="carries no invitation"):
        invite_for(action(ActionKind.PROPOSAL), Address("lukas@acme.example"))


def test_a_hold_goes_on_the_reps_own_calendar_and_tells_nobody() -> None:
    start = datetime(2026, 11, 26, 13, tzinfo=UTC)
    rep = Address("lukas@acme.example", "Lukas Becker")
    hold = hold_for(
        action(
            ActionKind.HOLD,
            op="create",
            summary="Tentative: Beatriz",
            start=start,
            end=start + timedelta(minutes=30),
            zone="Europe/Berlin",
        ),
        rep,
    )
    assert hold.attendees == (rep,) and hold.organizer == rep and not hold.send_updates
    with pytest.raises(ValueError, match="not a hold to create"):
        hold_for(action(ActionKind.HOLD, op="release", hold="x"), rep)


# -- every instant is read back as written ----------------------------------------------------

ROUND_TRIP_ZONES = (NEW_YORK, "Europe/Berlin", LORD_HOWE, SYDNEY, "Europe/Dublin", KATHMANDU)


@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants in 2025-2027 where ``zone``'s offset changes."""
    tz = ZoneInfo(zone)
    found = []
    at = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while at < datetime(2028, 1, 1, tzinfo=UTC):
        if at.astimezone(tz).utcoffset() != (at + step).astimezone(tz).utcoffset():
            lo, hi = at, at + step
            while hi - lo > timedelta(microseconds=1):
                mid = lo + (hi - lo) // 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        at += step
    return tuple(found)


@st.composite
def meetings(draw: st.DrawFn) -> tuple[str, datetime, datetime]:
    zone = draw(st.sampled_from(ROUND_TRIP_ZONES))
    near = transitions(zone)
    if near and draw(st.booleans()):
        # Around a change of offset: in the repeated hour, across the missing one, or ending in it.
        start = draw(st.sampled_from(near)) + timedelta(minutes=draw(st.integers(-150, 150)))
    else:
        start = draw(
            st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 1), timezones=st.just(UTC))
        ).replace(second=0, microsecond=0)
    length = timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60, 90, 150, 240])))
    return zone, start, start + length


def test_the_repeated_hour_is_written_so_it_reads_back_as_the_second_occurrence() -> None:
    # New York's night of 1 Nov 2026 has 01:00-02:00 twice: EDT from 05:00 UTC, EST from 06:00.
    second = make(
        zone=NEW_YORK,
        start=datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # 01:30 EST
        end=datetime(2026, 11, 1, 7, 30, tzinfo=UTC),
    )
    across = make(
        zone=NEW_YORK,
        start=datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT
        end=datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # 01:00 EST
    )
    for invite in (second, across):
        ics = build_invite(invite, stamp=STAMP)
        [event] = parse(ics).walk("VEVENT")
        assert event["DTSTART"].dt.astimezone(UTC) == invite.start
        assert event["DTEND"].dt.astimezone(UTC) == invite.end
        window = Interval(invite.start - timedelta(days=1), invite.end + timedelta(days=1))
        [read] = events_from_ics(ics, window, "sam")
        assert (read.start, read.end) == (invite.start, invite.end)


@settings(max_examples=150, deadline=None)
@given(meeting=meetings())
def test_every_invitation_reads_back_as_the_instants_it_was_built_from(
    meeting: tuple[str, datetime, datetime],
) -> None:
    zone, start, end = meeting
    invite = make(zone=zone, start=start, end=end)
    ics = build_invite(invite, stamp=STAMP)
    # icalendar, with the tz database for the TZID ...
    [event] = parse(ics).walk("VEVENT")
    assert event["DTSTART"].dt.astimezone(UTC) == start
    assert event["DTEND"].dt.astimezone(UTC) == end
    # ... and with the file's own VTIMEZONE (a fresh name: icalendar caches zones by TZID).
    own = f"Own/{hashlib.sha256(ics).hexdigest()[:16]}"
    [event] = parse(ics.replace(ZoneInfo(zone).key.encode(), own.encode())).walk("VEVENT")
    assert event["DTSTART"].dt.astimezone(UTC) == start
    assert event["DTEND"].dt.astimezone(UTC) == end
    # ... and the project's own calendar reader.
    window = Interval(start - timedelta(days=1), end + timedelta(days=1))
    [read] = events_from_ics(ics, window, "sam")
    assert (read.start, read.end) == (start, end)
    # A time written in the zone is never one that names two instants.
    for prop in ("DTSTART", "DTEND"):
        value = event[prop].dt
        if value.tzinfo is not UTC and "TZID" in event[prop].params:
            local = value.replace(tzinfo=ZoneInfo(zone))
            assert local.utcoffset() == local.replace(fold=1).utcoffset()
