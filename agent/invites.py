"""Meeting invitations as iCalendar ``METHOD:REQUEST`` data, and the MIME part that carries them.

Mail clients show Accept / Decline only when both the calendar and its MIME part say
``METHOD:REQUEST`` and every TZID has a VTIMEZONE; Outlook shifts or mangles events whose zone
it has to guess. So the event is written in the invitation's own zone (normalised by
:mod:`agent.zones`, so a Windows name from Graph works too) with a VTIMEZONE that covers the
days of the event. A start or end in the repeated hour of a change back from summer time is
written in UTC instead: a local time there names two instants, and readers take the first.

The UID is derived from the invitation's key: building the same invitation twice gives the same
UID, so a client that receives it again updates the event instead of adding a second one. A
meeting moved to another time keeps the UID of the first invitation and counts SEQUENCE up, and
a cancelled one goes out as ``METHOD:CANCEL`` under that UID (RFC 5546 3.2.2 and 3.2.5), so the
client's calendar moves or removes the event rather than keeping the old one beside the new.

:func:`invite_for` and :func:`hold_for` turn the planners' INVITE and HOLD actions into the
:class:`~agent.model.Invite` the outbox mails or puts on the rep's calendar.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage

import icalendar

from agent import zones
from agent.model import Action, ActionKind, Address, Invite

PRODID = "-//Followup//Followup invitations//EN"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")


def invite_uid(invite: Invite) -> str:
    """The event UID for ``invite``: a hash of its ``uid_key`` (default: its key) at the
    organizer's domain."""
    digest = hashlib.sha256((invite.uid_key or invite.key).encode("utf-8")).hexdigest()[:32]
    return f"{digest}@{invite.organizer.domain or 'followup.invalid'}"


def _clean_name(name: str) -> str:
    # icalendar 7.3 refuses CR/LF in a calendar address; a double quote cannot appear in a
    # parameter value at all (RFC 5545 3.1), so names from mail headers are flattened first.
    return " ".join(_CONTROL.sub(" ", name).replace('"', "'").split())


def _address(who: Address, *, attendee: bool) -> icalendar.vCalAddress:
    email = who.email.strip()
    if not _EMAIL.match(email):
        raise ValueError(f"not a usable e-mail address for an invitation: {email!r}")
    address = icalendar.vCalAddress(f"mailto:{email}")
    name = _clean_name(who.name)
    if name:
        address.params["CN"] = name
    if attendee:
        address.params["CUTYPE"] = "INDIVIDUAL"
        address.params["ROLE"] = "REQ-PARTICIPANT"
        address.params["PARTSTAT"] = "NEEDS-ACTION"
        address.params["RSVP"] = "TRUE"
    return address


def build_invite(invite: Invite, *, stamp: datetime) -> bytes:
    """The invitation as iCalendar bytes (CRLF lines).

    One VCALENDAR with ``METHOD:REQUEST`` (``METHOD:CANCEL`` for ``invite.cancelled``) holding
    a VTIMEZONE for ``invite.zone`` (covering the day before the start to the day after the end)
    and one VEVENT: UID from :func:`invite_uid`, ``DTSTAMP`` = ``stamp`` (the caller's clock),
    ``SEQUENCE`` = ``invite.sequence``, start and end in the zone's TZID (or UTC, see the module
    docstring), ``STATUS`` CANCELLED for a cancellation, TENTATIVE for a hold
    (``invite.tentative``) and CONFIRMED otherwise, ``TRANSP:OPAQUE``, ORGANIZER, and one
    ATTENDEE per address with ``RSVP=TRUE`` and ``PARTSTAT=NEEDS-ACTION``. Raises
    ``ValueError`` for an unknown zone, an end not after the start, or an unusable address.
    """
    if invite.end <= invite.start:
        raise ValueError(f"invitation {invite.key!r} ends before it starts")
    if not invite.attendees:
        raise ValueError(f"invitation {invite.key!r} has no attendees")
    tz = zones.zoneinfo(invite.zone)
    stamp = stamp.astimezone(UTC)

    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "CANCEL" if invite.cancelled else "REQUEST")

    event = icalendar.Event()
    event.add("uid", invite_uid(invite))
    event.add("dtstamp", stamp)
    event.add("sequence", invite.sequence)
    # A start or end in a repeated hour is written in UTC, and the other with it: readers that
    # move the end into the start's zone do so by wall-clock arithmetic.
    in_utc = _repeated(invite.start, tz) or _repeated(invite.end, tz)
    event.add("dtstart", invite.start.astimezone(UTC if in_utc else tz))
    event.add("dtend", invite.end.astimezone(UTC if in_utc else tz))
    event.add("summary", _CONTROL.sub(" ", invite.summary).strip())
    if invite.description:
        event.add("description", invite.description)
    if invite.location:
        event.add("location", _CONTROL.sub(" ", invite.location).strip())
    # A hold stays OPAQUE: the time it keeps must stay busy for anyone else booking the rep.
    status = "CANCELLED" if invite.cancelled else "TENTATIVE" if invite.tentative else "CONFIRMED"
    event.add("status", status)
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(invite.organizer, attendee=False))
    for attendee in invite.attendees:
        event.add("attendee", _address(attendee, attendee=True))

    first = invite.start.astimezone(tz).date() - timedelta(days=1)
    last = invite.end.astimezone(tz).date() + timedelta(days=1)
    calendar.add_component(icalendar.Timezone.from_tzinfo(tz, first_date=first, last_date=last))
    calendar.add_component(event)
    return calendar.to_ical()


