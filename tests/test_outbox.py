from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.compose import Composer
from agent.errors import Transient
from agent.model import Action, ActionKind, Address
from agent.outbox import Outbox
from agent.providers.memory import MemoryMailbox
from agent.store import DRAFTED, DRAFTING, NEEDS_ATTENTION, PLANNED, SENDING, SENT, Store

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
TEMPLATES = Path(__file__).parent.parent / "templates"


def reminder(
    key: str = "promise/asha/t1/0/warn/0", kind: ActionKind = ActionKind.REMINDER
) -> Action:
    return Action(
        key=key,
        kind=kind,
        mailbox="asha",
        due=NOW - timedelta(minutes=5),
        to=(Address("asha@acme.example", "Asha"),),
        language="en",
        template="reminder",
        reason="test",
        client="kenji",
        context={
            "rep": {"name": "Asha"},
            "client": {"name": "Kenji", "company": "Sato"},
            "thread": {"subject": "Quote"},
            "received": NOW - timedelta(hours=3),
            "deadline": NOW + timedelta(hours=1),
            "rep_zone": "Asia/Kolkata",
            "rule": "gold",
            "remaining": timedelta(hours=1),
        },
    )


def make(store: Store, box: MemoryMailbox, mode: str = "send") -> Outbox:
    return Outbox(
        store,
        {"asha": box},
        Composer(TEMPLATES),
        {"asha": Address("asha@acme.example", "Asha")},
        mode=mode,
        domain="acme.example",
    )


@pytest.fixture
def box() -> MemoryMailbox:
    return MemoryMailbox(mailbox="asha", address="asha@acme.example", clock=lambda: NOW)


def sent_count(box: MemoryMailbox) -> int:
    return sum("SENT" in m.labels for m in box.messages.values())


def test_planning_twice_sends_once(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    store.enqueue([reminder()])
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert outbox.run(NOW) == []
    assert sent_count(box) == 1


def test_a_lost_send_response_is_reconciled_without_a_second_send(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    box.lose_response("send_draft")
    assert [o.status for o in outbox.run(NOW)] == [SENDING]
    [o] = outbox.run(NOW)
    assert (o.status, o.detail) == (SENT, "reconciled: found in sent mail")
    assert sent_count(box) == 1


def test_a_crash_after_the_draft_sends_that_same_draft(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    box.fail("send_draft", Transient("connection refused"))
    outbox.run(NOW)  # the send was refused before it happened: the row waits in sending
    assert store.outbox_row(reminder().key)["status"] == SENDING
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert sent_count(box) == 1 and not box.drafts


def test_a_crash_while_drafting_is_reconciled_from_the_provider(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    box.fail("draft", Transient("timeout"))
    outbox.run(NOW)
    assert store.outbox_row(reminder().key)["status"] == DRAFTING
    [o] = outbox.run(NOW)
    assert o.status == PLANNED  # no draft was made: planned again, then done next pass
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert sent_count(box) == 1


def test_send_state_with_no_trace_is_flagged_for_a_person(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    store.transition(reminder().key, [PLANNED], SENDING)
    assert [o.status for o in outbox.run(NOW)] == [NEEDS_ATTENTION]
    assert sent_count(box) == 0


def test_client_notes_wait_as_drafts_in_draft_mode_until_approved(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box, mode="draft")
    note = reminder("thank_you/asha/t1", ActionKind.THANK_YOU)
    store.enqueue([note])
    assert [o.status for o in outbox.run(NOW)] == [DRAFTED]
    assert sent_count(box) == 0 and len(box.drafts) == 1
    row = store.outbox_row(note.key)
    assert outbox.approve(row["id"], NOW).status == SENT
    assert sent_count(box) == 1


def test_a_template_error_parks_the_action_with_the_reason(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box)
    broken = Action(**{**reminder().__dict__, "context": {"rep": {"name": "Asha"}}})
    store.enqueue([broken])
    [o] = outbox.run(NOW)
    assert o.status == NEEDS_ATTENTION and "reminder/en.j2" in o.detail
    assert sent_count(box) == 0


def test_obsolete_reminders_are_cancelled_before_they_go(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    assert outbox.cancel_obsolete({reminder().key}) == 1
    assert outbox.run(NOW) == []


class _Hook:
    """A Slack-compatible webhook endpoint on loopback that records what it is sent."""

    def __init__(self, fail: int = 0) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        self.fail = fail
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.fail:
                    hook.fail -= 1
                    self.send_response(503)
                else:
                    hook.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook(url: str) -> Action:
    return Action(
        key="promise/asha/t1/0/webhook/1",
        kind=ActionKind.WEBHOOK,
        mailbox="asha",
        due=NOW - timedelta(minutes=1),
        to=(),
        language="en",
        template="",
        reason="test",
        context={"url": url, "text": "Kenji has waited past the deadline"},
    )


def test_an_escalation_webhook_is_posted_once_as_slack_json(
    store: Store, box: MemoryMailbox
) -> None:
    hook = _Hook()
    try:
        outbox = make(store, box)
        store.enqueue([webhook(hook.url)])
        assert [o.status for o in outbox.run(NOW)] == [SENT]
        assert outbox.run(NOW) == []
        assert hook.bodies == [{"text": "Kenji has waited past the deadline"}]
    finally:
        hook.close()


def test_a_failing_webhook_is_retried_then_given_up_with_the_reason(
    store: Store, box: MemoryMailbox
) -> None:
    hook = _Hook(fail=1)
    try:
        outbox = make(store, box)
        store.enqueue([webhook(hook.url)])
        [first] = outbox.run(NOW)
        assert first.status == PLANNED and "503" in first.detail
        assert [o.status for o in outbox.run(NOW)] == [SENT]
        assert len(hook.bodies) == 1
    finally:
        hook.close()
    store.enqueue([Action(**{**webhook("http://127.0.0.1:9/none").__dict__, "key": "w2"})])
    for _ in range(5):
        outcomes = make(store, box).run(NOW)
    assert outcomes[-1].status == "failed"
    assert "webhook" in store.outbox_row("w2")["last_error"]
