"""Incremental planning gives the plan a full pass gives, and plans again only what changed."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent import pipeline
from agent.config import load as load_config
from agent.demo import run_demo
from agent.model import ActionKind, Event, Message
from agent.promises import State
from agent.replan import Replanner
from agent.store import Store
from tests.benchmarks import bench_planning as bench

# Kinds whose due time is fixed by the mail alone. A note to a client found overdue goes out in
# the client's hours from ``now`` (and a follow-up after it counts from then), and a proposal or
# invitation goes out in the rep's hours from when it is planned: their keys are compared.
FIXED_DUE = {
    ActionKind.REMINDER,
    ActionKind.ESCALATION,
    ActionKind.WEBHOOK,
}


def _full(
    team: pipeline.Team,
    messages: list[Message],
    events: list[Event],
    now: datetime,
    found: pipeline.Stored | None = None,
) -> pipeline.Planned:
    batch = tuple(messages)
    notes = found.sent_notes if found else {}
    earlier = found.earlier if found else []
    return pipeline.Planned(
        pipeline.plan(team, batch, now),
        pipeline.plan_notes(team, batch, events, now, sent_notes=notes, earlier=earlier),
        pipeline.plan_meetings(team, batch, events, now, earlier=earlier, sent_notes=notes),
    )


def _view(plan: pipeline.Planned) -> dict[str, set[object]]:
    parts = (plan.promises, plan.notes, plan.meetings)
    return {
        "promises": set(plan.promises.promises),
        "actions": {(a.key, a.due if a.kind in FIXED_DUE else None) for a in plan.actions},
        "decisions": {
            (d.mailbox, d.thread_id, d.message_id, d.decision) for p in parts for d in p.decisions
        },
        "obsolete": set(plan.obsolete),
    }


def _team(
    rng: random.Random, threads: int = 240
) -> tuple[pipeline.Team, list[Message], list[Event]]:
    team = bench.build_team(6)
    clients = bench.build_clients(40, 6, rng)
    team = dataclasses.replace(team, clients=tuple(clients))
    messages, events = bench.build_mail(team, clients, threads, rng)
    return team, messages, events


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16))
@example(seed=2619)  # an overdue follow-up: its too-late instant is its first due's, not now's
def test_incremental_plans_equal_full_plans_as_time_passes_and_mail_comes(seed: int) -> None:
    rng = random.Random(seed)
    team, messages, events = _team(rng)
    # A day between safety re-plans: what keeps the plans equal is each group's wake, the first
    # instant its plan can change by time alone, not the safety bound that would hide a late one.
    replanner = Replanner(team, max_age=timedelta(days=1))
    now = bench.NOW - timedelta(days=3)
    replanned = []
    for step in range(60):
        now += timedelta(minutes=rng.choice([1, 9, 45, 120, 400]))
        for _ in range(rng.randint(0, 3)):  # answers in random threads, some dated ahead
            m = rng.choice(messages)
            messages.append(
                dataclasses.replace(
                    m,
                    provider_id=f"{m.provider_id}-{step}.{len(messages)}",
                    message_id=f"<{step}.{len(messages)}@x>",
                    date=now + timedelta(minutes=rng.randint(-50, 30)),
                )
            )
        if rng.random() < 0.15:  # a meeting that just ended, or one cancelled
            e = rng.choice(events)
            events.append(
                dataclasses.replace(
                    e,
                    provider_id=f"{e.provider_id}-{step}",
                    uid=f"u{step}",
                    start=now - timedelta(hours=1),
                    end=now - timedelta(minutes=rng.randint(0, 30)),
                )
            )
        if rng.random() < 0.05:
            i = rng.randrange(len(events))
            events[i] = dataclasses.replace(events[i], status="cancelled")
        result = replanner.plan(messages, events, now)
        assert _view(result.planned) == _view(_full(team, messages, events, now)), (step, now)
        replanned.append(result.threads)
    # Time went by in big steps here, waking many groups, yet some passes were partial.
    assert min(replanned) < len({m.thread_id for m in messages})


def test_an_unchanged_batch_plans_nothing_and_a_new_message_plans_its_client_only() -> None:
    team, messages, events = _team(random.Random(7))
    replanner = Replanner(team)
    now = bench.NOW
    first = replanner.plan(messages, events, now)
    assert first.replanned == first.groups
    assert first.fresh.actions and _view(first.fresh) == _view(first.planned)

    again = replanner.plan([dataclasses.replace(m) for m in messages], events, now)
    assert (again.replanned, again.threads, again.fresh.actions) == (0, 0, [])
    assert _view(again.planned) == _view(first.planned)

    thread = next(t for t in first_threads(team, messages) if t.client is not None)
    last = thread.messages[-1].message
    reply = dataclasses.replace(
        last, provider_id="answer", message_id="<answer@x>", date=now - timedelta(minutes=1)
    )
    third = replanner.plan([*messages, reply], events, now)
    assert third.replanned == 1
    assert thread.client is not None
    assert {p.client for p in third.fresh.promises.promises} <= {thread.client.key}
    assert _view(third.planned) == _view(_full(team, [*messages, reply], events, now))


def first_threads(team: pipeline.Team, messages: list[Message]) -> list[pipeline.Thread]:
    return pipeline.threads(team, messages)


def test_a_deadline_passing_wakes_its_group_and_breaches_the_promise() -> None:
    team, messages, events = _team(random.Random(3))
    replanner = Replanner(team)
    now = bench.NOW
    first = replanner.plan(messages, events, now)
    active = min(
        (p for p in first.planned.promises.promises if p.state is State.ACTIVE),
        key=lambda p: p.deadline,
    )
    replanner = Replanner(team, max_age=timedelta(days=1))
    assert replanner.plan(messages, events, active.deadline - timedelta(seconds=1)).replanned
    later = active.deadline + timedelta(seconds=1)
    result = replanner.plan(messages, events, later)
    assert 0 < result.threads < len({m.thread_id for m in messages})
    assert active.key in {p.key for p in result.fresh.promises.promises}
    states = {p.key: p.state for p in result.planned.promises.promises}
    assert states[active.key] is State.BREACHED
    assert _view(result.planned) == _view(_full(team, messages, events, later))


def test_mailbox_batches_keep_their_own_groups_and_forget_resets_one() -> None:
    team, messages, events = _team(random.Random(5))
    replanner = Replanner(team)
    now = bench.NOW
    mailboxes = sorted({m.mailbox for m in messages})
    first = {}
    for name in mailboxes:
        batch = [m for m in messages if m.mailbox == name]
        first[name] = replanner.plan(
            batch, [e for e in events if e.mailbox == name], now, mailbox=name
        )
        assert first[name].replanned == first[name].groups > 0
    for name in mailboxes:  # a client with threads in two mailboxes is no reason to plan again
        batch = [m for m in messages if m.mailbox == name]
        again = replanner.plan(batch, [e for e in events if e.mailbox == name], now, mailbox=name)
        assert again.replanned == 0
        assert _view(again.planned) == _view(first[name].planned)
    replanner.forget(mailboxes[0])
    batch = [m for m in messages if m.mailbox == mailboxes[0]]
    events0 = [e for e in events if e.mailbox == mailboxes[0]]
    assert replanner.plan(batch, events0, now, mailbox=mailboxes[0]).replanned > 0
    # A thread gone from the mailbox is gone from the plan.
    gone = batch[0].thread_id
    result = replanner.plan(
        [m for m in batch if m.thread_id != gone], events0, now, mailbox=mailboxes[0]
    )
    assert all(p.thread_id != gone for p in result.planned.promises.promises)
    assert all(a.thread_id != gone for a in result.planned.actions)


@pytest.mark.parametrize("hours", [0, 1, 5, 20, 30, 50, 75, 100, 130, 170])
def test_on_the_demo_incremental_plans_equal_full_plans(tmp_path_factory, hours: int) -> None:
    with _demo_store(tmp_path_factory) as (team, store):
        start = _DEMO_NOW[0]
        replanner = Replanner(team)
        for h in range(0, hours + 1, max(hours // 4, 1)):
            now = start + timedelta(hours=h)
            result = replanner.plan_stored(store, now)
            found = pipeline.stored(store, now)
            full = _full(team, list(found.messages), found.events, now, found)
            assert _view(result.planned) == _view(full), now


_DEMO: list[Path] = []
_DEMO_NOW: list[datetime] = []


def _demo(factory: pytest.TempPathFactory) -> Path:
    if not _DEMO:
        result = run_demo(factory.mktemp("demo") / "out")
        _DEMO.append(result.out)
        _DEMO_NOW.append(result.now)
    return _DEMO[0]


@contextmanager
def _demo_store(factory: pytest.TempPathFactory) -> Iterator[tuple[pipeline.Team, Store]]:
    """The demo's team and its store, closed afterwards."""
    settings_ = load_config(_demo(factory) / "config.toml")
    store = Store.open(settings_.database.url)
    try:
        yield pipeline.load_team(settings_), store
    finally:
        store.close()


