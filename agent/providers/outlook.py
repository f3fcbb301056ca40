"""Outlook and Microsoft 365 through Microsoft Graph: mail sync, exactly-once sends, calendars.

:class:`OutlookProvider` is both a ``MailProvider`` and a ``CalendarProvider``
(:mod:`agent.providers.protocol`). It talks to Graph v1.0 with ``requests`` and takes its
tokens from :mod:`agent.providers.msal_auth` (``GraphAuth`` for a rep's own mailbox, ``AppAuth``
for an organisation's app-only access, which addresses mailboxes as ``/users/{address}``).

Mail sync runs one delta query per folder (Inbox and Sent Items); the cursor is the JSON of both
folders' ``@odata.deltaLink``. Every request, delta links included, carries
``Prefer: IdType="ImmutableId"`` so that ``Message.provider_id`` survives folder moves.

Sending is made exactly-once with a draft tagged by a single-value extended property that holds
the outbox key: ``draft`` creates it, ``send_draft`` posts ``/send`` once and never retries, and
``find_sent``/``find_draft`` find it again by that property after a crash.

Errors (see :mod:`agent.errors`): 429/503/504 and connection failures raise ``Transient`` with
the server's ``Retry-After``; 410 or ``SyncStateNotFound`` raise ``CursorExpired``; a refused
token that cannot be refreshed, or a 403 for the token or its consent, raise ``AuthRevoked``;
a 403 for a licence or a permission, or a mailbox not enabled for Graph, raise ``AccessDenied``;
other 4xx raise ``Permanent``.
Reads are retried (``agent.providers.ratelimit.read_retrying``); sends never are.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any, Protocol
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import requests

from agent import zones
from agent.errors import (
    AccessDenied,
    AuthRevoked,
    CursorExpired,
    Permanent,
    ProviderError,
    Refused,
    Transient,
)
from agent.mime import KEPT_HEADERS, MAX_ADDRESSES
from agent.model import (
    Address,
    Attendee,
    Bodies,
    Event,
    EventSyncResult,
    Interval,
    Invite,
    Message,
    SentRef,
    SyncResult,
)
from agent.providers.protocol import KEY_HEADER, key_tag
from agent.providers.ratelimit import Buckets, TokenBucket, read_retrying

log = logging.getLogger(__name__)

GRAPH = "https://graph.microsoft.com/v1.0"
IMMUTABLE = 'IdType="ImmutableId"'
# A single-value extended property in our own namespace GUID carries the outbox key: unlike
# internet headers it can be filtered on in Drafts and Sent Items.
KEY_PROPERTY = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name FollowupKey"
# internetMessageHeaders takes only x- headers ("Graph: message resource"); a standard header
# such as Auto-Submitted is a named property in PS_INTERNET_HEADERS, which Exchange writes out
# as that header ([MS-OXCMAIL]; the property set is named in [MS-OXPROPS]).
INTERNET_HEADER_PROPERTY = "String {00020386-0000-0000-C000-000000000046} Name "
MAX_CATEGORIES, MAX_CATEGORY_CHARS = 50, 255
PASSED_HEADERS = ("Auto-Submitted", "List-Unsubscribe")
FOLDERS = (("inbox", "INBOX"), ("sentitems", "SENT"))
# Only what Message needs. internetMessageHeaders is selectable in delta like in any GET (the
# delta reference: "$select ... as in any GET request"); it carries In-Reply-To, References and
# the auto-reply/list headers the planners classify by, so no second request per message.
MESSAGE_FIELDS = (
    "id",
    "conversationId",
    "internetMessageId",
    "subject",
    "from",
    "toRecipients",
    "ccRecipients",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageHeaders",
    "parentFolderId",
    "categories",  # the rep's Followup/... categories steer the agent (agent.steering)
)
# Outlook documents $top as 1..1000 for message listings and the default page as 10; delta
# pages honour odata.maxpagesize. 500 keeps a page with full headers well under the gateway
# timeout while a 10,000-message folder still syncs in about 20 requests.
# Sent Items copies carry no internetMessageHeaders (microsoft-graph-docs issue 2716), so the
# agent's own notes are recognised by the key property, expanded on every message read.
KEY_EXPAND = f"singleValueExtendedProperties($filter=id eq '{KEY_PROPERTY}')"
PAGE_SIZE = 500
SENT_COPY_LAG = timedelta(hours=1)
MAX_BATCH = 20  # Graph's $batch limit
MAILBOX_CONCURRENCY = 4  # Outlook runs at most 4 requests at once per app and mailbox
SCHEDULES_PER_CALL = 20  # getSchedule takes at most 20 mailboxes
SCHEDULE_SPAN = timedelta(days=61)  # getSchedule windows must be under 62 days
# 10,000 requests per 10 minutes per app and mailbox.
# 403s that mean the token or the consent behind it no longer holds: the rep connects again.
_TOKEN_REFUSED = frozenset(
    {"invalidauthenticationtoken", "authenticationerror", "expiredauthenticationtoken"}
)
# A mailbox Graph cannot serve (404 or 403): inactive, soft-deleted or on-premises.
_MAILBOX_NOT_ENABLED = frozenset({"mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi"})
_buckets = Buckets(rate_per_s=10_000 / 600, burst=200)
_CURSOR_VERSION = 1


class TokenSource(Protocol):
    def token(self, force_refresh: bool = False) -> str: ...


class MailboxGate:
    """At most ``limit`` requests in flight for one mailbox, lowered when Outlook says so.

    A ``MailboxConcurrency`` 429 means other apps share the mailbox's four slots: we give one
    up, and take it back after a run of successes.
    """

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self.limit = limit
        self._busy = 0
        self._ok = 0
        self._cond = threading.Condition()

    def __enter__(self) -> MailboxGate:
        with self._cond:
            while self._busy >= self.limit:
                self._cond.wait()
            self._busy += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify()

    def lower(self) -> None:
        with self._cond:
            self.limit = max(1, self.limit - 1)
            self._ok = 0

    def succeeded(self) -> None:
        with self._cond:
            self._ok += 1
            if self._ok >= 100 and self.limit < MAILBOX_CONCURRENCY:
                self.limit += 1
                self._ok = 0
                self._cond.notify()


_gates: dict[str, MailboxGate] = {}
_gates_guard = threading.Lock()


def mailbox_gate(address: str) -> MailboxGate:
    """The process-wide gate of one mailbox (every provider instance for it shares it)."""
    with _gates_guard:
        return _gates.setdefault(address.lower(), MailboxGate())


class _Malformed(ValueError):
    pass


@dataclass(frozen=True)
class _Request:
    """One request of a ``$batch``: ``url`` is relative to the version root."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    prefer: str = ""


