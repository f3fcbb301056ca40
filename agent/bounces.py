"""Delivery-status notifications: is this mail a bounce, whose address failed, and which sent
message did it bounce. Pure.

A DSN is recognised from its headers first (:func:`looks_like`): an RFC 3464
``multipart/report`` (with or without its ``report-type``), an ``X-Failed-Recipients``
header, a mail-system sender (``MAILER-DAEMON``, ``postmaster``, ``Mail Delivery System``, with
or without an ``@``), or a bounce subject from a sender that takes no replies
(``Return-Path: <>``, ``no-reply@``). Its body then says what happened (:func:`read_text`): the
RFC 3464 per-recipient ``Action`` fields (``failed``, ``delayed``, ``delivered``, ``relayed``,
``expanded``) and ``Status`` codes decide, and without them the wording of the MTAs that write
plain-text bounces (qmail, Exim, Exchange, old Sendmail). Only ``failed`` is a bounce: a delay
warning or a success report is a notice, which stops nothing.

:func:`report_text` renders a DSN as the text a planner reads: the machine-readable
delivery-status fields first, then the human explanation, then the original message's headers
(from ``text/rfc822-headers`` or an attached ``message/rfc822``). The providers that fetch raw
mail store that text as the message body, so the failed recipient and the original Message-ID
reach the planners, which link the bounce to the sent message whatever thread it lands in.

flufl.bounce 6.0 (Mailman's detectors) was measured on the labelled corpus in
``tests/data/reading/bounces``: it names a failed address in 82 % of the 580 bounces (the
labelled one as a permanent failure in 81 %), calls 4 of the 26 delay and success reports
permanent failures, and reads no original Message-ID, which linking needs; so the structure is
read here, with the email package, on bounded input.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Any

FAILED = "failed"
DELAYED = "delayed"
DELIVERED = "delivered"

# A DSN is read this far: the fields and the original's headers sit in its first kilobytes.
MAX_TEXT_CHARS = 200_000
MAX_PARTS = 50
MAX_PART_CHARS = 50_000
MAX_RECIPIENTS = 50
MAX_HUMAN_CHARS = 20_000
ORIGINAL_MARK = "[original message headers]"

# Local parts of the mail system's own senders (RFC 5321 postmaster, sendmail's MAILER-DAEMON,
# carriers' post_master, Exchange's MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e).
_DAEMONS = frozenset(
    {
        "mailer-daemon",
        "mailerdaemon",
        "mailer_daemon",
        "mail-daemon",
        "maildaemon",
        "postmaster",
        "post_master",
        "post-master",
        "mail delivery system",
        "mail delivery subsystem",
        "mail administrator",
        "mail.delivery.system",
        "mdaemon",
        "bounce",
        "bounces",
    }
)
_NO_REPLY = ("no-reply", "noreply", "do-not-reply", "donotreply", "microsoftexchange")

# Subjects MTAs give their failure reports, matched at the start after prefixes are dropped.
_BOUNCE_SUBJECTS = (
    "undeliverable",
    "undelivered mail",
    "undeliverable mail",
    "undelivered message",
    "undeliverable message",
    "non-delivery",
    "non delivery",
    "nondelivery",
    "delivery status notification",
    "delivery status",
    "delivery failure",
    "delivery failed",
    "delivery notification",
    "delivery has failed",
    "delivery report",
    "delivery problem",
    "failure notice",
    "failure delivery",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery system",
    "mail system error",
    "returned mail",
    "return mail",
    "mail failure",
    "message not delivered",
    "message delivery failure",
    "message you sent",
    "could not send message",
    "warning: could not send",
    "delayed mail",
    "delivery delayed",
    "notice of delivery failure",
    "permanent delivery failure",
    "aws notification message",
    "mail error",
    "メールエラー",
    "エラーメール",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "non distribuable",
    "échec de la remise",
    "echec de la remise",
    "no se puede entregar",
    "no entregado",
    "não entregue",
    "onbestelbaar",
    "non recapitabile",
    "kan ikke leveres",
    "olevererbart",
    "ei voitu toimittaa",
    "nie można dostarczyć",
    "nedoručitelné",
    "配信不能",
    "配信エラー",
    "メール配信エラー",
    "无法投递",
    "退信",
    "無法傳遞",
    "تعذر التسليم",
)
# A list's or a filter's tag before the subject; never "Re:" or "Fwd:", which a person writes.
_PREFIX = re.compile(r"^\s*(?:\[[^\]]{0,40}\]\s*|\*{1,5}[^*]{0,40}\*{1,5}\s*)*")

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,40})[ \t]*:[ \t]*(.{0,400})$", re.M)
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_MESSAGE_ID = re.compile(r"^[ \t>]*message-id[ \t]*:[ \t]*(<[^<>\s]{1,250}>)", re.I | re.M)
_MESSAGE_ID_NEXT = re.compile(
    r"^[ \t>]*message-id[ \t]*:[ \t]*\n[ \t]+(<[^<>\s]{1,250}>)", re.I | re.M
)
# Wording of plain-text warnings that a message is still being tried.
_DELAY_WORDS = (
    "will continue to try",
    "will keep trying",
    "will retry",
    "will be retried",
    "still trying",
    "not yet been delivered",
    "has not been delivered yet",
    "delivery is delayed",
    "delivery has been delayed",
    "delivery delayed",
    "message delayed",
    "is delayed",
    "delayed mail",
    "temporarily deferred",
    "no action is required on your part",
    "could not send message for past",
    "warning: message",
    "(delay)",
)
_FAIL_WORDS = (
    "permanent",
    "given up",
    "giving up",
    "gave up",
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered",
    "undeliverable",
    "failed",
    "failure",
    "unknown user",
    "user unknown",
    "does not exist",
    "rejected",
)


@dataclass(frozen=True)
class Report:
    """What a DSN says. ``action`` is ``failed``, ``delayed`` or ``delivered`` (``relayed`` and
    ``expanded`` count as delivered); ``recipients`` the addresses it reports on, lower-case;
    ``original_id`` the Message-ID of the message it reports on, or ""."""

    action: str
    recipients: tuple[str, ...] = ()
    original_id: str = ""
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.action == FAILED


def _local(sender: str) -> str:
    return sender.strip().strip("<>\"' ").lower().partition("@")[0].strip()


def is_daemon(sender: str) -> bool:
    """Whether ``sender`` (an address, or a bare name such as ``MAILER-DAEMON``) is the mail
    system's own sender."""
    return _local(sender) in _DAEMONS


