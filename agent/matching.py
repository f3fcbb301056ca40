"""Message -> client, direction and kind. Pure.

A client is found by exact address, then by company domain (never for free-mail domains, never
for the team's own), then by thread continuity: a message in a thread already tied to a client
belongs to that client. Auto-replies, bounces and mailing lists are told apart from human mail
by RFC 3834 ``Auto-Submitted``, ``X-Autoreply``/``X-Autorespond``, ``Precedence``, ``List-Id``
and delivery-status reports, so they never start or stop a promise.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from agent import bounces
from agent.model import Classified, Client, Direction, Message, MessageKind, Thread

FREE_MAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.jp",
        "yahoo.co.in",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "t-online.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
        "126.com",
        "rediffmail.com",
        "zoho.com",
        "fastmail.com",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "uol.com.br",
        "bol.com.br",
        "naver.com",
        "hanmail.net",
        "seznam.cz",
        "wp.pl",
    }
)
# Subject prefixes of auto-replies (Exchange/Outlook, Gmail, Zimbra, Lotus/HCL, Apple, Yahoo,
# Zoho, Amazon WorkMail and their translations), read only at the very start of a subject and
# only when a separator follows (``Automatic reply: ...``, ``OOF: ...``, ``自動回覆：``), so a
# person's "Re: out of office plans" or "Out of office plans for May" stays human mail.
AUTO_SUBJECTS = (
    # en
    "automatic reply",
    "automatic response",
    "automated reply",
    "automated response",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "auto response from",
    "out of office",
    "out of the office",
    "out-of-office",
    "out of office reply",
    "out of office autoreply",
    "out of office auto reply",
    "oof",
    "ooo",
    "vacation reply",
    "vacation response",
    "vacation auto-reply",
    "away from the office",
    "away from office",
    # de
    "automatische antwort",
    "autom. antwort",
    "abwesenheitsnotiz",
    "abwesenheitsmeldung",
    "nicht im büro",
    "außer haus",
    # fr
    "réponse automatique",
    "reponse automatique",
    "réponse automatique d'absence",
    "message d'absence",
    "absence du bureau",
    "absent du bureau",
    # es
    "respuesta automática",
    "respuesta automatica",
    "respuesta de ausencia",
    "fuera de la oficina",
    "fuera de oficina",
    # pt
    "resposta automática",
    "resposta automatica",
    "resposta de ausência",
    "fora do escritório",
    "fora do escritorio",
    "ausência temporária",
    "ausente do escritório",
    # it
    "risposta automatica",
    "fuori ufficio",
    "fuori sede",
    # nl
    "automatisch antwoord",
    "automatisch bericht",
    "afwezigheidsbericht",
    "niet aanwezig",
    "niet op kantoor",
    # sv
    "automatiskt svar",
    "frånvaromeddelande",
    "autosvar",
    # da / no
    "automatisk svar",
    "automatisk svar fra",
    "fraværende",
    "ikke på kontoret",
    # fi
    "automaattinen vastaus",
    "poissaoloilmoitus",
    "poissa toimistolta",
    "lomavastaaja",
    # pl
    "odpowiedź automatyczna",
    "automatyczna odpowiedź",
    "poza biurem",
    # cs / sk
    "automatická odpověď",
    "automatická odpoveď",
    "mimo kancelář",
    # hu, ro, tr, ru, el
    "automatikus válasz",
    "házon kívül",
    "răspuns automat",
    "otomatik yanıt",
    "otomatik cevap",
    "ofis dışında",
    "автоматический ответ",
    "автоответ",
    "вне офиса",
    "αυτόματη απάντηση",
    # ja
    "自動応答",
    "自動返信",
    "自動返答",
    "自動送信",
    "不在通知",
    "不在のお知らせ",
    "休暇中",
    # zh (Simplified and Traditional)
    "自动回复",
    "自动答复",
    "自动应答",
    "自動回覆",
    "自動回復",
    "自動答覆",
    "不在办公室",
    "不在辦公室",
    # ko
    "자동 회신",
    "자동 응답",
    "자동응답",
    "부재중",
    # ar
    "رد تلقائي",
    "الرد التلقائي",
    "رد آلي",
    "خارج المكتب",
    # hi
    "स्वचालित उत्तर",
    "स्वचालित जवाब",
    "स्वतः उत्तर",
    "कार्यालय से बाहर",
    # te
    "స్వయంచాలక ప్రత్యుత్తరం",
    "ఆటోమేటిక్ ప్రత్యుత్తరం",
    "స్వయంచాలక సమాధానం",
    "కార్యాలయం వెలుపల",
)
_AUTO_SUBJECTS = frozenset(AUTO_SUBJECTS)
# What may follow a prefix: a colon (any width), a dash or bar, a bracket, or nothing.
_AUTO_SEPARATORS = (":", "-", "–", "—", "|", "(", "[", "/", ">")
# Lotus/HCL Notes and Domino write "<name> is out of the office" as the whole subject.
AUTO_SUBJECT_ENDINGS = (
    " is out of the office",
    " is out of office",
    " ist außer haus",
    " ist nicht im büro",
    " est absent du bureau",
    " está fuera de la oficina",
    " is afwezig",
    " è fuori ufficio",
)
_REPLY_PREFIXES = (
    *("re:", "fw:", "fwd:", "aw:", "wg:", "sv:", "vs:", "tr:", "rv:", "res:", "回复", "답장"),
)
# Vendor headers of auto-replies besides RFC 3834's Auto-Submitted: X-Autoreply (Zimbra,
# Yahoo, many vacation scripts), X-Autorespond, X-Autoresponder, X-Autogenerated: Reply
# (Outlook.com), X-Amazon-Auto-Reply (Amazon WorkMail).
AUTO_HEADERS = (
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-amazon-auto-reply",
)


def auto_subject(subject: str) -> str:
    """The auto-reply prefix ``subject`` starts with (``automatic reply``, ``自動回覆``), or ""."""
    text = unicodedata.normalize("NFKC", subject[:300]).strip().lower()
    if text.startswith(_REPLY_PREFIXES):
        return ""
    if text[:1] in ("[", "("):
        closing = text.find("]" if text[0] == "[" else ")", 1, 60)
        if closing > 0 and " ".join(text[1:closing].split()) in _AUTO_SUBJECTS:
            return text[1:closing].strip()
    for size in range(min(len(text), 40), 0, -1):
        head = text[:size]
        if head in _AUTO_SUBJECTS:
            rest = text[size:].lstrip()
            if not rest or rest.startswith(_AUTO_SEPARATORS):
                return head
    trimmed = text.rstrip(" .!")
    if len(trimmed) <= 120 and trimmed.endswith(AUTO_SUBJECT_ENDINGS):
        return next(e.strip() for e in AUTO_SUBJECT_ENDINGS if trimmed.endswith(e))
    return ""


# Local parts of addresses that reach a group, not a person: a thank-you to ``all-staff@`` or
# ``board@`` at a client company reaches people who were never in the meeting.
LIST_LOCAL_PARTS = frozenset(
    {
        "all",
        "allstaff",
        "all-staff",
        "all_staff",
        "allhands",
        "all-hands",
        "everyone",
        "everybody",
        "staff",
        "board",
        "directors",
        "employees",
        "team",
        "company",
        "office",
        "list",
        "announce",
        "announcements",
        "info",
        "contact",
        "hello",
        "sales",
        "support",
        "admin",
        "hr",
        "marketing",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
    }
)
_LIST_HEADS = ("all-", "all.", "all_", "everyone", "list-", "list.", "list_")
_LIST_TAILS = (
    "-all",
    ".all",
    "_all",
    "-list",
    ".list",
    "_list",
    "-staff",
    ".staff",
    "-team",
    "-board",
)


def is_list_like(email: str) -> bool:
    """Whether ``email`` looks like a distribution list or a role address (``all-staff@``,
    ``board@``, ``sales-list@``) rather than a person's."""
    local = email.strip().lower().rpartition("@")[0].partition("+")[0]
    if local in LIST_LOCAL_PARTS:
        return True
    return local.startswith(_LIST_HEADS) or local.endswith(_LIST_TAILS)


