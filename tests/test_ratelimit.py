"""Token bucket pacing and the read-retry policy, on a fake clock so nothing sleeps."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import AuthRevoked, Permanent, Transient
from agent.providers.ratelimit import Buckets, TokenBucket, backoff_wait, read_retrying, retry_reads


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_is_free_then_takes_pace_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.1)
    assert bucket.take() == pytest.approx(0.1)
    assert clock.now == pytest.approx(0.2)


def test_refill_stops_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, 3, clock=clock, sleep=clock.sleep)
    bucket.take(3)
    clock.now += 100
    assert bucket.available == pytest.approx(3)


def test_take_larger_than_burst_goes_into_debt_instead_of_deadlocking() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 20, clock=clock, sleep=clock.sleep)
    assert bucket.take(100) == pytest.approx(8.0)  # 80 missing units at 10/s
    assert bucket.take(1) == pytest.approx(0.1)


def test_try_take_never_sleeps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, 2, clock=clock, sleep=clock.sleep)
    assert bucket.try_take(2)
    assert not bucket.try_take(1)
    assert clock.slept == []


@given(
    rate=st.floats(0.5, 500),
    burst=st.floats(1, 200),
    takes=st.lists(st.floats(0, 50), min_size=1, max_size=60),
)
def test_long_run_throughput_never_exceeds_rate_plus_burst(
    rate: float, burst: float, takes: list[float]
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    for n in takes:
        bucket.take(n)
    assert sum(takes) <= burst + rate * clock.now + 1e-6 * (1 + sum(takes))


def test_concurrent_takers_share_one_bucket() -> None:
    bucket = TokenBucket(1000, 10)
    done: list[float] = []

    def worker() -> None:
        for _ in range(20):
            bucket.take()
        done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 5
    assert bucket.available <= 10


def test_buckets_give_each_key_its_own_bucket() -> None:
    clock = FakeClock()
    buckets = Buckets(1, 1, clock=clock, sleep=clock.sleep)
    assert buckets.get("a") is buckets.get("a")
    buckets.get("a").take()
    assert buckets.get("b").take() == 0.0


@given(attempt=st.integers(1, 30), after=st.none() | st.floats(0, 1000))
def test_backoff_honours_retry_after_and_cap(attempt: int, after: float | None) -> None:
    wait = backoff_wait(attempt, after, base=0.5, max_wait=60)
    assert wait >= (after or 0.0)
    if after is None or after <= 60:
        assert wait <= 60


def test_reads_retry_transient_and_wait_at_least_retry_after() -> None:
    slept: list[float] = []
    calls = []

    @retry_reads(max_attempts=5, max_wait=60, sleep=slept.append)
    def read() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Transient("slow down", retry_after=7)
        return "ok"

    assert read() == "ok"
    assert len(calls) == 3
    assert len(slept) == 2
    assert all(s >= 7 for s in slept)


def test_reads_give_up_after_max_attempts_with_the_last_error() -> None:
    slept: list[float] = []
    calls = []

    def read() -> None:
        calls.append(1)
        raise Transient(f"attempt {len(calls)}")

    with pytest.raises(Transient, match="attempt 4"):
        read_retrying(max_attempts=4, sleep=slept.append)(read)
    assert len(calls) == 4


@pytest.mark.parametrize("exc", [Permanent("no"), AuthRevoked("gone"), ValueError("bug")])
def test_other_errors_are_not_retried(exc: Exception) -> None:
    calls = []

    @retry_reads(sleep=lambda s: None)
    def read() -> None:
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        read()
    assert len(calls) == 1


def test_retry_after_longer_than_max_wait_is_raised_not_slept() -> None:
    slept: list[float] = []
    calls = []

    @retry_reads(max_wait=60, sleep=slept.append)
    def read() -> None:
        calls.append(1)
        raise Transient("come back in an hour", retry_after=3600)

    with pytest.raises(Transient) as info:
        read()
    assert info.value.retry_after == 3600
    assert len(calls) == 1
    assert slept == []