def bounce_subject(subject: str) -> bool:
    """Whether ``subject`` starts, after a ``[tag]``, like an MTA's failure report; a person's
    "Re: Undeliverable ..." does not."""
    head = _PREFIX.sub("", subject[:300], count=1).lower()
    return head.startswith(_BOUNCE_SUBJECTS)


def looks_like(headers: Mapping[str, str], sender: str, subject: str) -> str:
    """Why the headers make this mail a delivery report, or "" when they do not.

    ``headers`` have lower-case names (``content-type``, ``x-failed-recipients``,
    ``return-path``); ``sender`` is the From address, which may have no ``@``.
    """
    ctype = headers.get("content-type", "").lower()
    if "multipart/report" in ctype:
        kind = re.search(r"report-type\s*=\s*\"?([a-z0-9/-]{1,40})", ctype)
        if kind is None or "delivery-status" in kind[1]:
            return "delivery-status report"
    if headers.get("x-failed-recipients", "").strip():
        return "X-Failed-Recipients header"
    if is_daemon(sender):
        return f"sent by {sender or 'the mail system'}"
    null = headers.get("return-path", "").strip() == "<>"
    automated = null or _local(sender).startswith(_NO_REPLY) or "@" not in sender
    if automated and bounce_subject(subject):
        return f"failure report {subject[:80]!r} from {sender or 'no address'}"
    return ""


def _text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a hostile transfer encoding
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw[:MAX_PART_CHARS] if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[: MAX_PART_CHARS * 4].decode(charset, "replace")[:MAX_PART_CHARS]
    except LookupError:
        return payload[: MAX_PART_CHARS * 4].decode("utf-8", "replace")[:MAX_PART_CHARS]


def _headers_text(msg: Message) -> str:
    # raw_items: the header registry's parser is slow on hostile values (see agent.mime).
    items = msg.raw_items() if isinstance(msg, EmailMessage) else iter(msg.items())
    return "\n".join(
        f"{k}: {' '.join(str(v)[:2000].split())[:400]}" for k, v in itertools.islice(items, 100)
    )


