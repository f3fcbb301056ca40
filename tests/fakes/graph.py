"""An emulator of the Microsoft identity platform and the Graph v1.0 endpoints Followup calls.

It speaks the public wire format over TLS (a ``trustme`` test CA: MSAL refuses ``http://``
authorities), so the real msal + requests code runs against it unchanged:

- identity: ``/{tenant}/v2.0/.well-known/openid-configuration``, ``/{tenant}/oauth2/v2.0/
  devicecode``, ``/authorize`` (redirects straight back with a code) and ``/token`` with the
  device-code grant (first poll answers ``authorization_pending``), the refresh-token grant
  (rotation: a redeemed or revoked refresh token answers ``invalid_grant``), the auth-code and
  the client-credentials grants;
- mail: per-folder ``messages/delta`` with ``$select``, ``odata.maxpagesize``, skip and delta
  tokens, ``@removed`` rows, flag-only updates that carry only changed properties, 410
  ``SyncStateNotFound`` after :meth:`GraphEmulator.expire_delta`; messages by id, ``$filter`` on
  ``internetMessageId`` and on single-value extended properties, drafts, ``createReply``,
  ``PATCH``, ``send`` (the sent copy keeps the draft's immutable id and carries no
  ``internetMessageHeaders``); ``send`` is accepted (202) before the message reaches Sent Items:
  with ``send_delay`` seconds (or ``hold_sends`` until :meth:`GraphEmulator.file_sends`) the
  message still reads as a draft in Drafts, and a second ``send`` then sends it twice;
- ids: immutable with ``Prefer: IdType="ImmutableId"``, otherwise a folder-dependent id; a move
  to the archive mailbox gives the item a new immutable id;
- calendar: events with ``transactionId`` de-duplication, ``calendarView/delta``,
  ``calendar/getSchedule`` (at most 20 schedules, windows under 62 days);
- limits: ``$batch`` of at most 20 requests, fully parallel, fully sequential or all depending
  on one (a mix answers 400); at most 4 requests in flight per mailbox across connections (the
  excess answers 429 ``MailboxConcurrency``; Graph runs a batch's requests four at a time
  itself, so they never count), injected
  429/503 storms with ``Retry-After``, injected failures before or after an operation took
  effect, added latency, and a log of every request.
"""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests
import trustme

FOLDER_IDS = {
    "inbox": "AQMkAGInboxFolder000",
    "sentitems": "AQMkAGSentItemsFolder",
    "drafts": "AQMkAGDraftsFolder000",
    "archive": "AQMkAGArchiveFolder00",
}
_FOLDER_BY_ID = {v: k for k, v in FOLDER_IDS.items()}
RESERVED_SCOPES = {"openid", "profile", "offline_access"}
# Just the Windows zone names the tests use; the emulator renders event times in them.
WINDOWS_ZONES = {
    "UTC": "UTC",
    "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata",
    "W. Europe Standard Time": "Europe/Berlin",
    "Tokyo Standard Time": "Asia/Tokyo",
}
MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
# How a device-code flow ends without tokens (RFC 8628 section 3.5; the identity platform's
# device code flow reference), with the identity platform's descriptions.
DEVICE_ERRORS = {
    "authorization_declined": "AADSTS70000: The end user denied the authorization request.",
    "expired_token": "AADSTS70019: Verification code expired.",
    "bad_verification_code": "AADSTS70015: The device_code sent to the token endpoint is not "
    "recognized.",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_dtz(value: dict[str, str]) -> datetime:
    """A Graph dateTimeTimeZone (no offset in dateTime; the zone beside it) -> aware UTC."""
    zone = value.get("timeZone", "UTC")
    naive = datetime.fromisoformat(value["dateTime"].rstrip("Z")[:26])
    tz = ZoneInfo(WINDOWS_ZONES.get(zone, zone))
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _render_dtz(dt: datetime, zone: str) -> dict[str, str]:
    local = dt.astimezone(ZoneInfo(WINDOWS_ZONES.get(zone, zone)))
    return {"dateTime": local.replace(tzinfo=None).isoformat() + ".0000000", "timeZone": zone}


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message or code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class Item:
    """A message in one mailbox. ``id`` is the immutable id."""

    id: str
    folder: str
    data: dict[str, Any]
    headers: list[dict[str, str]] = field(default_factory=list)
    ext: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=lambda: {"contentType": "text", "content": ""})


@dataclass
class CalEvent:
    id: str
    subject: str
    start: datetime
    end: datetime
    zone: str = "UTC"
    show_as: str = "busy"
    is_all_day: bool = False
    is_cancelled: bool = False
    organizer: str = ""
    attendees: list[dict[str, Any]] = field(default_factory=list)
    # event.responseStatus: the mailbox owner's own answer ("organizer" on events they made)
    response: str = "organizer"
    transaction_id: str = ""
    ical_uid: str = ""
    body: str = ""
    location: str = ""
    ext: dict[str, str] = field(default_factory=dict)
    created_from: str = ""  # the create request's body, to tell a retry from a new event


@dataclass
class Box:
    address: str
    name: str
    messages: dict[str, Item] = field(default_factory=dict)
    # (seq, folder, immutable id, kind) with kind "full" (created/moved in/out) or "flag"
    log: list[tuple[int, str, str, str]] = field(default_factory=list)
    events: dict[str, CalEvent] = field(default_factory=dict)
    event_log: list[tuple[int, str]] = field(default_factory=list)
    delta_floor: int = 0
    archive: dict[str, Item] = field(default_factory=dict)


@dataclass
class Req:
    method: str
    path: str
    query: str
    prefer: str
    mailbox: str
    status: int = 0
    batched: bool = False


@dataclass
class _Injection:
    method: str
    pattern: str
    status: int
    code: str
    after: bool
    drop: bool
    retry_after: float | None
    times: int
    message: str = ""
    skip: int = 0


