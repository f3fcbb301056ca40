"""RFC 5322 bytes <-> :class:`agent.model.Message`, for providers that hand us raw mail.

Only the headers the planners use are kept; the body is read on demand by ``body_text``.
A message that cannot be understood raises ``MalformedMessage`` with the reason, so the caller
records it and skips it instead of stopping.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_tz

from agent.model import Address, Message

KEPT_HEADERS = (
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "content-type",
    "x-followup-key",
    "return-path",
    "x-failed-recipients",
)


class MalformedMessage(ValueError):
    """Raised with a reason a person can read (``no From header``, ``unreadable Date``)."""


class HeaderInjection(ValueError):
    """An outgoing message would be written with header lines it does not hold."""


def outgoing_bytes(msg: EmailMessage) -> bytes:
    """``msg`` as the bytes to hand a mail server, once they are checked to hold exactly the
    header lines ``msg`` holds.

    The email package decodes RFC 2047 encoded words in the values it is given, and before
    Python 3.11.10 and 3.12.5 it writes a CR/LF it decoded as a line break (gh-121650): a value
    taken from a client's mail could add a ``Bcc``. ``agent.compose`` cleans every value it
    sets; this is the last check on every path to a mailbox, and raises ``HeaderInjection``.
    """
    raw = msg.as_bytes()
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    written = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    if sorted(n.lower() for n in written) != sorted(n.lower() for n in msg):
        extra = sorted(set(written) - set(msg))
        raise HeaderInjection(
            "a header value would be written as header lines of its own"
            + (f" ({', '.join(extra[:5])})" if extra else "")
        )
    return raw


# Mail from before the Unix epoch or centuries ahead comes from a broken clock, and planners add
# weeks to message dates, which must not run off the end of the calendar.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_SHOWN = 80


def _clean(text: str) -> str:
    """``text`` safe to store: raw 8-bit bytes read as UTF-8 where they are, NULs dropped."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", "")


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _values(msg: EmailMessage, name: str) -> list[str]:
    """Every value of header ``name``, decoded; raw when the email package cannot parse it."""
    try:
        found = [str(v) for v in msg.get_all(name, [])]
    except Exception:  # the email package raises many kinds on hostile headers
        # A header it cannot decode is still worth its raw text: losing the message is worse.
        found = [v for k, v in msg.raw_items() if k.lower() == name and isinstance(v, str)]
    return [_clean(v) for v in found]


def _first(msg: EmailMessage, name: str) -> str:
    return next(iter(_values(msg, name)), "")


def _addresses(values: list[str]) -> tuple[Address, ...]:
    try:
        pairs = getaddresses(values)
    except Exception:  # hostile address lists can still trip the parser
        return ()
    return tuple(Address(addr, name) for name, addr in pairs if "@" in addr)


def _ids(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split() if part.startswith("<") and part.endswith(">"))


def parse_date(value: str) -> datetime:
    """A Date header's instant in UTC; raise MalformedMessage when unreadable or implausible.

    A date with no zone is read as UTC, as RFC 5322 reads ``-0000``: the worst that does is
    move a deadline by the sender's offset, while skipping it would lose a client's mail.
    """
    try:
        parts = parsedate_tz(value)
    except (ValueError, IndexError, TypeError):
        parts = None
    if parts is None:
        raise MalformedMessage(f"unreadable Date header {_shown(value)}")
    offset = timedelta(seconds=parts[9] or 0)
    if abs(offset) >= timedelta(hours=24):
        raise MalformedMessage(f"Date header {_shown(value)} has an impossible zone offset")
    try:
        when = datetime(*parts[:6], tzinfo=UTC) - offset
    except (ValueError, OverflowError) as exc:
        raise MalformedMessage(f"unreadable Date header {_shown(value)}") from exc
    if not EARLIEST <= when < LATEST:
        raise MalformedMessage(
            f"Date header {_shown(value)} lies outside {EARLIEST.year}-{LATEST.year - 1}"
        )
    return when


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def to_message(
    raw: bytes | EmailMessage,
    *,
    mailbox: str,
    provider_id: str,
    labels: frozenset[str] = frozenset(),
    thread_id: str = "",
) -> Message:
    """Build a Message from raw bytes; raise MalformedMessage when a required part is unusable.

    Required are a From address and a readable Date (see :func:`parse_date`). Any other header
    that cannot be decoded is kept as its raw text; a missing Message-ID is made up from
    ``provider_id``. Every text is valid UTF-8 without NULs, as the store needs.
    """
    msg = parse(raw) if isinstance(raw, bytes) else raw
    senders = _addresses(_values(msg, "from"))
    if not senders:
        raise MalformedMessage("no From address")
    date_value = _first(msg, "date")
    if not date_value.strip():
        raise MalformedMessage("no Date header")
    date = parse_date(date_value)
    to = _addresses(_values(msg, "to"))
    cc = _addresses(_values(msg, "cc"))
    subject = _first(msg, "subject")
    message_id = _first(msg, "message-id").strip() or f"<{provider_id}@local>"
    references = _ids(_first(msg, "references"))
    in_reply_to = (_ids(_first(msg, "in-reply-to")) or ("",))[0]
    headers = {}
    for name in KEPT_HEADERS:
        found = _values(msg, name)
        if found:
            headers[name] = found[0]
    if not thread_id:
        # The root of the References chain names the conversation, as mail clients thread.
        thread_id = references[0] if references else (in_reply_to or message_id)
    return Message(
        mailbox=mailbox,
        provider_id=provider_id,
        thread_id=thread_id,
        message_id=message_id,
        sender=senders[0],
        to=to,
        cc=cc,
        date=date,
        subject=" ".join(subject.split()),
        in_reply_to=in_reply_to,
        references=references,
        headers=headers,
        labels=labels,
    )


def body_text(raw: bytes | EmailMessage) -> str:
    """The plain-text body (the text/plain part, or text/html stripped of tags); never raises.

    A part in a charset Python does not know is read as UTF-8 with replacement characters.
    """
    msg = parse(raw) if isinstance(raw, bytes) else raw
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # a hostile Content-Type can trip the part walk
        part = None
    if part is None:
        return ""
    try:
        content = str(part.get_content())
    except (LookupError, ValueError, TypeError, AttributeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_subtype() == "html":
        content = re.sub(r"<[^>]+>", " ", content)
    return _clean(content)