def matches_client(email: str, client: Client) -> bool:
    """Whether ``email`` is ``client``'s by the record itself: one of its addresses, or an
    address at one of its company domains (never a free-mail domain). Thread continuity is
    no reason: anyone can write into a thread by quoting its ``References``."""
    email = email.strip().lower()
    if email in {e.lower() for e in client.emails}:
        return True
    domain = email.rpartition("@")[2]
    return domain not in FREE_MAIL and domain in {d.lower() for d in client.domains}


def trusted_recipient(email: str, client: Client) -> bool:
    """Whether a note on ``client``'s behalf may go to ``email``: it matches the client and is
    not a list-like address, unless the record names it as a contact."""
    if email.strip().lower() in {e.lower() for e in client.emails}:
        return True
    return matches_client(email, client) and not is_list_like(email)


UNSUBSCRIBE = "unsubscribe"  # the word a note's List-Unsubscribe mailto puts first
_TOKEN = re.compile(r"\s*unsubscribe\s+(fu-[0-9a-f]{20})\s*", re.IGNORECASE)


def unsubscribe_token(target: str) -> str:
    """The opaque token a note to ``target`` (a client key, or an address for mail to no known
    client) carries in its unsubscribe subject: a digest, naming nothing."""
    digest = hashlib.sha256(f"followup-unsubscribe:{target.lower()}".encode()).hexdigest()
    return f"fu-{digest[:20]}"