def test_a_bounce_in_a_thread_of_its_own_is_planned_with_the_client_it_reports_on(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A delivery report lands in a thread of its own, yet it stops the follow-ups to the failed
    address in the client's threads: it belongs to that client's group, so its coming plans the
    client again, and each plan of the client reads it (the demo: Lukas's mail to a contact who
    has left)."""
    with _demo_store(tmp_path_factory) as (team, store):
        now = _DEMO_NOW[0]
        found = pipeline.stored(store, now)
        messages = list(found.messages)
        report = next(m.thread_id for m in messages if "weber-bounce" in m.message_id)
        before = [m for m in messages if m.thread_id != report]
        assert not any("weber-bounce" in m.message_id for m in before)  # a thread of its own
        # Planned by age once a day only, so what is planned again is what the mail changed.
        replanner = Replanner(team, max_age=timedelta(days=1))
        known = {"sent_notes": found.sent_notes, "earlier": found.earlier}
        first = replanner.plan(before, found.events, now, **known)
        cadence = {a.key for a in first.planned.actions if "weber" in a.key}
        assert cadence  # follow-ups to the contact, planned before the report came

        later = now + timedelta(minutes=10)
        result = replanner.plan(messages, found.events, later, **known)
        assert cadence <= result.fresh.obsolete  # withdrawn as the report comes
        assert not cadence & {a.key for a in result.planned.actions}
        full = _full(team, messages, found.events, later, found)
        assert _view(result.planned) == _view(full)