class GraphEmulator:
    """The identity platform and Graph for a set of mailboxes, served at :attr:`base_url`.

    Use as a context manager. :meth:`session` gives a ``requests.Session`` that trusts the
    emulator's CA. ``latency`` seconds are added to every request.
    """

    def __init__(
        self,
        *,
        tenant: str = "contoso",
        latency: float = 0.0,
        max_page_size: int = 1000,
        token_lifetime: int = 3600,
        device_interval: int = 0,
        send_delay: float = 0.0,
    ) -> None:
        self.tenant = tenant
        self.latency = latency
        self.max_page_size = max_page_size
        self.token_lifetime = token_lifetime
        self.device_interval = device_interval
        # How the next device-code sign-ins end: "" issues tokens; "authorization_declined",
        # "expired_token" or "bad_verification_code" answer that error instead.
        self.device_outcome = ""
        self.send_delay = send_delay
        self.hold_sends = False
        # (due on the monotonic clock, accepted as the n-th, mailbox, draft id, the draft as sent)
        self._outgoing: list[tuple[float, int, str, str, Item]] = []
        self._accepted = itertools.count(1)
        self.random_ids = True
        self.sends: list[tuple[str, dict[str, str]]] = []  # (mailbox, extended properties)
        self.boxes: dict[str, Box] = {}
        self.requests: list[Req] = []
        self.client_secrets: dict[str, str] = {}
        self.signin_user = ""
        self._signing_key: Any = None  # RSA, made on the first ID token
        self.kid = "emulator-tenant-key"
        self.ignore_timezone_preference = False
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._device: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh: dict[str, tuple[str, str, str]] = {}  # rt -> (user, client_id, scope)
        self._access: dict[str, tuple[str, float]] = {}  # at -> (user or "app:<id>", expiry)
        self.refresh_redeemed = 0
        self._skip: dict[str, dict[str, Any]] = {}
        self._throttle: list[tuple[int, float, str]] = []
        self._injections: list[_Injection] = []
        self._inflight: dict[str, int] = {}
        self.max_inflight: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp = tempfile.TemporaryDirectory()
        self.ca_path = ""
        self.base_url = ""

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> GraphEmulator:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.ca_path = str(Path(self._tmp.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        emulator = self

        class Handler(_Handler):
            graph = emulator

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.base_url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def session(self) -> requests.Session:
        """A session that trusts only the emulator's CA; ``trust_env`` off because
        ``REQUESTS_CA_BUNDLE`` in the environment would override ``verify``."""
        s = requests.Session()
        s.verify = self.ca_path
        s.trust_env = False
        return s

    # -- test controls --------------------------------------------------------------------
    def add_mailbox(self, address: str, name: str = "") -> Box:
        with self._lock:
            box = self.boxes.setdefault(address.lower(), Box(address.lower(), name or address))
            if not self.signin_user:
                self.signin_user = box.address
            return box

    def _new_id(self, prefix: str = "AAkALgAAAAAAHYQDEapmEc2byACqAC") -> str:
        tail = secrets.token_hex(3) if self.random_ids else "000000"
        return f"{prefix}-{next(self._ids):07d}{tail}"

    def reset_mailboxes(self) -> None:
        """Empty every mailbox and calendar, forget sends, sync states, injections and the
        request log; sign-ins are kept. Ids start again from the first."""
        with self._lock:
            for box in self.boxes.values():
                for part in (box.messages, box.log, box.events, box.event_log, box.archive):
                    part.clear()
                box.delta_floor = 0
            for kept in (self._outgoing, self.sends, self.requests, self._injections):
                kept.clear()
            self._skip.clear()
            self._throttle.clear()
            self._ids = itertools.count(1)

    def _touch(self, box: Box, folder: str, item_id: str, kind: str = "full") -> None:
        box.log.append((next(self._seq), folder, item_id, kind))

    def add_message(
        self,
        address: str,
        *,
        folder: str = "inbox",
        sender: str = "client@customer.example",
        sender_name: str = "",
        to: tuple[str, ...] = (),
        cc: tuple[str, ...] = (),
        subject: str = "Hello",
        received: datetime | None = None,
        internet_message_id: str = "",
        conversation_id: str = "",
        headers: dict[str, str] | None = None,
        body: str = "",
        ext: dict[str, str] | None = None,
        raw_fields: dict[str, Any] | None = None,
    ) -> str:
        """Put a message straight into a folder; return its immutable id."""
        with self._lock:
            box = self.add_mailbox(address)
            when = received or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
            item_id = self._new_id()
            data: dict[str, Any] = {
                "conversationId": conversation_id or f"AAQkAGConv-{uuid.uuid4().hex[:16]}",
                "internetMessageId": internet_message_id or f"<{uuid.uuid4().hex}@mail.test>",
                "subject": subject,
                "from": {"emailAddress": {"name": sender_name, "address": sender}},
                "sender": {"emailAddress": {"name": sender_name, "address": sender}},
                "toRecipients": [{"emailAddress": {"name": "", "address": a}} for a in to]
                or [{"emailAddress": {"name": box.name, "address": box.address}}],
                "ccRecipients": [{"emailAddress": {"name": "", "address": a}} for a in cc],
                "receivedDateTime": _iso(when),
                "sentDateTime": _iso(when),
                "isDraft": folder == "drafts",
                "isRead": False,
                "categories": [],
            }
            data.update(raw_fields or {})
            hdrs = [{"name": k, "value": v} for k, v in (headers or {}).items()]
            box.messages[item_id] = Item(
                item_id,
                folder,
                data,
                hdrs,
                dict(ext or {}),
                {"contentType": "text", "content": body},
            )
            self._touch(box, folder, item_id)
            return item_id

    def deliver(self, address: str, raw: bytes) -> str:
        """Deliver RFC 5322 bytes to the inbox, as Exchange would store them."""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        senders = getaddresses([str(v) for v in msg.get_all("from", [])])
        to = tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("to", [])]))
        cc = tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("cc", [])]))
        date = parsedate_to_datetime(str(msg["date"])) if msg["date"] else datetime.now(UTC)
        part = msg.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        headers = {k: str(v) for k, v in msg.items()}
        return self.add_message(
            address,
            sender=senders[0][1] if senders else "",
            sender_name=senders[0][0] if senders else "",
            to=to,
            cc=cc,
            subject=str(msg.get("subject", "")),
            received=date,
            internet_message_id=str(msg.get("message-id", "")),
            headers=headers,
            body=body,
        )

    def mark_read(self, address: str, item_id: str) -> None:
        """A flag-only change: the next delta row carries only id, isRead and parentFolderId."""
        with self._lock:
            box = self.boxes[address]
            item = box.messages[item_id]
            item.data["isRead"] = True
            self._touch(box, item.folder, item_id, "flag")

    def set_categories(self, address: str, item_id: str, categories: list[str]) -> None:
        """The rep files a message under categories (message.categories, names as the rep
        gave them); like any property change, the next delta row carries only what changed."""
        with self._lock:
            box = self.boxes[address]
            item = box.messages[item_id]
            item.data["categories"] = list(categories)
            self._touch(box, item.folder, item_id, "flag")

    def move(self, address: str, item_id: str, folder: str) -> None:
        with self._lock:
            box = self.boxes[address]
            item = box.messages[item_id]
            self._touch(box, item.folder, item_id)
            item.folder = folder
            self._touch(box, folder, item_id)

    def delete(self, address: str, item_id: str) -> None:
        with self._lock:
            box = self.boxes[address]
            item = box.messages.pop(item_id)
            self._touch(box, item.folder, item_id)

    def move_to_archive(self, address: str, item_id: str) -> str:
        """Move to the archive mailbox: the item gets a new immutable id there."""
        with self._lock:
            box = self.boxes[address]
            item = box.messages.pop(item_id)
            self._touch(box, item.folder, item_id)
            new_id = self._new_id("AAkALgArchive")
            item.id, item.folder = new_id, "archive"
            box.archive[new_id] = item
            return new_id

    def expire_delta(self, address: str) -> None:
        """Forget the sync state of every delta link issued so far: they answer 410."""
        with self._lock:
            self.boxes[address].delta_floor = next(self._seq)

    def throttle(self, times: int, *, retry_after: float = 1, status: int = 429) -> None:
        """The next ``times`` Graph requests answer ``status`` with ``Retry-After``."""
        with self._lock:
            self._throttle.extend([(status, retry_after, "TooManyRequests")] * times)

    def inject(
        self,
        method: str,
        pattern: str,
        *,
        status: int = 503,
        code: str = "ServiceUnavailable",
        after: bool = False,
        drop: bool = False,
        retry_after: float | None = None,
        times: int = 1,
        message: str = "",
        skip: int = 0,
    ) -> None:
        """Fail ``times`` Graph requests whose path matches ``pattern`` (regex), after letting
        the first ``skip`` matching ones through.

        ``after``: the operation takes effect first and only the response is lost.
        ``drop``: the connection closes without any response.
        """
        with self._lock:
            self._injections.append(
                _Injection(
                    method, pattern, status, code, after, drop, retry_after, times, message, skip
                )
            )

    def revoke(self, user: str) -> None:
        """The user's grant is revoked: refresh and access tokens stop working."""
        with self._lock:
            for rt, (u, _, _) in list(self._refresh.items()):
                if u == user:
                    del self._refresh[rt]
            for at, (u, _) in list(self._access.items()):
                if u == user:
                    del self._access[at]

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def add_event(
        self,
        address: str,
        subject: str,
        start: datetime,
        end: datetime,
        *,
        zone: str = "UTC",
        show_as: str = "busy",
        all_day: bool = False,
        cancelled: bool = False,
        organizer: str = "",
        attendees: list[dict[str, Any]] | None = None,
        response: str = "",
    ) -> str:
        """An event on ``address``'s calendar; with ``organizer`` (someone else) an invitation
        the owner answered with ``response`` (Graph's ``responseStatus.response`` values)."""
        with self._lock:
            box = self.add_mailbox(address)
            ev = CalEvent(
                self._new_id("AAkALgEvent"),
                subject,
                start.astimezone(UTC),
                end.astimezone(UTC),
                zone=zone,
                show_as=show_as,
                is_all_day=all_day,
                is_cancelled=cancelled,
                organizer=organizer or box.address,
                attendees=list(attendees or ()),
                response=response or ("organizer" if not organizer else "notResponded"),
                ical_uid=uuid.uuid4().hex,
            )
            box.events[ev.id] = ev
            box.event_log.append((next(self._seq), ev.id))
            return ev.id

    def graph_requests(self, since: int = 0) -> list[Req]:
        """Graph requests made (not identity ones), counting a ``$batch`` as one request."""
        return [r for r in self.requests[since:] if r.path.startswith("/v1.0") and not r.batched]

    # -- HTTP entry point -----------------------------------------------------------------
    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        self.file_sends(due_only=True)
        parts = urlsplit(target)
        path, query = unquote(parts.path), parts.query
        if not path.startswith("/v1.0/"):
            if self.latency:
                time.sleep(self.latency)
            return self._identity(method, path, query, body)
        status, out_headers, payload = self._graph_top(method, path, query, headers, body)
        data = json.dumps(payload).encode() if payload is not None else b""
        if payload is not None:
            out_headers.setdefault("Content-Type", "application/json")
        return status, out_headers, data

    def _graph_top(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        prefer = headers.get("prefer", "")
        try:
            user = self._authenticate(headers.get("authorization", ""))
        except GraphError as exc:
            self.requests.append(Req(method, path, query, prefer, "", exc.status))
            return exc.status, dict(exc.headers), exc.body()
        mailbox = self._mailbox_of(path, user)
        record = Req(method, path, query, prefer, mailbox)
        with self._lock:
            self.requests.append(record)
        with self._lock:
            if self._throttle:
                status, after, code = self._throttle.pop(0)
                record.status = status
                return status, {"Retry-After": f"{after:g}"}, GraphError(status, code).body()
        if path == "/v1.0/$batch" and method == "POST":
            if self.latency:
                time.sleep(self.latency)
            return self._batch(user, body, record)
        with self._lock:
            count = self._inflight.get(mailbox, 0) + 1
            if mailbox and count > MAILBOX_CONCURRENCY:
                record.status = 429
                err = GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                )
                return 429, {"Retry-After": "1"}, err.body()
            self._inflight[mailbox] = count
            self.max_inflight[mailbox] = max(self.max_inflight.get(mailbox, 0), count)
        try:
            if self.latency:
                time.sleep(self.latency)
            status, out, payload = self._one(method, path, query, headers, body, user)
        finally:
            with self._lock:
                self._inflight[mailbox] -= 1
        record.status = status
        return status, out, payload

    def _one(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        user: str,
    ) -> tuple[int, dict[str, str], Any]:
        injection = self._take_injection(method, path)
        if injection is not None and not injection.after:
            if injection.drop:
                raise ConnectionAbortedError("injected")
            return self._injected(injection)
        try:
            status, payload = self._route(method, path, query, headers, body, user)
            out: dict[str, str] = {}
        except GraphError as exc:
            status, payload, out = exc.status, exc.body(), dict(exc.headers)
        if injection is not None:
            if injection.drop:
                raise ConnectionAbortedError("injected after the operation")
            return self._injected(injection)
        return status, out, payload

    def _injected(self, inj: _Injection) -> tuple[int, dict[str, str], Any]:
        extra = {"Retry-After": f"{inj.retry_after:g}"} if inj.retry_after is not None else {}
        return inj.status, extra, GraphError(inj.status, inj.code, inj.message).body()

    def _take_injection(self, method: str, path: str) -> _Injection | None:
        with self._lock:
            for inj in self._injections:
                if inj.method == method and re.search(inj.pattern, path):
                    if inj.skip > 0:
                        inj.skip -= 1
                        return None
                    inj.times -= 1
                    if inj.times <= 0:
                        self._injections.remove(inj)
                    return inj
        return None

    # -- identity platform ----------------------------------------------------------------
    def _identity(
        self, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        prefix = f"/{self.tenant}"
        self.requests.append(Req(method, path, query, "", ""))
        if path == f"{prefix}/v2.0/.well-known/openid-configuration":
            base = f"{self.base_url}{prefix}"
            return _json(
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["plain", "S256"],
                    "response_modes_supported": ["query", "fragment", "form_post"],
                },
            )
        if path == f"{prefix}/discovery/v2.0/keys" and method == "GET":
            return _json(200, self.jwks())
        if path == f"{prefix}/oauth2/v2.0/devicecode" and method == "POST":
            code, user_code = secrets.token_urlsafe(24), secrets.token_hex(4).upper()
            with self._lock:
                self._device[code] = {
                    "polls": 0,
                    "scope": form.get("scope", ""),
                    "client_id": form.get("client_id", ""),
                }
            uri = f"{self.base_url}/devicelogin"
            return _json(
                200,
                {
                    "device_code": code,
                    "user_code": user_code,
                    "verification_uri": uri,
                    "expires_in": 900,
                    "interval": self.device_interval,
                    "message": f"To sign in, open {uri} and enter the code {user_code}.",
                },
            )
        if path == f"{prefix}/oauth2/v2.0/authorize" and method == "GET":
            q = {k: v[0] for k, v in parse_qs(query).items()}
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._codes[code] = {
                    "scope": q.get("scope", ""),
                    "nonce": q.get("nonce", ""),
                    "client_id": q.get("client_id", ""),
                    "challenge": q.get("code_challenge", ""),
                    "method": q.get("code_challenge_method", "plain"),
                    "redirect_uri": q.get("redirect_uri", ""),
                }
            fields = {"code": code, "state": q.get("state", "")}
            if q.get("response_mode") == "form_post":
                # The signed-in browser posts the code back to the app's loopback listener.
                inputs = "".join(
                    f'<input type="hidden" name="{k}" value="{v}"/>' for k, v in fields.items()
                )
                page = f'<form method="post" action="{q["redirect_uri"]}">{inputs}</form>'
                return 200, {"Content-Type": "text/html"}, page.encode()
            location = q["redirect_uri"] + "?" + urlencode(fields)
            return 302, {"Location": location}, b""
        if path == f"{prefix}/oauth2/v2.0/token" and method == "POST":
            return self._token(form)
        return _json(404, {"error": "not_found"})

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        with self._lock:
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                flow = self._device.get(form.get("device_code", ""))
                if flow is None:
                    return _oauth_error("expired_token", "AADSTS70019: the code expired")
                flow["polls"] += 1
                if flow["polls"] == 1:
                    return _oauth_error("authorization_pending", "AADSTS70016: pending")
                del self._device[form["device_code"]]
                if self.device_outcome:
                    return _oauth_error(self.device_outcome, DEVICE_ERRORS[self.device_outcome])
                return self._issue(self.signin_user, client_id, flow["scope"])
            if grant == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                if code is None:
                    return _oauth_error("invalid_grant", "AADSTS54005: code already redeemed")
                if not _verifier_matches(code, form.get("code_verifier", "")):
                    return _oauth_error(
                        "invalid_grant",
                        "AADSTS50148: The code_verifier provided does not match the "
                        "code_challenge supplied in the authorization request.",
                    )
                if form.get("redirect_uri", code["redirect_uri"]) != code["redirect_uri"]:
                    return _oauth_error(
                        "invalid_grant",
                        "AADSTS50011: The redirect URI specified in the request does not match.",
                    )
                return self._issue(self.signin_user, client_id, code["scope"], code["nonce"])
            if grant == "refresh_token":
                entry = self._refresh.pop(form.get("refresh_token", ""), None)
                if entry is None:
                    return _oauth_error(
                        "invalid_grant",
                        "AADSTS70000: The provided grant has expired due to it being revoked, "
                        "a fresh auth token is needed.",
                    )
                self.refresh_redeemed += 1
                user, _, scope = entry
                return self._issue(user, client_id, form.get("scope") or scope)
            if grant == "client_credentials":
                if self.client_secrets.get(client_id) != form.get("client_secret"):
                    return _oauth_error("invalid_client", "AADSTS7000215: bad secret", 401)
                at = "app-" + secrets.token_urlsafe(24)
                self._access[at] = (f"app:{client_id}", time.time() + self.token_lifetime)
                return _json(
                    200,
                    {
                        "token_type": "Bearer",
                        "expires_in": self.token_lifetime,
                        "ext_expires_in": self.token_lifetime,
                        "access_token": at,
                    },
                )
        return _oauth_error("unsupported_grant_type", grant)

    def _issue(
        self, user: str, client_id: str, scope: str, nonce: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        scopes = [s for s in scope.split() if s not in RESERVED_SCOPES]
        at, rt = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
        self._access[at] = (user, time.time() + self.token_lifetime)
        self._refresh[rt] = (user, client_id, " ".join(scopes))
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
        tid = str(uuid.uuid5(uuid.NAMESPACE_URL, self.tenant))
        now = int(time.time())
        claims = {
            "iss": f"{self.authority}/v2.0",
            "aud": client_id,
            "sub": oid,
            "oid": oid,
            "tid": tid,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "preferred_username": user,
            "name": user,
        }
        if nonce:
            claims["nonce"] = nonce
        id_token = self.sign(claims)
        return _json(
            200,
            {
                "token_type": "Bearer",
                "scope": " ".join(scopes),
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": at,
                "refresh_token": rt,
                "id_token": id_token,
                "client_info": _b64url(json.dumps({"uid": oid, "utid": tid}).encode()),
            },
        )

    def _key(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric import rsa

        with self._lock:
            if self._signing_key is None:
                self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._signing_key

    def jwks(self) -> dict[str, Any]:
        """The tenant's signing keys, as ``jwks_uri`` publishes them (``kid``, RSA ``n``/``e``)."""
        import jwt

        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key().public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "kty": "RSA"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        """An ID token signed RS256 with the tenant's key, as the identity platform issues."""
        import jwt

        return jwt.encode(claims, self._key(), algorithm="RS256", headers={"kid": self.kid})

    # -- Graph ----------------------------------------------------------------------------
    def _authenticate(self, authorization: str) -> str:
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            entry = self._access.get(token)
        if entry is None or entry[1] < time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty or expired.")
        return entry[0]

    def _mailbox_of(self, path: str, user: str) -> str:
        m = re.match(r"/v1\.0/users/([^/]+)", path)
        if m:
            return unquote(m.group(1)).lower()
        if path.startswith("/v1.0/me"):
            return user
        return ""

    def _box(self, path: str, user: str) -> tuple[Box, str]:
        m = re.match(r"/v1\.0/(me|users/([^/]+))(/.*)?$", path)
        if not m:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment {path!r}")
        if m.group(1) == "me":
            if user.startswith("app:"):
                raise GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            address = user
        else:
            address = unquote(m.group(2)).lower()
            if not user.startswith("app:") and address != user:
                raise GraphError(403, "ErrorAccessDenied", "Access is denied.")
        box = self.boxes.get(address)
        if box is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{address}' is invalid.")
        return box, m.group(3) or ""

    def _route(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, user: str
    ) -> tuple[int, Any]:
        box, rest = self._box(path, user)
        q = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        prefer = headers.get("prefer", "")
        immutable = 'idtype="immutableid"' in prefer.lower().replace(" ", "")
        data = json.loads(body) if body else {}
        with self._lock:
            m = re.fullmatch(r"/mailFolders/([^/]+)/messages/delta", rest, re.I)
            if m and method == "GET":
                return 200, self._delta(box, self._folder(m.group(1)), q, prefer, immutable, path)
            m = re.fullmatch(r"/mailFolders/([^/]+)/messages", rest, re.I)
            if m and method == "GET":
                items = [i for i in box.messages.values() if i.folder == self._folder(m.group(1))]
                return 200, self._listing(items, q, immutable, path)
            if rest == "/messages" and method == "GET":
                return 200, self._listing(list(box.messages.values()), q, immutable, path)
            if rest == "/messages" and method == "POST":
                item = self._new_draft(box, data)
                return 201, self._render(item, None, immutable, full=True)
            m = re.fullmatch(r"/messages/([^/]+)(/\w+)?", rest)
            if m:
                item = self._find(box, m.group(1))
                action = (m.group(2) or "").lstrip("/")
                if action == "" and method == "GET":
                    return 200, self._render(
                        item, _select(q), immutable, prefer=prefer, expand=q.get("$expand", "")
                    )
                if action == "" and method == "DELETE":
                    # Graph moves a deleted message to Deleted Items; the emulator keeps no
                    # such folder, so the message leaves the mailbox (delta: @removed).
                    del box.messages[item.id]
                    self._touch(box, item.folder, item.id)
                    return 204, None
                if action == "" and method == "PATCH":
                    self._apply(item, data)
                    self._touch(box, item.folder, item.id)
                    return 200, self._render(item, None, immutable, full=True)
                if action == "createReply" and method == "POST":
                    draft = self._create_reply(box, item, data)
                    return 201, self._render(draft, None, immutable, full=True)
                if action == "send" and method == "POST":
                    self._send(box, item)
                    return 202, None
            if rest in ("/events", "/calendar/events") and method == "POST":
                return 201, self._create_event(box, data, prefer)
            if rest in ("/events", "/calendar/events") and method == "GET":
                flt = q.get("$filter", "")
                found = [e for e in box.events.values() if not flt or _matches_ext(e.ext, flt)]
                rows = [self._event_json(e, _prefer_zone(prefer)) for e in found]
                if "singleValueExtendedProperties" in q.get("$expand", ""):
                    for row, e in zip(rows, found, strict=True):
                        props = [{"id": k, "value": v} for k, v in e.ext.items()]
                        if props:
                            row["singleValueExtendedProperties"] = props
                return 200, {"value": rows}
            m = re.fullmatch(r"(?:/calendar)?/events/([^/]+)", rest)
            if m and method == "DELETE":
                self._delete_event(box, m.group(1))
                return 204, None
            if m and method == "PATCH":
                ev = box.events.get(m.group(1))
                if ev is None:
                    raise GraphError(
                        404, "ErrorItemNotFound", "The specified object was not found."
                    )
                self._patch_event(ev, data)
                box.event_log.append((next(self._seq), ev.id))
                return 200, self._event_json(ev, _prefer_zone(prefer))
            if rest == "/calendarView/delta" and method == "GET":
                return 200, self._event_delta(box, q, prefer, path)
            if rest == "/calendar/getSchedule" and method == "POST":
                return 200, self._schedule(data, prefer)
        raise GraphError(400, "BadRequest", f"Unsupported request {method} {path}")

    def _folder(self, name: str) -> str:
        key = _FOLDER_BY_ID.get(name, name.lower())
        if key not in FOLDER_IDS:
            raise GraphError(404, "ErrorInvalidIdMalformed", f"no folder {name}")
        return key

    def _find(self, box: Box, item_id: str) -> Item:
        m = re.fullmatch(r"R-(\w+)-(.+)", item_id)
        real = m.group(2) if m else item_id
        item = box.messages.get(real)
        if item is None or (m and item.folder != m.group(1)):
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return item

    def _id(self, item: Item, immutable: bool) -> str:
        # Without the Prefer header Graph hands out ids that change when the item moves.
        return item.id if immutable else f"R-{item.folder}-{item.id}"

    def _render(
        self,
        item: Item,
        select: list[str] | None,
        immutable: bool,
        *,
        full: bool = False,
        prefer: str = "",
        expand: str = "",
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.message",
            "@odata.etag": f'W/"{item.id[-6:]}"',
            "id": self._id(item, immutable),
        }
        every = dict(item.data, parentFolderId=FOLDER_IDS[item.folder])
        body = dict(item.body)
        if (
            'outlook.body-content-type="text"' in prefer.replace(" ", "")
            and body["contentType"] == "html"
        ):
            body = {"contentType": "text", "content": re.sub(r"<[^>]+>", " ", body["content"])}
        every["body"] = body
        if select is None:
            row.update(every)
        else:
            for name in select:
                if name == "internetMessageHeaders":
                    if item.folder != "sentitems":  # never on Sent Items copies
                        row[name] = list(item.headers)
                elif name in every:
                    row[name] = every[name]
        if "singleValueExtendedProperties" in expand:
            m = re.search(r"id eq '((?:[^']|'')*)'", expand)
            wanted = m.group(1).replace("''", "'") if m else None
            props = [{"id": k, "value": v} for k, v in item.ext.items() if wanted in (None, k)]
            if props:
                row["singleValueExtendedProperties"] = props
        return row

    def _delta(
        self, box: Box, folder: str, q: dict[str, str], prefer: str, immutable: bool, path: str
    ) -> dict[str, Any]:
        page = _page_size(prefer, self.max_page_size)
        if "$skiptoken" in q:
            state = self._skip.get(q["$skiptoken"])
            if state is None:
                raise GraphError(410, "SyncStateNotFound", "The sync state was not found.")
        else:
            select, expand = _select(q), q.get("$expand", "")
            if "$deltatoken" in q:
                since, (select, expand) = _decode_token(q["$deltatoken"])
                if since < box.delta_floor:
                    raise GraphError(
                        410, "SyncStateNotFound", "The sync state generation is not found."
                    )
                changed: dict[str, str] = {}
                for seq, f, item_id, kind in box.log:
                    if seq > since and f == folder:
                        changed[item_id] = "full" if changed.get(item_id) == "full" else kind
                rows = list(changed.items())
            else:
                floor = _delta_floor(q.get("$filter", ""))
                rows = [
                    (i.id, "full")
                    for i in box.messages.values()
                    if i.folder == folder and _received_from(i, floor)
                ]
            state = {"rows": rows, "select": select, "expand": expand, "end": next(self._seq)}
        out: list[dict[str, Any]] = []
        rows, state["rows"] = state["rows"][:page], state["rows"][page:]
        for item_id, kind in rows:
            item = box.messages.get(item_id)
            if item is None or item.folder != folder:
                out.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": item_id if immutable else f"R-{folder}-{item_id}",
                        "@removed": {"reason": "deleted"},
                    }
                )
            elif kind == "flag":
                out.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": self._id(item, immutable),
                        "isRead": item.data.get("isRead", False),
                        "parentFolderId": FOLDER_IDS[folder],
                    }
                )
            else:
                out.append(self._render(item, state["select"], immutable, expand=state["expand"]))
        link = f"{self.base_url}{path}?"
        result: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#Collection(message)",
            "value": out,
        }
        if state["rows"]:
            token = secrets.token_urlsafe(12)
            self._skip[token] = state
            result["@odata.nextLink"] = link + urlencode({"$skiptoken": token})
        else:
            token = _encode_token(state["end"], [state["select"], state["expand"]])
            result["@odata.deltaLink"] = link + urlencode({"$deltatoken": token})
        return result

    def _listing(
        self, items: list[Item], q: dict[str, str], immutable: bool, path: str
    ) -> dict[str, Any]:
        flt = q.get("$filter", "")
        if flt:
            items = [i for i in items if _matches(i, flt)]
        if q.get("$orderby", "").replace("%20", " ") == "receivedDateTime desc":
            items = sorted(items, key=lambda i: str(i.data.get("receivedDateTime", "")))[::-1]
        top = min(int(q.get("$top", "10")), 1000)
        skip = int(q.get("$skip", "0"))
        page = items[skip : skip + top]
        result: dict[str, Any] = {
            "value": [
                self._render(i, _select(q), immutable, expand=q.get("$expand", "")) for i in page
            ]
        }
        if skip + top < len(items):
            result["@odata.nextLink"] = f"{self.base_url}{path}?" + urlencode(
                dict(q, **{"$skip": str(skip + top)})
            )
        return result

    def _apply(self, item: Item, data: dict[str, Any]) -> None:
        for key in ("subject", "toRecipients", "ccRecipients", "bccRecipients"):
            if key in data:
                item.data[key] = data[key]
        if "body" in data:
            item.body = {
                "contentType": data["body"].get("contentType", "text").lower(),
                "content": data["body"].get("content", ""),
            }
        for prop in data.get("singleValueExtendedProperties", []):
            item.ext[prop["id"]] = prop["value"]
        for header in data.get("internetMessageHeaders", []):
            if not header["name"].lower().startswith("x-"):
                raise GraphError(
                    400,
                    "InvalidInternetMessageHeader",
                    f"The internet message header name '{header['name']}' should "
                    "start with 'x-' or 'X-'.",
                )
            item.headers.append({"name": header["name"], "value": header["value"]})

    def _new_draft(self, box: Box, data: dict[str, Any], *, conversation: str = "") -> Item:
        item_id = self._new_id()
        now = datetime.now(UTC)
        me = {"emailAddress": {"name": box.name, "address": box.address}}
        item = Item(
            item_id,
            "drafts",
            {
                "conversationId": conversation or f"AAQkAGConv-{uuid.uuid4().hex[:16]}",
                "internetMessageId": f"<{uuid.uuid4().hex.upper()}@EMU.PROD.OUTLOOK.TEST>",
                "subject": "",
                "from": me,
                "sender": me,
                "toRecipients": [],
                "ccRecipients": [],
                "receivedDateTime": _iso(now),
                "sentDateTime": _iso(now),
                "isDraft": True,
                "isRead": True,
            },
        )
        self._apply(item, data)
        box.messages[item_id] = item
        self._touch(box, "drafts", item_id)
        return item

    def _create_reply(self, box: Box, original: Item, data: dict[str, Any]) -> Item:
        message = dict(data.get("message") or {})
        message.setdefault("subject", "RE: " + str(original.data.get("subject", "")))
        message.setdefault("toRecipients", [original.data["from"]])
        draft = self._new_draft(box, message, conversation=original.data["conversationId"])
        parent = original.data["internetMessageId"]
        refs = next((h["value"] for h in original.headers if h["name"].lower() == "references"), "")
        # Exchange writes the threading headers itself.
        draft.headers += [
            {"name": "In-Reply-To", "value": parent},
            {"name": "References", "value": f"{refs} {parent}".strip()},
        ]
        if data.get("comment"):
            draft.body = {"contentType": "text", "content": data["comment"]}
        return draft

    def _send(self, box: Box, item: Item) -> None:
        if not item.data.get("isDraft"):
            raise GraphError(400, "ErrorInvalidOperation", "Only a draft can be sent.")
        if not (self.send_delay or self.hold_sends):
            self._file_sent(box, item.id, item)
            return
        # Accepted: Exchange moves it through the Outbox to Sent Items in its own time, and
        # until then the message is still a draft in Drafts.
        snapshot = Item(
            item.id,
            item.folder,
            dict(item.data),
            list(item.headers),
            dict(item.ext),
            dict(item.body),
        )
        due = time.monotonic() + self.send_delay
        self._outgoing.append((due, next(self._accepted), box.address, item.id, snapshot))

    def send_mark(self) -> int:
        """A mark for :meth:`file_sends`: sends accepted from now on come after it."""
        with self._lock:
            return next(self._accepted)

    def file_sends(self, *, due_only: bool = False, before: int | None = None) -> int:
        """File in Sent Items the messages whose ``send`` was accepted: all of them, those whose
        ``send_delay`` has passed (``due_only``), or those accepted before the mark ``before``
        (:meth:`send_mark`). Return how many."""
        with self._lock:
            if due_only and self.hold_sends:
                return 0
            now = time.monotonic()
            due = [
                o
                for o in self._outgoing
                if (not due_only or o[0] <= now) and (before is None or o[1] < before)
            ]
            self._outgoing = [o for o in self._outgoing if o not in due]
            for _, _, address, item_id, snapshot in due:
                self._file_sent(self.boxes[address], item_id, snapshot)
            return len(due)

    def _file_sent(self, box: Box, item_id: str, sent: Item) -> None:
        item = box.messages.get(item_id)
        if item is None or not item.data.get("isDraft"):
            # Sent a second time (or deleted after it was sent): another copy in Sent Items.
            item = Item(
                self._new_id(),
                "drafts",
                dict(sent.data),
                list(sent.headers),
                dict(sent.ext),
                dict(sent.body),
            )
            box.messages[item.id] = item
        headers = list(item.headers)
        self._touch(box, item.folder, item.id)
        item.folder = "sentitems"
        now = _iso(datetime.now(UTC))
        item.data.update(isDraft=False, sentDateTime=now, receivedDateTime=now)
        # Sent Items copies carry no internetMessageHeaders (microsoft-graph-docs issue 2716):
        # neither the x- headers given at creation nor Exchange's own threading headers.
        item.headers = []
        self._touch(box, "sentitems", item.id)
        self.sends.append((box.address, dict(item.ext)))
        for rcpt in item.data.get("toRecipients", []) + item.data.get("ccRecipients", []):
            other = self.boxes.get(rcpt["emailAddress"]["address"].lower())
            if other is not None and other is not box:
                copy_id = self._new_id()
                copy = Item(
                    copy_id,
                    "inbox",
                    dict(item.data, isDraft=False, isRead=False),
                    headers,
                    {},
                    dict(item.body),
                )
                other.messages[copy_id] = copy
                self._touch(other, "inbox", copy_id)

    def pending_sends(self) -> int:
        with self._lock:
            return len(self._outgoing)

    # -- calendar -------------------------------------------------------------------------
    def _event_json(self, ev: CalEvent, zone: str) -> dict[str, Any]:
        shown = ev.zone if self.ignore_timezone_preference else (zone or ev.zone)
        return {
            "@odata.type": "#microsoft.graph.event",
            "id": ev.id,
            "subject": ev.subject,
            "start": _render_dtz(ev.start, shown),
            "end": _render_dtz(ev.end, shown),
            "isAllDay": ev.is_all_day,
            "isCancelled": ev.is_cancelled,
            "showAs": ev.show_as,
            "iCalUId": ev.ical_uid,
            "transactionId": ev.transaction_id or None,
            "organizer": {"emailAddress": {"address": ev.organizer, "name": ""}},
            "attendees": ev.attendees,
            "responseStatus": {"response": ev.response, "time": "0001-01-01T00:00:00Z"},
            "location": {"displayName": ev.location},
        }

    def _create_event(self, box: Box, data: dict[str, Any], prefer: str) -> dict[str, Any]:
        txn = str(data.get("transactionId") or "")
        zone = _prefer_zone(prefer)
        request = json.dumps(data, sort_keys=True)
        for ev in box.events.values():
            if txn and ev.transaction_id == txn:
                # The same request again is a retry: the event made the first time. Another
                # request with the same transactionId is refused.
                if ev.created_from == request:
                    return self._event_json(ev, zone)
                raise GraphError(
                    400,
                    "ErrorDuplicateTransactionId",
                    "An item with the same transaction id already exists.",
                )
        ev = CalEvent(
            self._new_id("AAkALgEvent"),
            str(data.get("subject", "")),
            _parse_dtz(data["start"]),
            _parse_dtz(data["end"]),
            zone=data["start"].get("timeZone", "UTC"),
            show_as=data.get("showAs", "busy"),
            organizer=box.address,
            attendees=[
                dict(a, status={"response": "none", "time": "0001-01-01T00:00:00Z"})
                for a in data.get("attendees", [])
            ],
            transaction_id=txn,
            ical_uid=uuid.uuid4().hex,
            body=(data.get("body") or {}).get("content", ""),
            location=(data.get("location") or {}).get("displayName", ""),
            ext={p["id"]: p["value"] for p in data.get("singleValueExtendedProperties", [])},
            created_from=request,
        )
        box.events[ev.id] = ev
        box.event_log.append((next(self._seq), ev.id))
        return self._event_json(ev, zone)

    def _patch_event(self, ev: CalEvent, data: dict[str, Any]) -> None:
        if "subject" in data:
            ev.subject = str(data["subject"])
        if "body" in data:
            ev.body = str((data["body"] or {}).get("content", ""))
        if "start" in data:
            ev.start = _parse_dtz(data["start"])
        if "end" in data:
            ev.end = _parse_dtz(data["end"])
        if "showAs" in data:
            ev.show_as = str(data["showAs"])
        if "location" in data:
            ev.location = str((data["location"] or {}).get("displayName", ""))

    def _delete_event(self, box: Box, event_id: str) -> None:
        # Graph removes the event outright: delta reports it as @removed, a second DELETE is 404.
        if box.events.pop(event_id, None) is None:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        box.event_log.append((next(self._seq), event_id))

    def _event_delta(self, box: Box, q: dict[str, str], prefer: str, path: str) -> dict[str, Any]:
        zone = _prefer_zone(prefer)
        page = _page_size(prefer, self.max_page_size)
        if "$skiptoken" in q:
            state = self._skip.get(q["$skiptoken"])
            if state is None:
                raise GraphError(410, "SyncStateNotFound", "The sync state was not found.")
        else:
            if "$deltatoken" in q:
                since, window = _decode_token(q["$deltatoken"])
                if since < box.delta_floor:
                    raise GraphError(410, "SyncStateNotFound", "The sync state was not found.")
                ids = list(dict.fromkeys(i for s, i in box.event_log if s > since))
            else:
                window = [q["startDateTime"], q["endDateTime"]]
                ids = list(box.events)
            start = datetime.fromisoformat(window[0].replace("Z", "+00:00"))
            end = datetime.fromisoformat(window[1].replace("Z", "+00:00"))
            ids = [
                i
                for i in ids
                if i not in box.events or (box.events[i].start < end and start < box.events[i].end)
            ]
            state = {"rows": ids, "select": window, "end": next(self._seq)}
        rows, state["rows"] = state["rows"][:page], state["rows"][page:]
        out = [
            self._event_json(box.events[i], zone)
            if i in box.events
            else {"id": i, "@removed": {"reason": "deleted"}}
            for i in rows
        ]
        result: dict[str, Any] = {"value": out}
        link = f"{self.base_url}{path}?"
        if state["rows"]:
            token = secrets.token_urlsafe(12)
            self._skip[token] = state
            result["@odata.nextLink"] = link + urlencode({"$skiptoken": token})
        else:
            result["@odata.deltaLink"] = link + urlencode(
                {"$deltatoken": _encode_token(state["end"], state["select"])}
            )
        return result

    def _schedule(self, data: dict[str, Any], prefer: str) -> dict[str, Any]:
        schedules = data.get("schedules", [])
        if not schedules or len(schedules) > 20:
            raise GraphError(
                400, "ErrorInvalidParameter", "The number of schedules must be between 1 and 20."
            )
        start, end = _parse_dtz(data["startTime"]), _parse_dtz(data["endTime"])
        if end - start >= timedelta(days=62) or end <= start:
            raise GraphError(
                400, "ErrorInvalidParameter", "The time window must be shorter than 62 days."
            )
        zone = _prefer_zone(prefer) or "UTC"
        value = []
        for address in schedules:
            box = self.boxes.get(address.lower())
            if box is None:
                value.append(
                    {
                        "scheduleId": address,
                        "error": {
                            "message": "The specified user is invalid.",
                            "responseCode": "ErrorMailRecipientNotFound",
                        },
                    }
                )
                continue
            items = [
                {
                    "isPrivate": False,
                    "status": ev.show_as,
                    "subject": ev.subject,
                    "start": _render_dtz(ev.start, zone),
                    "end": _render_dtz(ev.end, zone),
                }
                for ev in sorted(box.events.values(), key=lambda e: e.start)
                if not ev.is_cancelled and ev.start < end and start < ev.end
            ]
            value.append({"scheduleId": address, "availabilityView": "", "scheduleItems": items})
        return {"value": value}

    # -- $batch ---------------------------------------------------------------------------
    def _batch(self, user: str, body: bytes, record: Req) -> tuple[int, dict[str, str], Any]:
        reqs = json.loads(body).get("requests", [])
        if len(reqs) > MAX_BATCH:
            record.status = 400
            return (
                400,
                {},
                GraphError(
                    400, "BadRequest", f"Number of requests exceeds the limit of {MAX_BATCH}."
                ).body(),
            )
        if not _batch_shape_ok(reqs):
            # JSON batching's known issue: dependencies are all or nothing.
            record.status = 400
            return (
                400,
                {},
                GraphError(
                    400,
                    "BadRequest",
                    "Batch should be either fully sequential or fully parallel.",
                ).body(),
            )
        status_of: dict[str, int] = {}
        responses = []
        for r in reqs:
            url = "/v1.0" + r["url"] if r["url"].startswith("/") else "/v1.0/" + r["url"]
            parts = urlsplit(url)
            path, query = unquote(parts.path), parts.query
            mailbox = self._mailbox_of(path, user)
            headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
            inner = Req(r["method"], path, query, headers.get("prefer", ""), mailbox, batched=True)
            self.requests.append(inner)
            depends = r.get("dependsOn") or []
            if any(status_of.get(d, 0) >= 400 for d in depends):
                status, out, payload = 424, {}, GraphError(424, "FailedDependency").body()
            else:
                # Graph runs a parallel batch against Outlook four requests at a time itself:
                # the batch's requests never count against the mailbox's concurrency.
                body_bytes = json.dumps(r["body"]).encode() if "body" in r else b""
                try:
                    status, out, payload = self._one(
                        r["method"], path, query, headers, body_bytes, user
                    )
                except ConnectionAbortedError:
                    status, out, payload = 504, {}, GraphError(504, "GatewayTimeout").body()
            inner.status = status
            status_of[str(r["id"])] = status
            entry: dict[str, Any] = {"id": r["id"], "status": status, "headers": out}
            if payload is not None:
                entry["body"] = payload
            responses.append(entry)
        record.status = 200
        return 200, {}, {"responses": responses}