def report_text(msg: Message) -> str:
    """The text of DSN ``msg`` for a planner: its human text, its delivery-status fields, then
    ``[original message headers]`` and the headers of the message it reports on. "" when
    ``msg`` carries none of those machine parts (a plain-text bounce reads as its body).
    Never raises; reads at most ``MAX_PARTS`` parts."""
    status: list[str] = []
    human: list[str] = []
    original: list[str] = []
    try:
        parts = list(_walk(msg))
    except Exception:  # a structure nested past the stack
        return ""
    for part in parts:
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks = [b for b in payload[:MAX_PARTS] if isinstance(b, Message)]
                status.append("\n\n".join(_headers_text(block) for block in blocks))
            elif isinstance(payload, str):
                status.append(payload[:MAX_PART_CHARS])
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            original.append(_text(part))
        elif ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                original.append(_headers_text(inner))
                rest = inner.get_payload()
                if "message-id" not in {k.lower() for k in inner} and isinstance(rest, str):
                    original.append(rest[:MAX_HUMAN_CHARS])  # headers broken off by a bad line
            elif isinstance(payload, str):
                original.append(payload[:MAX_PART_CHARS].split("\n\n", 1)[0])
        elif ctype == "text/plain" and len(human) < 3 and not part.get_filename():
            human.append(_text(part)[:MAX_HUMAN_CHARS])
    if not status and not original:
        # A report in plain text parts: the explanation, then the returned message.
        return "\n\n".join(human) if len(human) > 1 else ""
    out = [*human, *status]
    if original:
        out += [ORIGINAL_MARK, *original]
    return "\n\n".join(out)[:MAX_TEXT_CHARS]


def _walk(msg: Message) -> list[Message]:
    """``msg``'s parts, depth first, at most ``MAX_PARTS``, not descending into attached
    messages (their parts are the original's, not the report's)."""
    found: list[Message] = []
    stack = [msg]
    while stack and len(found) < MAX_PARTS:
        part = stack.pop()
        found.append(part)
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))
    return found


def _address(token: str) -> str:
    """The address in one whitespace-free token (``<a@b>:``, ``rfc822;a@b``), or ""."""
    token = token.strip("<>()[]{};:,.'\"`").rpartition(";")[2].rpartition(":")[2]
    token = token.strip("<>()[]{};:,.'\"`").lower()
    local, at, domain = token.partition("@")
    if not at or not local or "." not in domain or "@" in domain or len(token) > 254:
        return ""
    if any(c in token for c in '<>()[]\\,;:"='):
        return ""
    return token


def addresses(text: str, limit: int = MAX_RECIPIENTS) -> list[str]:
    """The addresses in ``text``, lower-case, in order, at most ``limit``."""
    # Tokens, not a regular expression over the text: linear on any input.
    found: list[str] = []
    for token in text.split():
        if "@" in token and len(token) <= 300:
            addr = _address(token)
            if addr and addr not in found:
                found.append(addr)
                if len(found) >= limit:
                    break
    return found


def _original_to(original: str) -> list[str]:
    for match in _FIELD.finditer(original[:MAX_PART_CHARS]):
        if match[1].lower() == "to":
            return addresses(match[2], limit=5)
    return []


def _original_id(text: str) -> str:
    at = text.find(ORIGINAL_MARK)
    for source in (text[at:], text) if at >= 0 else (text,):
        found = _MESSAGE_ID.search(source) or _MESSAGE_ID_NEXT.search(source)
        if found:
            return found[1]
    return ""


def read_text(
    text: str, *, failed_header: str = "", own: tuple[str, ...] = (), subject: str = ""
) -> Report:
    """What DSN text says (:func:`report_text`, or the plain body of an MTA's bounce).

    ``failed_header`` is the ``X-Failed-Recipients`` value; ``own`` the addresses that are not
    the failed recipient (the original sender the DSN goes back to, the mail system's).
    Never raises; reads at most ``MAX_TEXT_CHARS``.
    """
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n")
    if "notificationType" in text:
        notified = _notification(text)
        if notified is not None:
            return notified
    at = text.find(ORIGINAL_MARK)
    head = text[:at] if at >= 0 else text
    original_id = _original_id(text)
    actions: list[str] = []
    recipients: list[str] = []
    statuses: list[str] = []
    for match in _FIELD.finditer(head):
        name, value = match[1].lower(), match[2].strip()
        if name == "action":
            actions.append(value.split()[0].lower() if value.split() else "")
        elif name in ("final-recipient", "original-recipient"):
            addr = _address(value.replace(" ", ""))
            if addr and addr not in recipients and len(recipients) < MAX_RECIPIENTS:
                recipients.append(addr)
        elif name == "status":
            found = _STATUS.search(value)
            if found:
                statuses.append(found[1])
    skip = {a.lower() for a in own}
    if failed_header:  # the fields and the header are the MTA's word: nothing is skipped
        recipients = [*addresses(failed_header), *recipients]
    if actions:
        if FAILED in actions:
            action, why = FAILED, "Action: failed"
        elif DELAYED in actions:
            action, why = DELAYED, "Action: delayed"
        elif all(a in ("delivered", "relayed", "expanded") for a in actions):
            action, why = DELIVERED, f"Action: {actions[0]}"
        else:
            action, why = FAILED, f"Action: {actions[0]}"
    elif "5" in statuses:
        action, why = FAILED, "Status 5.x.x"
    else:
        action, why = _worded(head, subject)
    if not recipients:
        # A plain-text bounce names the address above the copy of the message.
        recipients = [
            a for a in addresses(_explanation(head)) if a not in skip and not is_daemon(a)
        ]
    if not recipients and at >= 0:
        # Some MTAs name the address only in the copy of the message they return.
        recipients = [a for a in _original_to(text[at:]) if a not in skip]
    recipients = list(dict.fromkeys(recipients))
    return Report(action, tuple(recipients[:MAX_RECIPIENTS]), original_id, why)


