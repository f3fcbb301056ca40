"""Gmail and Google Calendar behind the provider protocols, with google-api-python-client.

Mail: a full sync records ``getProfile().historyId`` first, lists every message id, then reads
headers with ``messages.get(format=metadata)`` in batches of at most 50; an incremental sync
walks ``history.list`` from the stored history id. Sending is ``drafts.create`` then
``drafts.send`` executed exactly once; ``find_sent`` and ``find_draft`` find a message again by
its ``X-Followup-Key`` header, because Gmail rewrites the Message-ID of mail sent through the API.

Calendar: ``events.list`` with sync tokens, ``freebusy.query`` in chunks the API accepts and
``events.insert`` with an id derived from the invite key, so creating twice makes one event.

Errors become :mod:`agent.errors` classes (see :func:`classify`). Reads are retried by
:func:`agent.providers.ratelimit.read_retrying`; sends never are. Each mailbox spends Gmail quota
units through one token bucket shared by every provider object of that mailbox. A provider
object holds an httplib2 connection, which is not thread-safe: use one per thread.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httplib2
from google.auth import exceptions as google_exceptions
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from agent.errors import (
    AuthRevoked,
    CursorExpired,
    Permanent,
    ProviderError,
    SendLimitReached,
    Transient,
)
from agent.mime import (
    MAX_ADDRESS_CHARS,
    MAX_ADDRESSES,
    MAX_VALUE_CHARS,
    HeaderInjection,
    MalformedMessage,
    addresses,
    body_text,
    decoded,
    outgoing_bytes,
    parse_date,
)
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
from agent.providers.google_auth import refresh_error
from agent.providers.protocol import KEY_HEADER, carries_key, key_tag
from agent.providers.ratelimit import Buckets, TokenBucket, read_retrying

log = logging.getLogger(__name__)

T = TypeVar("T")
_C = TypeVar("_C", bound="_GoogleClient")
ServiceFactory = Callable[[str, str], Any]

METADATA_HEADERS = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Autoreply",
    "Precedence",
    "List-Id",
    "Content-Type",
    KEY_HEADER,
    "Return-Path",
)
_ADDRESS_HEADERS = {"from", "to", "cc", "message-id", "in-reply-to", "references", "date"}
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")

# Gmail quota units per call (Gmail API quota reference).
# The system label ids (users.labels resource, "Manage labels"): read by id, never renamed.
SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
MAX_LABELS = 10_000  # Gmail allows 10,000 labels per mailbox
UNITS = {
    "getProfile": 1,
    "history.list": 2,
    "messages.list": 5,
    "messages.get": 5,
    "drafts.list": 5,
    "drafts.get": 5,
    "drafts.create": 10,
    "drafts.send": 100,
    "drafts.delete": 10,
    "labels.list": 1,
}
# 15,000 units/min per user (6,000 for newer Cloud projects): 100 units/s stays under both, and
# a burst of 500 lets one 50-message batch (250 units) through without waiting.
GMAIL_UNITS_PER_S = 100.0
GMAIL_BURST = 500.0
CALENDAR_REQUESTS_PER_S = 5.0
CALENDAR_BURST = 20.0
BATCH_SIZE = 50  # the batch guide: at most 100, more than 50 not recommended
# A windowed first sync stores this many messages per pass, newest first: 5,000 units, under a
# minute at the default pacing, so a mailbox being onboarded holds a worker slot no longer.
FIRST_SYNC_CHUNK = 1000
PAGE_SIZE = 500  # the maximum messages.list and history.list accept
FREEBUSY_MAX_CALENDARS = 50
FREEBUSY_MAX_SPAN = timedelta(days=60)  # the API refuses spans of about 90 days and more
SEND_LIMIT_WAIT = 3600.0

_gmail_buckets = Buckets(GMAIL_UNITS_PER_S, GMAIL_BURST)
_calendar_buckets = Buckets(CALENDAR_REQUESTS_PER_S, CALENDAR_BURST)

_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "concurrentLimitExceeded"}
_DAILY_REASONS = {"dailyLimitExceeded", "quotaExceeded", "dailyLimitExceededUnreg"}
_RETRY_AT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")


# --------------------------------------------------------------------------- services


def google_services(credentials: Any, *, root: str | None = None) -> ServiceFactory:
    """A factory building Gmail and Calendar services with static discovery.

    ``root`` replaces Google's hosts (an emulator's ``http://127.0.0.1:PORT/``); Calendar's
    discovery paths lack their ``calendar/v3/`` prefix, so it is added here.
    """

    def factory(api: str, version: str) -> Any:
        options = None
        if root:
            endpoint = root if api == "gmail" else urllib.parse.urljoin(root, f"{api}/{version}/")
            options = {"api_endpoint": endpoint}
        service = build_from_document(
            _discovery(api, version), credentials=credentials, client_options=options
        )
        # A service caches the docstrings it renders for every method of the resources it hands
        # out, about 0.2 MB once users, messages, history and events were used: a cache shared
        # by all the services of one document keeps 1,000 mailboxes from holding 1,000 copies.
        service._schema.pretty = _rendered(api, version)
        return service

    return factory


@functools.cache
def _rendered(api: str, version: str) -> dict[str, str]:
    return {}


@functools.cache
def _discovery(api: str, version: str) -> dict[str, Any]:
    """The discovery document shipped with the client library, parsed once per process.

    ``build(static_discovery=True)`` parses it again for every service: about 0.4 MB each, so
    a worker holding 1,000 Gmail mailboxes (a Gmail and a Calendar service apiece) kept 800 MB
    of identical copies. Services only add derived parameters to the methods they create, the
    same ones every time; every resource is visited here once, so that later services find
    them added and change nothing while another thread reads.
    """
    content = discovery_cache.get_static_doc(api, version)
    if content is None:
        raise Permanent(f"the client library ships no discovery document for {api} {version}")
    document: dict[str, Any] = json.loads(content)

    def visit(resource: Any, description: dict[str, Any]) -> None:
        for name, nested in description.get("resources", {}).items():
            visit(getattr(resource, name)(), nested)

    visit(build_from_document(document, http=httplib2.Http()), document)
    return document


# --------------------------------------------------------------------------- errors


def _error_fields(exc: HttpError) -> tuple[str, str]:
    """(reason, message) of a Google JSON error body; empty strings when it has none."""
    try:
        content = exc.content.decode("utf-8", "replace")
        error = json.loads(content).get("error", {})
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", str(error)
    errors = error.get("errors") or [{}]
    reason = errors[0].get("reason", "") if isinstance(errors[0], dict) else ""
    return str(reason or error.get("status", "")), str(error.get("message", ""))


def retry_after_seconds(
    value: str | None, message: str = "", *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date) or Gmail's
    ``Retry after <RFC 3339 time>`` message text; ``None`` when neither says."""
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - now())
        except (TypeError, ValueError, IndexError):
            pass
    found = _RETRY_AT.search(message)
    if found:
        when = datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
        return max(0.0, when.timestamp() - now())
    return None