def _batch_shape_ok(reqs: list[dict[str, Any]]) -> bool:
    """Fully parallel (no ``dependsOn``), fully sequential (each on the one before), or all on
    one request: the only shapes Graph accepts (JSON batching, known issues)."""
    depends = [list(r.get("dependsOn") or []) for r in reqs]
    if not any(depends):
        return True
    ids = [str(r["id"]) for r in reqs]
    if not depends[0] and all(d == [ids[i]] for i, d in enumerate(depends[1:])):
        return True
    heads = [i for i, d in enumerate(depends) if not d]
    return len(heads) == 1 and all(d == [ids[heads[0]]] for d in depends if d)


def _json(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _oauth_error(
    code: str, description: str, status: int = 400
) -> tuple[int, dict[str, str], bytes]:
    return _json(
        status,
        {
            "error": code,
            "error_description": description,
            "error_codes": [int(re.sub(r"\D", "", description[:12]) or 0)],
        },
    )


def _select(q: dict[str, str]) -> list[str] | None:
    value = q.get("$select")
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def _page_size(prefer: str, cap: int) -> int:
    m = re.search(r"odata\.maxpagesize=(\d+)", prefer)
    return min(int(m.group(1)), cap) if m else 10


def _prefer_zone(prefer: str) -> str:
    m = re.search(r'outlook\.timezone="([^"]+)"', prefer)
    return m.group(1) if m else ""


def _encode_token(seq: int, extra: Any) -> str:
    return _b64url(json.dumps([seq, extra]).encode())


def _decode_token(token: str) -> tuple[int, Any]:
    try:
        seq, extra = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "malformed delta token") from exc
    return int(seq), extra


