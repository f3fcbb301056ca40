"""Pacing and read retries shared by the provider adapters.

:class:`TokenBucket` keeps one mailbox under its provider's per-user quota (the caller decides
what a token is: a request, or a Gmail quota unit). :func:`retry_reads` retries reads that
raised :class:`agent.errors.Transient`, waiting at least the provider's Retry-After. Sends are
never wrapped in it: an unknown send outcome is reconciled by the outbox, not repeated.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

from agent.errors import Transient

F = TypeVar("F", bound=Callable[..., Any])


class TokenBucket:
    """A thread-safe token bucket refilled at ``rate_per_s`` up to ``burst`` tokens.

    ``take(n)`` blocks until ``n`` tokens are available. A take larger than ``burst`` is allowed:
    the bucket goes into debt and later takers wait it off, so one expensive call (a Gmail send
    costs 100 units) never deadlocks a bucket sized for cheap ones.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError("rate_per_s and burst must be positive")
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def available(self) -> float:
        """Tokens available now (negative while the bucket is in debt)."""
        with self._lock:
            self._refill()
            return self._tokens

    def take(self, n: float = 1) -> float:
        """Take ``n`` tokens, sleeping as long as needed; return the seconds slept."""
        if n < 0:
            raise ValueError("cannot take a negative number of tokens")
        with self._lock:
            self._refill()
            # Reserve under the lock, sleep outside it: concurrent takers queue up in order
            # of reservation instead of all waking at once and racing for the same tokens.
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            wait = (n - self._tokens) / self.rate
            self._tokens -= n
        self._sleep(wait)
        return wait

    def try_take(self, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there now; never sleeps."""
        with self._lock:
            self._refill()
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False


class Buckets:
    """One :class:`TokenBucket` per key (a mailbox), created on first use with the same settings."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._args = (rate_per_s, burst)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(*self._args, clock=self._clock, sleep=self._sleep)
                self._buckets[key] = bucket
            return bucket


def backoff_wait(
    attempt: int,
    retry_after: float | None,
    *,
    base: float = 0.5,
    max_wait: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Full-jitter exponential backoff capped at ``max_wait``, but never less than the provider's
    ``retry_after``: retrying earlier than it asked only burns quota and lengthens the penalty.
    """
    ceiling = min(max_wait, base * (2 ** (attempt - 1)))
    jittered = ceiling * (0.5 + rand() / 2)
    return max(retry_after or 0.0, jittered)


def read_retrying(
    max_attempts: int = 5,
    max_wait: float = 60.0,
    *,
    base: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` for reads: retries only ``Transient``, re-raises the last error.

    A ``Retry-After`` longer than ``max_wait`` is not slept through here: the error is raised at
    once so the worker can park the mailbox instead of holding a thread for minutes.
    Usage: ``read_retrying()(fn, *args)`` or ``for attempt in read_retrying(): with attempt: ...``.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = exc.retry_after if isinstance(exc, Transient) else None
        return backoff_wait(state.attempt_number, after, base=base, max_wait=max_wait)

    class _TooLong(tenacity.stop.stop_base):
        def __call__(self, state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return isinstance(exc, Transient) and (exc.retry_after or 0.0) > max_wait

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Transient),
        stop=tenacity.stop_any(tenacity.stop_after_attempt(max_attempts), _TooLong()),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )


def retry_reads(
    max_attempts: int = 5,
    max_wait: float = 60.0,
    *,
    base: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[F], F]:
    """Decorator form of :func:`read_retrying`; a fresh ``Retrying`` per call is thread-safe."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            retrying = read_retrying(max_attempts, max_wait, base=base, sleep=sleep)
            return retrying(fn, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