def classify(exc: HttpError, *, mailbox: str, sending: bool = False) -> ProviderError:
    """Map a Google HTTP error to the most specific :mod:`agent.errors` class.

    429, 5xx and 403 rate-limit reasons -> ``Transient`` (with Retry-After); 403 daily or quota
    reasons on a send -> ``SendLimitReached``; 401 -> ``AuthRevoked``; other 4xx ->
    ``Permanent``.
    """
    status = int(exc.resp.status)
    reason, message = _error_fields(exc)
    text = f"Google answered {status} {reason or ''}: {message or exc.reason}".strip()
    after = retry_after_seconds(exc.resp.get("retry-after"), message)
    if status == 401:
        return AuthRevoked(f"{text}; reconnect the mailbox", mailbox=mailbox)
    limited = reason in _DAILY_REASONS or "sending limit" in message.lower()
    if sending and status in (403, 429) and limited:
        return SendLimitReached(text, retry_after=after or SEND_LIMIT_WAIT, mailbox=mailbox)
    if status == 429 or status >= 500:
        return Transient(text, retry_after=after, mailbox=mailbox)
    if status == 403 and reason in _RATE_REASONS:
        return Transient(text, retry_after=after, mailbox=mailbox)
    if status == 403 and reason in _DAILY_REASONS:
        return Transient(text, retry_after=after or SEND_LIMIT_WAIT, mailbox=mailbox)
    return Permanent(text, mailbox=mailbox)


def _status(exc: HttpError) -> int:
    return int(exc.resp.status)


# --------------------------------------------------------------------------- parsing


# The email package joins a display name's words with one space: "A \t A" reads "A A". One
# character class repeated: linear on any input.
_FOLD = re.compile(r"[ \t\r\n]+")


def _plain(piece: str) -> Address | None:
    """``a@b`` or ``Name <a@b>`` read without a regular expression (linear on any input), or
    None when ``piece`` has any other form."""
    piece = piece.strip()
    name = ""
    if piece.endswith(">"):
        open_at = piece.find("<")
        if open_at < 0 or piece.count("<") != 1:
            return None
        name, piece = piece[:open_at].strip(), piece[open_at + 1 : -1]
    if piece.count("@") != 1 or piece.startswith("@") or piece.endswith("@"):
        return None
    if "<" in piece or ">" in piece or len(piece.split()) != 1 or piece != piece.strip():
        return None
    return Address(piece, decoded(_FOLD.sub(" ", name)) if name else "")


_HARD = frozenset('"()\\;:[]')


@functools.lru_cache(maxsize=8192)
def _addresses(value: str) -> tuple[Address, ...]:
    """Addresses of a From/To/Cc value, at most ``mime.MAX_ADDRESSES``. The plain forms
    (``a@b``, ``Name <a@b>``, lists of them) take a fast path; anything with quotes, comments
    or groups goes to :func:`agent.mime.addresses`, which is exact, bounded and never raises.
    Cached: a mailbox sees the same few senders."""
    if len(value) <= MAX_ADDRESS_CHARS and not _HARD.intersection(value):
        found: list[Address] = []
        for piece in value.split(","):
            if not piece.strip():
                continue
            address = _plain(piece)
            if address is None:
                break
            found.append(address)
        else:
            return tuple(found[:MAX_ADDRESSES])
    return addresses([value])


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.split() if p.startswith("<") and p.endswith(">"))