def unsubscribe_subject(target: str) -> str:
    return f"{UNSUBSCRIBE} {unsubscribe_token(target)}"


def unsubscribe_request(subject_text: str) -> str:
    """The token of a mail whose whole subject is an unsubscribe request, else "". Nothing else
    counts: not the word in a newsletter's footer, not "please stop" in a reply."""
    found = _TOKEN.fullmatch(subject_text[:200])
    return found[1].lower() if found else ""


def kind_of(message: Message) -> tuple[MessageKind, str]:
    """What kind of mail this is, and the header that said so.

    A delivery report (see :mod:`agent.bounces`) is a BOUNCE when its body, once fetched, says
    a delivery failed, and a NOTICE when it says the message is delayed or was delivered.
    """
    h = message.headers
    dsn = bounces.looks_like(h, message.sender.email, message.subject)
    if dsn:
        report = bounce_report(message)
        if report.action == bounces.FAILED:
            return MessageKind.BOUNCE, f"{dsn}; {report.reason}"
        return MessageKind.NOTICE, f"{dsn}; {report.reason}: not a failure"
    ctype = h.get("content-type", "").lower()
    if "multipart/report" in ctype:  # a read receipt (RFC 8098), an abuse report (RFC 5965)
        return MessageKind.NOTICE, f"a machine report ({' '.join(ctype.split())[:80]})"
    auto = h.get("auto-submitted", "").strip().lower()
    if auto and not auto.startswith("no"):
        return MessageKind.AUTO_REPLY, f"Auto-Submitted: {auto}"
    for name in AUTO_HEADERS:
        if h.get(name, "").strip():
            return MessageKind.AUTO_REPLY, f"{name.title()} header"
    if h.get("x-autogenerated", "").strip().lower() == "reply":
        return MessageKind.AUTO_REPLY, "X-Autogenerated: Reply"
    precedence = h.get("precedence", "").strip().lower()
    if precedence in ("auto_reply", "auto-reply", "autoreply"):
        return MessageKind.AUTO_REPLY, f"Precedence: {precedence}"
    if h.get("list-id"):
        return MessageKind.LIST, f"List-Id: {h['list-id']}"
    if precedence in ("bulk", "list", "junk"):
        return MessageKind.LIST, f"Precedence: {precedence}"
    if unsubscribe_request(message.subject):
        return MessageKind.UNSUBSCRIBE, "an unsubscribe request"
    prefix = auto_subject(message.subject)
    if prefix:
        return MessageKind.AUTO_REPLY, f"subject {message.subject[:80]!r}"
    return MessageKind.HUMAN, "human mail"


def bounce_report(message: Message) -> bounces.Report:
    """What a delivery report says (:func:`agent.bounces.read_text` over its fetched body);
    before the body is fetched, what its headers and subject say."""
    return _report(
        message.body or "",
        message.headers.get("x-failed-recipients", ""),
        (message.sender.email, *(a.email for a in message.recipients)),
        message.subject,
    )


