from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import mime
from agent.compose import Composer
from agent.errors import Permanent, Transient
from agent.model import Action, ActionKind, Address, Interval
from agent.outbox import DIGEST_EVERY, Outbox
from agent.providers.local import LocalMailbox
from agent.providers.memory import MemoryMailbox
from agent.store import (
    CANCELLED,
    DRAFTED,
    DRAFTING,
    FAILED,
    NEEDS_ATTENTION,
    PLANNED,
    SENDING,
    SENT,
    Store,
)

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


def make(
    store: Store, box: MemoryMailbox, mode: str = "send", allow: tuple[str, ...] = ("127.0.0.1",)
) -> Outbox:
    return Outbox(
        store,
        {"asha": box},
        Composer(TEMPLATES),
        {"asha": Address("asha@acme.example", "Asha")},
        mode=mode,
        domain="acme.example",
        webhook_allow=allow,
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
    # No draft was made: planned again and carried on at once, before any note due later.
    assert o.status == SENT
    assert outbox.run(NOW) == []
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


def test_a_draft_whose_client_was_answered_is_withdrawn_from_the_mailbox(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box, mode="draft")
    note = reminder("follow_up/asha/t1/1", ActionKind.FOLLOW_UP)
    store.enqueue([note])
    assert [o.status for o in outbox.run(NOW)] == [DRAFTED]
    assert len(box.drafts) == 1
    # The client answered: the planner calls the note obsolete while it waits for the rep.
    assert outbox.cancel_obsolete({note.key}) == 1
    row = store.outbox_row(note.key)
    assert row["status"] == CANCELLED
    assert outbox.approve(row["id"], NOW).detail == "nothing to approve"
    box.fail("discard_draft", Transient("timeout"))
    outbox.run(NOW)  # the provider did not answer: the draft is tried again next time
    assert len(box.drafts) == 1 and store.withdrawn_drafts("asha")
    outbox.run(NOW)
    assert not box.drafts and not store.withdrawn_drafts("asha")
    assert sent_count(box) == 0


def test_a_withdrawn_draft_the_rep_had_sent_by_hand_is_recorded_as_sent(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box, mode="draft")
    note = reminder("follow_up/asha/t1/1", ActionKind.FOLLOW_UP)
    store.enqueue([note])
    outbox.run(NOW)
    [draft_id] = box.drafts
    box.send_draft(draft_id)  # the rep sends it from Gmail; the next pass plans before it executes
    assert outbox.cancel_obsolete({note.key}) == 1
    outbox.run(NOW)
    row = store.outbox_row(note.key)
    assert row["status"] == SENT and row["sent_message_id"]
    assert not store.withdrawn_drafts("asha") and sent_count(box) == 1


def test_cancelling_a_draft_by_hand_removes_it_from_the_mailbox(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box, mode="draft")
    note = reminder("thank_you/asha/t1", ActionKind.THANK_YOU)
    store.enqueue([note])
    outbox.run(NOW)
    outcome = outbox.cancel(store.outbox_row(note.key)["id"])
    assert outcome.status == CANCELLED and "removed" in outcome.detail
    assert not box.drafts and sent_count(box) == 0


def test_obsolete_reminders_are_cancelled_before_they_go(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    store.enqueue([reminder()])
    assert outbox.cancel_obsolete({reminder().key}) == 1
    assert outbox.run(NOW) == []


class _Hook:
    """A Slack-compatible webhook endpoint on loopback that records what it is sent."""

    def __init__(self, fail: int = 0, path: str = "/hook", redirect: str = "") -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        self.fail = fail
        self.redirect = redirect
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.redirect:
                    self.send_response(307)
                    self.send_header("Location", hook.redirect)
                elif hook.fail:
                    hook.fail -= 1
                    self.send_response(503)
                else:
                    hook.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
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


SECRET_PATH = "/services/T0AC/B0ME/sEcReTpAtHoFtHeHoOk"


def test_a_failing_webhook_names_its_host_never_its_path(
    store: Store, box: MemoryMailbox, caplog: pytest.LogCaptureFixture
) -> None:
    hook = _Hook(fail=5, path=SECRET_PATH)
    try:
        store.enqueue([webhook(hook.url)])
        outcomes = [o for _ in range(5) for o in make(store, box).run(NOW)]
    finally:
        hook.close()
    row = store.outbox_row(webhook(hook.url).key)
    assert row is not None and row["status"] == "failed"
    assert "127.0.0.1" in row["last_error"] and "503" in row["last_error"]
    shown = [row["last_error"], *(o.detail for o in outcomes), caplog.text]
    assert not [text for text in shown if "sEcReT" in text or "/services/" in text]


def test_an_unreachable_webhook_names_its_host_never_its_path(
    store: Store, box: MemoryMailbox
) -> None:
    # requests quotes the path alone here: "Max retries exceeded with url: /services/..."
    store.enqueue([webhook(f"http://127.0.0.1:9{SECRET_PATH}?token=t0k3n")])
    [outcome] = make(store, box).run(NOW)
    row = store.outbox_row(webhook("").key)
    assert row is not None and row["status"] == PLANNED and "127.0.0.1" in row["last_error"]
    for text in (row["last_error"], outcome.detail):
        assert "sEcReT" not in text and "/services/" not in text and "t0k3n" not in text


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:{port}/hook", ()),  # http, and loopback
        ("https://127.0.0.1:{port}/hook", ()),  # loopback over https
        ("https://localhost:{port}/hook", ()),  # a name that resolves to loopback
        ("https://169.254.169.254/latest/meta-data", ()),  # a cloud's metadata service
        ("https://10.1.2.3/hook", ()),
        ("https://[::1]:{port}/hook", ()),
        ("http://hooks.example/hook", ("other.example",)),  # http to a host not allowed
        ("https://user:pw@127.0.0.1:{port}/hook", ("127.0.0.1",)),
    ],
)
def test_a_webhook_outside_the_policy_is_refused_at_once_and_never_posted(
    store: Store, box: MemoryMailbox, url: str, allow: tuple[str, ...]
) -> None:
    hook = _Hook()
    try:
        target = url.format(port=hook.server.server_address[1])
        store.enqueue([webhook(target)])
        [outcome] = make(store, box, allow=allow).run(NOW)
    finally:
        hook.close()
    assert outcome.status == "failed" and "refused" in outcome.detail
    assert hook.bodies == []
    row = store.outbox_row(webhook(target).key)
    assert row is not None and "/hook" not in row["last_error"]


