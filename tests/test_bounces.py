"""Delivery-status reports: recognised by their structure and fields, the failed address and the
original Message-ID read, and a failure stopping follow-ups to that address in any thread."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import bounces, matching, mime
from agent.model import Message, MessageKind
from agent.providers import gmail
from agent.store import Store
from agent.worker import Worker
from tests.benchmarks import reading_bounces
from tests.test_followups import ANCHOR, ASKED, at, decided, follow_ups, msg, run
from tests.test_worker import NOW, demo_config  # noqa: F401 (a fixture)

ORIGINAL = "<m2@x>"  # ANCHOR's Message-ID: Sam's proposal to carlos@ruiz.mx


def report(
    *,
    sender: str = "Mail Delivery System <MAILER-DAEMON@mx.acme.example>",
    action: str = "failed",
    status: str = "5.1.1",
    recipient: str = "carlos@ruiz.mx",
    content_type: str = "multipart/report; report-type=delivery-status",
    subject: str = "Undelivered Mail Returned to Sender",
    original: str = f"text/rfc822-headers\r\n\r\nMessage-ID: {ORIGINAL}\r\nTo: carlos@ruiz.mx",
    extra: str = "",
) -> bytes:
    """An RFC 3464 report as Postfix writes one, with the returned message's headers."""
    return (
        f"From: {sender}\r\nTo: sam@acme.example\r\nDate: Thu, 19 Nov 2026 17:00:00 +0000\r\n"
        f"Subject: {subject}\r\nMessage-ID: <dsn-1@mx.acme.example>\r\n{extra}"
        f'Content-Type: {content_type}; boundary="B"\r\nMIME-Version: 1.0\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n"
        f"--B\r\nContent-Type: {original}\r\n\r\n--B--\r\n"
    ).encode()


def fetched(raw: bytes) -> Message:
    """``raw`` as the worker holds it once its body is fetched."""
    message = mime.to_message(raw, mailbox="sam", provider_id="dsn")
    return dataclasses.replace(message, body=mime.body_text(raw))


@pytest.mark.parametrize(
    "sender", ["MAILER-DAEMON <>", "<MAILER-DAEMON>", '"" (Mail Delivery System)', "<>"]
)
def test_a_report_from_a_sender_without_an_address_is_read_as_a_bounce(sender: str) -> None:
    message = fetched(report(sender=sender, subject="Delivery Status Notification (Failure)"))
    assert matching.kind_of(message)[0] is MessageKind.BOUNCE
    assert matching.bounce_report(message).recipients == ("carlos@ruiz.mx",)


def test_other_mail_without_a_from_address_is_still_refused() -> None:
    raw = b"From: Anna\r\nDate: Thu, 19 Nov 2026 17:00:00 +0000\r\nSubject: hi\r\n\r\nhi"
    with pytest.raises(mime.MalformedMessage, match="no From address"):
        mime.to_message(raw, mailbox="sam", provider_id="x")


def test_a_multipart_report_without_report_type_from_a_carrier_is_a_bounce() -> None:
    raw = report(
        sender="no-reply@carrier.example",
        content_type="multipart/report",
        subject="Mail",
        extra="Return-Path: <>\r\n",
    )
    assert matching.kind_of(fetched(raw))[0] is MessageKind.BOUNCE


@pytest.mark.parametrize(("action", "status"), [("delivered", "2.0.0"), ("relayed", "2.0.0")])
def test_a_success_report_is_no_bounce(action: str, status: str) -> None:
    message = fetched(report(action=action, status=status, subject="Successful Mail Delivery"))
    kind, why = matching.kind_of(message)
    assert kind is MessageKind.NOTICE
    assert f"Action: {action}" in why


def test_a_read_receipt_is_no_reply_from_the_client() -> None:
    receipt = msg(
        3,
        "carlos@ruiz.mx",
        "sam@acme.example",
        at(19, 17),
        subject="Read: Propuesta",
        body="Your message was read on Thursday.",
        content_type="multipart/report; report-type=disposition-notification",
    )
    result = run([ASKED, ANCHOR, receipt], at(20, 12))
    assert "follow-ups stopped: client replied" not in decided(result)
    assert len(follow_ups(result)) == 3


