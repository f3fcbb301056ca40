"""RFC 5322 bytes <-> :class:`agent.model.Message`, for providers that hand us raw mail.

Only the headers the planners use are kept; the body is read on demand by ``body_text``.
A message that cannot be understood raises ``MalformedMessage`` with the reason, so the caller
records it and skips it instead of stopping.

Mail is hostile input, so every step is bounded the way a mail server bounds it (Postfix keeps
100 KB of headers and takes messages of 10 MB): the header block past ``MAX_HEADER_BYTES`` is
dropped, an address header is read for its first ``MAX_ADDRESSES`` addresses, ``body_text``
reads the first ``MAX_MESSAGE_BYTES`` of a message, converts at most ``MAX_HTML_CHARS`` of HTML
with a real HTML parser (libxml2, through lxml: linear time, nesting capped; lexbor, through
selectolax, took 140 s on 1 MB of nested ``<div>``) and hands back at most ``MAX_TEXT_CHARS``.
Nothing here uses the email package's header registry, whose parser takes minutes or overflows
the stack on a long hostile address list.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_tz

import lxml.etree

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
    # A Maildir's tags, where mail tools keep them (agent/providers/local.py reads them).
    "keywords",
    "x-keywords",
    "x-label",
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

# Postfix's header_size_limit and message_size_limit.
MAX_HEADER_BYTES = 102_400
MAX_MESSAGE_BYTES = 10_240_000
# A header value is read this far (a References chain of 300 ids fits); an address header for
# this many addresses (Gmail and Exchange take 500 recipients per message).
MAX_VALUE_CHARS = 16_384
MAX_ADDRESS_CHARS = 32_768
MAX_ADDRESSES = 500
# HTML converted to text, and the text handed to the planners, which read a reply's top.
MAX_HTML_CHARS = 1_000_000
MAX_TEXT_CHARS = 100_000
# Multipart containers in one message: real mail nests a handful; the parser's cost grows with
# the number open at once, so a message of thousands is read as having no text.
MAX_MULTIPARTS = 100


def _clean(text: str) -> str:
    """``text`` safe to store: raw 8-bit bytes read as UTF-8 where they are, NULs dropped."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", "")


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def decoded(value: str) -> str:
    """``value`` with RFC 2047 encoded words decoded; as given when they cannot be."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # HeaderParseError on bad base64, LookupError on unknown charsets, ...
        return value


def _raw_values(msg: EmailMessage, name: str) -> list[str]:
    """Every value of header ``name`` as sent, unfolded, not decoded."""
    found = [v for k, v in msg.raw_items() if k.lower() == name and isinstance(v, str)]
    return [_clean(v.replace("\r", "").replace("\n", "")) for v in found]


def _values(msg: EmailMessage, name: str) -> list[str]:
    """Every value of header ``name``, cut to ``MAX_VALUE_CHARS`` and decoded."""
    return [decoded(v[:MAX_VALUE_CHARS].strip()) for v in _raw_values(msg, name)]


def _first(msg: EmailMessage, name: str) -> str:
    return next(iter(_values(msg, name)), "")


def addresses(values: Iterable[str]) -> tuple[Address, ...]:
    """The addresses in From/To/Cc ``values`` (raw header text), at most ``MAX_ADDRESSES``.

    Each value is read for its first ``MAX_ADDRESS_CHARS`` (cut at a comma); a value the email
    package cannot read (``a: a: a: ...`` overflows its stack) gives no addresses. Display names
    have their encoded words decoded. Never raises.
    """
    found: list[Address] = []
    for value in values:
        if len(value) > MAX_ADDRESS_CHARS:
            cut = value.rfind(",", 0, MAX_ADDRESS_CHARS)
            value = value[: cut if cut > 0 else MAX_ADDRESS_CHARS]
        try:
            pairs = getaddresses([value])
        except Exception:  # RecursionError on nested groups, and more on hostile lists
            continue
        for name, addr in pairs:
            if "@" in addr:
                found.append(Address(addr, decoded(name)))
            if len(found) >= MAX_ADDRESSES:
                return tuple(found)
    return tuple(found)


def _addresses(values: list[str]) -> tuple[Address, ...]:
    return addresses(values)


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


def header_block(raw: bytes) -> bytes:
    """The header block of ``raw``, bounded: each header field keeps its first
    ``MAX_ADDRESS_CHARS`` bytes (cut after a comma, so an address list keeps whole addresses)
    and the block its first ``MAX_HEADER_BYTES``; the excess is dropped, as Postfix drops it,
    so one giant header costs neither the message nor the headers after it."""
    ends = [at for at in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if at >= 0]
    head = raw[: min(ends) + 1] if ends else raw
    if len(head) <= MAX_HEADER_BYTES and b"\n" in head:
        return head
    kept: list[bytes] = []
    total = field = 0
    for line in head.splitlines(keepends=True):
        field = field + len(line) if line[:1] in (b" ", b"\t") else len(line)
        room = MAX_ADDRESS_CHARS - (field - len(line))
        if len(line) > room:
            cut = line.rfind(b",", 0, room)
            line = line[: cut if cut > 0 else max(room, 0)].rstrip(b"\r\n")
            line = line + b"\r\n" if line.strip() else b""
        if line and total + len(line) <= MAX_HEADER_BYTES:
            kept.append(line)
            total += len(line)
    return b"".join(kept)


def parse_headers(raw: bytes) -> EmailMessage:
    """Only the headers of ``raw`` (see :func:`header_block`), for a cheap look at them."""
    msg = BytesParser(policy=email.policy.default).parsebytes(header_block(raw), headersonly=True)
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
    msg = parse_headers(raw) if isinstance(raw, bytes) else raw
    senders = _addresses(_raw_values(msg, "from"))
    if not senders:
        raise MalformedMessage("no From address")
    date_value = _first(msg, "date")
    if not date_value.strip():
        raise MalformedMessage("no Date header")
    date = parse_date(date_value)
    to = _addresses(_raw_values(msg, "to"))
    cc = _addresses(_raw_values(msg, "cc"))
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
    """The plain-text body (the text/plain part, or text/html made text); never raises.

    A part in a charset Python does not know is read as UTF-8 with replacement characters.
    Reads the first ``MAX_MESSAGE_BYTES`` of ``raw`` and returns at most ``MAX_TEXT_CHARS``; a
    message of more than ``MAX_MULTIPARTS`` multipart containers gives "".
    """
    if isinstance(raw, bytes):
        raw = raw[:MAX_MESSAGE_BYTES]
        if raw.lower().count(b"boundary=") > MAX_MULTIPARTS:
            return ""  # the email package checks every line against every open boundary
    try:
        msg = parse(raw) if isinstance(raw, bytes) else raw
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # a hostile structure (parts nested past the stack) can trip the walk
        part = None
    if part is None:
        return ""
    try:
        content = str(part.get_content())
    except (LookupError, ValueError, TypeError, AttributeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_subtype() == "html":
        content = html_to_text(content)
    return _clean(content[:MAX_TEXT_CHARS])


# Elements whose text a reader never sees, and elements that end a line.
_HIDDEN = frozenset({"head", "script", "style", "template", "title", "noscript", "object"})
_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)


def html_to_text(html: str) -> str:
    """The text a reader sees in ``html``: one line per block, no blank lines, spaces collapsed.

    Parsed by libxml2's HTML parser (linear time; nesting past its depth limit is cut), reading
    at most ``MAX_HTML_CHARS``. Script, style and head contents are dropped. Never raises.
    """
    parser = lxml.etree.HTMLParser(
        remove_comments=True, remove_pis=True, no_network=True, encoding="utf-8"
    )
    try:
        root = lxml.etree.fromstring(_clean(html[:MAX_HTML_CHARS]).encode("utf-8"), parser)
    except (lxml.etree.LxmlError, ValueError):
        return ""
    if root is None:
        return ""
    # The text and quote depth of each line; a line inside <blockquote> is written "> " per
    # level, as a plain-text reply quotes, so that quote cutting reads both alike.
    texts: list[list[str]] = [[]]
    depths = [0]
    hidden = quoted = 0
    for event, el in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in _HIDDEN or not tag:
                hidden += 1
                continue
            if hidden:
                continue
            if tag in _BLOCK:
                texts.append([])
                depths.append(quoted)
            if tag == "blockquote":
                quoted += 1
            text = el.text
        else:
            if tag in _HIDDEN or not tag:
                hidden -= 1
                continue
            if hidden:
                continue
            if tag == "blockquote":
                quoted -= 1
            if tag in _BLOCK:
                texts.append([])
                depths.append(quoted)
            text = el.tail
        if text:
            if not texts[-1]:
                depths[-1] = quoted
            texts[-1].append(text)
    # Source line breaks are spaces in HTML; only blocks end lines.
    out = []
    for depth, parts in zip(depths, texts, strict=True):
        line = " ".join("".join(parts).split())
        if line:
            out.append(f"{'> ' * min(depth, 20)}{line}" if depth > 0 else line)
    return "\n".join(out)