def test_a_webhook_redirect_is_not_followed(store: Store, box: MemoryMailbox) -> None:
    inner = _Hook()
    outer = _Hook(redirect=inner.url)
    try:
        store.enqueue([webhook(outer.url)])
        [outcome] = make(store, box).run(NOW)
    finally:
        outer.close()
        inner.close()
    assert outcome.status == "failed" and "redirect" in outcome.detail
    assert inner.bodies == []


def invitation() -> Action:
    start = NOW + timedelta(days=1)
    return Action(
        key="invite/asha/<t@x>/20261126T0800Z",
        kind=ActionKind.INVITE,
        mailbox="asha",
        due=NOW - timedelta(minutes=1),
        to=(Address("kenji.sato@sato-trading.co.jp", "佐藤 健二"),),
        language="ja",
        template="invitation",
        reason="test",
        client="kenji",
        reply_to_message_id="<m2@x>",
        subject="Re: 打ち合わせ",
        context={
            "client": {"name": "佐藤 健二", "first_name": "健二", "company": "佐藤商事"},
            "rep": {"name": "Asha Rao", "email": "asha@acme.example"},
            "meeting": {
                "summary": "佐藤商事 – Asha Rao",
                "start": start,
                "end": start + timedelta(minutes=30),
                "zone": "Asia/Tokyo",
            },
            "client_zone": "Asia/Tokyo",
            "rep_zone": "Asia/Kolkata",
            "duration_minutes": 30,
        },
    )


def test_an_invitation_is_sent_once_with_its_calendar_request(
    store: Store, box: MemoryMailbox
) -> None:
    seen: list = []
    outbox = make(store, box)
    outbox.on_message = lambda action, message: seen.append(message)
    store.enqueue([invitation(), invitation()])
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert sent_count(box) == 1
    [message] = seen
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST" and message["Content-Language"] == "ja"
    ics = part.get_content()
    assert "METHOD:REQUEST" in ics and "TZID:Asia/Tokyo" in ics
    assert "mailto:kenji.sato@sato-trading.co.jp" in ics and "mailto:asha@acme.example" in ics