def test_a_delay_report_is_no_bounce() -> None:
    raw = report(action="delayed", status="4.4.7", subject="Delayed Mail (still being retried)")
    assert matching.kind_of(fetched(raw))[0] is MessageKind.NOTICE


def test_a_delay_warning_is_no_bounce_before_its_body_is_fetched() -> None:
    message = mime.to_message(
        report(action="delayed", subject="Delivery Status Notification (Delay)"),
        mailbox="sam",
        provider_id="dsn",
    )
    assert matching.kind_of(message)[0] is MessageKind.NOTICE


def test_the_original_message_id_comes_from_text_rfc822_headers() -> None:
    found = matching.bounce_report(fetched(report()))
    assert (found.action, found.recipients, found.original_id) == (
        "failed",
        ("carlos@ruiz.mx",),
        ORIGINAL,
    )


def test_the_original_message_id_comes_from_an_attached_message() -> None:
    attached = (
        "message/rfc822\r\n\r\nFrom: sam@acme.example\r\nTo: carlos@ruiz.mx\r\n"
        f"Message-ID: {ORIGINAL}\r\nSubject: Propuesta\r\n\r\nLe envio la propuesta."
    )
    assert matching.bounce_report(fetched(report(original=attached))).original_id == ORIGINAL


def test_a_plain_text_bounce_names_its_address_and_the_original_in_its_body() -> None:
    raw = (
        "From: MAILER-DAEMON@mx.ruiz.mx\r\nTo: sam@acme.example\r\nSubject: failure notice\r\n"
        "Date: Thu, 19 Nov 2026 17:00:00 +0000\r\n\r\n"
        "Hi. This is the qmail-send program at mx.ruiz.mx.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        "<carlos@ruiz.mx>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <sam@acme.example>\r\nMessage-ID: {ORIGINAL}\r\nTo: carlos@ruiz.mx\r\n"
    ).encode()
    found = matching.bounce_report(fetched(raw))
    assert (found.action, found.recipients, found.original_id) == (
        "failed",
        ("carlos@ruiz.mx",),
        ORIGINAL,
    )


def bounce_message(raw: bytes, *, thread: str, n: int = 3) -> Message:
    """The bounce ``raw`` in Sam's mailbox, in ``thread``, with its fetched body."""
    return msg(
        n,
        "mailer-daemon@mx.acme.example",
        "sam@acme.example",
        at(19, 17),
        thread=thread,
        subject="Undelivered Mail Returned to Sender",
        body=mime.body_text(raw),
        content_type="multipart/report; report-type=delivery-status",
    )


def test_a_bounce_in_another_thread_stops_follow_ups_to_that_address() -> None:
    result = run([ASKED, ANCHOR, bounce_message(report(), thread="t-bounce")], at(20, 12))
    assert follow_ups(result) == []
    assert decided(result) == ["follow-ups stopped: bounce"]
    reason = next(d.reason for d in result.decisions)
    assert "mail to carlos@ruiz.mx failed" in reason
    assert "'Undelivered Mail Returned to Sender'" in reason  # the thread it landed in


def test_a_bounce_naming_only_the_sent_message_stops_it() -> None:
    raw = report(recipient="")
    result = run([ASKED, ANCHOR, bounce_message(raw, thread="t-bounce")], at(20, 12))
    assert decided(result) == ["follow-ups stopped: bounce"]


def test_a_delay_report_in_the_thread_stops_nothing() -> None:
    raw = report(action="delayed", status="4.4.7")
    result = run([ASKED, ANCHOR, bounce_message(raw, thread="t1")], at(20, 12))
    assert len(follow_ups(result)) == 3