def _matches_ext(ext: dict[str, str], flt: str) -> bool:
    m = re.fullmatch(
        r"singleValueExtendedProperties/Any\(ep: ep/id eq '((?:[^']|'')*)' and "
        r"ep/value eq '((?:[^']|'')*)'\)",
        flt.strip(),
    )
    if not m:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", f"unsupported filter {flt}")
    prop, value = (g.replace("''", "'") for g in m.groups())
    # Graph compares an extended property's string value without regard to case.
    found = next((v for k, v in ext.items() if k.lower() == prop.lower()), None)
    return found is not None and found.casefold() == value.casefold()


def _matches(item: Item, flt: str) -> bool:
    m = re.fullmatch(
        r"singleValueExtendedProperties/Any\(ep: ep/id eq '((?:[^']|'')*)' and "
        r"ep/value eq '((?:[^']|'')*)'\)",
        flt.strip(),
    )
    if m:
        return _matches_ext(item.ext, flt)
    m = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", flt.strip())
    if m:
        return item.data.get("internetMessageId") == m.group(1).replace("''", "'")
    raise GraphError(400, "ErrorInvalidUrlQueryFilter", f"unsupported filter {flt}")


class _Handler(BaseHTTPRequestHandler):
    graph: GraphEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out, data = self.graph.handle(self.command, self.path, headers, body)
        except ConnectionAbortedError:
            self.close_connection = True
            return
        self.send_response(status)
        for k, v in out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


