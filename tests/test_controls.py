"""The rep and the lead stay in control: a promise marked handled, a thread's follow-ups snoozed
or stopped, a client opted out. Each act is audited and the worker honours it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import app, controls
from agent.cli import main
from agent.demo import run_demo
from agent.model import Action, ActionKind, Address
from agent.store import CANCELLED, PLANNED, Store
from agent.worker import Worker

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def act(key: str, kind: ActionKind, *, thread: str = "t1", client: str = "kenji") -> Action:
    return Action(
        key=key,
        kind=kind,
        mailbox="asha",
        due=NOW,
        to=(Address("kenji@sato.example"),),
        language="en",
        template="follow_up",
        reason="test",
        client=client,
        thread_id=thread,
    )


def row(target: str, decision: str, at: datetime) -> dict[str, object]:
    return {"subject_id": controls.subject(target, at), "decision": decision}


def test_the_latest_act_on_a_thread_wins_and_each_holds_back_what_it_should() -> None:
    rows = [
        row("t1", controls.STOPPED, NOW - timedelta(hours=3)),
        row("t1", controls.RESUMED, NOW - timedelta(hours=2)),
        row("t2", controls.STOPPED, NOW - timedelta(hours=1)),
        row("t3", controls.SNOOZED + (NOW + timedelta(days=2)).isoformat(), NOW),
        row("promise/asha/t4/0", controls.HANDLED, NOW),
        row("carlos", controls.OPTED_OUT, NOW),
        row("Someone@Other.example", controls.OPTED_OUT, NOW),
        {"subject_id": "<m@x>", "decision": "no clock: auto_reply"},  # not an act by hand
    ]
    by_hand = controls.Controls.from_decisions(reversed(rows))  # order does not matter
    assert by_hand.stopped == {"t2"} and set(by_hand.snoozed) == {"t3"}
    planned = [
        act("followup/asha/t1/1", ActionKind.FOLLOW_UP, thread="t1"),  # resumed: goes
        act("followup/asha/t2/1", ActionKind.FOLLOW_UP, thread="t2"),  # stopped
        act("followup/asha/t3/1", ActionKind.FOLLOW_UP, thread="t3"),  # snoozed
        act("promise/asha/t3/0/warn/0", ActionKind.REMINDER, thread="t3"),  # not a chase
        act("promise/asha/t4/0/escalate/1", ActionKind.ESCALATION, thread="t4"),  # handled
        act("thanks/asha/e1", ActionKind.THANK_YOU, thread="t5", client="carlos"),  # opted out
    ]
    gated = controls.gate(planned, by_hand, NOW)
    assert [a.key for a in gated.actions] == ["followup/asha/t1/1", "promise/asha/t3/0/warn/0"]
    reasons = {d.message_id: d.reason for d in gated.decisions}
    assert "stopped" in reasons["followup/asha/t2/1"]
    assert "snoozed until" in reasons["followup/asha/t3/1"]
    assert "handled" in reasons["promise/asha/t4/0/escalate/1"]
    assert "opted out" in reasons["thanks/asha/e1"]
    # the snooze ends
    later = controls.gate(planned, by_hand, NOW + timedelta(days=3))
    assert "followup/asha/t3/1" in {a.key for a in later.actions}
    # an address on the opt-out list holds back mail to it whoever the client is
    stranger = act("followup/asha/t9/1", ActionKind.FOLLOW_UP, thread="t9", client="")
    stranger = Action(**{**stranger.__dict__, "to": (Address("someone@other.example"),)})
    assert controls.gate([stranger], by_hand, NOW).actions == ()


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return run_demo(tmp_path / "demo").out / "config.toml"


def store_of(config: Path) -> Store:
    return Store.open(f"sqlite:///{config.parent / 'followup-demo.db'}")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_promise_marked_handled_stops_its_reminders_and_leaves_status(demo: Path) -> None:
    store = store_of(demo)
    try:
        planned = [r for r in store.outbox(statuses=(PLANNED,)) if r["key"].startswith("promise/")]
        key = planned[0]["key"].rsplit("/", 2)[0]

        def sent() -> set[str]:
            return {r["key"] for r in store.outbox(statuses=("sent",)) if r["key"].startswith(key)}

        before = sent()
        code, out = invoke("promise", "done", key, "--note", "phoned them", "--config", str(demo))
        assert code == 0, out
        mine = [r for r in store.outbox() if r["key"].startswith(f"{key}/")]
        assert {r["status"] for r in mine if r["key"] not in before} == {CANCELLED}
        audit = [d for d in store.decisions() if d["decision"] == controls.HANDLED]
        assert audit and "phoned them" in audit[0]["reason"] and "by " in audit[0]["reason"]
        status = app.status(demo, now=NOW.isoformat())
        assert key not in {p.key for p in status.promises}
        # the worker plans the promise again on later passes, and sends nothing more for it
        Worker(demo, clock=lambda: NOW + timedelta(hours=4)).run(once=True)
        Worker(demo, clock=lambda: NOW + timedelta(days=2)).run(once=True)
        assert sent() == before
    finally:
        store.close()
    code, out = invoke("promise", "done", "not-a-key", "--config", str(demo))
    assert code == 1 and "not a promise key" in out


def test_a_stopped_thread_gets_no_more_follow_ups_and_a_snooze_moves_them(demo: Path) -> None:
    store = store_of(demo)
    try:
        chases = [r for r in store.outbox(statuses=(PLANNED,)) if r["kind"] == "follow_up"]
        assert len({r["thread_id"] for r in chases}) >= 2, "the demo schedules follow-ups"
        first, second = sorted({r["thread_id"] for r in chases})[:2]
        code, out = invoke("thread", "stop", first, "--config", str(demo))
        assert code == 0, out
        assert {
            r["status"]
            for r in store.outbox()
            if r["thread_id"] == first and r["kind"] == "follow_up"
        } == {CANCELLED}
        until = "2027-01-15"
        code, out = invoke("thread", "snooze", second, "--until", until, "--config", str(demo))
        assert code == 0, out
        moved = [
            r
            for r in store.outbox(statuses=(PLANNED,))
            if r["thread_id"] == second and r["kind"] == "follow_up"
        ]
        assert moved and all(r["due"] >= datetime(2027, 1, 15, tzinfo=UTC) for r in moved)
    finally:
        store.close()
    for bad, said in (
        (["thread", "stop", "no-such-thread"], "no stored thread"),
        (["thread", "snooze", second, "--until", "soon"], "not a date"),
        (["thread", "snooze", second, "--until", "2020-01-01"], "not in the future"),
        (["client", "optout", "nobody-key"], "no client has this key"),
    ):
        code, out = invoke(*bad, "--config", str(demo))
        assert code == 1 and said in out, (bad, out)


def test_an_opted_out_client_gets_nothing_more(demo: Path) -> None:
    store = store_of(demo)
    try:
        planned = [
            r
            for r in store.outbox(statuses=(PLANNED, "drafted"))
            if r["kind"] in {k.value for k in controls.TO_CLIENT}
        ]
        client = planned[0]["client"]
        email = planned[0]["action"]["to"][0][0]
        code, out = invoke("client", "optout", email, "--config", str(demo))
        assert code == 0, out
        left = [
            r
            for r in store.outbox(statuses=(PLANNED, "drafted"))
            if r["client"] == client and r["kind"] in {k.value for k in controls.TO_CLIENT}
        ]
        assert left == []
        Worker(demo, clock=lambda: NOW + timedelta(days=2)).run(once=True)
        fresh = [
            r
            for r in store.outbox()
            if r["client"] == client
            and r["kind"] in {k.value for k in controls.TO_CLIENT}
            and r["status"] not in (CANCELLED,)
            and r["created_at"] > NOW
        ]
        assert fresh == []
    finally:
        store.close()