def _notification(text: str) -> Report | None:
    """An Amazon SES notification (JSON mailed by SNS): ``Bounce`` with a ``Permanent`` or
    ``Transient`` ``bounceType``, ``Delivery``, or ``Complaint``; None when unreadable."""
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except ValueError:  # SNS wraps long lines, which breaks the JSON: read its fields alone
        data = _ses_fields(text)
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType", ""))
    mail = data.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    original = ""
    for header in mail.get("headers") or ():
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            original = str(header.get("value", "")).strip()[:250]
    bounce = data.get("bounce")
    bounce = bounce if isinstance(bounce, dict) else {}
    if kind != "Bounce":
        return Report(DELIVERED, (), original, f"Amazon SES {kind or 'notification'}")
    found = [
        _address(str(r.get("emailAddress", "")))
        for r in (bounce.get("bouncedRecipients") or ())[:MAX_RECIPIENTS]
        if isinstance(r, dict)
    ]
    action = DELAYED if bounce.get("bounceType") == "Transient" else FAILED
    why = f"Amazon SES {bounce.get('bounceType', '')} bounce".replace("  ", " ")
    return Report(action, tuple(a for a in found if a), original, why)


_SES_FIELD = re.compile(
    r'\\?"(notificationType|bounceType|emailAddress)\\?"\s{0,3}:\s{0,3}\\?"([^"\\]{1,254})'
)


def _ses_fields(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"bounce": {"bouncedRecipients": []}}
    for name, value in _SES_FIELD.findall(text[:MAX_PART_CHARS]):
        if name == "emailAddress":
            fields["bounce"]["bouncedRecipients"].append({"emailAddress": value})
        elif name == "bounceType":
            fields["bounce"].setdefault("bounceType", value)
        else:
            fields.setdefault(name, value)
    return fields


_DELAY_SUBJECTS = (
    "delivery status notification (delay)",
    "delayed mail",
    "delivery delayed",
    "warning: could not send message",
    "warning: message",
    "delivery delay notification",
    "message delayed",
)


def delay_subject(subject: str) -> bool:
    """Whether ``subject`` is that of a delay warning (``Delivery Status Notification
    (Delay)``, ``Warning: could not send message for past 4 hours``)."""
    low = subject[:300].lower()
    return any(s in low for s in _DELAY_SUBJECTS)


# Where a plain-text bounce's copy of the original message begins: a marker line, or the first
# header line of the copy.
_COPY_MARKERS = (
    "below this line is a copy",
    "this is a copy of the message",
    "original message follows",
    "-- original message",
    "--original message",
)
_COPY_HEADER = re.compile(
    r"^(?:received|return-path|message-id|dkim-signature|x-[a-z0-9-]{1,40}|from|date|"
    r"mime-version|content-type|references|in-reply-to|reply-to|sender|subject)[ \t]*:",
    re.I | re.M,
)


def _explanation(text: str) -> str:
    """The part of a plain-text bounce above its copy of the original message."""
    low = text.lower()
    cuts = [at for at in (low.find(m) for m in _COPY_MARKERS) if at >= 0]
    found = _COPY_HEADER.search(text)
    if found:
        cuts.append(found.start())
    return text[: min(cuts)] if cuts else text


def _worded(text: str, subject: str) -> tuple[str, str]:
    low = f"{subject}\n{text[:20_000]}".lower()
    fail = next((w for w in _FAIL_WORDS if w in low), "")
    delay = next((w for w in _DELAY_WORDS if w in low), "")
    if delay and not any(w in low for w in ("permanent", "given up", "giving up", "gave up")):
        return DELAYED, f"says {delay!r}"
    return FAILED, f"says {fail!r}" if fail else "a failure report"


def read(msg: EmailMessage, headers: Mapping[str, str], sender: str = "") -> Report:
    """What DSN ``msg`` says, from its structure (see :func:`report_text`) or its body."""
    text = report_text(msg)
    if not text:
        try:
            part = msg.get_body(preferencelist=("plain", "html"))
            text = _text(part) if part is not None else ""
        except Exception:
            text = ""
    return read_text(
        text,
        failed_header=headers.get("x-failed-recipients", ""),
        own=(sender,),
        subject=headers.get("subject", ""),
    )
