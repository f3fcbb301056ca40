"""Switching on safely: the go-live point (history is context, not a to-do list) and shadow
mode (everything planned and recorded, nothing sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from agent import app, golive
from agent.compose import Composer
from agent.config import load
from agent.demo import run_demo
from agent.errors import ConfigError
from agent.model import Action, ActionKind, Address
from agent.outbox import Outbox
from agent.promises import Promise, State
from agent.providers.local import LocalMailbox
from agent.providers.memory import MemoryMailbox
from agent.store import NEEDS_ATTENTION, PLANNED, SENT, SHADOWED, Store
from agent.worker import Worker

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
GO_LIVE = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
TEMPLATES = Path(__file__).parent.parent / "templates"


def action(key: str, kind: ActionKind, **context: object) -> Action:
    return Action(
        key=key,
        kind=kind,
        mailbox="asha",
        due=NOW,
        to=(Address("asha@acme.example", "Asha"),),
        language="en",
        template="reminder",
        reason="test",
        thread_id="t1",
        context=context,
    )


def promise(key: str, received: datetime) -> Promise:
    return Promise(
        key=key,
        rule="gold",
        kind="first_response",
        mailbox="asha",
        thread_id="t1",
        client="kenji",
        subject="Quote",
        message_id="<m@x>",
        received=received,
        clock_start=received,
        deadline=received + timedelta(hours=4),
        state=State.BREACHED,
        hours_of="rep",
    )


# -- the gate: pure ------------------------------------------------------------------------------


def test_actions_caused_before_go_live_are_held_back_with_a_decision() -> None:
    before, after = GO_LIVE - timedelta(days=9), GO_LIVE + timedelta(hours=1)
    old_escalation = action("promise/asha/t1/0/escalate/1", ActionKind.ESCALATION, received=before)
    old_webhook = action("promise/asha/t1/0/webhook/1", ActionKind.WEBHOOK)  # by its promise
    new_reminder = action("promise/asha/t2/0/warn/0", ActionKind.REMINDER, received=after)
    old_chase = action("followup/asha/t3/1", ActionKind.FOLLOW_UP, last_sent=before)
    new_thanks = action("thanks/asha/e1", ActionKind.THANK_YOU, meeting={"end": after})
    old_thanks = action("thanks/asha/e0", ActionKind.THANK_YOU, meeting={"end": before})
    # an invitation answers the client's choice: the answer's time counts, not the meeting's
    old_answer = action(
        "invite/asha/t4/x", ActionKind.INVITE, answered=before, meeting={"end": after}
    )
    unknown = action("hold/asha/t5", ActionKind.HOLD)

    planned = [old_escalation, old_webhook, new_reminder, old_chase, new_thanks, old_thanks]
    gated = golive.gate(
        [*planned, old_answer, unknown],
        GO_LIVE,
        [promise("promise/asha/t1/0", before)],
    )

    assert [a.key for a in gated.actions] == [new_reminder.key, new_thanks.key, unknown.key]
    held = {d.message_id: d for d in gated.decisions}
    assert set(held) == {
        old_escalation.key,
        old_webhook.key,
        old_chase.key,
        old_thanks.key,
        old_answer.key,
    }
    assert all(d.decision == golive.DECISION for d in gated.decisions)
    assert "before the go-live point 2026-11-20 00:00 UTC" in held[old_chase.key].reason


def test_without_a_go_live_point_everything_is_kept() -> None:
    old = action("promise/asha/t1/0/escalate/1", ActionKind.ESCALATION, received=GO_LIVE)
    assert golive.gate([old], None).actions == (old,)
    # the point itself is live: a message received exactly then counts
    assert golive.gate([old], GO_LIVE).actions == (old,)


def test_the_go_live_point_is_recorded_once(store: Store) -> None:
    assert store.go_live("asha", GO_LIVE) == GO_LIVE
    # a restart or another worker asks later: the first answer stands
    assert store.go_live("asha", GO_LIVE + timedelta(days=3)) == GO_LIVE
    assert store.go_live("lukas", NOW) == NOW
    recorded = [d for d in store.decisions() if d["decision"] == "go_live"]
    assert {d["mailbox"] for d in recorded} == {"asha", "lukas"}


def test_a_go_live_point_without_a_zone_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[outbox]\ngo_live = "2026-11-20T00:00"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "outbox.go_live" in str(caught.value) and "needs a zone" in str(caught.value)


# -- shadow mode ---------------------------------------------------------------------------------


def reminder(key: str = "promise/asha/t1/0/warn/0", mailbox: str = "asha") -> Action:
    return Action(
        key=key,
        kind=ActionKind.REMINDER,
        mailbox=mailbox,
        due=NOW - timedelta(minutes=5),
        to=(Address(f"{mailbox}@acme.example", mailbox.title()),),
        language="en",
        template="reminder",
        reason="test",
        client="kenji",
        context={
            "rep": {"name": mailbox.title()},
            "client": {"name": "Kenji", "company": "Sato"},
            "thread": {"subject": "Quote"},
            "received": NOW - timedelta(hours=3),
            "deadline": NOW + timedelta(hours=1),
            "rep_zone": "Asia/Kolkata",
            "rule": "gold",
            "remaining": timedelta(hours=1),
        },
    )


def webhook() -> Action:
    return Action(
        key="promise/asha/t1/0/webhook/1",
        kind=ActionKind.WEBHOOK,
        mailbox="asha",
        due=NOW - timedelta(minutes=1),
        to=(),
        language="en",
        template="",
        reason="test",
        context={"url": "https://hooks.example/x", "text": "late"},
    )


def boxes() -> dict[str, MemoryMailbox]:
    return {
        name: MemoryMailbox(mailbox=name, address=f"{name}@acme.example", clock=lambda: NOW)
        for name in ("asha", "lukas")
    }


def outbox(store: Store, mail: dict[str, MemoryMailbox], **kw: object) -> tuple[Outbox, list]:
    posted: list = []
    box = Outbox(
        store,
        mail,
        Composer(TEMPLATES),
        {n: Address(f"{n}@acme.example", n.title()) for n in mail},
        domain="acme.example",
        post=lambda url, payload: posted.append((url, payload)),
        **kw,  # type: ignore[arg-type]
    )
    return box, posted


def test_shadow_mode_records_what_would_have_gone_out_and_sends_nothing(store: Store) -> None:
    mail = boxes()
    box, posted = outbox(store, mail, mode="shadow")
    store.enqueue([reminder(), webhook()])
    outcomes = box.run(NOW)
    assert {o.status for o in outcomes} == {SHADOWED}
    assert posted == [] and mail["asha"].messages == {}
    assert {r["status"] for r in store.outbox()} == {SHADOWED}
    # shadowed is final: switching to send later does not send the stale notes
    live, _ = outbox(store, mail, mode="send")
    assert live.run(NOW + timedelta(days=7)) == [] and mail["asha"].messages == {}


def test_one_mailbox_in_shadow_beside_live_ones_and_the_other_way_round(store: Store) -> None:
    mail = boxes()
    store.enqueue([reminder(), reminder("promise/lukas/t1/0/warn/0", "lukas")])
    box, _ = outbox(store, mail, mode="send", mailbox_modes={"asha": "shadow"})
    assert {o.key: o.status for o in box.run(NOW)} == {
        "promise/asha/t1/0/warn/0": SHADOWED,
        "promise/lukas/t1/0/warn/0": SENT,
    }
    assert mail["asha"].messages == {} and mail["lukas"].messages
    # a team in shadow with one rep piloting live
    store.enqueue(
        [reminder("promise/asha/t2/0/warn/0"), reminder("promise/lukas/t2/0/warn/0", "lukas")]
    )
    pilot, _ = outbox(store, mail, mode="shadow", mailbox_modes={"asha": "send"})
    assert {o.key: o.status for o in pilot.run(NOW)} == {
        "promise/asha/t2/0/warn/0": SENT,
        "promise/lukas/t2/0/warn/0": SHADOWED,
    }


def test_a_note_cannot_be_approved_out_of_shadow_mode(store: Store) -> None:
    mail = boxes()
    box, _ = outbox(store, mail, mode="shadow")
    later = reminder()
    store.enqueue([Action(**{**later.__dict__, "due": NOW + timedelta(days=1)})])
    row = store.outbox()[0]
    outcome = box.approve(row["id"], NOW)
    assert outcome.status == PLANNED and "shadow mode" in outcome.detail
    assert mail["asha"].messages == {}


def test_shadow_mode_still_renders_each_note_so_template_faults_show_now(store: Store) -> None:
    mail = boxes()
    box, _ = outbox(store, mail, mode="shadow")
    broken = reminder()
    store.enqueue([Action(**{**broken.__dict__, "template": "no_such_purpose"})])
    assert [o.status for o in box.run(NOW)] == [NEEDS_ATTENTION]


# -- a worker's first day --------------------------------------------------------------------------


@pytest.fixture
def first_day(tmp_path: Path) -> Path:
    """The demo's mailboxes and config with an empty database and no go-live point set: the
    team switches the agent on at NOW, with a fortnight of mail behind it."""
    result = run_demo(tmp_path / "demo")
    for f in (tmp_path / "demo").glob("followup-demo.db*"):
        f.unlink()
    path = result.out / "config.toml"
    text = path.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("go_live"))
    text += '\n[service]\nlisten = ""\n'
    path.write_text(text, encoding="utf-8")
    return path


def deliver(config_path: Path, mailbox: str, sender: str, subject: str, at: datetime) -> None:
    settings = load(config_path)
    mb = settings.mailbox(mailbox)
    assert mb.path is not None
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mb.address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = make_msgid("new", "client.example")
    msg.set_content("Could you send us the revised quote, please?")
    LocalMailbox(mb.path, mailbox=mb.name, address=mb.address, clock=lambda: at).deliver(
        bytes(msg), "inbox"
    )


def test_the_first_start_floods_no_one_and_acts_on_what_comes_after(first_day: Path) -> None:
    Worker(first_day, clock=lambda: NOW).run(once=True)
    store = Store.open(f"sqlite:///{first_day.parent / 'followup-demo.db'}")
    try:
        # Weeks of breached promises and unthanked meetings: nothing went out for them.
        assert [r for r in store.outbox() if r["status"] == SENT] == []
        held = [d for d in store.decisions() if d["decision"] == golive.DECISION]
        assert any("escalation" in d["reason"] for d in held)
        assert {store.go_live(m, NOW + timedelta(days=1)) for m in ("asha", "lukas", "omar")} == {
            NOW
        }

        # A client writes after the go-live point: that promise is kept, reminder and all.
        deliver(
            first_day,
            "lukas",
            "Anna Schmidt <anna.schmidt@schmidt-maschinenbau.de>",
            "Angebot bitte",
            NOW + timedelta(minutes=30),
        )
        later = NOW + timedelta(days=3)
        Worker(first_day, clock=lambda: later).run(once=True)
        # the go-live point survived the restart
        assert store.go_live("lukas", later) == NOW
        rows = [r for r in store.outbox() if r["mailbox"] == "lukas" and r["kind"] != "hold"]
        assert rows and all(r["action"]["subject"] == "Angebot bitte" for r in rows), rows
        assert any(r["status"] == SENT for r in rows)
    finally:
        store.close()


def test_status_lists_what_shadow_mode_would_have_sent(first_day: Path) -> None:
    path = first_day
    text = path.read_text(encoding="utf-8").replace('mode = "draft"', 'mode = "shadow"')
    path.write_text(text + "\n", encoding="utf-8")
    text = path.read_text(encoding="utf-8").replace(
        "[outbox]\n", "[outbox]\ngo_live = 2026-11-16T00:00:00Z\n"
    )
    path.write_text(text, encoding="utf-8")
    Worker(path, clock=lambda: NOW).run(once=True)
    status = app.status(path, now=NOW.isoformat())
    assert status.shadowed and {r["status"] for r in status.shadowed} == {SHADOWED}
    # the report over the period says the same
    figures = app.simulate(path, "30d", now=NOW.isoformat())
    assert {r["key"] for r in figures.shadowed} == {r["key"] for r in status.shadowed}
    assert any(r["kind"] == "escalation" for r in status.shadowed)
    store = Store.open(f"sqlite:///{path.parent / 'followup-demo.db'}")
    try:
        assert [r for r in store.outbox() if r["status"] == SENT] == []
    finally:
        store.close()