def parse_metadata(mailbox: str, resource: Mapping[str, Any]) -> Message:
    """A :class:`Message` from a ``users.messages`` resource read with format=metadata.

    Raises ``MalformedMessage`` (with a reason) when the From address or the Date is unusable.
    """
    headers: dict[str, str] = {}
    for header in resource.get("payload", {}).get("headers", ()):
        name = str(header.get("name", "")).lower()
        value = str(header.get("value", ""))
        if name not in ("from", "to", "cc"):
            value = value[:MAX_VALUE_CHARS]
        if name in headers and name in ("to", "cc", "references"):
            headers[name] = f"{headers[name]}, {value}" if name != "references" else value
        elif name not in headers:
            headers[name] = value
    senders = _addresses(headers.get("from", ""))
    if not senders:
        raise MalformedMessage("no From address")
    if not headers.get("date"):
        raise MalformedMessage("no Date header")
    kept = {
        k: (decoded(v) if k == "subject" else v)
        for k, v in headers.items()
        if k not in _ADDRESS_HEADERS
    }
    return Message(
        mailbox=mailbox,
        provider_id=str(resource["id"]),
        thread_id=str(resource.get("threadId", "")),
        message_id=headers.get("message-id", "").strip(),
        sender=senders[0],
        to=_addresses(headers.get("to", "")),
        cc=_addresses(headers.get("cc", "")),
        date=parse_date(headers["date"]),
        subject=decoded(headers.get("subject", "")),
        in_reply_to=headers.get("in-reply-to", "").strip(),
        references=_message_ids(headers.get("references", "")),
        headers=kept,
        labels=frozenset(resource.get("labelIds", ())),
    )


def _header(resource: Mapping[str, Any], name: str) -> str | None:
    wanted = name.lower()
    for header in resource.get("payload", {}).get("headers", ()):
        if header.get("name", "").lower() == wanted:
            return str(header.get("value", ""))
    return None


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------- shared plumbing


