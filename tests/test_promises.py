from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.businesstime import BusinessCalendar
from agent.matching import Directory, build_threads
from agent.model import Address, Client, Message
from agent.pipeline import client_calendar
from agent.promises import Rep, State, plan
from agent.rules import parse_rules

RULES = """
[[promise]]
name = "first"
kind = "first_reply"
target = "4h"
warn = ["50%", "1h before"]
escalate_to = "lead@acme.example"
escalate_after = ["0h", "2h"]

[[promise]]
name = "next"
kind = "next_reply"
target = "8h"
"""
CLIENT = Client(
    key="noor",
    name="Noor",
    emails=frozenset({"noor@client.sa"}),
    language="ar",
    zone="Asia/Riyadh",
    country="SA",
)
# Riyadh rep, Friday-Saturday weekend, 09:00-17:00.
REP = Rep(
    mailbox="omar",
    name="Omar",
    address="omar@acme.example",
    addresses=frozenset({"omar@acme.example", "o.haddad@acme.example"}),
    language="ar",
    zone="Asia/Riyadh",
    calendar=BusinessCalendar.simple("Asia/Riyadh", "09:00-17:00", ("fri", "sat")),
    lead_email="lead@acme.example",
    lead_name="Lead",
)


def rules():
    ruleset, problems = parse_rules([("r.toml", RULES)])
    assert not problems
    return ruleset


def mail(
    n: int, sender: str, when: datetime, body: str = "Can you send the price?", **headers: str
) -> Message:
    to = "omar@acme.example" if sender != "omar@acme.example" else "noor@client.sa"
    return Message(
        mailbox="omar",
        provider_id=f"p{n}",
        thread_id="<t@x>",
        message_id=f"<m{n}@x>",
        sender=Address(sender),
        to=(Address(to),),
        date=when,
        subject="Offer",
        headers=headers,
        body=body,
    )


def run(messages: list[Message], now: datetime):
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    threads = build_threads(messages, {"omar": REP.addresses}, d)
    return plan(threads, rules(), {"omar": REP}, client_calendar, now)


THU_EVENING = datetime(2026, 11, 19, 15, 0, tzinfo=UTC)  # Thursday 18:00 in Riyadh, after hours


def test_a_message_on_thursday_evening_starts_the_clock_on_sunday_morning() -> None:
    result = run([mail(1, "noor@client.sa", THU_EVENING)], THU_EVENING + timedelta(hours=1))
    [p] = result.promises
    assert p.clock_start == datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # Sunday 09:00 Riyadh
    assert p.deadline == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert p.state is State.ACTIVE
    warns = sorted(a.due for a in result.actions if a.kind.value == "reminder")
    assert warns == [
        datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
    ]
    escalations = sorted(a.due for a in result.actions if a.kind.value == "escalation")
    assert escalations == [p.deadline, p.deadline + timedelta(hours=2)]


def test_a_reply_from_any_rep_address_meets_the_promise_and_obsoletes_its_actions() -> None:
    msgs = [
        mail(1, "noor@client.sa", THU_EVENING),
        mail(2, "o.haddad@acme.example", datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
    ]
    msgs[1] = Message(**{**msgs[1].__dict__, "to": (Address("noor@client.sa"),)})
    result = run(msgs, datetime(2026, 11, 23, tzinfo=UTC))
    [p] = result.promises
    assert p.state is State.MET and p.response == timedelta(hours=1)
    assert not result.actions
    assert f"{p.key}/warn/0" in result.obsolete


def test_breach_is_recorded_and_only_escalations_remain() -> None:
    result = run(
        [mail(1, "noor@client.sa", THU_EVENING)], datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    )
    [p] = result.promises
    assert p.state is State.BREACHED and p.breached_at == p.deadline
    assert {a.kind.value for a in result.actions} == {"escalation"}


def test_auto_replies_and_acknowledgements_start_no_clock_and_are_audited() -> None:
    msgs = [
        mail(
            1, "noor@client.sa", THU_EVENING, "Out of office", **{"Auto-Submitted": "auto-replied"}
        ),
        mail(2, "noor@client.sa", THU_EVENING + timedelta(minutes=5), "شكراً"),
    ]
    result = run(msgs, THU_EVENING + timedelta(hours=1))
    assert not result.promises
    assert [d.decision for d in result.decisions] == [
        "no clock: auto_reply",
        "no clock: needs no answer",
    ]


def test_a_later_question_opens_a_next_reply_cycle() -> None:
    reply = mail(2, "omar@acme.example", datetime(2026, 11, 22, 7, 0, tzinfo=UTC))
    again = mail(3, "noor@client.sa", datetime(2026, 11, 23, 6, 0, tzinfo=UTC))
    result = run(
        [mail(1, "noor@client.sa", THU_EVENING), reply, again],
        datetime(2026, 11, 23, 7, tzinfo=UTC),
    )
    assert [(p.rule, p.state) for p in result.promises] == [
        ("first", State.MET),
        ("next", State.ACTIVE),
    ]


def test_messages_after_now_are_ignored_so_replays_are_honest() -> None:
    reply = mail(2, "omar@acme.example", datetime(2026, 11, 22, 7, 0, tzinfo=UTC))
    before_reply = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)
    result = run([mail(1, "noor@client.sa", THU_EVENING), reply], before_reply)
    assert result.promises[0].state is State.ACTIVE