@lru_cache(maxsize=1024)
def _report(body: str, failed: str, own: tuple[str, ...], subject: str) -> bounces.Report:
    if body:
        return bounces.read_text(body, failed_header=failed, own=own, subject=subject)
    action = bounces.DELAYED if bounces.delay_subject(subject) else bounces.FAILED
    why = "a delay warning" if action == bounces.DELAYED else "a failure report"
    found = tuple(a for a in bounces.addresses(failed) if a not in own)
    return bounces.Report(action, found, "", f"{why} (body not read)")


@dataclass(frozen=True)
class Directory:
    """Lookup tables from addresses and domains to clients, and what counts as the team."""

    clients: Sequence[Client]
    team_domains: frozenset[str] = frozenset()
    team_addresses: frozenset[str] = frozenset()
    by_email: dict[str, Client] = field(default_factory=dict, init=False)
    by_domain: dict[str, Client] = field(default_factory=dict, init=False)
    by_key: dict[str, Client] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for c in self.clients:
            self.by_key.setdefault(c.key, c)
            for e in c.emails:
                self.by_email.setdefault(e.lower(), c)
            for d in c.domains:
                if d not in FREE_MAIL and d not in self.team_domains:
                    self.by_domain.setdefault(d.lower(), c)

    def is_team(self, email: str) -> bool:
        email = email.lower()
        return email in self.team_addresses or email.rpartition("@")[2] in self.team_domains

    def find(self, email: str) -> tuple[Client | None, str]:
        email = email.lower()
        if email in self.by_email:
            return self.by_email[email], f"address {email}"
        domain = email.rpartition("@")[2]
        if domain in FREE_MAIL:
            return None, f"free-mail domain {domain} is never matched by domain"
        if domain in self.by_domain:
            return self.by_domain[domain], f"company domain {domain}"
        return None, f"no client has {email} or {domain}"

    def get(self, key: str) -> Client | None:
        """The first client with ``key``, or ``None``."""
        return self.by_key.get(key)


def classify(message: Message, own: frozenset[str], directory: Directory) -> Classified:
    """Direction, kind and client of one message, with the reasons."""
    kind, kind_reason = kind_of(message)
    sender = message.sender.email
    if sender in own or directory.is_team(sender):
        external = [
            a for a in message.recipients if not directory.is_team(a.email) and a.email not in own
        ]
        direction = Direction.OUTBOUND if external else Direction.INTERNAL
        candidates = external
    else:
        direction = Direction.INBOUND
        candidates = [message.sender]
    reasons = [kind_reason]
    for addr in candidates:
        client, why = directory.find(addr.email)
        if client:
            return Classified(message, direction, kind, client.key, f"{why}; {kind_reason}")
        reasons.append(why)
    return Classified(message, direction, kind, "", "; ".join(reversed(reasons)))


def build_threads(
    messages: Iterable[Message], own: Mapping[str, frozenset[str]], directory: Directory
) -> list[Thread]:
    """Group messages into threads per mailbox, oldest first, and give each thread its client.

    ``own`` maps each mailbox to the rep's addresses. A message with no client of its own takes
    its thread's client (thread continuity).
    """
    grouped: dict[tuple[str, str], list[Classified]] = defaultdict(list)
    for m in sorted(messages, key=lambda m: (m.date, m.provider_id)):
        grouped[(m.mailbox, m.thread_id)].append(
            classify(m, own.get(m.mailbox, frozenset()), directory)
        )
    threads = []
    for (mailbox, thread_id), items in grouped.items():
        client_key = next((c.client for c in items if c.client), "")
        if client_key:
            items = [
                c
                if c.client
                else Classified(
                    c.message,
                    c.direction,
                    c.kind,
                    client_key,
                    f"thread continuity; {c.reason}",
                    by_thread=True,
                )
                for c in items
            ]
        threads.append(Thread(mailbox, thread_id, tuple(items), directory.get(client_key)))
    return sorted(threads, key=lambda t: (t.mailbox, t.messages[0].message.date))