def test_cancelling_a_sent_invitation_cancels_the_meeting_with_the_client(
    store: Store, box: MemoryMailbox
) -> None:
    import icalendar

    seen: list = []
    outbox = make(store, box, mode="draft")
    outbox.on_message = lambda action, message: seen.append(message)
    store.enqueue([invitation()])
    outbox.approve(invitation().key, NOW)
    assert store.outbox_row(invitation().key)["status"] == SENT
    outcome = outbox.cancel(store.outbox_row(invitation().key)["id"], NOW)
    assert outcome.status == PLANNED and outcome.key.startswith("cancel/")
    # Cancelling twice plans one cancellation; the rep asked for it, so no draft waits.
    outbox.cancel(invitation().key, NOW)
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert sent_count(box) == 2
    first, cancel = (
        icalendar.Calendar.from_ical(
            next(p for p in m.walk() if p.get_content_type() == "text/calendar").get_content()
        )
        for m in seen
    )
    assert str(cancel["METHOD"]) == "CANCEL"
    before, after = first.walk("VEVENT")[0], cancel.walk("VEVENT")[0]
    assert str(after["UID"]) == str(before["UID"])
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert str(after["STATUS"]) == "CANCELLED"
    part = next(p for p in seen[1].walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "CANCEL"


def test_a_cancelled_meeting_leaves_the_reps_calendar(store: Store, box: MemoryMailbox) -> None:
    from agent.invites import invite_for, invite_uid
    from agent.model import Event

    invite = invitation()
    meeting = invite.context["meeting"]
    uid = invite_uid(invite_for(invite, Address("asha@acme.example", "Asha")))
    # The rep accepted the meeting into their own calendar; another event is left alone.
    for ident, event_uid in (("ev-meeting", uid), ("ev-other", "other@example.com")):
        box.event_store[ident] = Event(
            "asha", ident, "Meeting", meeting["start"], meeting["end"], uid=event_uid
        )
    store.apply_event_sync("asha", box.events(None))
    outbox = make(store, box)
    outbox.calendars = {"asha": box}
    store.enqueue([invite])
    outbox.run(NOW)
    outbox.cancel(invite.key, NOW)
    outcomes = outbox.run(NOW)
    assert sorted(o.status for o in outcomes) == [SENT, SENT]
    assert set(box.event_store) == {"ev-other"}


def test_a_note_found_due_outside_its_hours_waits_for_them(
    store: Store, box: MemoryMailbox
) -> None:
    # The worker was down when the follow-up fell due; it comes back at night for the client.
    opens = NOW + timedelta(hours=7)
    note = Action(
        key="follow_up/asha/<t@x>/<m1@x>/1",
        kind=ActionKind.FOLLOW_UP,
        mailbox="asha",
        due=NOW - timedelta(days=1),
        to=(Address("kenji.sato@sato-trading.co.jp", "佐藤 健二"),),
        language="en",
        template="follow_up",
        reason="test",
        client="kenji",
        context={
            **invitation().context,
            "thread": {"subject": "Offer"},
            "step": 1,
            "last_sent": NOW - timedelta(days=4),
            "zone": "Asia/Tokyo",
            "send_spans": [
                {"start": NOW - timedelta(days=1), "end": NOW - timedelta(hours=16)},
                {"start": opens, "end": opens + timedelta(hours=8)},
            ],
        },
    )
    outbox = make(store, box)
    store.enqueue([note])
    [outcome] = outbox.run(NOW)
    assert outcome.status == PLANNED and "waits until" in outcome.detail
    assert sent_count(box) == 0 and store.outbox_row(note.key)["due"] == opens
    assert outbox.run(opens - timedelta(minutes=1)) == []
    assert [o.status for o in outbox.run(opens)] == [SENT]


def hold(op: str, key: str = "hold/20261126T0800Z/proposal/asha/t/m") -> Action:
    start = NOW + timedelta(days=1)
    context: dict = (
        {"op": "create", "summary": "Tentative: Kenji [followup hold]", "start": start}
        | {"end": start + timedelta(minutes=30), "zone": "Asia/Kolkata"}
        if op == "create"
        else {"op": "release", "hold": "hold/20261126T0800Z/proposal/asha/t/m"}
    )
    return Action(
        key=key,
        kind=ActionKind.HOLD,
        mailbox="asha",
        due=NOW - timedelta(minutes=1),
        to=(Address("asha@acme.example", "Asha"),),
        language="en",
        template="",
        reason="test",
        context=context,
    )


def test_a_hold_waits_for_a_calendar_then_is_made_once(store: Store, box: MemoryMailbox) -> None:
    store.enqueue([hold("create")])
    assert [o.status for o in make(store, box).run(NOW)] == [PLANNED]  # no calendar given
    outbox = make(store, box)
    outbox.calendars = {"asha": box}
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert outbox.run(NOW) == [] and sent_count(box) == 0
    [event] = box.event_store.values()
    assert event.summary.endswith("[followup hold]") and event.start == NOW + timedelta(days=1)


RELEASE = "release/20261126T0800Z/proposal/asha/t/m"


def test_a_released_hold_is_deleted_from_the_calendar(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    outbox.calendars = {"asha": box}
    store.enqueue([hold("create")])
    outbox.run(NOW)
    [event] = box.event_store.values()
    assert event.status == "tentative"
    store.enqueue([hold("release", RELEASE)])
    [outcome] = outbox.run(NOW)
    assert outcome.status == SENT and outcome.detail == "hold released"
    assert not box.event_store and "delete_event" in box.calls
    assert outbox.run(NOW) == []


def test_a_release_interrupted_by_a_transient_error_is_made_on_the_next_pass(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box)
    outbox.calendars = {"asha": box}
    store.enqueue([hold("create")])
    outbox.run(NOW)
    store.enqueue([hold("release", RELEASE)])
    box.fail("delete_event", Transient("503"))
    [outcome] = outbox.run(NOW)
    assert outcome.status == SENDING and box.event_store
    [outcome] = outbox.run(NOW)
    assert outcome.status == SENT and not box.event_store


def test_a_release_the_calendar_refuses_fails_with_its_reason(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box)
    outbox.calendars = {"asha": box}
    store.enqueue([hold("create")])
    outbox.run(NOW)
    store.enqueue([hold("release", RELEASE)])
    box.fail("delete_event", Permanent("403 forbidden"))
    [outcome] = outbox.run(NOW)
    row = store.outbox_row(RELEASE)
    assert outcome.status == FAILED and row is not None and "403 forbidden" in row["last_error"]


def test_a_hold_on_the_local_calendar_is_written_then_released(
    store: Store, box: MemoryMailbox, tmp_path: Path
) -> None:
    local = LocalMailbox(
        tmp_path / "asha", mailbox="asha", address="asha@acme.example", clock=lambda: NOW
    )
    outbox = make(store, box)
    outbox.calendars = {"asha": local}
    store.enqueue([hold("create")])
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    [ics] = (tmp_path / "asha" / "calendar").glob("*.ics")
    text = ics.read_text()
    assert "STATUS:TENTATIVE" in text and "TRANSP:OPAQUE" in text
    start = NOW + timedelta(days=1)
    window = Interval(NOW, NOW + timedelta(days=2))
    assert local.busy(window) == [Interval(start, start + timedelta(minutes=30))]
    mine = tmp_path / "asha" / "calendar" / "dentist.ics"
    mine.write_bytes(ics.read_bytes())  # the rep's own file, even with the same event in it
    store.enqueue([hold("release", RELEASE)])
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    assert not ics.exists() and mine.exists()
    mine.unlink()
    assert local.busy(window) == [] and sent_count(box) == 0


def test_releasing_a_hold_never_made_cancels_it(store: Store, box: MemoryMailbox) -> None:
    later = Action(**{**hold("create").__dict__, "due": NOW + timedelta(hours=1)})
    store.enqueue([later, hold("release", "release/20261126T0800Z/proposal/asha/t/m")])
    outbox = make(store, box)
    outbox.calendars = {"asha": box}
    [outcome] = outbox.run(NOW)
    assert outcome.status == SENT and outcome.detail == "the hold was never made"
    row = store.outbox_row(later.key)
    assert row is not None and row["status"] == CANCELLED
    assert outbox.run(NOW + timedelta(hours=2)) == [] and not box.event_store


def test_team_mail_is_marked_auto_generated_and_no_agent_answers_it(
    store: Store, box: MemoryMailbox
) -> None:
    import dataclasses

    from agent import matching, mime
    from agent.compose import sample_context
    from agent.model import MessageKind

    outbox = make(store, box)
    escalation = dataclasses.replace(
        reminder("promise/asha/t1/0/escalate/1", ActionKind.ESCALATION),
        template="escalation",
        context=sample_context("escalation"),
    )
    for action in (reminder(), escalation):
        msg = outbox.compose(action, NOW)
        assert msg["Auto-Submitted"] == "auto-generated"  # RFC 3834 5.
        assert msg["X-Auto-Response-Suppress"] == "All"
        seen = mime.to_message(bytes(msg), mailbox="other", provider_id="x")
        assert matching.kind_of(seen)[0] is MessageKind.AUTO_REPLY
    note = dataclasses.replace(
        reminder("follow_up/asha/t1/<m@x>/1", ActionKind.FOLLOW_UP),
        template="follow_up",
        context=sample_context("follow_up"),
    )
    assert outbox.compose(note, NOW)["Auto-Submitted"] is None  # the rep's voice to a client


def test_outgoing_headers_reveal_no_mailbox_or_kind(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    store.enqueue([reminder("promise/asha/<thread@acme.example>/0/warn/0")])
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    [sent] = [m for m in box.messages.values() if "SENT" in m.labels]
    headers = sent.raw.split(b"\r\n\r\n")[0].split(b"\n\n")[0]
    tagged = [line for line in headers.splitlines() if line.lower().startswith(b"x-followup-key")]
    assert len(tagged) == 1
    for word in (b"promise", b"asha", b"warn", b"thread@"):
        assert word not in tagged[0]
        assert word not in next(
            line for line in headers.splitlines() if line.lower().startswith(b"message-id")
        )


def test_a_note_sent_before_keys_were_tagged_is_still_recognised(
    store: Store, box: MemoryMailbox
) -> None:
    from email.message import EmailMessage

    outbox = make(store, box)
    store.enqueue([reminder()])
    store.transition(reminder().key, [PLANNED], SENDING)
    old = EmailMessage()
    old["From"], old["To"], old["Subject"] = "asha@acme.example", "asha@acme.example", "Quote"
    old["Message-ID"] = "<followup.old@acme.example>"
    old["Date"] = "Wed, 25 Nov 2026 07:00:00 +0000"
    old["X-Followup-Key"] = reminder().key  # what notes carried before
    old.set_content("Reminder")
    box.deliver(bytes(old), labels=frozenset({"SENT"}))
    [o] = outbox.run(NOW)
    assert (o.status, o.detail) == (SENT, "reconciled: found in sent mail")
    assert sent_count(box) == 1


def test_no_hold_for_a_proposal_the_daily_cap_holds_back(store: Store, box: MemoryMailbox) -> None:
    from agent.compose import sample_context

    proposal = Action(
        key="proposal/asha/t/m",
        kind=ActionKind.PROPOSAL,
        mailbox="asha",
        due=NOW - timedelta(minutes=1),
        to=(Address("kenji@sato.example", "Kenji"),),
        language="en",
        template="proposal",
        reason="test",
        client="kenji",
        context=sample_context("proposal"),
    )
    held = Action(
        **{
            **hold("create").__dict__,
            "context": {**hold("create").context, "proposal": proposal.key},
        }
    )
    store.enqueue([proposal, held])
    capped = make(store, box)
    capped.daily_cap, capped.calendars = 0, {"asha": box}
    outcomes = {o.key: (o.status, o.detail) for o in capped.run(NOW)}
    assert outcomes[proposal.key] == (PLANNED, "daily cap of 0 reached")
    assert outcomes[held.key] == (PLANNED, "waits until its proposal goes out")
    assert not box.event_store  # nothing held for a proposal nobody was sent
    capped.daily_cap = 50  # the next day
    assert [o.status for o in capped.run(NOW)] == [SENT, SENT]
    assert sent_count(box) == 1 and len(box.event_store) == 1
    # A cancelled proposal's holds are cancelled, never made.
    other = Action(**{**held.__dict__, "key": "hold/2/proposal/asha/t/m2"})
    other = Action(**{**other.__dict__, "context": {**held.context, "proposal": "p2"}})
    store.enqueue([Action(**{**proposal.__dict__, "key": "p2"}), other])
    store.transition("p2", [PLANNED], CANCELLED)
    assert [(o.key, o.status) for o in capped.run(NOW)] == [(other.key, CANCELLED)]


def test_team_mail_past_its_cap_is_folded_into_digests(store: Store, box: MemoryMailbox) -> None:
    outbox = make(store, box)
    outbox.team_daily_cap = 2
    # five readers, one note each: no storm, but the cap lets two through a day
    reminders = [
        dataclasses.replace(
            reminder(f"promise/asha/t{i}/0/warn/0"), to=(Address(f"r{i}@acme.example", f"R{i}"),)
        )
        for i in range(5)
    ]
    store.enqueue(reminders)
    outcomes = outbox.run(NOW)
    assert [o.status for o in outcomes] == [SENT, SENT] + [CANCELLED] * 3
    assert sent_count(box) == 2
    folded = {o.detail.rpartition(" ")[2] for o in outcomes if o.status == CANCELLED}
    assert len(folded) == 3  # one digest per reader
    # The digests go out at the end of their span, past the cap, once each.
    later = NOW + DIGEST_EVERY
    assert sorted(o.status for o in outbox.run(later)) == [SENT] * 3
    assert outbox.run(later) == [] and sent_count(box) == 5


def test_team_notes_to_one_reader_in_one_pass_go_out_as_one_digest(
    store: Store, box: MemoryMailbox
) -> None:
    outbox = make(store, box)
    posted: list[dict[str, str]] = []
    outbox.post = lambda url, payload: posted.append(payload)
    reminders = [reminder(f"promise/asha/t{i}/0/warn/0") for i in range(5)]
    hooks = [
        Action(
            key=f"promise/asha/t{i}/0/webhook/1",
            kind=ActionKind.WEBHOOK,
            mailbox="asha",
            due=NOW - timedelta(minutes=5),
            to=(),
            language="en",
            template="",
            reason="test",
            rule="gold",
            context={"url": "https://hooks.example/T1", "text": f"Kenji waited ({i})"},
        )
        for i in range(2)
    ]
    store.enqueue([*reminders, *hooks])
    outcomes = outbox.run(NOW)
    assert sorted(o.status for o in outcomes) == [CANCELLED] * 7 + [SENT] * 2
    assert sent_count(box) == 1 and len(posted) == 1  # one mail, one post, at once
    digest = next(
        mime.parse(m.raw)
        for m in box.messages.values()
        if "SENT" in m.labels and "digest" in str(mime.parse(m.raw)["Subject"]).lower()
    )
    body = digest.get_body(preferencelist=("plain",)).get_content()
    assert body.count("Kenji – Quote") == 5 and "gold" in body
    assert digest["Auto-Submitted"] == "auto-generated"
    [post] = posted
    assert "Kenji waited (0)" in post["text"] and "Kenji waited (1)" in post["text"]
    # the same pass run again (a crash, a second worker) makes nothing new
    assert outbox.run(NOW) == [] and sent_count(box) == 1 and len(posted) == 1


def test_a_team_note_within_the_hour_of_the_last_waits_for_that_hours_digest(
    store: Store, box: MemoryMailbox
) -> None:
    clock = [NOW]
    store.clock = lambda: clock[-1]
    outbox = make(store, box)
    store.enqueue([reminder("promise/asha/t1/0/warn/0")])
    assert [o.status for o in outbox.run(NOW)] == [SENT]
    soon = NOW + timedelta(minutes=20)
    clock.append(soon)
    second = dataclasses.replace(reminder("promise/asha/t2/0/warn/0"), due=soon)
    store.enqueue([second])
    [o] = outbox.run(soon)
    assert o.status == CANCELLED and "within the hour" in o.detail
    assert sent_count(box) == 1
    hour_end = NOW.replace(minute=0) + timedelta(hours=1)
    clock.append(hour_end)
    assert [o.status for o in outbox.run(hour_end)] == [SENT]
    assert sent_count(box) == 2


class StopsAfterTheRequest:
    """A mailbox whose worker stopped after recording the send request and before making it."""

    def __init__(self, inner: MemoryMailbox) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send_draft(self, draft_id: str, *, before_post: Any = None) -> Any:
        if before_post is not None:
            before_post()
        raise Transient("the worker stopped here")


def test_a_synchronous_send_requested_but_never_made_is_made_once(
    store: Store, box: MemoryMailbox
) -> None:
    # Gmail's send consumes the draft before it answers: a draft still there after a request
    # proves the request was never made, so it is made (there is no lag to wait out).
    store.enqueue([reminder()])
    stopped = make(store, box)
    stopped.providers = {"asha": StopsAfterTheRequest(box)}  # type: ignore[dict-item]
    assert [o.status for o in stopped.run(NOW)] == [SENDING]
    row = store.outbox_row(reminder().key)
    assert row is not None and row["status"] == SENDING and row["send_requested_at"] == NOW
    assert [o.status for o in make(store, box).run(NOW)] == [SENT]
    assert sent_count(box) == 1 and not box.drafts
