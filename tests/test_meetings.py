from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.businesstime import BusinessCalendar
from agent.matching import Directory, build_threads
from agent.meetings import parse_meeting_rules, plan
from agent.model import Address, Client, Interval, Message
from agent.pipeline import client_calendar
from agent.promises import Rep

CLIENT = Client(
    key="yuki",
    name="Yuki Tanaka",
    emails=frozenset({"yuki@tanaka.jp"}),
    language="ja",
    zone="Asia/Tokyo",
    country="JP",
)
REP = Rep(
    mailbox="sam",
    name="Sam",
    address="sam@acme.example",
    addresses=frozenset({"sam@acme.example"}),
    language="en",
    zone="Europe/London",
    calendar=BusinessCalendar.simple("Europe/London", "07:00-18:00", country="GB"),
)
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # Tuesday


def thread(*bodies: tuple[str, str]):
    msgs = [
        Message(
            mailbox="sam",
            provider_id=f"p{i}",
            thread_id="<t@x>",
            message_id=f"<m{i}@x>",
            sender=Address(sender),
            to=(Address("sam@acme.example" if sender != "sam@acme.example" else "yuki@tanaka.jp"),),
            date=NOW - timedelta(hours=10 - i),
            subject="Renewal",
            body=body,
        )
        for i, (sender, body) in enumerate(bodies)
    ]
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    return build_threads(msgs, {"sam": REP.addresses}, d)


RULES, PROBLEMS = parse_meeting_rules(
    [{"name": "m", "duration": "45m", "within": "7d", "count": 3, "_source": "r.toml"}]
)


def test_a_meeting_request_gets_slots_that_suit_both_zones_in_the_clients_language() -> None:
    assert not PROBLEMS
    busy = {"sam": [Interval(NOW, NOW + timedelta(days=1))]}
    result = plan(
        thread(("yuki@tanaka.jp", "来週お打ち合わせの日程を調整させていただけますか。")),
        RULES,
        {"sam": REP},
        client_calendar,
        busy,
        NOW,
    )
    [action] = result.actions
    assert action.language == "ja" and action.template == "proposal"
    slots = action.context["slots"]
    assert len(slots) == 3
    tokyo, london = client_calendar(CLIENT), REP.calendar
    for s in slots:
        assert s["start"] >= NOW + timedelta(days=1)  # the rep is busy until then
        assert tokyo.between(s["start"], s["end"]) == timedelta(minutes=45)
        assert london.between(s["start"], s["end"]) == timedelta(minutes=45)
    assert action.reply_to_message_id == "<m0@x>"


def test_no_proposal_once_the_rep_has_answered_or_when_nobody_asked() -> None:
    answered = thread(
        ("yuki@tanaka.jp", "Can we schedule a call next week?"),
        ("sam@acme.example", "Sure, how about Tuesday?"),
    )
    assert not plan(answered, RULES, {"sam": REP}, client_calendar, {}, NOW).actions
    plain = thread(("yuki@tanaka.jp", "Please send the invoice again."))
    assert not plan(plain, RULES, {"sam": REP}, client_calendar, {}, NOW).actions


def test_meeting_rule_problems_name_file_rule_and_key() -> None:
    _, problems = parse_meeting_rules(
        [{"name": "m", "duration": "0m", "count": 50, "colour": "x", "_source": "r.toml"}]
    )
    text = [str(p) for p in problems]
    assert "r.toml:m:duration: must be longer than zero" in text
    assert any(p.startswith("r.toml:m:count:") for p in text)
    assert any(p.startswith("r.toml:m:colour: unknown key") for p in text)


def test_no_overlap_is_recorded_with_the_near_miss_reason() -> None:
    late = Rep(
        **{
            **REP.__dict__,
            "calendar": BusinessCalendar.simple("Europe/London", "09:00-18:00", country="GB"),
        }
    )
    result = plan(
        thread(("yuki@tanaka.jp", "Could we schedule a call next week?")),
        RULES,
        {"sam": late},
        client_calendar,
        {},
        NOW,
    )
    assert not result.actions
    [decision] = result.decisions
    assert decision.decision == "no proposal: no common time" and decision.reason
