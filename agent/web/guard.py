"""The console's defences that are not about who you are: CSRF tokens, the sign-in rate limit,
and the security headers on every response."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style anywhere: every asset is a file served by the console itself.
# Forms post to the console; a few (connect a mailbox) are answered with a redirect to the
# identity provider, which form-action must name too.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'{targets}; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The sign-in callback's URL carries a code: never hand it to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response."""

    def __init__(
        self, app: ASGIApp, *, hsts: bool = False, form_targets: Iterable[str] = ()
    ) -> None:
        self.app = app
        targets = "".join(f" {t}" for t in sorted(set(form_targets)))
        self.headers = [(b"content-security-policy", CSP.format(targets=targets).encode())]
        self.headers += HEADERS
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in self.headers if k not in names),
                ]
            await send(message)

        await self.app(scope, receive, add)


def csrf_token(session: dict[str, object]) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: dict[str, object], sent: object) -> bool:
    token = session.get("csrf")
    return (
        isinstance(token, str)
        and isinstance(sent, str)
        and len(token) >= 32
        and secrets.compare_digest(token, sent)
    )


class RateLimit:
    """At most ``per_minute`` events per key in any sliding minute (one process's memory)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._seen) > 10_000:  # bounded: forget idle keys
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 60}
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return False
            seen.append(now)
            return True


class BodyLimit:
    """ASGI middleware refusing (413) a request body larger than ``limit`` bytes, whether it
    says its length or streams it: no form of the console needs more than a rule file."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _too_large(send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": b"Request too large."})