def _odata_str(value: str) -> str:
    return value.replace("'", "''")


def _key_filter(key: str) -> str:
    return (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{_odata_str(KEY_PROPERTY)}' "
        f"and ep/value eq '{_odata_str(key)}')"
    )


def _zone(name: str) -> ZoneInfo:
    """The zone of a Graph ``timeZone`` value (often a Windows name such as
    ``India Standard Time``), through the one mapping in :mod:`agent.zones`."""
    try:
        return zones.zoneinfo(name)
    except ValueError as exc:
        raise _Malformed(str(exc)) from exc


def parse_datetime_tz(value: Mapping[str, Any]) -> datetime:
    """A Graph ``dateTimeTimeZone`` to an aware UTC datetime.

    ``dateTime`` has no offset (``2026-11-02T09:00:00.0000000``); the zone is beside it, in the
    ``Prefer: outlook.timezone`` we asked for or the event's own, often a Windows name.
    """
    try:
        text = str(value["dateTime"])
        naive = datetime.fromisoformat(text.rstrip("Z")[:26])
    except (KeyError, ValueError, TypeError) as exc:
        raise _Malformed(f"unreadable dateTimeTimeZone {value!r}") from exc
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    zone = _zone(str(value.get("timeZone") or "UTC"))
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _graph_time(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def _categories(value: Any) -> list[str]:
    """The message's categories (names the rep gave, such as ``Followup/Stop``), bounded."""
    if not isinstance(value, list):
        return []
    return [str(c)[:MAX_CATEGORY_CHARS] for c in value[:MAX_CATEGORIES] if isinstance(c, str)]


def _instant(text: Any) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Malformed(f"unreadable date {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _address(value: Any) -> Address | None:
    email_address = (value or {}).get("emailAddress") or {}
    address = str(email_address.get("address") or "")
    if "@" not in address:
        return None
    return Address(address, str(email_address.get("name") or ""))


def _recipients(values: Any) -> tuple[Address, ...]:
    """The readable recipients, at most ``MAX_ADDRESSES`` (as :mod:`agent.mime` keeps)."""
    found = (_address(v) for v in values or ())
    return tuple(itertools.islice((a for a in found if a is not None), MAX_ADDRESSES))


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(re.findall(r"<[^<>\s]+>", value))


def _graph_recipients(values: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {"emailAddress": {"address": addr, "name": name}}
        for name, addr in getaddresses(list(values))
        if "@" in addr
    ]


class OutlookProvider:
    """Mail and calendar of one Microsoft 365 mailbox.

    ``auth`` hands out access tokens (``GraphAuth`` or ``AppAuth``). ``app_only`` addresses the
    mailbox as ``/users/{address}`` instead of ``/me``. ``sleep`` and ``clock`` are injectable so
    tests can run throttling storms without waiting.
    """

    name = "outlook"
    # Exchange files a message in Sent Items only after it left the Outbox, which "may not
    # succeed immediately" (sendMail, message-send): usually seconds, in bad hours minutes.
    sent_copy_lag = SENT_COPY_LAG

    def __init__(
        self,
        mailbox: str,
        address: str,
        auth: TokenSource,
        *,
        session: requests.Session | None = None,
        base_url: str = GRAPH,
        app_only: bool = False,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_attempts: int = 5,
        max_wait: float = 60.0,
        bucket: TokenBucket | None = None,
        gate: MailboxGate | None = None,
        timeout: float = 60.0,
        first_sync_days: int | None = None,
    ) -> None:
        self.mailbox = mailbox
        self._first_sync_days = first_sync_days
        self.address = address.lower()
        self._auth = auth
        self._session = session or requests.Session()
        self._base = base_url.rstrip("/")
        self._origin = "/".join(self._base.split("/")[:3]) + "/"
        self._root = f"/users/{quote(self.address)}" if app_only else "/me"
        self._page_size = page_size
        self._sleep = sleep
        self._clock = clock
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._bucket = bucket or _buckets.get(self.address)
        self._gate = gate or mailbox_gate(self.address)
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"OutlookProvider({self.mailbox!r}, {self.address!r})"

    # -- HTTP -----------------------------------------------------------------------------
    def _headers(self, prefer: str, force_refresh: bool = False) -> dict[str, str]:
        # Immutable ids must be asked for on every request: the preference is per request.
        prefs = ", ".join(p for p in (IMMUTABLE, prefer) if p)
        return {
            "Authorization": f"Bearer {self._auth.token(force_refresh)}",
            "Prefer": prefs,
            "Accept": "application/json",
        }

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        prefer: str = "",
    ) -> Any:
        """One HTTP exchange, classified. A refused token is refreshed once and the request
        repeated: Graph rejected it before doing anything, so even a send may repeat it."""
        full = url if "://" in url else self._base + url
        if not full.startswith(self._origin):
            # Paging links come from the server; never send the token anywhere else.
            raise Permanent(f"refusing a link outside Graph: {full[:80]}", mailbox=self.mailbox)
        for attempt in (0, 1):
            self._bucket.take(1)
            with self._gate:
                try:
                    resp = self._session.request(
                        method,
                        full,
                        headers=self._headers(prefer, force_refresh=attempt == 1),
                        json=body,
                        timeout=self._timeout,
                    )
                except requests.RequestException as exc:
                    raise Transient(
                        f"Graph unreachable ({type(exc).__name__})", mailbox=self.mailbox
                    ) from exc
            if resp.status_code == 401 and attempt == 0:
                continue
            if resp.status_code < 400:
                self._gate.succeeded()
                if resp.status_code == 204 or not resp.content:
                    return None
                try:
                    return resp.json()
                except ValueError as exc:
                    raise Transient(
                        "Graph answered with invalid JSON", mailbox=self.mailbox
                    ) from exc
            raise self._error(resp.status_code, resp.headers, _json_or_empty(resp))
        raise AssertionError("unreachable")

    def _error(self, status: int, headers: Mapping[str, str], payload: Any) -> ProviderError:
        error = (payload or {}).get("error") or {}
        code = str(error.get("code") or "")
        text = f"Graph {status} {code}: {error.get('message') or ''}".strip()
        retry_after = _retry_after(headers)
        lowered = code.lower()
        if status == 410 or lowered in ("syncstatenotfound", "syncstateinvalid", "resyncrequired"):
            return CursorExpired(text, mailbox=self.mailbox)
        if status == 401:
            return AuthRevoked(text, mailbox=self.mailbox)
        if status == 403 and lowered == "errorquotaexceeded":
            # A full mailbox refuses delta state writes until the rep makes room.
            return Transient(text, retry_after=retry_after or 3600, mailbox=self.mailbox)
        denied = self._denied(status, lowered, text)
        if denied is not None:
            return denied
        if status == 429 and "mailboxconcurrency" in text.lower():
            self._gate.lower()
        if status == 429:
            # Throttling turns a request away before it is acted on: a refused send was not made.
            return Refused(text, retry_after=retry_after, mailbox=self.mailbox)
        if status in (429, 500, 502, 503, 504) or lowered in ("errortoomanyobjectsopened",):
            return Transient(text, retry_after=retry_after, mailbox=self.mailbox)
        if status >= 500:
            return Transient(text, retry_after=retry_after, mailbox=self.mailbox)
        return Permanent(text, mailbox=self.mailbox)

    def _denied(self, status: int, code: str, text: str) -> ProviderError | None:
        """What a 403 (or a mailbox Graph cannot serve) means. Only a token or a consent that
        no longer holds needs the rep to connect again; a missing licence, a mailbox not
        enabled for the API or a missing permission needs an administrator ("the user might
        not have enough permission or might not have a required license", Graph's errors)."""
        words = text.lower()
        who = f"Microsoft 365 refused mailbox {self.mailbox}"
        if code in _MAILBOX_NOT_ENABLED:
            return AccessDenied(
                f"{who}: the mailbox is not enabled for Microsoft Graph (inactive, soft-deleted, "
                f"hosted on-premises or without an Exchange Online licence); an administrator "
                f"must enable it ({text})",
                mailbox=self.mailbox,
            )
        if status != 403:
            return None
        if code in _TOKEN_REFUSED or any(w in words for w in ("consent", "insufficient_claims")):
            return AuthRevoked(text, mailbox=self.mailbox)
        if "licen" in words:
            return AccessDenied(
                f"{who}: the user has no licence for it; an administrator must assign an "
                f"Exchange Online licence ({text})",
                mailbox=self.mailbox,
            )
        return AccessDenied(
            f"{who}: permission denied; an administrator must grant the app Mail.ReadWrite, "
            f"Mail.Send and Calendars.ReadWrite and let it reach this mailbox ({text})",
            mailbox=self.mailbox,
        )

    def _read(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        prefer: str = "",
    ) -> Any:
        """A request that is safe to repeat, retried on ``Transient`` honouring Retry-After."""
        retrying = read_retrying(self._max_attempts, self._max_wait, sleep=self._sleep)
        return retrying(self._send_once, method, url, body=body, prefer=prefer)

    def _batch(self, requests_: list[_Request]) -> list[tuple[int, Any]]:
        """Run independent requests through ``$batch``, at most 20 per call and fully parallel:
        Graph refuses a batch that mixes ``dependsOn`` chains with parallel requests ("Batch
        should be either fully sequential or fully parallel"), and itself feeds a parallel
        batch to Outlook four at a time. Return ``(status, body)`` in order; items throttled
        inside the batch are retried in the next one."""
        results: dict[int, tuple[int, Any]] = {}
        pending = list(range(len(requests_)))
        attempts = 0
        while pending:
            chunk, pending = pending[:MAX_BATCH], pending[MAX_BATCH:]
            payload = []
            for index in chunk:
                req = requests_[index]
                item: dict[str, Any] = {
                    "id": str(index),
                    "method": req.method,
                    "url": req.url,
                    "headers": {"Prefer": ", ".join(p for p in (IMMUTABLE, req.prefer) if p)},
                }
                if req.body is not None:
                    item["body"] = req.body
                    item["headers"]["Content-Type"] = "application/json"
                payload.append(item)
            answer = self._read("POST", "/$batch", body={"requests": payload})
            throttled: list[int] = []
            waits: list[float] = []
            for response in answer.get("responses", []):
                index = int(response["id"])
                status = int(response.get("status", 500))
                if status in (429, 503, 424):
                    throttled.append(index)
                    waits.append(_retry_after(response.get("headers") or {}) or 1.0)
                    if status == 429 and "mailboxconcurrency" in json.dumps(response).lower():
                        self._gate.lower()
                    continue
                results[index] = (status, response.get("body"))
            if throttled:
                attempts += 1
                if attempts >= self._max_attempts:
                    raise Transient(
                        "Graph kept throttling batched requests",
                        retry_after=max(waits),
                        mailbox=self.mailbox,
                    )
                self._sleep(max(waits))
                pending = sorted(throttled) + pending
        return [results[i] for i in range(len(requests_))]

    # -- mail sync ------------------------------------------------------------------------
    def sync(self, cursor: str | None) -> SyncResult:
        """Changes in Inbox and Sent Items since ``cursor`` (``None``: everything).

        Returns ``SyncResult`` whose cursor is ``{"v": 1, "inbox": deltaLink, "sentitems":
        deltaLink}``. Raises ``CursorExpired`` on 410 / SyncStateNotFound or an unreadable
        cursor; the caller then syncs with ``None``.
        """
        links: dict[str, str] = {}
        if cursor is not None:
            try:
                stored = json.loads(cursor)
                links = {folder: str(stored[folder]) for folder, _ in FOLDERS}
            except (ValueError, KeyError, TypeError) as exc:
                raise CursorExpired("unreadable Outlook cursor", mailbox=self.mailbox) from exc
        messages: dict[str, Message] = {}
        removed: set[str] = set()
        skipped: list[tuple[str, str]] = []
        new_links: dict[str, Any] = {"v": _CURSOR_VERSION}
        windowed = cursor is None and self._first_sync_days is not None
        for folder, label in FOLDERS:
            query = {"$select": ",".join(MESSAGE_FIELDS), "$expand": KEY_EXPAND}
            floor = self._window_floor(folder) if windowed else None
            if floor is not None:
                # Delta takes a filter on the reception time alone, and keeps it in its links.
                query["$filter"] = f"receivedDateTime ge {floor:%Y-%m-%dT%H:%M:%SZ}"
            start = links.get(folder) or (
                f"{self._root}/mailFolders/{folder}/messages/delta?" + urlencode(query, safe=",$")
            )
            rows, new_links[folder] = self._delta_round(start)
            partial: list[str] = []
            for row in rows:
                pid = str(row.get("id") or "")
                if not pid:
                    skipped.append(("", "delta row without an id"))
                elif "@removed" in row:
                    # Gone from this folder; a move to the other synced folder keeps it.
                    removed.add(pid)
                    if pid in messages and label in messages[pid].labels:
                        del messages[pid]
                elif "from" not in row and "internetMessageId" not in row:
                    # Flag-only changes come with just the changed properties.
                    partial.append(pid)
                else:
                    self._collect(row, label, messages, skipped)
            if partial:
                fetched, gone = self._get_messages(partial, skipped)
                removed.update(gone)
                for row in fetched:
                    self._collect(row, label, messages, skipped)
        deleted = tuple(sorted(removed - set(messages)))
        return SyncResult(
            messages=tuple(messages.values()),
            cursor=json.dumps(new_links, sort_keys=True),
            deleted=deleted,
            # A windowed first sync lists only the window: what the store has from before it
            # is not gone.
            full=cursor is None and not windowed,
            skipped=tuple(skipped),
        )

    def _window_floor(self, folder: str) -> datetime | None:
        """Where a first sync of ``folder`` starts: ``first_sync_days`` before its newest
        message (not the host's clock, so a replay or a skewed host reads the same days), or
        None for an empty folder."""
        query = urlencode(
            {"$top": "1", "$orderby": "receivedDateTime desc", "$select": "receivedDateTime"},
            safe=",$",
        )
        page = self._read("GET", f"{self._root}/mailFolders/{folder}/messages?{query}")
        rows = (page or {}).get("value") or []
        stamp = str(rows[0].get("receivedDateTime") or "") if rows else ""
        try:
            newest = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return None
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        return newest.astimezone(UTC) - timedelta(days=self._first_sync_days or 0)

    def _delta_round(self, url: str) -> tuple[list[dict[str, Any]], str]:
        rows: list[dict[str, Any]] = []
        prefer = f"odata.maxpagesize={self._page_size}"
        while True:
            page = self._read("GET", url, prefer=prefer)
            rows.extend(page.get("value") or [])
            if page.get("@odata.nextLink"):
                url = str(page["@odata.nextLink"])
            elif page.get("@odata.deltaLink"):
                return rows, str(page["@odata.deltaLink"])
            else:
                raise CursorExpired("delta page without a next or delta link", mailbox=self.mailbox)

    def _get_messages(
        self, ids: list[str], skipped: list[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], set[str]]:
        select = urlencode({"$select": ",".join(MESSAGE_FIELDS), "$expand": KEY_EXPAND}, safe=",$")
        reqs = [_Request("GET", f"{self._root}/messages/{quote(i)}?{select}") for i in ids]
        rows: list[dict[str, Any]] = []
        gone: set[str] = set()
        for pid, (status, body) in zip(ids, self._batch(reqs), strict=True):
            if status == 200 and isinstance(body, dict):
                rows.append(body)
            elif status == 404:
                gone.add(pid)
            else:
                skipped.append((pid, f"could not fetch the changed message: HTTP {status}"))
        return rows, gone

    def _collect(
        self,
        row: dict[str, Any],
        label: str,
        messages: dict[str, Message],
        skipped: list[tuple[str, str]],
    ) -> None:
        pid = str(row["id"])
        try:
            message = self._to_message(row, label)
        except (_Malformed, ValueError) as exc:
            skipped.append((pid, str(exc)))
            return
        except Exception as exc:  # a shape nobody foresaw: this message is skipped, not the sync
            skipped.append((pid, f"unreadable message: {type(exc).__name__}"))
            return
        messages[pid] = message

    def _to_message(self, row: Mapping[str, Any], label: str) -> Message:
        pid = str(row["id"])
        sender = _address(row.get("from"))
        if sender is None:
            raise _Malformed("no From address")
        stamp = row.get("receivedDateTime") if label == "INBOX" else row.get("sentDateTime")
        stamp = stamp or row.get("sentDateTime") or row.get("receivedDateTime")
        if not stamp:
            raise _Malformed("no received or sent time")
        headers: dict[str, str] = {}
        for header in row.get("internetMessageHeaders") or ():
            try:
                name, value = str(header["name"]).lower(), str(header["value"])
            except (KeyError, TypeError) as exc:
                raise _Malformed(f"unreadable internet message header {header!r}") from exc
            headers.setdefault(name, value)
        for prop in row.get("singleValueExtendedProperties") or ():
            # The outbox key of the agent's own notes; no header survives into Sent Items.
            if (
                isinstance(prop, Mapping)
                and str(prop.get("id", "")).lower() == KEY_PROPERTY.lower()
            ):
                headers[KEY_HEADER.lower()] = str(prop.get("value") or "")
        references = _message_ids(headers.get("references", ""))
        in_reply_to = (_message_ids(headers.get("in-reply-to", "")) or ("",))[0]
        message_id = str(row.get("internetMessageId") or "").strip() or f"<{pid}@graph.invalid>"
        return Message(
            mailbox=self.mailbox,
            provider_id=pid,
            thread_id=str(row.get("conversationId") or message_id),
            message_id=message_id,
            sender=sender,
            to=_recipients(row.get("toRecipients")),
            cc=_recipients(row.get("ccRecipients")),
            date=_instant(stamp),
            subject=" ".join(str(row.get("subject") or "").split()),
            in_reply_to=in_reply_to,
            references=references,
            headers={k: v for k, v in headers.items() if k in KEPT_HEADERS},
            labels=frozenset({label, *_categories(row.get("categories"))}),
        )

    def fetch_body(self, provider_id: str) -> str:
        """The plain-text body, converted by Exchange (``outlook.body-content-type="text"``)."""
        row = self._read(
            "GET",
            f"{self._root}/messages/{quote(provider_id)}?$select=body",
            prefer='outlook.body-content-type="text"',
        )
        return str(((row or {}).get("body") or {}).get("content") or "")

    def fetch_bodies(self, provider_ids: Sequence[str]) -> Bodies:
        """Plain-text bodies through ``$batch``, 20 GETs a call: 1,000 bodies take 50 requests.

        A message gone (404) or refused goes to ``Bodies.failed``; an answer that says the
        sign-in is gone (401/403) raises ``AuthRevoked`` for the call, as a single GET would.
        """
        ids = list(dict.fromkeys(provider_ids))
        prefer = 'outlook.body-content-type="text"'
        reqs = [
            _Request("GET", f"{self._root}/messages/{quote(i)}?$select=body", prefer=prefer)
            for i in ids
        ]
        found: dict[str, str] = {}
        failed: dict[str, str] = {}
        for pid, (status, row) in zip(ids, self._batch(reqs) if reqs else [], strict=True):
            if status == 200 and isinstance(row, dict):
                found[pid] = str((row.get("body") or {}).get("content") or "")
                continue
            error = self._error(status, {}, row if isinstance(row, dict) else None)
            if isinstance(error, (AuthRevoked, Transient)):
                raise error
            failed[pid] = (
                "the message is gone from the mailbox" if status == 404 else str(error)[:300]
            )
        return Bodies(found, failed)

    # -- sending --------------------------------------------------------------------------
    def draft(self, message: EmailMessage, *, key: str, thread_id: str = "") -> str:
        """Create a draft tagged with ``key``; return its immutable id.

        A message with ``In-Reply-To`` becomes a ``createReply`` on the Graph message with that
        internetMessageId, so Exchange threads it (In-Reply-To, References, conversation). If
        that message is not in the mailbox, a new message is drafted: Graph accepts only
        ``x-`` internet headers at creation, so threading headers cannot be set by hand.
        ``thread_id`` is not needed by Graph and is ignored.
        """
        payload = self._draft_payload(message, key)
        parent_id = ""
        for ref in _message_ids(str(message.get("In-Reply-To", ""))):
            parent_id = self._find_by_message_id(ref)
            if parent_id:
                break
        if parent_id:
            row = self._send_once(
                "POST",
                f"{self._root}/messages/{quote(parent_id)}/createReply",
                body={"message": payload},
            )
        else:
            row = self._send_once("POST", f"{self._root}/messages", body=payload)
        return str(row["id"])

    def _draft_payload(self, message: EmailMessage, key: str) -> dict[str, Any]:
        part = message.get_body(preferencelist=("html", "plain"))
        content = str(part.get_content()) if part is not None else ""
        kind = "HTML" if part is not None and part.get_content_subtype() == "html" else "Text"
        payload: dict[str, Any] = {
            "subject": str(message.get("Subject", "")),
            "body": {"contentType": kind, "content": content},
            "toRecipients": _graph_recipients(str(v) for v in message.get_all("To", [])),
            "ccRecipients": _graph_recipients(str(v) for v in message.get_all("Cc", [])),
            "singleValueExtendedProperties": [{"id": KEY_PROPERTY, "value": key_tag(key)}],
            "internetMessageHeaders": [{"name": KEY_HEADER, "value": key_tag(key)}],
        }
        for name, value in message.items():
            if name.lower().startswith("x-") and name.lower() != KEY_HEADER.lower():
                payload["internetMessageHeaders"].append({"name": name, "value": str(value)})
        for name in PASSED_HEADERS:
            if message[name] is not None:
                payload["singleValueExtendedProperties"].append(
                    {"id": INTERNET_HEADER_PROPERTY + name, "value": str(message[name])}
                )
        bcc = _graph_recipients(str(v) for v in message.get_all("Bcc", []))
        if bcc:
            payload["bccRecipients"] = bcc
        return payload

    def _find_by_message_id(self, message_id: str) -> str:
        query = urlencode(
            {
                "$filter": f"internetMessageId eq '{_odata_str(message_id)}'",
                "$select": "id",
                "$top": "1",
            }
        )
        page = self._read("GET", f"{self._root}/messages?{query}")
        rows = (page or {}).get("value") or []
        return str(rows[0]["id"]) if rows else ""

    def send_draft(
        self, draft_id: str, *, before_post: Callable[[], None] | None = None
    ) -> SentRef:
        """Send the draft once; return its immutable id (the sent copy keeps it) and
        internetMessageId. A draft that was already sent is not sent again.

        The ``/send`` POST is never retried: on ``Transient`` the outcome is unknown and the
        outbox reconciles with ``find_sent``; ``Refused`` (429) means it was not made. Graph
        accepts ``/send`` (202) before the message reaches Sent Items: until then it still
        reads as a draft, so a draft found after a lost answer does not prove it unsent.
        """
        fields = "?$select=isDraft,internetMessageId,conversationId"
        try:
            before = self._read("GET", f"{self._root}/messages/{quote(draft_id)}{fields}")
        except Permanent as exc:
            raise Permanent(f"no draft {draft_id}: {exc}", mailbox=self.mailbox) from exc
        ref = SentRef(
            draft_id,
            str(before.get("internetMessageId") or ""),
            str(before.get("conversationId") or ""),
        )
        if before.get("isDraft") is False:
            return ref
        if before_post is not None:
            before_post()
        self._send_once("POST", f"{self._root}/messages/{quote(draft_id)}/send")
        # The send happened: from here on nothing may raise. Sending can rewrite the
        # Message-ID, so read the sent copy back when it is there already.
        try:
            after = self._send_once("GET", f"{self._root}/messages/{quote(draft_id)}{fields}")
        except ProviderError:
            return ref
        return SentRef(
            draft_id,
            str(after.get("internetMessageId") or ref.message_id),
            str(after.get("conversationId") or ref.thread_id),
        )

    def _find_tagged(self, folder: str, key: str) -> dict[str, Any] | None:
        """The message in ``folder`` tagged for ``key``: by its tag, then by the key itself, as
        notes made before tags carried it. Graph filters on an extended property's value without
        regard to case, so the filter may also answer values that differ in case only: the
        value, expanded, is compared here."""
        for value in (key_tag(key), key):
            query = urlencode(
                {
                    "$filter": _key_filter(value),
                    "$select": "id,internetMessageId,conversationId,isDraft",
                    "$expand": KEY_EXPAND,
                    "$top": "25",
                }
            )
            page = self._read("GET", f"{self._root}/mailFolders/{folder}/messages?{query}")
            for row in (page or {}).get("value") or []:
                if _key_of(row) == value:
                    return dict(row)
        return None

    def find_sent(self, key: str) -> SentRef | None:
        row = self._find_tagged("sentitems", key)
        if row is None:
            return None
        return SentRef(
            str(row["id"]),
            str(row.get("internetMessageId") or ""),
            str(row.get("conversationId") or ""),
        )

    def find_draft(self, key: str) -> str | None:
        row = self._find_tagged("drafts", key)
        return str(row["id"]) if row is not None else None

    def discard_draft(self, draft_id: str) -> None:
        """``DELETE /messages/{id}`` once ``isDraft`` says it is still a draft.

        An immutable id stays with the message when the rep sends the draft, so deleting
        without looking first would delete the rep's sent mail. Gone already (404): done.
        """
        url = f"{self._root}/messages/{quote(draft_id, safe='')}"
        try:
            row = self._read("GET", f"{url}?$select=isDraft")
            if not (row or {}).get("isDraft"):
                return
            self._read("DELETE", url)
        except Permanent as exc:
            if str(exc).startswith("Graph 404"):
                return
            raise

    # -- calendar -------------------------------------------------------------------------
    def busy(self, window: Interval) -> list[Interval]:
        """Busy, tentative and out-of-office time of this mailbox inside ``window``, merged."""
        return self.schedules([self.address], window).get(self.address, [])

    def schedules(self, addresses: Iterable[str], window: Interval) -> dict[str, list[Interval]]:
        """Busy intervals of many mailboxes from ``getSchedule``: 20 mailboxes and under 62 days
        per call; several calls go in one ``$batch``. Returns ``{address: merged intervals}``;
        a mailbox Graph cannot see is left out (and logged)."""
        people = list(dict.fromkeys(a.lower() for a in addresses))
        spans = list(_split(window, SCHEDULE_SPAN))
        reqs = [
            _Request(
                "POST",
                f"{self._root}/calendar/getSchedule",
                body={
                    "schedules": people[i : i + SCHEDULES_PER_CALL],
                    "startTime": _graph_time(span.start),
                    "endTime": _graph_time(span.end),
                    "availabilityViewInterval": 30,
                },
                prefer='outlook.timezone="UTC"',
            )
            for i in range(0, len(people), SCHEDULES_PER_CALL)
            for span in spans
        ]
        if len(reqs) == 1:
            assert reqs[0].body is not None
            answers = [
                (200, self._read("POST", reqs[0].url, body=reqs[0].body, prefer=reqs[0].prefer))
            ]
        else:
            answers = self._batch(reqs)
        busy: dict[str, list[Interval]] = {}
        for status, body in answers:
            if status >= 400:
                raise self._error(status, {}, body)
            for entry in (body or {}).get("value") or []:
                who = str(entry.get("scheduleId") or "").lower()
                if entry.get("error"):
                    log.warning("no schedule for %s: %s", who, entry["error"].get("responseCode"))
                    continue
                spans_of = busy.setdefault(who, [])
                for item in entry.get("scheduleItems") or []:
                    if str(item.get("status", "")).lower() not in ("busy", "tentative", "oof"):
                        continue
                    try:
                        start = parse_datetime_tz(item["start"])
                        end = parse_datetime_tz(item["end"])
                    except (_Malformed, KeyError) as exc:
                        log.warning("unreadable schedule item for %s: %s", who, exc)
                        continue
                    start, end = max(start, window.start), min(end, window.end)
                    if start < end:
                        spans_of.append(Interval(start, end))
        return {who: _merge(spans_of) for who, spans_of in busy.items()}

    def events(self, cursor: str | None) -> EventSyncResult:
        """Events from 30 days back to a year ahead, by ``calendarView/delta``.

        The cursor is ``{"link": deltaLink, "end": iso}``; when its window no longer reaches
        three months ahead the calendar is listed again (``full=True``).
        """
        now = self._clock()
        url = ""
        if cursor is not None:
            try:
                stored = json.loads(cursor)
                url, end = str(stored["link"]), _instant(stored["end"])
            except (ValueError, KeyError, TypeError) as exc:
                raise CursorExpired(
                    "unreadable Outlook calendar cursor", mailbox=self.mailbox
                ) from exc
            if end - now < timedelta(days=90):
                url = ""
        full = not url
        if full:
            start, end = now - timedelta(days=30), now + timedelta(days=365)
            url = f"{self._root}/calendarView/delta?" + urlencode(
                {"startDateTime": _iso(start), "endDateTime": _iso(end)}
            )
        prefer = f'outlook.timezone="UTC", odata.maxpagesize={min(self._page_size, 200)}'
        rows: list[dict[str, Any]] = []
        while True:
            page = self._read("GET", url, prefer=prefer)
            rows.extend(page.get("value") or [])
            if page.get("@odata.nextLink"):
                url = str(page["@odata.nextLink"])
                continue
            link = str(page.get("@odata.deltaLink") or "")
            break
        if not link:
            raise CursorExpired("calendar delta ended without a delta link", mailbox=self.mailbox)
        events: dict[str, Event] = {}
        deleted: set[str] = set()
        skipped: list[tuple[str, str]] = []
        for row in rows:
            pid = str(row.get("id") or "")
            if "@removed" in row:
                deleted.add(pid)
                events.pop(pid, None)
                continue
            try:
                events[pid] = self._to_event(row)
            except (_Malformed, KeyError, ValueError) as exc:
                skipped.append((pid, str(exc)))
        return EventSyncResult(
            events=tuple(events.values()),
            cursor=json.dumps({"link": link, "end": _iso(end)}),
            deleted=tuple(sorted(deleted - set(events))),
            full=full,
            skipped=tuple(skipped),
        )

    def _to_event(self, row: Mapping[str, Any]) -> Event:
        show_as = str(row.get("showAs") or "busy").lower()
        status = (
            "cancelled"
            if row.get("isCancelled")
            else ("tentative" if show_as == "tentative" else "confirmed")
        )
        partstats = {
            "accepted": "ACCEPTED",
            "declined": "DECLINED",
            "tentativelyaccepted": "TENTATIVE",
            "organizer": "ACCEPTED",
        }
        # The mailbox owner's own answer is the event's responseStatus; the attendee rows of an
        # invitee's copy carry no reliable status for the owner.
        own = str(((row.get("responseStatus") or {}).get("response")) or "").lower()
        attendees = []
        for a in row.get("attendees") or ():
            who = _address(a)
            if who is None:
                continue
            response = str(((a.get("status") or {}).get("response")) or "").lower()
            if who.email == self.address.lower() and own in partstats:
                response = own
            attendees.append(Attendee(who.email, who.name, partstats.get(response, "NEEDS-ACTION")))
        organizer = _address(row.get("organizer"))
        return Event(
            mailbox=self.mailbox,
            provider_id=str(row["id"]),
            summary=str(row.get("subject") or ""),
            start=parse_datetime_tz(row["start"]),
            end=parse_datetime_tz(row["end"]),
            status=status,
            transparent=show_as in ("free", "workingelsewhere"),
            all_day=bool(row.get("isAllDay")),
            organizer=organizer.email if organizer else "",
            attendees=tuple(attendees),
            uid=str(row.get("iCalUId") or ""),
        )

    def create_event(self, invite: Invite) -> str:
        """Create the event and invite its attendees; return its immutable id.

        ``transactionId`` is derived from ``invite.key``, so Graph answers a repeated create with
        the event it already made: the create is safe to retry. A create whose body changed
        since (an invitation made again) is refused by Graph (``ErrorDuplicateTransactionId``):
        the event made the first time, found by the key property, is updated to it instead.
        Graph always sends invitations
        to attendees; ``invite.send_updates`` cannot turn that off. A hold
        (``invite.tentative``) is created ``showAs: "tentative"`` with no attendees, so nothing
        is sent.
        """
        body: dict[str, Any] = {
            "subject": invite.summary,
            "body": {"contentType": "Text", "content": invite.description},
            "start": _graph_time(invite.start),
            "end": _graph_time(invite.end),
            "transactionId": transaction_id(invite.key),
            "singleValueExtendedProperties": [{"id": KEY_PROPERTY, "value": invite.key}],
        }
        if invite.tentative:
            # Without attendees Graph sends no invitation; "tentative" still blocks the time in
            # getSchedule, so nobody else books the rep over a hold.
            body["showAs"] = "tentative"
        else:
            body["attendees"] = [
                {"emailAddress": {"address": a.email, "name": a.name}, "type": "required"}
                for a in invite.attendees
            ]
        if invite.location:
            body["location"] = {"displayName": invite.location}
        prefer = 'outlook.timezone="UTC"'
        try:
            row = self._read("POST", f"{self._root}/events", body=body, prefer=prefer)
        except Permanent as exc:
            if "errorduplicatetransactionid" not in str(exc).lower():
                raise
            event_id = self._find_event(invite.key)
            if event_id is None:
                raise
            fields = ("subject", "body", "start", "end", "location", "showAs")
            changes = {k: body[k] for k in fields if k in body}
            url = f"{self._root}/events/{quote(event_id, safe='')}"
            self._read("PATCH", url, body=changes, prefer=prefer)
            return event_id
        return str(row["id"])

    def _find_event(self, key: str) -> str | None:
        query = urlencode(
            {
                "$filter": _key_filter(key),
                "$select": "id",
                "$expand": KEY_EXPAND,
                "$top": "10",
            }
        )
        page = self._read("GET", f"{self._root}/events?{query}")
        for row in (page or {}).get("value") or []:
            if _key_of(row) == key:
                return str(row["id"])
        return None

    def delete_event(self, provider_id: str) -> None:
        """``DELETE /events/{id}``; an event already gone (404) counts as done.

        Raises ``Permanent`` for other refusals, ``Transient`` after the retry budget.
        """
        try:
            self._read("DELETE", f"{self._root}/events/{quote(provider_id, safe='')}")
        except Permanent as exc:
            # _error keeps only the text; it starts with the status Graph answered.
            if str(exc).startswith("Graph 404"):
                return
            raise


def _key_of(row: Mapping[str, Any]) -> str | None:
    """The outbox key in a row's expanded key property, if it has one."""
    for prop in row.get("singleValueExtendedProperties") or ():
        if isinstance(prop, Mapping) and str(prop.get("id", "")).lower() == KEY_PROPERTY.lower():
            return str(prop.get("value") or "")
    return None


def transaction_id(key: str) -> str:
    """A stable Graph ``transactionId`` for an invite key (a UUID: short, opaque, no key text)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"followup:invite:{key}"))


def _sent_ref(provider_id: str, row: Mapping[str, Any]) -> SentRef:
    message_id = str(row.get("internetMessageId") or "")
    return SentRef(provider_id, message_id, str(row.get("conversationId") or ""))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _split(window: Interval, span: timedelta) -> Iterator[Interval]:
    start = window.start
    while start < window.end:
        end = min(window.end, start + span)
        yield Interval(start, end)
        start = end


def _merge(spans: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for span in sorted(spans):
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _json_or_empty(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return {}