__all__ = ["FOLDER_IDS", "GraphEmulator", "GraphError"]


_RECEIVED_FROM = re.compile(r"receivedDateTime (ge|gt) (\S+)")


def _delta_floor(flt: str) -> tuple[str, str] | None:
    """The only ``$filter`` message delta takes: on ``receivedDateTime``, ``ge`` or ``gt``
    (the message-delta reference); anything else is refused as Graph refuses it."""
    if not flt:
        return None
    m = _RECEIVED_FROM.fullmatch(flt.strip())
    if m is None:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter is not supported.")
    return m.group(1), m.group(2)


def _received_from(item: Item, floor: tuple[str, str] | None) -> bool:
    if floor is None:
        return True
    op, value = floor
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    received = datetime.fromisoformat(str(item.data.get("receivedDateTime")).replace("Z", "+00:00"))
    return received >= when if op == "ge" else received > when


def _verifier_matches(code: dict[str, Any], verifier: str) -> bool:
    """RFC 7636 4.6, as the identity platform checks a PKCE code (AADSTS50148 otherwise)."""
    challenge = str(code.get("challenge", ""))
    if not challenge:
        return True
    if code.get("method") == "S256":
        import hashlib

        verifier = _b64url(hashlib.sha256(verifier.encode()).digest())
    return secrets.compare_digest(verifier, challenge)