def test_a_stranger_writing_into_a_clients_thread_starts_no_clock() -> None:
    # Quoting the thread's References ties Mallory's mail to Noor's thread.
    first = mail(1, "noor@client.sa", THU_EVENING)
    answer = Message(
        **{
            **mail(2, "omar@acme.example", THU_EVENING + timedelta(hours=1)).__dict__,
            "to": (Address("noor@client.sa"),),
        }
    )
    stranger = Message(
        **{
            **mail(3, "mallory@evil.example", THU_EVENING + timedelta(hours=2)).__dict__,
            "references": ("<m1@x>",),
        }
    )
    result = run([first, answer, stranger], datetime(2026, 11, 25, tzinfo=UTC))
    [met] = result.promises
    assert met.state is State.MET and not result.actions
    [decision] = [d for d in result.decisions if d.message_id == "<m3@x>"]
    assert decision.decision == "no clock: the sender is not the client"


def test_a_subject_in_the_teams_webhook_cannot_ping_the_channel_or_hide_a_link() -> None:
    import dataclasses

    hooked = dataclasses.replace(REP, webhook="https://hooks.example/T1")
    hostile = Message(
        **{
            **mail(1, "noor@client.sa", THU_EVENING).__dict__,
            "subject": "<!channel> @here pay <https://evil.example/pay|the invoice> [now](x)",
        }
    )
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    threads = build_threads([hostile], {"omar": REP.addresses}, d)
    result = plan(
        threads, rules(), {"omar": hooked}, client_calendar, datetime(2026, 11, 23, tzinfo=UTC)
    )
    texts = [str(a.context["text"]) for a in result.actions if a.kind.value == "webhook"]
    assert texts
    for text in texts:
        assert "<!channel>" not in text and "<https://" not in text and "|the invoice>" not in text
        assert "@here" not in text and "](" not in text
        assert "&lt;!channel&gt;" in text  # shown as written, acting as nothing


def test_another_clients_contact_in_the_thread_still_starts_a_clock() -> None:
    other = Client(key="haddad", name="Haddad", emails=frozenset({"sara@haddad.example"}))
    first = mail(1, "noor@client.sa", THU_EVENING)
    answer = Message(
        **{
            **mail(2, "omar@acme.example", THU_EVENING + timedelta(hours=1)).__dict__,
            "to": (Address("noor@client.sa"), Address("sara@haddad.example")),
        }
    )
    sara = mail(3, "sara@haddad.example", THU_EVENING + timedelta(hours=2))
    d = Directory(
        [CLIENT, other], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses
    )
    threads = build_threads([first, answer, sara], {"omar": REP.addresses}, d)
    result = plan(
        threads, rules(), {"omar": REP}, client_calendar, datetime(2026, 11, 22, tzinfo=UTC)
    )
    assert [p.state for p in result.promises] == [State.MET, State.ACTIVE]


def test_a_target_in_business_days_lands_at_the_same_local_time() -> None:
    text = RULES.replace('target = "4h"', 'target = "2bd"')
    ruleset, problems = parse_rules([("r.toml", text)])
    assert not problems
    thursday = datetime(2026, 11, 19, 7, 0, tzinfo=UTC)  # Thursday 10:00 in Riyadh
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    threads = build_threads([mail(1, "noor@client.sa", thursday)], {"omar": REP.addresses}, d)
    result = plan(threads, ruleset, {"omar": REP}, client_calendar, thursday)
    [promise] = result.promises
    # The rep's weekend is Friday-Saturday: Sunday is one business day, Monday two.
    assert promise.deadline == REP.calendar.add_days(thursday, 2)
    assert promise.deadline == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 10:00
    warn = next(a for a in result.actions if a.key.endswith("/warn/0"))
    assert REP.calendar.between(thursday, warn.due) == REP.calendar.between(
        warn.due, promise.deadline
    )
    assert "2 business days" in warn.reason
