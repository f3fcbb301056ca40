"""RFC 5322 bytes <-> :class:`agent.model.Message`, for providers that hand us raw mail.

Only the headers the planners use are kept; the body is read on demand by ``body_text``.
A message that cannot be understood raises ``MalformedMessage`` with the reason, so the caller
records it and skips it instead of stopping.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

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


def _addresses(values: list[str]) -> tuple[Address, ...]:
    return tuple(Address(addr, name) for name, addr in getaddresses(values) if "@" in addr)


def _ids(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split() if part.startswith("<") and part.endswith(">"))


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
    """Build a Message from raw bytes; raise MalformedMessage when a required part is unusable."""
    msg = parse(raw) if isinstance(raw, bytes) else raw
    try:
        senders = _addresses([str(v) for v in msg.get_all("from", [])])
    except Exception as exc:  # the email package raises many kinds on hostile headers
        raise MalformedMessage(f"unreadable From header: {exc}") from exc
    if not senders:
        raise MalformedMessage("no From address")
    date_value = msg.get("date")
    if not date_value:
        raise MalformedMessage("no Date header")
    try:
        date = parsedate_to_datetime(str(date_value))
    except (TypeError, ValueError, IndexError) as exc:
        raise MalformedMessage(f"unreadable Date header {str(date_value)!r}") from exc
    if date.tzinfo is None:
        raise MalformedMessage(f"Date header {str(date_value)!r} has no zone")
    try:
        to = _addresses([str(v) for v in msg.get_all("to", [])])
        cc = _addresses([str(v) for v in msg.get_all("cc", [])])
        subject = str(msg.get("subject", ""))
    except Exception as exc:
        raise MalformedMessage(f"unreadable address or subject header: {exc}") from exc
    message_id = str(msg.get("message-id", "")).strip() or f"<{provider_id}@local>"
    references = _ids(str(msg.get("references", "")))
    in_reply_to = (_ids(str(msg.get("in-reply-to", ""))) or ("",))[0]
    headers = {name: str(msg[name]) for name in KEPT_HEADERS if msg[name] is not None}
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
    """The plain-text body (the text/plain part, or text/html stripped of tags)."""
    msg = parse(raw) if isinstance(raw, bytes) else raw
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if part.get_content_subtype() == "html":
        content = re.sub(r"<[^>]+>", " ", content)
    return str(content)