def test_a_bounce_for_another_address_stops_nothing() -> None:
    raw = report(recipient="old.contact@ruiz.mx", original="text/rfc822-headers\r\n\r\nTo: x")
    result = run([ASKED, ANCHOR, bounce_message(raw, thread="t-bounce")], at(20, 12))
    assert len(follow_ups(result)) == 3


def test_a_bounce_before_the_rep_wrote_stops_nothing() -> None:
    early = dataclasses.replace(bounce_message(report(), thread="t-bounce"), date=at(19, 15))
    result = run([ASKED, ANCHOR, early], at(20, 12))
    assert len(follow_ups(result)) == 3


@given(st.text(max_size=400), st.text(max_size=80))
def test_any_text_reads_as_a_report_without_raising(text: str, subject: str) -> None:
    found = bounces.read_text(text, subject=subject)
    assert found.action in (bounces.FAILED, bounces.DELAYED, bounces.DELIVERED)
    assert all("@" in a for a in found.recipients)
    assert matching.auto_subject(subject) in (
        "",
        *matching.AUTO_SUBJECTS,
        *(e.strip() for e in matching.AUTO_SUBJECT_ENDINGS),
    )


def test_bounce_reading_is_bounded() -> None:
    text = "Action: failed\nFinal-Recipient: rfc822; a@b.example\n" * 5_000
    found = bounces.read_text(text)
    assert found.action == "failed"
    assert found.recipients == ("a@b.example",)


def test_the_corpus_meets_its_targets() -> None:
    """Bounce recall >= 0.98, no delay or success report taken for a bounce, and bounces linked
    to the sent message across threads >= 0.95, on tests/data/reading/bounces."""
    missed = [f.line() for f in reading_bounces.corpus_figures() if not f.met]
    assert missed == []


def test_the_worker_fetches_a_bounce_outside_any_client_thread_and_stops_the_follow_up(
    demo_config: Path,  # noqa: F811
) -> None:
    """The demo's bounce to Markus Weber lands in a thread with no client: the worker still
    fetches its body, which names the address, and the follow-ups to it stop."""
    assert Worker(demo_config, clock=lambda: NOW).run(once=True) == 0
    store = Store.open(f"sqlite:///{demo_config.parent / 'followup-demo.db'}")
    try:
        bounced = [m for m in store.messages("lukas") if m.sender.email.startswith("mailer-daemon")]
        assert all(m.body for m in bounced)
        stopped = [
            d for d in store.decisions("lukas") if d["decision"] == "follow-ups stopped: bounce"
        ]
        assert any("m.weber@schmidt-maschinenbau.de" in d["reason"] for d in stopped)
        assert not any("m.weber" in str(r["action"]) for r in store.outbox(mailbox="lukas"))
    finally:
        store.close()


@pytest.mark.parametrize(
    "subject", ["Re: Undeliverable: Propuesta", "Fwd: Returned mail: see transcript for details"]
)
def test_a_person_writing_about_a_bounce_stays_human(subject: str) -> None:
    raw = (
        f"From: Carlos Ruiz <carlos@ruiz.mx>\r\nTo: sam@acme.example\r\nSubject: {subject}\r\n"
        "Date: Thu, 19 Nov 2026 17:00:00 +0000\r\n\r\nYour mail bounced, try my other address."
    ).encode()
    assert matching.kind_of(fetched(raw))[0] is MessageKind.HUMAN


def test_gmail_metadata_of_a_report_from_a_bare_mailer_daemon_is_read() -> None:
    resource = {
        "id": "1",
        "threadId": "t",
        "payload": {
            "headers": [
                {"name": "From", "value": "MAILER-DAEMON"},
                {"name": "Date", "value": "Thu, 19 Nov 2026 17:00:00 +0000"},
                {"name": "Subject", "value": "Undelivered Mail Returned to Sender"},
                {"name": "Content-Type", "value": "multipart/report; boundary=x"},
            ]
        },
    }
    message = gmail.parse_metadata("sam", resource)
    assert message.sender.email == "mailer-daemon"
    assert matching.kind_of(message)[0] is MessageKind.BOUNCE