class _GoogleClient:
    def __init__(
        self,
        mailbox: str,
        *,
        bucket: TokenBucket,
        retries: int,
        max_wait: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.mailbox = mailbox
        self._bucket = bucket
        self._retries = retries
        self._max_wait = max_wait
        self._sleep = sleep

    _service: Any

    def close(self) -> None:
        """Close the HTTP connections this provider holds."""
        self._service.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(
        self,
        request: Any,
        *,
        units: float = 1,
        sending: bool = False,
        expired_on: int | None = None,
    ) -> Any:
        """Run one request once; translate every failure into an agent error."""
        self._bucket.take(units)
        try:
            if isinstance(request, BatchHttpRequest):
                return request.execute()
            # num_retries=0: the client's own retries would repeat sends.
            return request.execute(num_retries=0)
        except HttpError as exc:
            if expired_on is not None and _status(exc) == expired_on:
                raise CursorExpired(
                    f"the sync cursor of {self.mailbox} expired", mailbox=self.mailbox
                ) from exc
            raise classify(exc, mailbox=self.mailbox, sending=sending) from exc
        except google_exceptions.RefreshError as exc:
            raise refresh_error(exc, mailbox=self.mailbox) from exc
        except (httplib2.HttpLib2Error, google_exceptions.TransportError, OSError) as exc:
            raise Transient(
                f"network error talking to Google: {exc!r}", mailbox=self.mailbox
            ) from exc

    def _read(self, make: Callable[[], Any], *, units: float = 1, **kw: Any) -> Any:
        """Run a read, retrying ``Transient`` failures with backoff that honours Retry-After."""
        retrying = read_retrying(self._retries, self._max_wait, sleep=self._sleep)
        return retrying(lambda: self._execute(make(), units=units, **kw))


# --------------------------------------------------------------------------- mail


@dataclass(frozen=True)
class _Chunk:
    """One chunk of a windowed first sync and the window's state after it."""

    messages: tuple[Message, ...]
    skipped: tuple[tuple[str, str], ...]
    window: dict[str, Any]


class GmailProvider(_GoogleClient):
    """The :class:`~agent.providers.protocol.MailProvider` for one Gmail mailbox."""

    name = "gmail"
    sent_copy_lag = timedelta(0)  # drafts.send answers once the message is in SENT

    def __init__(
        self,
        mailbox: str,
        address: str,
        service_factory: ServiceFactory,
        *,
        bucket: TokenBucket | None = None,
        batch_size: int = BATCH_SIZE,
        page_size: int = PAGE_SIZE,
        sent_window_days: int = 7,
        first_sync_days: int | None = None,
        first_sync_chunk: int = FIRST_SYNC_CHUNK,
        retries: int = 5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            mailbox,
            bucket=bucket or _gmail_buckets.get(mailbox),
            retries=retries,
            max_wait=max_wait,
            sleep=sleep,
        )
        self.address = address.lower()
        self._service = service_factory("gmail", "v1")
        self._users = self._service.users()
        # The discovery document's batch URL names Google's host even when api_endpoint is
        # overridden, so derive Gmail's batch endpoint from the service's own base URL.
        self._batch_uri = urllib.parse.urljoin(self._service._baseUrl, "batch/gmail/v1")
        self._batch_size = min(batch_size, 100)
        self._page_size = page_size
        self._sent_window_days = sent_window_days
        self._first_sync_days = first_sync_days
        self._first_sync_chunk = max(1, first_sync_chunk)
        # Label id -> what Message.labels carries: the name of a user label, a system label's id.
        self._label_names: dict[str, str] = {x: x for x in SYSTEM_LABELS}

    def __repr__(self) -> str:
        return f"GmailProvider(mailbox={self.mailbox!r})"

    # ---------------------------------------------------------------- batches

    def _batch(
        self,
        keys: list[str],
        make: Callable[[str], Any],
        units_each: float,
        *,
        refused: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], set[str]]:
        """Run ``make(key)`` for every key in batches; return (results by key, keys not found).

        Parts that failed transiently are retried alone, with the same backoff as any read;
        any other failed part raises its classified error, or, when ``refused`` is given and
        the error is ``Permanent``, is recorded there with its reason and skipped.
        """
        results: dict[str, Any] = {}
        missing: set[str] = set()
        for chunk in _chunks(keys, self._batch_size):
            pending = list(chunk)

            def one_round(pending: list[str] = pending) -> None:
                failures: dict[str, HttpError] = {}

                def collect(rid: str, response: Any, exc: HttpError | None) -> None:
                    if exc is None:
                        results[rid] = response
                    else:
                        failures[rid] = exc

                batch = BatchHttpRequest(callback=collect, batch_uri=self._batch_uri)
                for key in pending:
                    batch.add(make(key), request_id=key)
                self._execute(batch, units=units_each * len(pending))
                transient: list[Transient] = []
                for rid, exc in failures.items():
                    if _status(exc) == 404:
                        missing.add(rid)
                        continue
                    err = classify(exc, mailbox=self.mailbox)
                    if refused is not None and isinstance(err, Permanent):
                        refused[rid] = str(err)[:300]
                        continue
                    if not isinstance(err, Transient):
                        raise err from exc
                    transient.append(err)
                pending[:] = [
                    rid for rid in failures if rid not in missing and rid not in (refused or ())
                ]
                if transient:
                    after = max((t.retry_after or 0.0) for t in transient) or None
                    raise Transient(
                        f"{len(transient)} of a batch failed: {transient[0]}",
                        retry_after=after,
                        mailbox=self.mailbox,
                    )

            retrying = read_retrying(self._retries, self._max_wait, sleep=self._sleep)
            retrying(one_round)
        return results, missing

    def _named(self, message: Message) -> Message:
        """``message`` with its user labels by name (``Followup/Stop``, not ``Label_12``):
        users.labels.list is read again when a label id is new to this provider."""
        if message.labels - self._label_names.keys():
            listing = self._read(
                lambda: self._users.labels().list(userId="me"), units=UNITS["labels.list"]
            )
            for label in listing.get("labels", ())[:MAX_LABELS]:
                label_id, name = str(label.get("id", "")), str(label.get("name", ""))[:255]
                self._label_names[label_id] = name if label.get("type") == "user" else label_id
            for label_id in message.labels - self._label_names.keys():
                self._label_names[label_id] = label_id  # deleted since: keep the id
        named = frozenset(self._label_names.get(x, x) for x in message.labels)
        return dataclasses.replace(message, labels=named)

    def _metadata(self, headers: Iterable[str]) -> Callable[[str], Any]:
        names = list(headers)
        messages = self._users.messages()
        return lambda mid: messages.get(
            userId="me", id=mid, format="metadata", metadataHeaders=names
        )

    def _parse(
        self, ids: Iterable[str], fetched: Mapping[str, Any]
    ) -> tuple[list[Message], list[str], list[tuple[str, str]]]:
        """(messages, ids to treat as deleted, skipped) from fetched metadata, in ``ids`` order."""
        messages: list[Message] = []
        gone: list[str] = []
        skipped: list[tuple[str, str]] = []
        for mid in ids:
            resource = fetched.get(mid)
            if resource is None:
                continue
            labels = set(resource.get("labelIds", ()))
            if "DRAFT" in labels:
                continue  # a draft is not mail yet; it shows up once sent
            if labels & {"SPAM", "TRASH"}:
                gone.append(mid)
                continue
            try:
                messages.append(self._named(parse_metadata(self.mailbox, resource)))
            except MalformedMessage as exc:
                skipped.append((mid, str(exc)))
            except Exception as exc:  # one message the parser chokes on must not stop the sync
                skipped.append((mid, f"unreadable headers: {type(exc).__name__}"))
        return messages, gone, skipped

    # ---------------------------------------------------------------- sync

    def sync(self, cursor: str | None) -> SyncResult:
        """Changes since ``cursor`` (a Gmail history id); ``None`` starts over.

        Starting over lists the whole mailbox, or, with ``first_sync_days``, only mail of the
        last so many days before the newest message, newest first and ``first_sync_chunk``
        messages per call: the cursor
        then also says how far back the listing has come (see
        :func:`agent.providers.protocol.first_sync_of`), and each later call reads the history
        since the last one and the next older chunk, until the window is read.

        Returns ``SyncResult`` whose cursor is what to pass next time. Raises
        ``CursorExpired`` when Gmail no longer holds history that old (404).
        """
        if cursor is None:
            return self._full_sync() if self._first_sync_days is None else self._first_window()
        if not cursor.startswith("{"):
            return self._incremental(cursor)
        try:
            state = json.loads(cursor)
            history = str(state["history"])
            window = state["first_sync"]
            before = int(window["before"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CursorExpired(
                f"unreadable cursor of {self.mailbox}", mailbox=self.mailbox
            ) from exc
        changes = self._incremental(history)
        older = self._window_chunk(window, before)
        merged = {m.provider_id: m for m in older.messages}
        merged.update((m.provider_id, m) for m in changes.messages)
        for gone in changes.deleted:
            merged.pop(gone, None)
        return SyncResult(
            tuple(merged.values()),
            cursor=self._window_cursor(changes.cursor, older),
            deleted=changes.deleted,
            full=False,
            skipped=(*changes.skipped, *older.skipped),
        )

    def _first_window(self) -> SyncResult:
        """The newest chunk of the look-back window; the rest comes with the next syncs.

        Not ``full``: mail older than the window stays in the store, where a resync after an
        expired cursor finds it (and the planners' thread context with it).
        """
        profile = self._read(lambda: self._users.getProfile(userId="me"), units=UNITS["getProfile"])
        history = str(profile["historyId"])
        # The window ends at the newest message, not at this machine's clock: a mailbox read in
        # a replay (``followup run --now``) or by a skewed host still gets its last days.
        messages = self._users.messages()
        page = self._read(
            lambda: messages.list(userId="me", maxResults=1), units=UNITS["messages.list"]
        )
        newest = [m["id"] for m in page.get("messages", ())]
        if not newest:
            return SyncResult((), cursor=history, full=False)
        top = self._read(
            lambda: messages.get(
                userId="me", id=newest[0], format="metadata", metadataHeaders=["Date"]
            ),
            units=UNITS["messages.get"],
        )
        started = datetime.fromtimestamp(int(top.get("internalDate", 0)) / 1000, UTC)
        floor = started - timedelta(days=self._first_sync_days or 0)
        window = {"started": started.isoformat(), "floor": floor.isoformat()}
        chunk = self._window_chunk(window, None)
        return SyncResult(
            chunk.messages,
            cursor=self._window_cursor(history, chunk),
            full=False,
            skipped=chunk.skipped,
        )

    def _window_chunk(self, window: dict[str, Any], before: int | None) -> _Chunk:
        """Up to ``first_sync_chunk`` messages of the window older than ``before`` (seconds
        since the epoch), newest first, and where the next chunk starts."""
        floor = datetime.fromisoformat(str(window["floor"]))
        query = f"after:{int(floor.timestamp())}" + (f" before:{before}" if before else "")
        messages = self._users.messages()
        ids: list[str] = []
        token: str | None = None
        while len(ids) < self._first_sync_chunk:
            size = min(self._page_size, self._first_sync_chunk - len(ids))
            page = self._read(
                lambda t=token, n=size: messages.list(  # type: ignore[misc]
                    userId="me", q=query, maxResults=n, pageToken=t
                ),
                units=UNITS["messages.list"],
            )
            ids.extend(m["id"] for m in page.get("messages", ()))
            token = page.get("nextPageToken")
            if not token:
                break
        fetched, _missing = self._batch(
            ids, self._metadata(METADATA_HEADERS), UNITS["messages.get"]
        )
        found, _gone, skipped = self._parse(ids, fetched)
        stamps = [int(r.get("internalDate", 0)) for r in fetched.values() if r.get("internalDate")]
        next_before = before
        if token and stamps:
            # ``before:`` is exclusive and counts whole seconds: start the next chunk one second
            # past the oldest message read, re-reading that second rather than skipping any of it.
            next_before = min(stamps) // 1000 + 1
            if before is not None and next_before >= before:
                next_before = before - 1
        if not token:
            reached = floor
        elif stamps:
            reached = datetime.fromtimestamp(min(stamps) / 1000, UTC)
        else:  # the whole chunk was deleted before it could be read: no step taken
            reached = datetime.fromisoformat(str(window.get("reached", window["started"])))
        window = {**window, "reached": reached.isoformat(), "before": next_before}
        progress = {**window, "more": bool(token)}
        log.info(
            "first sync of %s: %d messages, back to %s",
            self.mailbox,
            len(found),
            reached.date().isoformat(),
        )
        return _Chunk(tuple(found), tuple(skipped), progress)

    @staticmethod
    def _window_cursor(history: str, chunk: _Chunk) -> str:
        if not chunk.window.get("more"):
            return history  # the window is read: from now on, history alone
        window = {k: v for k, v in chunk.window.items() if k != "more"}
        return json.dumps({"history": history, "first_sync": window}, sort_keys=True)

    def _full_sync(self) -> SyncResult:
        # The history id is read before listing so that anything arriving during the listing
        # is seen again by the next incremental sync instead of falling between the two.
        profile = self._read(lambda: self._users.getProfile(userId="me"), units=UNITS["getProfile"])
        start = str(profile["historyId"])
        ids: list[str] = []
        token: str | None = None
        messages = self._users.messages()
        while True:
            page = self._read(
                lambda t=token: messages.list(  # type: ignore[misc]
                    userId="me", maxResults=self._page_size, pageToken=t
                ),
                units=UNITS["messages.list"],
            )
            ids.extend(m["id"] for m in page.get("messages", ()))
            token = page.get("nextPageToken")
            if not token:
                break
        fetched, _missing = self._batch(
            ids, self._metadata(METADATA_HEADERS), UNITS["messages.get"]
        )
        found, _gone, skipped = self._parse(ids, fetched)
        log.info("full sync of %s: %d messages, %d skipped", self.mailbox, len(found), len(skipped))
        return SyncResult(tuple(found), cursor=start, full=True, skipped=tuple(skipped))

    def _incremental(self, cursor: str) -> SyncResult:
        changed: dict[str, None] = {}  # insertion-ordered set
        added: set[str] = set()
        deleted: set[str] = set()
        latest = cursor
        token: str | None = None
        history = self._users.history()
        while True:
            page = self._read(
                lambda t=token: history.list(  # type: ignore[misc]
                    userId="me",
                    startHistoryId=cursor,
                    historyTypes=list(HISTORY_TYPES),
                    maxResults=self._page_size,
                    pageToken=t,
                ),
                units=UNITS["history.list"],
                expired_on=404,
            )
            for record in page.get("history", ()):
                for item in record.get("messagesAdded", ()):
                    msg = item["message"]
                    if "DRAFT" in msg.get("labelIds", ()):
                        continue
                    added.add(msg["id"])
                    changed[msg["id"]] = None
                for item in record.get("messagesDeleted", ()):
                    mid = item["message"]["id"]
                    changed.pop(mid, None)
                    if mid in added:
                        added.discard(mid)  # came and went inside the window: never report it
                    else:
                        deleted.add(mid)
                for field in ("labelsAdded", "labelsRemoved"):
                    for item in record.get(field, ()):
                        mid = item["message"]["id"]
                        if mid not in deleted:
                            changed[mid] = None
            latest = str(page.get("historyId", latest))
            token = page.get("nextPageToken")
            if not token:
                break
        ids = list(changed)
        fetched, missing = self._batch(ids, self._metadata(METADATA_HEADERS), UNITS["messages.get"])
        found, gone, skipped = self._parse(ids, fetched)
        # Fetched-but-gone (deleted since the history record) counts as deleted too.
        deleted |= {m for m in missing if m not in added} | set(gone)
        return SyncResult(
            tuple(found),
            cursor=latest,
            deleted=tuple(sorted(deleted)),
            full=False,
            skipped=tuple(skipped),
        )

    def fetch_body(self, provider_id: str) -> str:
        """The text/plain body of one message (format=raw, decoded by agent.mime).

        Raises ``Permanent`` when the message no longer exists.
        """
        resource = self._read(
            lambda: self._users.messages().get(userId="me", id=provider_id, format="raw"),
            units=UNITS["messages.get"],
        )
        raw = base64.urlsafe_b64decode(resource["raw"] + "=" * (-len(resource["raw"]) % 4))
        return body_text(raw)

    def fetch_bodies(self, provider_ids: Sequence[str]) -> Bodies:
        """The text/plain bodies of ``provider_ids``, ``messages.get(format=raw)`` in batches of
        at most 50: 1,000 bodies take 20 requests (and 5,000 quota units, the same as one by
        one: each part of a batch costs its own units).

        Messages deleted since the sync, refused or undecodable go to ``Bodies.failed``.
        """
        messages = self._users.messages()
        ids = list(dict.fromkeys(provider_ids))
        refused: dict[str, str] = {}
        fetched, missing = self._batch(
            ids,
            lambda mid: messages.get(userId="me", id=mid, format="raw"),
            UNITS["messages.get"],
            refused=refused,
        )
        found: dict[str, str] = {}
        failed = {mid: "the message is gone from Gmail" for mid in missing}
        failed.update(refused)
        for mid in ids:
            resource = fetched.get(mid)
            if resource is None:
                continue
            try:
                text = str(resource["raw"])
                found[mid] = body_text(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            except (KeyError, ValueError, TypeError, MalformedMessage) as exc:
                failed[mid] = f"unreadable body: {exc}"[:300]
        return Bodies(found, failed)

    # ---------------------------------------------------------------- sending

    def draft(self, message: EmailMessage, *, key: str, thread_id: str = "") -> str:
        """Create a draft carrying ``key``'s tag in its X-Followup-Key header; return its id.

        Not retried: a lost answer could leave two drafts; the outbox asks ``find_draft`` first.
        """
        outgoing = copy.deepcopy(message)
        del outgoing[KEY_HEADER]
        outgoing[KEY_HEADER] = key_tag(key)
        try:
            raw = outgoing_bytes(outgoing)
        except HeaderInjection as exc:
            raise Permanent(str(exc), mailbox=self.mailbox) from exc
        body: dict[str, Any] = {"message": {"raw": base64.urlsafe_b64encode(raw).decode()}}
        if thread_id:
            body["message"]["threadId"] = thread_id
        created = self._execute(
            self._users.drafts().create(userId="me", body=body),
            units=UNITS["drafts.create"],
        )
        return str(created["id"])

    def send_draft(
        self, draft_id: str, *, before_post: Callable[[], None] | None = None
    ) -> SentRef:
        """Send the draft exactly once and return its ids, with the Message-ID Gmail gave it.

        Raises ``SendLimitReached`` at the daily sending limit, ``Transient`` when the outcome is
        unknown (the outbox then asks ``find_sent``), ``Permanent`` when the draft is gone.
        """
        if before_post is not None:
            before_post()
        sent = self._execute(
            self._users.drafts().send(userId="me", body={"id": draft_id}),
            units=UNITS["drafts.send"],
            sending=True,
        )
        provider_id = str(sent["id"])
        thread_id = str(sent.get("threadId", ""))
        try:
            meta = self._read(
                lambda: self._users.messages().get(
                    userId="me", id=provider_id, format="metadata", metadataHeaders=["Message-ID"]
                ),
                units=UNITS["messages.get"],
            )
            message_id = _header(meta, "Message-ID") or ""
        except ProviderError:
            # The send happened: report it, never a failure that could make anyone send again.
            log.warning("sent %s but could not read its Message-ID back", provider_id)
            message_id = ""
        return SentRef(provider_id=provider_id, message_id=message_id, thread_id=thread_id)

    def find_sent(self, key: str) -> SentRef | None:
        """The sent message carrying ``key`` within the last ``sent_window_days`` days.

        Gmail search does not index custom headers and rewrites Message-IDs, so this lists SENT
        messages newest first and reads their X-Followup-Key, a batch per page, stopping at the
        first match: after a crash the message sought is nearly always on the first page.
        """
        messages = self._users.messages()
        token: str | None = None
        while True:
            page = self._read(
                lambda t=token: messages.list(  # type: ignore[misc]
                    userId="me",
                    labelIds=["SENT"],
                    q=f"newer_than:{self._sent_window_days}d",
                    maxResults=self._batch_size,
                    pageToken=t,
                ),
                units=UNITS["messages.list"],
            )
            ids = [m["id"] for m in page.get("messages", ())]
            fetched, _ = self._batch(
                ids, self._metadata([KEY_HEADER, "Message-ID"]), UNITS["messages.get"]
            )
            for mid in ids:
                resource = fetched.get(mid)
                if resource is not None and carries_key(_header(resource, KEY_HEADER), key):
                    return SentRef(
                        provider_id=mid,
                        message_id=_header(resource, "Message-ID") or "",
                        thread_id=str(resource.get("threadId", "")),
                    )
            token = page.get("nextPageToken")
            if not token:
                return None

    def find_draft(self, key: str) -> str | None:
        """The id of the unsent draft carrying ``key``, or ``None``.

        drafts.list, then drafts.get(format=metadata) in batches comparing X-Followup-Key.
        """
        drafts = self._users.drafts()
        token: str | None = None
        while True:
            page = self._read(
                lambda t=token: drafts.list(  # type: ignore[misc]
                    userId="me", maxResults=self._batch_size, pageToken=t
                ),
                units=UNITS["drafts.list"],
            )
            ids = [d["id"] for d in page.get("drafts", ())]
            fetched, _ = self._batch(
                ids,
                lambda did: drafts.get(userId="me", id=did, format="metadata"),
                UNITS["drafts.get"],
            )
            for did in ids:
                resource = fetched.get(did)
                if resource is not None and carries_key(
                    _header(resource.get("message", {}), KEY_HEADER), key
                ):
                    return did
            token = page.get("nextPageToken")
            if not token:
                return None

    def discard_draft(self, draft_id: str) -> None:
        """``drafts.delete``: gone at once, not trashed. A draft id ends with its draft: once the
        rep has sent it, the id is unknown (404) and the sent message is out of reach."""
        drafts = self._users.drafts()
        try:
            self._read(
                lambda: drafts.delete(userId="me", id=draft_id), units=UNITS["drafts.delete"]
            )
        except Permanent as exc:
            cause = exc.__cause__
            if isinstance(cause, HttpError) and _status(cause) in (404, 410):
                return
            raise


# --------------------------------------------------------------------------- calendar


def event_id_for(key: str) -> str:
    """A Calendar event id for an invite key: base32hex of its SHA-256, lower case, 52 chars.

    Calendar accepts ids of 5-1024 characters from a-v and 0-9; the same key always gives the
    same id, so a second insert answers 409 instead of creating a duplicate.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


_PARTSTAT = {
    "needsAction": "NEEDS-ACTION",
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _event_time(part: Mapping[str, Any], zone: ZoneInfo) -> tuple[datetime, bool]:
    """(UTC instant, all-day?) of an event's start or end."""
    if "dateTime" in part:
        value = datetime.fromisoformat(str(part["dateTime"]).replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=_zone(part["timeZone"]) if "timeZone" in part else zone)
        return value.astimezone(UTC), False
    day = date.fromisoformat(str(part["date"]))
    # An all-day event spans whole days of the calendar's own zone.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC), True


def parse_event(mailbox: str, item: Mapping[str, Any], zone: ZoneInfo) -> Event:
    """An :class:`Event` from a Calendar ``events`` resource; raises KeyError/ValueError when
    its start or end is missing or unreadable."""
    start, all_day = _event_time(item["start"], zone)
    end, _ = _event_time(item["end"], zone)
    return Event(
        mailbox=mailbox,
        provider_id=str(item["id"]),
        summary=str(item.get("summary", "")),
        start=start,
        end=end,
        status=str(item.get("status", "confirmed")),
        transparent=item.get("transparency") == "transparent",
        all_day=all_day,
        organizer=str(item.get("organizer", {}).get("email", "")).lower(),
        attendees=tuple(
            Attendee(
                email=str(a.get("email", "")).lower(),
                name=str(a.get("displayName", "")),
                partstat=_PARTSTAT.get(str(a.get("responseStatus", "")), "NEEDS-ACTION"),
            )
            for a in item.get("attendees", ())
        ),
        uid=str(item.get("iCalUID", "")),
    )


def _merge(spans: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for span in sorted(spans):
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class GoogleCalendarProvider(_GoogleClient):
    """The :class:`~agent.providers.protocol.CalendarProvider` for one Google calendar."""

    name = "google-calendar"

    def __init__(
        self,
        mailbox: str,
        service_factory: ServiceFactory,
        *,
        calendar_id: str = "primary",
        bucket: TokenBucket | None = None,
        page_size: int = 250,
        retries: int = 5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            mailbox,
            bucket=bucket or _calendar_buckets.get(mailbox),
            retries=retries,
            max_wait=max_wait,
            sleep=sleep,
        )
        self.calendar_id = calendar_id
        self._service = service_factory("calendar", "v3")
        self._page_size = page_size

    def __repr__(self) -> str:
        return f"GoogleCalendarProvider(mailbox={self.mailbox!r})"

    def events(self, cursor: str | None) -> EventSyncResult:
        """Events changed since ``cursor`` (a sync token); ``None`` lists every event.

        Recurring events come expanded (singleEvents). Cancelled events go to ``deleted``.
        Raises ``CursorExpired`` when the sync token is gone (410).
        """
        api = self._service.events()
        found: list[Event] = []
        deleted: list[str] = []
        skipped: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "calendarId": self.calendar_id,
                "singleEvents": True,
                "maxResults": self._page_size,
            }
            if cursor:
                params["syncToken"] = cursor
            if token:
                params["pageToken"] = token
            page = self._read(lambda p=params: api.list(**p), expired_on=410)  # type: ignore[misc]
            zone = _zone(str(page.get("timeZone", "UTC")))
            for item in page.get("items", ()):
                if item.get("status") == "cancelled":
                    deleted.append(str(item["id"]))
                    continue
                try:
                    found.append(parse_event(self.mailbox, item, zone))
                except (KeyError, ValueError, TypeError) as exc:
                    skipped.append((str(item.get("id", "")), f"unreadable start or end: {exc}"))
            token = page.get("nextPageToken")
            if not token:
                # nextSyncToken comes only with the last page.
                next_cursor = str(page.get("nextSyncToken", cursor or ""))
                break
        return EventSyncResult(
            tuple(found),
            cursor=next_cursor,
            deleted=tuple(deleted),
            full=cursor is None,
            skipped=tuple(skipped),
        )

    def freebusy(self, calendar_ids: list[str], window: Interval) -> dict[str, list[Interval]]:
        """Busy intervals per calendar inside ``window``, merged and sorted.

        Asks in chunks the API accepts (50 calendars, spans under 90 days). Raises
        ``Permanent`` when Google cannot read one of the calendars.
        """
        busy: dict[str, list[Interval]] = {cid: [] for cid in calendar_ids}
        api = self._service.freebusy()
        for group in _chunks(list(calendar_ids), FREEBUSY_MAX_CALENDARS):
            start = window.start
            while start < window.end:
                end = min(start + FREEBUSY_MAX_SPAN, window.end)
                body = {
                    "timeMin": _rfc3339(start),
                    "timeMax": _rfc3339(end),
                    "items": [{"id": cid} for cid in group],
                }
                answer = self._read(lambda b=body: api.query(body=b))  # type: ignore[misc]
                for cid in group:
                    entry = answer.get("calendars", {}).get(cid, {})
                    if entry.get("errors"):
                        reasons = ", ".join(e.get("reason", "?") for e in entry["errors"])
                        raise Permanent(
                            f"free/busy of {cid} unreadable: {reasons}", mailbox=self.mailbox
                        )
                    for span in entry.get("busy", ()):
                        s = datetime.fromisoformat(span["start"].replace("Z", "+00:00"))
                        f = datetime.fromisoformat(span["end"].replace("Z", "+00:00"))
                        s, f = max(s, window.start), min(f, window.end)
                        if s < f:
                            busy[cid].append(Interval(s, f))
                start = end
        return {cid: _merge(spans) for cid, spans in busy.items()}

    def busy(self, window: Interval) -> list[Interval]:
        """Busy intervals of this calendar inside ``window``, merged and sorted."""
        return self.freebusy([self.calendar_id], window)[self.calendar_id]

    def create_event(self, invite: Invite) -> str:
        """Insert the event under an id derived from ``invite.key``; return that id.

        Safe to retry and to call twice: the second insert answers 409 and nothing is created
        or sent again. ``sendUpdates`` is "all" or "none" after ``invite.send_updates``. A hold
        (``invite.tentative``) is inserted with ``status: "tentative"`` and no attendees.
        """
        event_id = event_id_for(invite.key)
        zone = _zone(invite.zone)
        body: dict[str, Any] = {
            "id": event_id,
            "summary": invite.summary,
            "start": {
                "dateTime": invite.start.astimezone(zone).isoformat(),
                "timeZone": invite.zone,
            },
            "end": {"dateTime": invite.end.astimezone(zone).isoformat(), "timeZone": invite.zone},
        }
        if invite.tentative:
            # A hold is the rep's alone: no attendees, so nobody is invited; still opaque, so
            # the time stays busy for anyone else booking the rep.
            body["status"] = "tentative"
        else:
            body["attendees"] = [
                {"email": a.email, **({"displayName": a.name} if a.name else {})}
                for a in invite.attendees
            ]
        if invite.description:
            body["description"] = invite.description
        if invite.location:
            body["location"] = invite.location
        api = self._service.events()
        try:
            self._read(
                lambda: api.insert(
                    calendarId=self.calendar_id,
                    body=body,
                    sendUpdates="all" if invite.send_updates else "none",
                )
            )
        except Permanent as exc:
            cause = exc.__cause__
            if isinstance(cause, HttpError) and _status(cause) == 409:
                return event_id
            raise
        return event_id

    def delete_event(self, provider_id: str) -> None:
        """Delete the event without notifying anyone (``sendUpdates="none"``).

        An event already deleted (410) or unknown (404) counts as done, so a repeated release
        is harmless. Raises ``Permanent`` for other refusals, ``Transient`` after the retry
        budget.
        """
        api = self._service.events()
        try:
            self._read(
                lambda: api.delete(
                    calendarId=self.calendar_id, eventId=provider_id, sendUpdates="none"
                )
            )
        except Permanent as exc:
            cause = exc.__cause__
            if isinstance(cause, HttpError) and _status(cause) in (404, 410):
                return
            raise


def open_google(
    mailbox: str,
    address: str,
    vault: Any,
    store: Any,
    *,
    root: str | None = None,
    first_sync_days: int | None = None,
) -> tuple[GmailProvider, GoogleCalendarProvider]:
    """The mail and calendar providers of a connected Google mailbox, sharing its stored grant.

    ``vault`` is an :class:`agent.providers.tokens.Vault`, ``store`` a ``CredentialStore``.
    Raises ``AuthRevoked`` when the mailbox was never connected. Close both when done.
    """
    from agent.providers.google_auth import load_credentials

    factory = google_services(load_credentials(mailbox, vault, store), root=root)
    mail = GmailProvider(mailbox, address, factory, first_sync_days=first_sync_days)
    return mail, GoogleCalendarProvider(mailbox, factory)
