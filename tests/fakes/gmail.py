"""An HTTP emulator of the Gmail v1 and Google Calendar v3 endpoints Followup calls.

It speaks the wire format of the public API references (JSON shapes, status codes, paging,
history ids, sync tokens, the multipart batch endpoint and the OAuth token endpoint), so the real
google-api-python-client and google-auth run against it unchanged::

    with GoogleEmulator(address="rep@example.com") as emu:
        gmail = build("gmail", "v1", credentials=Credentials(token="t"), static_discovery=True,
                      client_options={"api_endpoint": emu.root})
        calendar = build("calendar", "v3", ..., client_options={"api_endpoint": emu.calendar_root})

State is kept in memory behind one lock. Tests reach it through methods named for what a mail
server does (``deliver``, ``delete``, ``add_label``, ``expire_history``, ``add_event``,
``expire_sync_tokens``, ``revoke``) and steer failures with ``inject`` and ``lose_response``;
``outage`` answers every call with one status (a 503 outage, a 429 storm with Retry-After) until
``end_outage`` or an ``until`` condition, ``script`` answers the next calls with a list of
statuses, and ``on_call`` lets a test act (kill a client process) when a given call arrives.
``requests`` counts HTTP requests, ``calls`` lists API calls (batch parts included) and
``quota_units`` adds up Gmail quota units per the published per-method costs.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import secrets
import sys
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Quota units per method, from the Gmail API quota reference.
QUOTA = {
    "getProfile": 1,
    "history.list": 2,
    "messages.list": 5,
    "messages.get": 5,
    "messages.send": 100,
    "drafts.create": 10,
    "drafts.get": 5,
    "drafts.list": 5,
    "drafts.send": 100,
    "drafts.delete": 10,
    "threads.get": 10,
    "labels.list": 1,
}
# The system labels users.labels.list returns besides the user's own (users.labels resource).
SYSTEM_LABELS = ("INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT")
BATCH_LIMIT = 100
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
_EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
_STATUS_TEXT = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_STATUS_NAME = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "GONE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        reason: str = "",
        *,
        domain: str = "global",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or {404: "notFound", 400: "badRequest"}.get(status, "backendError")
        self.domain = domain
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
                "status": _STATUS_NAME.get(self.status, "UNKNOWN"),
            }
        }


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


@dataclass
class _Injection:
    status: int
    times: int
    match: str | None
    retry_after: float | None
    reason: str
    after: bool = False  # True: run the call, then answer with the failure (a lost response)


@dataclass
class _Outage:
    status: int
    retry_after: float | None
    match: str | None
    reason: str
    until: Callable[[], bool] | None


@dataclass
class _Message:
    id: str
    thread_id: str
    labels: list[str]
    raw: bytes
    headers: list[tuple[str, str]]
    internal_ms: int
    history_id: int
    snippet: str


_REPLY_PREFIXES = ("re:", "fw:", "fwd:")


def _base_subject(subject: str) -> str:
    """A subject without its reply and forward prefixes, spaces folded, case ignored."""
    text = " ".join(subject.split()).casefold()
    while True:
        for prefix in _REPLY_PREFIXES:
            if text.startswith(prefix):
                text = text[len(prefix) :].lstrip()
                break
        else:
            return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ApiError(400, f"Bad time value {text!r}: an offset is required", "invalid")
    return value


def _event_bounds(event: dict[str, Any], zone: str) -> tuple[datetime, datetime]:
    from zoneinfo import ZoneInfo

    def point(part: dict[str, Any]) -> datetime:
        if "dateTime" in part:
            return _parse_time(part["dateTime"])
        day = datetime.fromisoformat(part["date"])
        return day.replace(tzinfo=ZoneInfo(zone))

    return point(event["start"]), point(event["end"])


class GoogleEmulator:
    """A stateful Gmail + Calendar + OAuth server on 127.0.0.1 and a random port."""

    def __init__(
        self,
        address: str = "rep@example.com",
        *,
        latency: float = 0.0,
        zone: str = "Europe/Berlin",
        strict_auth: bool = False,
    ) -> None:
        self.address = address
        self.latency = latency
        self.zone = zone
        self.strict_auth = strict_auth
        self.lock = threading.RLock()
        # mail
        self.messages: dict[str, _Message] = {}
        self.drafts: dict[str, str] = {}  # draft id -> message id
        self.user_labels: dict[str, str] = {}  # label id -> name ("Followup/Stop")
        self.history: list[dict[str, Any]] = []
        self.history_id = 1000
        self.history_floor = 0
        self._seq = 0
        # calendar
        self.events: dict[str, dict[str, Any]] = {}
        self.event_seq: dict[str, int] = {}
        self.calendar_seq = 0
        self.sync_floor = 0
        self.notifications: list[tuple[str, str]] = []  # (event id, sendUpdates)
        self.other_busy: dict[str, list[tuple[datetime, datetime]]] = {}
        # oauth
        self.client_id = "client-1.apps.example"
        self.client_secret = "client-secret-1"
        self.access_tokens: dict[str, str] = {}  # access token -> refresh token
        self.refresh_tokens: set[str] = set()
        self.revoked: set[str] = set()
        self.codes: dict[str, str] = {}  # auth code -> scopes consented
        self.scopes: dict[str, str] = {}  # refresh token -> scopes granted
        self.token_lifetime = 3599
        self.token_requests = 0
        self.consents = 0
        # OpenID Connect sign-in: who consents on the page, and the codes' PKCE and nonce
        self.identity: str | None = None  # the account that signs in (default: address)
        self.oidc_codes: dict[str, dict[str, str]] = {}  # code -> challenge, nonce, redirect
        self.signing_key: Any = None  # made on the first sign-in (RSA, RS256)
        self.kid = "emulator-key-1"
        # accounting
        self.requests = 0
        self.calls: list[str] = []
        self.units: Counter[str] = Counter()
        self.formats: Counter[str] = Counter()  # messages.get calls by format (raw: bodies)
        self.batches: list[tuple[str, ...]] = []  # per batch request, its parts' calls
        self._injections: list[_Injection] = []
        self._outage: _Outage | None = None
        self._script: deque[tuple[int, str | None, float | None]] = deque()
        self.failed: Counter[int] = Counter()  # calls answered by outage or script, by status
        # Called with "METHOD /path" before each API call (batch parts and envelopes included).
        self.on_call: Callable[[str], None] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> GoogleEmulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GoogleEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return int(self._server.server_address[1])

    @property
    def root(self) -> str:
        """The ``api_endpoint`` for Gmail (its discovery paths start with ``gmail/v1``)."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def calendar_root(self) -> str:
        """The ``api_endpoint`` for Calendar (its discovery paths omit ``calendar/v3``)."""
        return f"http://127.0.0.1:{self.port}/calendar/v3/"

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def auth_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/o/oauth2/auth"

    def client_secrets(self) -> dict[str, Any]:
        """An installed-app client secrets document pointing at this emulator."""
        return {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    # ----------------------------------------------------------------- accounting

    @property
    def quota_units(self) -> int:
        return sum(QUOTA.get(name, 0) * n for name, n in self.units.items())

    def reset_mailbox(self) -> None:
        """Empty the mailbox and calendar and zero the counters, keeping the OAuth grants, so a
        test can replay a scenario from the start against the same address and port."""
        with self.lock:
            self.messages.clear()
            self.drafts.clear()
            self.history.clear()
            self.history_id = 1000
            self.history_floor = 0
            self._seq = 0
            self.events.clear()
            self.event_seq.clear()
            self.calendar_seq = 0
            self.sync_floor = 0
            self.notifications.clear()
            self._injections.clear()
            self._outage = None
            self._script.clear()
            self.failed.clear()
        self.reset_counters()

    def reset_counters(self) -> None:
        with self.lock:
            self.requests = 0
            self.calls.clear()
            self.units.clear()
            self.formats.clear()
            self.batches.clear()

    def inject(
        self,
        status: int,
        *,
        times: int = 1,
        match: str | None = None,
        retry_after: float | None = None,
        reason: str = "",
    ) -> None:
        """Answer the next ``times`` API calls whose ``"METHOD /path"`` (no query string) the
        regular expression ``match`` finds, with ``status`` and a Retry-After header when given.
        The calls are not carried out. Batch envelopes match only an explicit ``/batch``."""
        default = {429: "rateLimitExceeded", 403: "rateLimitExceeded"}.get(status, "backendError")
        with self.lock:
            self._injections.append(
                _Injection(status, times, match, retry_after, reason or default)
            )

    def lose_response(self, match: str, *, status: int = 503, times: int = 1) -> None:
        """Carry out the next matching call, then answer ``status``: the client cannot tell
        whether it happened (a connection dropped after the server committed)."""
        with self.lock:
            self._injections.append(_Injection(status, times, match, None, "backendError", True))

    def outage(
        self,
        status: int = 503,
        *,
        retry_after: float | None = None,
        match: str | None = None,
        reason: str = "",
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Answer every API call (batch envelopes included) whose ``"METHOD /path"`` ``match``
        finds with ``status`` until ``end_outage()``, or until ``until()`` turns true (a test's
        clock passing the outage's end). The OAuth token endpoint stays up."""
        default = {429: "rateLimitExceeded", 403: "rateLimitExceeded"}.get(status, "backendError")
        with self.lock:
            self._outage = _Outage(status, retry_after, match, reason or default, until)

    def end_outage(self) -> None:
        with self.lock:
            self._outage = None

    @property
    def in_outage(self) -> bool:
        with self.lock:
            return self._active_outage() is not None

    def _active_outage(self) -> _Outage | None:
        outage = self._outage
        if outage is not None and outage.until is not None and outage.until():
            self._outage = outage = None
        return outage

    def script(
        self,
        statuses: Iterable[int],
        *,
        match: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next calls ``match`` finds with ``statuses`` in order; a 200 in the list
        lets that call through. Batch envelopes are let through (their parts are scripted)."""
        with self.lock:
            self._script.extend((status, match, retry_after) for status in statuses)

    def _outage_failure(self, signature: str, *, envelope: bool = False) -> Reply | None:
        with self.lock:
            outage = self._active_outage()
            if outage is not None and (outage.match is None or re.search(outage.match, signature)):
                self.failed[outage.status] += 1
                return self._failure(
                    _Injection(outage.status, 1, outage.match, outage.retry_after, outage.reason)
                )
            if envelope or not self._script:
                return None
            status, match, retry_after = self._script[0]
            if match is not None and not re.search(match, signature):
                return None
            self._script.popleft()
            if status == 200:
                return None
            self.failed[status] += 1
            reason = {429: "rateLimitExceeded", 403: "rateLimitExceeded"}.get(
                status, "backendError"
            )
            return self._failure(_Injection(status, 1, match, retry_after, reason))

    def _take_injection(self, signature: str, *, envelope: bool = False) -> _Injection | None:
        with self.lock:
            for inj in self._injections:
                if envelope and inj.match is None:
                    continue
                if inj.match is None or re.search(inj.match, signature):
                    inj.times -= 1
                    if inj.times <= 0:
                        self._injections.remove(inj)
                    return inj
        return None

    # ----------------------------------------------------------------- mail state

    def _next_id(self) -> str:
        self._seq += 1
        return f"{0x18C0000000000000 + self._seq:x}"

    def _record(self, kind: str, msg: _Message, labels: Iterable[str] = ()) -> None:
        self.history_id += 1
        msg.history_id = self.history_id
        entry = {"id": self.history_id, "kind": kind, "message": msg.id, "thread": msg.thread_id}
        entry["labels"] = list(labels) if kind in ("labelAdded", "labelRemoved") else msg.labels
        self.history.append(entry)

    def _thread_for(
        self, headers: list[tuple[str, str]], requested: str | None = None
    ) -> str | None:
        """The thread a new message joins, by the rule of Gmail's "Manage threads" guide: its
        References or In-Reply-To name a message of that thread and its Subject matches that
        message's (reply prefixes aside); a ``requested`` threadId is honoured only then.
        Anything else starts a thread of its own."""
        wanted: set[str] = set()
        subject = ""
        for name, value in headers:
            if name.lower() in ("in-reply-to", "references"):
                wanted.update(value.split())
            elif name.lower() == "subject":
                subject = _base_subject(value)
        if not wanted:
            return None
        for msg in reversed(list(self.messages.values())):
            if requested is not None and msg.thread_id != requested:
                continue
            ids = [v.strip() for k, v in msg.headers if k.lower() == "message-id"]
            if not ids or ids[0] not in wanted:
                continue
            theirs = next((v for k, v in msg.headers if k.lower() == "subject"), "")
            if _base_subject(theirs) == subject:
                return msg.thread_id
        return None

    def _store(
        self,
        raw: bytes,
        labels: Iterable[str],
        *,
        thread_id: str | None = None,
        requested_thread: str | None = None,
        internal: datetime | None = None,
    ) -> _Message:
        parsed = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        headers = [(k, str(v)) for k, v in parsed.items()]
        if internal is None:
            try:
                internal = parsedate_to_datetime(parsed.get("Date", ""))
            except (TypeError, ValueError, IndexError):
                internal = None
            if internal is None or internal.tzinfo is None:
                internal = datetime.now(UTC)
        msg_id = self._next_id()
        thread = thread_id or self._thread_for(headers, requested_thread) or msg_id
        body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
        msg = _Message(
            id=msg_id,
            thread_id=thread,
            labels=list(labels),
            raw=raw,
            headers=headers,
            internal_ms=int(internal.timestamp() * 1000),
            history_id=0,
            snippet=body[:100].decode("utf-8", "replace").strip(),
        )
        self.messages[msg_id] = msg
        self._record("messageAdded", msg)
        return msg

    def deliver(
        self,
        raw: bytes,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        *,
        internal: datetime | None = None,
    ) -> str:
        """Put a message into the mailbox as mail delivery would; return its Gmail id."""
        with self.lock:
            return self._store(raw, labels, internal=internal).id

    def delete(self, message_id: str) -> None:
        with self.lock:
            msg = self.messages.pop(message_id)
            self._record("messageDeleted", msg)

    def create_label(self, name: str) -> str:
        """A user label, as users.labels.create makes one: an opaque id, a name in which "/"
        nests (``Followup/Stop`` shows under ``Followup``); the same name gives the same id."""
        with self.lock:
            for label_id, known in self.user_labels.items():
                if known == name:
                    return label_id
            label_id = f"Label_{len(self.user_labels) + 1}"
            self.user_labels[label_id] = name
            return label_id

    def label_thread(self, thread_id: str, name: str) -> str:
        """The rep labels a conversation in the Gmail UI: every message of the thread gets the
        label (threads.modify), each with a labelAdded history record. Returns the label id."""
        label_id = self.create_label(name)
        with self.lock:
            for msg in list(self.messages.values()):
                if msg.thread_id == thread_id:
                    self.add_label(msg.id, label_id)
        return label_id

    def add_label(self, message_id: str, label: str) -> None:
        with self.lock:
            msg = self.messages[message_id]
            if label not in msg.labels:
                msg.labels.append(label)
            self._record("labelAdded", msg, [label])

    def remove_label(self, message_id: str, label: str) -> None:
        with self.lock:
            msg = self.messages[message_id]
            if label in msg.labels:
                msg.labels.remove(label)
            self._record("labelRemoved", msg, [label])

    def expire_history(self) -> None:
        """Forget all history so far: any older startHistoryId now answers 404."""
        with self.lock:
            self.history_floor = self.history_id
            self.history.clear()

    def sent(self) -> list[_Message]:
        with self.lock:
            return [m for m in self.messages.values() if "SENT" in m.labels]

    def header(self, message_id: str, name: str) -> str | None:
        with self.lock:
            for key, value in self.messages[message_id].headers:
                if key.lower() == name.lower():
                    return value
        return None

    # ----------------------------------------------------------------- calendar state

    def add_event(
        self,
        start: datetime,
        end: datetime,
        summary: str = "Busy",
        *,
        event_id: str | None = None,
        transparent: bool = False,
        all_day: bool = False,
        status: str = "confirmed",
        attendees: Iterable[tuple[str, str]] = (),
    ) -> str:
        """Put an event on the primary calendar as another client would; return its id."""
        with self.lock:
            eid = event_id or secrets.token_hex(10)
            if all_day:
                times = {
                    "start": {"date": start.date().isoformat()},
                    "end": {"date": end.date().isoformat()},
                }
            else:
                times = {
                    "start": {"dateTime": start.isoformat(), "timeZone": self.zone},
                    "end": {"dateTime": end.isoformat(), "timeZone": self.zone},
                }
            body: dict[str, Any] = {
                "id": eid,
                "summary": summary,
                "status": status,
                **times,
                "attendees": [{"email": e, "responseStatus": s} for e, s in attendees],
            }
            if transparent:
                body["transparency"] = "transparent"
            self._put_event(body)
            return eid

    def _put_event(self, body: dict[str, Any]) -> dict[str, Any]:
        now = _rfc3339(datetime.now(UTC))
        eid = body["id"]
        old = self.events.get(eid, {})
        event = {
            "kind": "calendar#event",
            "etag": f'"{secrets.token_hex(8)}"',
            "status": "confirmed",
            "htmlLink": f"https://calendar.example/event?eid={eid}",
            "created": old.get("created", now),
            "updated": now,
            "creator": {"email": self.address, "self": True},
            "organizer": {"email": self.address, "self": True},
            "iCalUID": f"{eid}@google.com",
            "sequence": 0,
            "reminders": {"useDefault": True},
            "eventType": "default",
            **body,
        }
        self.events[eid] = event
        self.calendar_seq += 1
        self.event_seq[eid] = self.calendar_seq
        return event

    def cancel_event(self, event_id: str) -> None:
        with self.lock:
            event = self.events[event_id]
            event["status"] = "cancelled"
            self.calendar_seq += 1
            self.event_seq[event_id] = self.calendar_seq

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.sync_floor = self.calendar_seq + 1

    def revoke(self, refresh_token: str | None = None) -> None:
        """Revoke a grant (all grants when ``None``): its tokens stop working."""
        with self.lock:
            self.revoked |= {refresh_token} if refresh_token else set(self.refresh_tokens)

    # ----------------------------------------------------------------- dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Serve one API call (outer request or batch part)."""
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        query = urllib.parse.parse_qs(parsed.query)
        signature = f"{method} {path}"
        hook = self.on_call
        if hook is not None:
            hook(signature)
        down = self._outage_failure(signature)
        if down is not None:
            return down
        injection = self._take_injection(signature)
        if injection is not None and not injection.after:
            return self._failure(injection)
        try:
            self._check_auth(headers)
            reply = self._route(method, path, query, body)
        except ApiError as exc:
            reply = Reply(exc.status, exc.body(), exc.headers)
        if injection is not None:
            return self._failure(injection)
        return reply

    def _failure(self, inj: _Injection) -> Reply:
        messages = {
            429: "Too many concurrent requests for user.",
            403: "User-rate limit exceeded.",
        }
        err = ApiError(
            inj.status,
            messages.get(inj.status, "Backend Error"),
            inj.reason,
            domain="usageLimits" if inj.status in (403, 429) else "global",
        )
        headers = {} if inj.retry_after is None else {"Retry-After": f"{inj.retry_after:g}"}
        return Reply(inj.status, err.body(), headers)

    def _check_auth(self, headers: dict[str, str]) -> None:
        value = headers.get("authorization", "")
        token = value.removeprefix("Bearer ").strip()
        with self.lock:
            refresh = self.access_tokens.get(token)
            bad = (refresh is not None and refresh in self.revoked) or (
                self.strict_auth and refresh is None
            )
        if not token or bad:
            raise ApiError(
                401,
                "Request had invalid authentication credentials.",
                "authError",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        data = json.loads(body) if body.strip() else {}
        gmail = "/gmail/v1/users/me/"
        cal = "/calendar/v3/"
        if path.startswith(gmail):
            rest = path[len(gmail) :]
            parts = rest.split("/")
            if rest == "profile" and method == "GET":
                return self._count("getProfile", self._profile())
            if parts[0] == "messages":
                if len(parts) == 1 and method == "GET":
                    return self._count("messages.list", self._list_messages(query))
                if len(parts) == 2 and method == "GET":
                    with self.lock:
                        self.formats[query.get("format", ["full"])[0]] += 1
                    return self._count("messages.get", self._get_message(parts[1], query))
            if rest == "labels" and method == "GET":
                return self._count("labels.list", self._list_labels())
            if rest == "history" and method == "GET":
                return self._count("history.list", self._history(query))
            if parts[0] == "drafts":
                if len(parts) == 1 and method == "POST":
                    return self._count("drafts.create", self._create_draft(data))
                if len(parts) == 1 and method == "GET":
                    return self._count("drafts.list", self._list_drafts(query))
                if rest == "drafts/send" and method == "POST":
                    return self._count("drafts.send", self._send_draft(data))
                if len(parts) == 2 and method == "GET":
                    return self._count("drafts.get", self._get_draft(parts[1], query))
                if len(parts) == 2 and method == "DELETE":
                    return self._count("drafts.delete", self._delete_draft(parts[1]))
        if path.startswith(cal):
            rest = path[len(cal) :]
            if rest == "calendars/primary/events" and method == "GET":
                return self._count("events.list", self._list_events(query))
            if rest == "calendars/primary/events" and method == "POST":
                return self._count("events.insert", self._insert_event(data, query))
            parts = rest.split("/")
            if (
                parts[:3] == ["calendars", "primary", "events"]
                and len(parts) == 4
                and (method == "DELETE")
            ):
                return self._count("events.delete", self._delete_event(parts[3], query))
            if rest == "freeBusy" and method == "POST":
                return self._count("freebusy.query", self._freebusy(data))
        raise ApiError(404, f"Not Found: {method} {path}")

    def _count(self, name: str, reply: Reply) -> Reply:
        with self.lock:
            self.calls.append(name)
            self.units[name] += 1
        return reply

    # ----------------------------------------------------------------- gmail handlers

    def _profile(self) -> Reply:
        with self.lock:
            return Reply(
                200,
                {
                    "emailAddress": self.address,
                    "messagesTotal": len(self.messages),
                    "threadsTotal": len({m.thread_id for m in self.messages.values()}),
                    "historyId": str(self.history_id),
                },
            )

    @staticmethod
    def _page(query: dict[str, list[str]], default: int, cap: int) -> tuple[int, int]:
        size = min(int(query.get("maxResults", [str(default)])[0]), cap)
        start = int(query.get("pageToken", ["0"])[0] or 0)
        return start, size

    def _matches(self, msg: _Message, query: dict[str, list[str]]) -> bool:
        labels = set(msg.labels)
        if query.get("includeSpamTrash", ["false"])[0] != "true" and labels & {"SPAM", "TRASH"}:
            return False
        if not set(query.get("labelIds", [])) <= labels:
            return False
        for term in query.get("q", [""])[0].split():
            negate = term.startswith("-")
            term = term.lstrip("-").lower()
            if term.startswith("in:"):
                name = term[3:].upper().rstrip("S") if term[3:] == "drafts" else term[3:].upper()
                hit = name in labels
            elif term.startswith(("after:", "before:")) and term.partition(":")[2].isdigit():
                # Seconds since the epoch, as the filtering guide suggests for exact instants.
                bound = int(term.partition(":")[2]) * 1000
                hit = msg.internal_ms >= bound if term[0] == "a" else msg.internal_ms < bound
            elif term.startswith("newer_than:"):
                amount, unit = int(term[11:-1]), term[-1]
                span = {"d": 1, "m": 30, "y": 365}[unit]
                hit = msg.internal_ms >= (time.time() - amount * span * 86400) * 1000
            else:
                raise ApiError(400, f"the emulator does not search {term!r}", "invalidArgument")
            if hit == negate:
                return False
        return True

    def _list_messages(self, query: dict[str, list[str]]) -> Reply:
        start, size = self._page(query, 100, 500)
        with self.lock:
            found = [m for m in self.messages.values() if self._matches(m, query)]
        found.sort(key=lambda m: (m.internal_ms, m.id), reverse=True)
        page = found[start : start + size]
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + size < len(found):
            body["nextPageToken"] = str(start + size)
        return Reply(200, body)

    def _message_resource(
        self, msg: _Message, fmt: str, wanted: list[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": msg.id,
            "threadId": msg.thread_id,
            "labelIds": list(msg.labels),
        }
        if fmt == "minimal":
            out["historyId"] = str(msg.history_id)
            return out
        out.update(
            {
                "snippet": msg.snippet,
                "historyId": str(msg.history_id),
                "internalDate": str(msg.internal_ms),
                "sizeEstimate": len(msg.raw),
            }
        )
        if fmt == "raw":
            out["raw"] = _b64(msg.raw)
            return out
        headers = msg.headers
        if fmt == "metadata" and wanted:
            lowered = {w.lower() for w in wanted}
            headers = [(k, v) for k, v in headers if k.lower() in lowered]
        content_type = next((v for k, v in msg.headers if k.lower() == "content-type"), "")
        payload: dict[str, Any] = {
            "partId": "",
            "mimeType": content_type.split(";")[0].strip() or "text/plain",
            "filename": "",
            "headers": [{"name": k, "value": v} for k, v in headers],
        }
        if fmt == "full":
            payload.update(_full_payload(msg.raw))
        out["payload"] = payload
        return out

    def _list_labels(self) -> Reply:
        with self.lock:
            system = [{"id": x, "name": x, "type": "system"} for x in SYSTEM_LABELS]
            user = [
                {
                    "id": label_id,
                    "name": name,
                    "type": "user",
                    "messageListVisibility": "show",
                    "labelListVisibility": "labelShow",
                }
                for label_id, name in self.user_labels.items()
            ]
            return Reply(200, {"labels": system + user})

    def _get_message(self, message_id: str, query: dict[str, list[str]]) -> Reply:
        fmt = query.get("format", ["full"])[0]
        with self.lock:
            msg = self.messages.get(message_id)
            if msg is None:
                raise ApiError(404, "Requested entity was not found.")
            return Reply(200, self._message_resource(msg, fmt, query.get("metadataHeaders")))

    def _history(self, query: dict[str, list[str]]) -> Reply:
        if "startHistoryId" not in query:
            raise ApiError(400, "Missing startHistoryId", "invalidArgument")
        start_id = int(query["startHistoryId"][0])
        types = set(query.get("historyTypes", HISTORY_TYPES))
        offset, size = self._page(query, 100, 500)
        with self.lock:
            if start_id < self.history_floor or start_id > self.history_id:
                raise ApiError(404, "Requested entity was not found.")
            records = [r for r in self.history if r["id"] > start_id and r["kind"] in types]
            current = self.history_id
        page = records[offset : offset + size]
        out: list[dict[str, Any]] = []
        for rec in page:
            ref = {"id": rec["message"], "threadId": rec["thread"]}
            item: dict[str, Any] = {"id": str(rec["id"]), "messages": [ref]}
            if rec["kind"] == "messageAdded":
                item["messagesAdded"] = [{"message": {**ref, "labelIds": rec["labels"]}}]
            elif rec["kind"] == "messageDeleted":
                item["messagesDeleted"] = [{"message": ref}]
            else:
                field_name = "labelsAdded" if rec["kind"] == "labelAdded" else "labelsRemoved"
                item[field_name] = [{"message": ref, "labelIds": rec["labels"]}]
            out.append(item)
        body: dict[str, Any] = {"historyId": str(current)}
        if out:
            body["history"] = out
        if offset + size < len(records):
            body["nextPageToken"] = str(offset + size)
        return Reply(200, body)

    def _draft_resource(self, draft_id: str, fmt: str) -> dict[str, Any]:
        msg = self.messages[self.drafts[draft_id]]
        return {"id": draft_id, "message": self._message_resource(msg, fmt)}

    def _create_draft(self, data: dict[str, Any]) -> Reply:
        message = data.get("message") or {}
        if "raw" not in message:
            raise ApiError(400, "Invalid draft: message.raw is required", "invalidArgument")
        raw = _unb64(message["raw"])
        with self.lock:
            thread = message.get("threadId")
            if thread and not any(m.thread_id == thread for m in self.messages.values()):
                raise ApiError(404, "Requested entity was not found.")
            msg = self._store(raw, ["DRAFT"], requested_thread=thread, internal=datetime.now(UTC))
            draft_id = f"r{secrets.randbelow(10**18)}"
            self.drafts[draft_id] = msg.id
            return Reply(200, {"id": draft_id, "message": self._message_resource(msg, "minimal")})

    def _list_drafts(self, query: dict[str, list[str]]) -> Reply:
        start, size = self._page(query, 100, 500)
        with self.lock:
            items = sorted(self.drafts.items(), key=lambda kv: kv[1], reverse=True)
            page = items[start : start + size]
            body: dict[str, Any] = {"resultSizeEstimate": len(items)}
            if page:
                body["drafts"] = [
                    {
                        "id": d,
                        "message": {"id": m, "threadId": self.messages[m].thread_id},
                    }
                    for d, m in page
                ]
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return Reply(200, body)

    def _get_draft(self, draft_id: str, query: dict[str, list[str]]) -> Reply:
        with self.lock:
            if draft_id not in self.drafts:
                raise ApiError(404, "Requested entity was not found.")
            return Reply(200, self._draft_resource(draft_id, query.get("format", ["full"])[0]))

    def _delete_draft(self, draft_id: str) -> Reply:
        with self.lock:
            if draft_id not in self.drafts:
                raise ApiError(404, "Requested entity was not found.")
            msg = self.messages.pop(self.drafts.pop(draft_id))
            self._record("messageDeleted", msg)
        return Reply(204)

    def _send_draft(self, data: dict[str, Any]) -> Reply:
        draft_id = data.get("id", "")
        with self.lock:
            if draft_id not in self.drafts:
                raise ApiError(404, "Requested entity was not found.")
            draft = self.messages.pop(self.drafts.pop(draft_id))
            self._record("messageDeleted", draft)
            parsed = email.message_from_bytes(draft.raw, policy=email.policy.compat32)
            # Gmail replaces the Message-ID of mail sent through the API with its own.
            del parsed["Message-ID"]
            parsed["Message-ID"] = f"<CA+{secrets.token_hex(16)}@mail.gmail.com>"
            if not parsed["From"]:
                parsed["From"] = self.address
            if not parsed["Date"]:
                parsed["Date"] = format_datetime(datetime.now(UTC))
            recipients = [
                a.lower()
                for _, a in getaddresses(
                    [str(v) for h in ("To", "Cc", "Bcc") for v in parsed.get_all(h, [])]
                )
            ]
            labels = ["SENT"] + (["INBOX"] if self.address.lower() in recipients else [])
            msg = self._store(
                parsed.as_bytes(), labels, thread_id=draft.thread_id, internal=datetime.now(UTC)
            )
            return Reply(200, {"id": msg.id, "threadId": msg.thread_id, "labelIds": labels})

    # ----------------------------------------------------------------- calendar handlers

    def _list_events(self, query: dict[str, list[str]]) -> Reply:
        start, size = self._page(query, 250, 2500)
        token = query.get("syncToken", [None])[0]
        with self.lock:
            if token is not None:
                since = int(token.removeprefix("st-"))
                if since < self.sync_floor:
                    raise ApiError(
                        410,
                        "Sync token is no longer valid, a full sync is required.",
                        "fullSyncRequired",
                        domain="calendar",
                    )
                items = [e for e in self.events.values() if self.event_seq[e["id"]] > since]
            else:
                show_deleted = query.get("showDeleted", ["false"])[0] == "true"
                items = [
                    e
                    for e in self.events.values()
                    if show_deleted or e.get("status") != "cancelled"
                ]
            items.sort(key=lambda e: self.event_seq[e["id"]])
            seq = self.calendar_seq
            page = [
                {"id": e["id"], "status": "cancelled"} if e.get("status") == "cancelled" else e
                for e in items[start : start + size]
            ]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "summary": self.address,
            "timeZone": self.zone,
            "accessRole": "owner",
            "updated": _rfc3339(datetime.now(UTC)),
            "items": page,
        }
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        else:
            body["nextSyncToken"] = f"st-{seq}"
        return Reply(200, body)

    def _insert_event(self, data: dict[str, Any], query: dict[str, list[str]]) -> Reply:
        eid = data.get("id") or secrets.token_hex(13)
        if not _EVENT_ID.match(eid):
            raise ApiError(400, "Invalid resource id value.", "invalid")
        for part in ("start", "end"):
            if part not in data:
                raise ApiError(400, "Missing end time." if part == "end" else "Missing start.")
        with self.lock:
            if eid in self.events:
                raise ApiError(409, "The requested identifier already exists.", "duplicate")
            event = self._put_event({**data, "id": eid})
            self.notifications.append((eid, query.get("sendUpdates", ["false"])[0]))
            return Reply(200, event)

    def _delete_event(self, event_id: str, query: dict[str, list[str]]) -> Reply:
        # Calendar keeps a deleted event as "cancelled" (sync tokens report it) and answers a
        # second delete with 410 Gone; an id it never had is 404.
        with self.lock:
            event = self.events.get(event_id)
            if event is None:
                raise ApiError(404, "Not Found")
            if event.get("status") == "cancelled":
                raise ApiError(410, "Resource has been deleted", "deleted")
            event["status"] = "cancelled"
            self.calendar_seq += 1
            self.event_seq[event_id] = self.calendar_seq
            self.notifications.append((event_id, query.get("sendUpdates", ["false"])[0]))
        return Reply(204)

    def _freebusy(self, data: dict[str, Any]) -> Reply:
        t0, t1 = _parse_time(data["timeMin"]), _parse_time(data["timeMax"])
        items = data.get("items", [])
        if len(items) > 50:
            raise ApiError(400, "Too many calendars requested.", "tooManyCalendarsRequested")
        if t1 - t0 > timedelta(days=90):
            raise ApiError(400, "The requested time range is too long.", "timeRangeTooLong")
        if t1 < t0:
            raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        calendars: dict[str, Any] = {}
        with self.lock:
            for item in items:
                cid = item["id"]
                if cid in ("primary", self.address):
                    spans = []
                    for e in self.events.values():
                        if e.get("status") == "cancelled" or e.get("transparency") == "transparent":
                            continue
                        s, f = _event_bounds(e, self.zone)
                        if s < t1 and t0 < f:
                            spans.append((max(s, t0), min(f, t1)))
                elif cid in self.other_busy:
                    spans = [(s, f) for s, f in self.other_busy[cid] if s < t1 and t0 < f]
                else:
                    calendars[cid] = {"errors": [{"domain": "global", "reason": "notFound"}]}
                    continue
                spans.sort()
                calendars[cid] = {
                    "busy": [{"start": _rfc3339(s), "end": _rfc3339(f)} for s, f in spans]
                }
        return Reply(
            200,
            {
                "kind": "calendar#freeBusy",
                "timeMin": _rfc3339(t0),
                "timeMax": _rfc3339(t1),
                "calendars": calendars,
            },
        )

    # ----------------------------------------------------------------- oauth handlers

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def discovery(self) -> dict[str, Any]:
        """Google's OpenID Connect discovery document, pointing at this emulator."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.auth_uri,
            "token_endpoint": self.token_uri,
            "jwks_uri": f"{self.issuer}/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "code_challenge_methods_supported": ["plain", "S256"],
        }

    def _key(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric import rsa

        with self.lock:
            if self.signing_key is None:
                self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self.signing_key

    def jwks(self) -> dict[str, Any]:
        import jwt

        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key().public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(self, nonce: str, *, now: float | None = None, **override: Any) -> str:
        """An ID token as Google's token endpoint returns it (signed RS256 with ``kid``)."""
        import jwt

        at = int(now if now is not None else time.time())
        account = self.identity or self.address
        claims = {
            "iss": self.issuer,
            "azp": self.client_id,
            "aud": self.client_id,
            "sub": f"sub-{account}",
            "email": account,
            "email_verified": True,
            "name": account.split("@")[0].title(),
            "nonce": nonce,
            "iat": at,
            "exp": at + 3600,
            **override,
        }
        return jwt.encode(claims, self._key(), algorithm="RS256", headers={"kid": self.kid})

    def authorize(self, query: dict[str, list[str]]) -> str:
        """The consent page, consented at once: return the redirect carrying the code."""
        redirect = query["redirect_uri"][0]
        if query.get("client_id", [""])[0] != self.client_id:
            return f"{redirect}?error=invalid_client"
        method = query.get("code_challenge_method", ["plain"])[0]
        if query.get("code_challenge") and method not in ("plain", "S256"):
            return f"{redirect}?error=invalid_request"
        code = f"code-{secrets.token_hex(8)}"
        with self.lock:
            self.codes[code] = query.get("scope", [""])[0]
            self.oidc_codes[code] = {
                "challenge": query.get("code_challenge", [""])[0],
                "method": method,
                "nonce": query.get("nonce", [""])[0],
                "redirect_uri": redirect,
            }
            self.consents += 1
        state = query.get("state", [""])[0]
        return f"{redirect}?{urllib.parse.urlencode({'code': code, 'state': state})}"

    def token(self, form: dict[str, list[str]], authorization: str = "") -> Reply:
        client_id = form.get("client_id", [""])[0]
        if authorization.startswith("Basic "):  # RFC 6749 2.3.1: either way is allowed
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id = urllib.parse.unquote(decoded.partition(":")[0])
        with self.lock:
            self.token_requests += 1
            grant = form.get("grant_type", [""])[0]
            if client_id != self.client_id:
                return Reply(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            if grant == "authorization_code":
                code = form.get("code", [""])[0]
                if code not in self.codes:
                    return Reply(400, {"error": "invalid_grant", "error_description": "Bad code"})
                sign_in = self.oidc_codes.pop(code, {})
                if not _pkce_ok(sign_in, form.get("code_verifier", [""])[0]):
                    self.codes.pop(code)
                    return Reply(
                        400,
                        {"error": "invalid_grant", "error_description": "Missing code verifier."},
                    )
                if (
                    sign_in.get("redirect_uri")
                    and form.get("redirect_uri", [""])[0] != sign_in["redirect_uri"]
                ):
                    self.codes.pop(code)
                    return Reply(400, {"error": "redirect_uri_mismatch"})
                scope = self.codes.pop(code)
                refresh = f"rt-{secrets.token_hex(8)}"
                self.refresh_tokens.add(refresh)
                self.scopes[refresh] = scope
            elif grant == "refresh_token":
                refresh = form.get("refresh_token", [""])[0]
                if refresh not in self.refresh_tokens or refresh in self.revoked:
                    return Reply(
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "Token has been expired or revoked.",
                        },
                    )
            else:
                return Reply(400, {"error": "unsupported_grant_type"})
            access = f"at-{secrets.token_hex(8)}"
            self.access_tokens[access] = refresh
            scope = self.scopes.get(refresh, "")
        body = {
            "access_token": access,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
            "scope": scope,
        }
        if grant == "authorization_code":
            body["refresh_token"] = refresh
            if "openid" in scope.split():
                body["id_token"] = self.id_token(sign_in.get("nonce", ""))
        return Reply(200, body)

    def access_token_for(self, refresh_token: str) -> list[str]:
        with self.lock:
            return [a for a, r in self.access_tokens.items() if r == refresh_token]

    # ----------------------------------------------------------------- batch

    def batch(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        content_type = headers.get("content-type", "")
        envelope = email.message_from_bytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
            policy=email.policy.compat32,
        )
        parts = envelope.get_payload()
        if not envelope.is_multipart() or not isinstance(parts, list):
            err = ApiError(400, "Failed to parse batch request.", "badRequest")
            return 400, {"Content-Type": "application/json"}, json.dumps(err.body()).encode()
        if len(parts) > BATCH_LIMIT:
            err = ApiError(400, f"Too many requests in batch ({len(parts)} > {BATCH_LIMIT}).")
            return 400, {"Content-Type": "application/json"}, json.dumps(err.body()).encode()
        boundary = f"batch_{secrets.token_hex(12)}"
        out: list[str] = []
        carried: list[str] = []
        for part in parts:
            content_id = part["Content-ID"] or ""
            inner = part.get_payload()
            if isinstance(inner, list):  # the client never nests multiparts
                continue
            head, _, inner_body = inner.replace("\r\n", "\n").partition("\n\n")
            lines = head.split("\n")
            method, target, _version = lines[0].split(" ", 2)
            carried.append(_call_label(method, target))
            inner_headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                inner_headers[name.strip().lower()] = value.strip()
            reply = self.handle(method, target, inner_headers, inner_body.encode())
            text = reply.payload().decode()
            status_line = f"HTTP/1.1 {reply.status} {_STATUS_TEXT.get(reply.status, 'Status')}"
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            out.append(
                f"--{boundary}\r\n"
                "Content-Type: application/http\r\n"
                f"Content-ID: <response-{content_id.strip('<>')}>\r\n\r\n"
                f"{status_line}\r\n"
                "Content-Type: application/json; charset=UTF-8\r\n"
                f"{extra}"
                f"Content-Length: {len(text.encode())}\r\n\r\n"
                f"{text}\r\n"
            )
        out.append(f"--{boundary}--\r\n")
        with self.lock:
            self.batches.append(tuple(carried))
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, "".join(out).encode()


def _call_label(method: str, target: str) -> str:
    """``messages.get:raw`` for a message read (with its format), else ``METHOD /path``."""
    parsed = urllib.parse.urlsplit(target)
    parts = parsed.path.split("/")
    if method == "GET" and parts[-2:-1] == ["messages"] and parts[-1]:
        fmt = urllib.parse.parse_qs(parsed.query).get("format", ["full"])[0]
        return f"messages.get:{fmt}"
    return f"{method} {parsed.path}"


def _full_payload(raw: bytes) -> dict[str, Any]:
    """The ``payload`` of format=full: a MIME tree with base64url bodies."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    def walk(part: Any, part_id: str) -> dict[str, Any]:
        node: dict[str, Any] = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": part.get_filename() or "",
            "headers": [{"name": k, "value": str(v)} for k, v in part.items()],
        }
        if part.is_multipart():
            node["body"] = {"size": 0}
            node["parts"] = [
                walk(sub, f"{part_id}.{i}" if part_id else str(i))
                for i, sub in enumerate(part.iter_parts())
            ]
        else:
            data = part.get_payload(decode=True) or b""
            node["body"] = {"size": len(data), "data": _b64(data)}
        return node

    tree = walk(msg, "")
    return {k: v for k, v in tree.items() if k in ("body", "parts", "mimeType")}


def _pkce_ok(sign_in: dict[str, str], verifier: str) -> bool:
    """RFC 7636 4.6: the verifier must hash (S256) or equal (plain) the challenge."""
    challenge = sign_in.get("challenge", "")
    if not challenge:
        return True  # no PKCE asked for at the authorization step
    if sign_in.get("method") == "S256":
        import hashlib

        digest = hashlib.sha256(verifier.encode()).digest()
        verifier = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(verifier, challenge)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the crash tests do that on purpose) is no server error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    emu: GoogleEmulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK
    # (40 ms on Linux) and swamps the latency the benchmark adds on purpose.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status, _STATUS_TEXT.get(status))
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, method: str) -> None:
        emu = self.emu
        body = self._read()
        with emu.lock:
            emu.requests += 1
        if emu.latency:
            time.sleep(emu.latency)
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token" and method == "POST":
            reply = emu.token(
                urllib.parse.parse_qs(body.decode()), headers.get("authorization", "")
            )
            self._send(reply.status, {"Content-Type": "application/json"}, reply.payload())
            return
        if path == "/.well-known/openid-configuration" and method == "GET":
            self._send(
                200, {"Content-Type": "application/json"}, json.dumps(emu.discovery()).encode()
            )
            return
        if path == "/oauth2/v3/certs" and method == "GET":
            self._send(200, {"Content-Type": "application/json"}, json.dumps(emu.jwks()).encode())
            return
        if path == "/o/oauth2/auth" and method == "GET":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            self._send(302, {"Location": emu.authorize(query)}, b"")
            return
        if path.startswith("/batch/"):
            hook = emu.on_call
            if hook is not None:
                hook(f"POST {path}")
            down = emu._outage_failure(f"POST {path}", envelope=True)
            if down is None:
                injection = emu._take_injection(f"POST {path}", envelope=True)
                down = emu._failure(injection) if injection is not None else None
            if down is not None:
                self._send(
                    down.status,
                    {"Content-Type": "application/json", **down.headers},
                    down.payload(),
                )
                return
            status, out_headers, out = emu.batch(headers, body)
            self._send(status, out_headers, out)
            return
        reply = emu.handle(method, self.path, headers, body)
        out_headers = {"Content-Type": "application/json; charset=UTF-8", **reply.headers}
        self._send(reply.status, out_headers, reply.payload())

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")


def raw_message(
    n: int,
    *,
    to: str = "rep@example.com",
    sender: str | None = None,
    subject: str | None = None,
    date: datetime | None = None,
    extra: dict[str, str] | None = None,
    body: str | None = None,
) -> bytes:
    """A small RFC 5322 message numbered ``n``, for seeding the emulator."""
    when = date or datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=n)
    lines = [
        f"From: {sender or f'Client {n} <client{n}@customer.example>'}",
        f"To: {to}",
        f"Subject: {subject or f'Question {n}'}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <in-{n}@customer.example>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    text = body if body is not None else f"Hello, question number {n}."
    return ("\r\n".join(lines) + "\r\n\r\n" + text + "\r\n").encode()