def _repeated(instant: datetime, tz: tzinfo) -> bool:
    """Whether ``instant``'s wall time in ``tz`` happens twice (a change back from summer time).

    RFC 5545 (3.3.5) reads such a local time as its first occurrence, so 01:30 EST on New
    York's fall-back night would be read an hour early.
    """
    local = instant.astimezone(tz)
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def attach_invite(msg: EmailMessage, ics: bytes, *, as_attachment: bool = False) -> None:
    """Add ``ics`` to ``msg`` as a ``text/calendar; method=REQUEST; charset=utf-8`` alternative
    (``method=CANCEL`` for a cancellation).

    A single-part message becomes ``multipart/alternative`` (its body first); in a
    ``multipart/mixed`` message the calendar joins the alternative body part. With
    ``as_attachment`` the same data is also attached as ``invite.ics``. Raises ``ValueError``
    when ``ics`` is neither a REQUEST nor a CANCEL.
    """
    text = ics.decode("utf-8")
    upper = text.upper()
    method = (
        "REQUEST" if "METHOD:REQUEST" in upper else "CANCEL" if "METHOD:CANCEL" in upper else ""
    )
    if not method:
        raise ValueError("only METHOD:REQUEST or CANCEL invitations go out as calendar parts")
    target = _alternative_of(msg)
    target.add_alternative(text, subtype="calendar", params={"method": method})
    if as_attachment:
        msg.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")


def _alternative_of(msg: EmailMessage) -> EmailMessage:
    """The multipart/alternative part the calendar belongs in, creating it if need be."""
    kind = msg.get_content_type()
    if not msg.is_multipart() or kind in ("multipart/alternative", "multipart/related"):
        if kind != "multipart/alternative":
            msg.make_alternative()
        return msg
    for part in msg.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        if part.get_content_type() == "multipart/alternative":
            return part
        if part.get_content_maintype() == "text" and part.get_content_disposition() is None:
            part.make_alternative()
            return part
    raise ValueError(f"no body part to add the invitation to in a {kind} message")


def invite_for(action: Action, organizer: Address) -> Invite:
    """The invitation an INVITE action carries: ``organizer`` (the rep) invites ``action.to``.

    The event is the context's ``meeting`` (``summary``, ``start``, ``end``, ``zone``: the
    client's zone, so the client's calendar shows it as written; for an update or cancellation
    also ``uid_key``, ``sequence`` and ``cancelled``). Raises ``ValueError`` for any
    other kind of action or a context without a usable meeting.
    """
    if action.kind is not ActionKind.INVITE:
        raise ValueError(f"{action.key}: a {action.kind.value} action carries no invitation")
    try:
        meeting = action.context["meeting"]
        return Invite(
            key=action.key,
            summary=str(meeting["summary"]),
            start=meeting["start"],
            end=meeting["end"],
            zone=str(meeting["zone"]),
            organizer=organizer,
            attendees=tuple(action.to),
            description=str(meeting.get("description", "")),
            location=str(meeting.get("location", "")),
            uid_key=str(meeting.get("uid_key", "")),
            sequence=int(meeting.get("sequence", 0)),
            cancelled=bool(meeting.get("cancelled", False)),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{action.key}: no usable meeting in the context ({exc})") from exc


def hold_for(action: Action, owner: Address) -> Invite:
    """The calendar event a HOLD ``create`` action puts on ``owner``'s calendar.

    ``owner`` is both organizer and only attendee, ``send_updates`` is off and ``tentative``
    on: a hold is for the rep's calendar, and no client hears of it. Raises ``ValueError``
    for anything but a HOLD create action with ``summary``, ``start``, ``end`` and ``zone`` in
    its context.
    """
    if action.kind is not ActionKind.HOLD or action.context.get("op") != "create":
        raise ValueError(f"{action.key}: not a hold to create")
    try:
        return Invite(
            key=action.key,
            summary=str(action.context["summary"]),
            start=action.context["start"],
            end=action.context["end"],
            zone=str(action.context["zone"]),
            organizer=owner,
            attendees=(owner,),
            send_updates=False,
            tentative=True,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{action.key}: no usable hold in the context ({exc})") from exc
