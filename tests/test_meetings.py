from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import config, pipeline
from agent.businesstime import BusinessCalendar
from agent.demo import run_demo
from agent.matching import Directory, build_threads
from agent.meetings import (
    AMBIGUOUS,
    CHOSEN,
    NONE,
    chosen_slot,
    freed_events,
    hold_key,
    is_hold,
    parse_meeting_rules,
    plan,
    propose_in_follow_ups,
    release_key,
    slots_of,
)
from agent.model import Action, ActionKind, Address, Client, Event, Interval, Message
from agent.pipeline import client_calendar
from agent.promises import Rep
from agent.store import Store
from tests import zones as tz

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


# --- the client's answer to a proposal --------------------------------------------------------

KOLKATA_SLOTS = [  # Tue 1 Dec 10:00, Wed 2 Dec 14:30, Thu 3 Dec 11:00 in Kolkata (UTC+05:30)
    Interval(datetime(2026, 12, 1, 4, 30, tzinfo=UTC), datetime(2026, 12, 1, 5, 0, tzinfo=UTC)),
    Interval(datetime(2026, 12, 2, 9, 0, tzinfo=UTC), datetime(2026, 12, 2, 9, 30, tzinfo=UTC)),
    Interval(datetime(2026, 12, 3, 5, 30, tzinfo=UTC), datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
]


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("Tuesday at 10 works for me", 0),
        ("The second option, please.", 1),
        ("Option 2", 1),
        ("the last one is best", 2),
        ("Wednesday 2:30pm", 1),
        ("1 December at 10", 0),
        ("Dienstag um 10 Uhr passt mir gut.", 0),
        ("Der zweite Termin passt.", 1),
        ("La segunda opción me va bien.", 1),
        ("el jueves a las 11", 2),
        ("La deuxième option me convient.", 1),
        ("mercredi à 14h30", 1),
        ("A segunda opção funciona para mim.", 1),  # "segunda" alone would be Monday
        ("Quinta-feira às 11h, por favor.", 2),
        ("2番目の候補でお願いいたします。", 1),
        ("12月1日(火)10時でお願いします。", 0),
        ("水曜日の午後2時半で大丈夫です。", 1),
        ("第三个时间可以。", 2),
        ("周二上午10点可以。", 0),
        ("الخيار الثاني مناسب لي", 1),
        ("يوم الخميس الساعة ١١ مناسب", 2),
        ("दूसरा विकल्प ठीक रहेगा।", 1),
        ("मंगलवार सुबह 10 बजे ठीक है।", 0),
        ("రెండవ ఎంపిక బాగుంది.", 1),
        ("గురువారం ఉదయం 11 గంటలకు సరే.", 2),
        ("Tuesday 10:00–10:30 is good\n\nOn Mon, Asha wrote:\n> - Wednesday 14:30", 0),
    ],
)
def test_a_reply_picks_one_proposed_time_in_any_of_ten_languages(text: str, index: int) -> None:
    choice = chosen_slot(text, KOLKATA_SLOTS, "Asia/Kolkata")
    assert (choice.status, choice.index) == (CHOSEN, index), choice.why


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("None of these work for me, sorry.", NONE),
        ("Keiner der Termine passt leider.", NONE),
        ("どれも難しいです。", NONE),
        ("Thanks, I will check with my team.", NONE),
        ("Friday at 3 would be better", NONE),  # a time that was not proposed
        ("Option 5", NONE),
        ("Tuesday works, but not at 10", AMBIGUOUS),  # a refusal beside a time
        ("Either Tuesday or Wednesday", AMBIGUOUS),
        ("> Tuesday at 10", NONE),  # only quoted text
    ],
)
def test_a_reply_that_refuses_or_is_unclear_chooses_nothing(text: str, status: str) -> None:
    choice = chosen_slot(text, KOLKATA_SLOTS, "Asia/Kolkata")
    assert choice.status == status and choice.index is None, choice.why


def test_two_times_on_one_day_need_the_hour() -> None:
    day = datetime(2026, 12, 1, tzinfo=UTC)
    slots = [
        Interval(day + timedelta(hours=h), day + timedelta(hours=h, minutes=30)) for h in (9, 14)
    ]
    assert chosen_slot("Tuesday works", slots, "UTC").status == AMBIGUOUS
    assert chosen_slot("Tuesday at 2pm works", slots, "UTC").index == 1


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@given(
    zone=st.sampled_from(tz.ALL),
    first=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)),
    gaps=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4),
    minute=st.sampled_from((0, 30)),
    pick=st.integers(min_value=0, max_value=4),
)
@settings(max_examples=150, deadline=None)
def test_naming_the_weekday_and_local_time_of_a_slot_chooses_exactly_that_slot(
    zone: str, first: datetime, gaps: list[int], minute: int, pick: int
) -> None:
    tzinfo = ZoneInfo(zone)
    local = first.replace(hour=first.hour % 10 + 8, minute=minute, second=0, microsecond=0)
    starts, day = [], local
    for gap in [0, *gaps]:  # one slot a day, on different days within a week
        day = day + timedelta(days=gap)
        starts.append(day.replace(tzinfo=tzinfo).astimezone(UTC))
    slots = [Interval(s, s + timedelta(minutes=30)) for s in starts]
    pick %= len(slots)
    seen = slots[pick].start.astimezone(tzinfo)
    text = f"{_DAYS[seen.weekday()]} at {seen:%H:%M} suits me."
    same = [
        i for i, s in enumerate(slots) if s.start.astimezone(tzinfo).weekday() == seen.weekday()
    ]
    choice = chosen_slot(text, slots, zone)
    if same == [pick]:
        assert (choice.status, choice.index) == (CHOSEN, pick), choice.why
    assert chosen_slot(f"Option {pick + 1}", slots, zone).index == pick


@given(text=st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_any_text_is_read_without_error_and_chooses_a_slot_that_exists(text: str) -> None:
    choice = chosen_slot(text, KOLKATA_SLOTS, "Asia/Kolkata")
    assert choice.status in (CHOSEN, NONE, AMBIGUOUS)
    assert (choice.index is not None) == (choice.status == CHOSEN)
    assert choice.index is None or 0 <= choice.index < len(KOLKATA_SLOTS)


# --- planning the invitation ------------------------------------------------------------------

SENT_AT = NOW - timedelta(hours=6)


def answered(reply: str, *, proposal_key: str = "", reply_at: datetime | None = None):
    """Yuki asked, the agent's proposal went out (carrying its key), Yuki answered."""
    key = proposal_key or "proposal/sam/<t@x>/<m0@x>"
    msgs = [
        Message(
            mailbox="sam",
            provider_id="p0",
            thread_id="<t@x>",
            message_id="<m0@x>",
            sender=Address("yuki@tanaka.jp", "Yuki Tanaka"),
            to=(Address("sam@acme.example"),),
            date=SENT_AT - timedelta(hours=2),
            subject="Renewal",
            body="Could we schedule a call next week?",
        ),
        Message(
            mailbox="sam",
            provider_id="p1",
            thread_id="<t@x>",
            message_id="<followup.1@acme.example>",
            sender=Address("sam@acme.example"),
            to=(Address("yuki@tanaka.jp"),),
            date=SENT_AT,
            subject="Re: Renewal",
            headers={"X-Followup-Key": key},
        ),
        Message(
            mailbox="sam",
            provider_id="p2",
            thread_id="<t@x>",
            message_id="<m2@x>",
            sender=Address("yuki@tanaka.jp", "Yuki Tanaka"),
            to=(Address("sam@acme.example"),),
            date=reply_at or NOW - timedelta(hours=1),
            subject="Re: Renewal",
            body=reply,
            references=("<m0@x>", "<followup.1@acme.example>"),
        ),
    ]
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    return build_threads(msgs, {"sam": REP.addresses}, d)


def sent_proposal(rules: list = RULES) -> Action:
    """The proposal a pass at SENT_AT made for Yuki's request."""
    [thread] = answered("")
    asked = dataclasses.replace(thread, messages=thread.messages[:1])
    result = plan([asked], rules, {"sam": REP}, client_calendar, {}, SENT_AT)
    return next(a for a in result.actions if a.kind is ActionKind.PROPOSAL)


def test_a_chosen_time_that_is_still_free_becomes_an_invitation_in_the_clients_zone() -> None:
    proposal = sent_proposal()
    offered = slots_of(proposal)
    result = plan(
        answered("2番目でお願いいたします。"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal],
    )
    [invite] = result.actions
    assert invite.kind is ActionKind.INVITE and invite.template == "invitation"
    assert invite.language == "ja" and invite.to == (Address("yuki@tanaka.jp", "Yuki Tanaka"),)
    meeting = invite.context["meeting"]
    assert (meeting["start"], meeting["end"]) == (offered[1].start, offered[1].end)
    assert meeting["zone"] == "Asia/Tokyo" and invite.reply_to_message_id == "<m2@x>"
    assert invite.key == f"invite/sam/<t@x>/{offered[1].start:%Y%m%dT%H%MZ}"
    again = plan(
        answered("2番目でお願いいたします。"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal, invite],
    )
    assert [a.key for a in again.actions] == [invite.key]  # the outbox keeps it to one


def test_a_chosen_time_the_calendar_has_taken_gets_a_fresh_proposal_and_a_decision() -> None:
    proposal = sent_proposal()
    taken = slots_of(proposal)[1]
    busy = {"sam": [Interval(taken.start - timedelta(minutes=15), taken.end)]}
    result = plan(
        answered("The second option works"),
        RULES,
        {"sam": REP},
        client_calendar,
        busy,
        NOW,
        earlier=[proposal],
    )
    [fresh] = result.actions
    assert fresh.kind is ActionKind.PROPOSAL and fresh.key == "proposal/sam/<t@x>/<m2@x>"
    assert all(not taken.overlaps(s) for s in slots_of(fresh))
    [decision] = result.decisions
    assert decision.decision == "chosen time no longer free: new proposal"
    assert "busy" in decision.reason
    first = slots_of(proposal)[0]
    gone = plan(
        answered("The first option works"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        first.start + timedelta(minutes=10),
        earlier=[proposal],
    )
    assert gone.decisions[0].reason.endswith("that time has passed")


def test_an_unclear_answer_is_left_to_the_rep_with_its_reason() -> None:
    proposal = sent_proposal()
    result = plan(
        answered("Either of the first two is fine"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal],
    )
    assert not result.actions
    [decision] = result.decisions
    assert decision.decision.startswith("reply to the proposal:")


def test_a_reply_to_an_unsent_proposal_is_not_read_as_a_choice() -> None:
    proposal = sent_proposal()
    result = plan(
        answered("Option 2", proposal_key="proposal/other"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal],
    )
    assert not [a for a in result.actions if a.kind is ActionKind.INVITE]


# --- holds ------------------------------------------------------------------------------------

HOLDING, _ = parse_meeting_rules(
    [{"name": "m", "duration": "45m", "count": 3, "hold": True, "hold_for": "2d"}]
)


def test_holds_are_made_with_the_proposal_and_released_when_a_time_is_chosen() -> None:
    proposal = sent_proposal(HOLDING)
    # Held from when the proposal goes out: the rep's next business hour.
    assert proposal.context["holds_until"] == proposal.due + timedelta(days=2)
    [thread] = answered("")
    asked = dataclasses.replace(thread, messages=thread.messages[:1])
    first = plan([asked], HOLDING, {"sam": REP}, client_calendar, {}, SENT_AT)
    holds = [a for a in first.actions if a.kind is ActionKind.HOLD]
    assert [h.key for h in holds] == [hold_key(proposal.key, s) for s in slots_of(proposal)]
    assert all(h.context["op"] == "create" and is_hold_summary(h) for h in holds)

    chosen = plan(
        answered("Option 3"), HOLDING, {"sam": REP}, client_calendar, {}, NOW, earlier=[proposal]
    )
    kinds = [a.kind for a in chosen.actions]
    assert kinds == [ActionKind.INVITE] + [ActionKind.HOLD] * 3
    releases = chosen.actions[1:]
    assert [r.context["hold"] for r in releases] == [h.key for h in holds]
    assert {r.context["op"] for r in releases} == {"release"}


def is_hold_summary(action: Action) -> bool:
    event = Event(
        "sam", "e", action.context["summary"], action.context["start"], action.context["end"]
    )
    return is_hold(event)


def test_holds_are_released_when_the_proposal_expires_unanswered() -> None:
    proposal = sent_proposal(HOLDING)
    [thread] = answered("")
    waiting = dataclasses.replace(thread, messages=thread.messages[:2])
    early = plan([waiting], HOLDING, {"sam": REP}, client_calendar, {}, NOW, earlier=[proposal])
    assert not early.actions
    late = proposal.due + timedelta(days=2)
    expired = plan([waiting], HOLDING, {"sam": REP}, client_calendar, {}, late, earlier=[proposal])
    assert [a.key for a in expired.actions] == [
        release_key(proposal.key, s) for s in slots_of(proposal)
    ]


def test_times_held_for_one_client_are_not_offered_to_another() -> None:
    proposal = sent_proposal(HOLDING)
    other = dataclasses.replace(proposal, thread_id="<other@x>", key="proposal/sam/<other@x>/x")
    [thread] = answered("")
    asked = dataclasses.replace(thread, messages=thread.messages[:1])
    result = plan([asked], HOLDING, {"sam": REP}, client_calendar, {}, SENT_AT, earlier=[other])
    fresh = next(a for a in result.actions if a.kind is ActionKind.PROPOSAL)
    held = slots_of(other)
    assert all(not h.overlaps(s) for h in held for s in slots_of(fresh))


def test_hold_keys_are_checked_with_file_rule_and_key() -> None:
    _, problems = parse_meeting_rules(
        [
            {"name": "a", "hold": "yes", "_source": "r.toml"},
            {"name": "b", "hold_for": "1d", "_source": "r.toml"},
        ]
    )
    text = [str(p) for p in problems]
    assert any(p.startswith("r.toml:a:hold: 'yes'") for p in text)
    assert "r.toml:b:hold_for: is set but hold is off; add hold = true" in text


# --- follow-up steps that propose times -------------------------------------------------------


def follow_up(step: int) -> Action:
    return Action(
        key=f"follow_up/sam/<t@x>/<m0@x>/{step}",
        kind=ActionKind.FOLLOW_UP,
        mailbox="sam",
        due=NOW + timedelta(days=step),
        to=(Address("yuki@tanaka.jp", "Yuki Tanaka"),),
        language="ja",
        template="follow_up",
        reason=f"follow-up {step} of 2",
        client="yuki",
        thread_id="<t@x>",
        rule="nudge",
        context={"step": step, "steps": 2, "client": {"name": "Yuki Tanaka"}},
    )


def test_a_follow_up_step_marked_to_propose_times_becomes_a_proposal_from_its_due_time() -> None:
    result = propose_in_follow_ups(
        [follow_up(1), follow_up(2)],
        lambda a: a.context["step"] == 2,
        HOLDING,
        {"yuki": CLIENT},
        {"sam": REP},
        client_calendar,
        {},
        NOW,
    )
    plain, offer, *holds = result.actions
    assert plain == follow_up(1)
    assert offer.kind is ActionKind.PROPOSAL and offer.template == "proposal"
    assert offer.key == follow_up(2).key and offer.due == follow_up(2).due
    assert offer.context["step"] == 2 and offer.context["client_zone"] == "Asia/Tokyo"
    assert len(slots_of(offer)) == 3
    assert all(s.start >= offer.due + timedelta(hours=4) for s in slots_of(offer))
    assert [h.kind for h in holds] == [ActionKind.HOLD] * 3


def test_plan_notes_turns_the_steps_a_rule_names_into_proposals(tmp_path: Path) -> None:
    demo = run_demo(tmp_path / "demo")
    settings = config.load(tmp_path / "demo" / "config.toml")
    team = pipeline.load_team(settings)
    proposing = tuple(
        dataclasses.replace(r, propose_slots=frozenset({1})) for r in team.cadences.follow_ups
    )
    team = dataclasses.replace(
        team, cadences=dataclasses.replace(team.cadences, follow_ups=proposing)
    )
    store = Store.open(settings.database.url)
    try:
        notes = pipeline.plan_notes(team, store.messages(), store.events(), demo.now)
    finally:
        store.close()
    steps = {a.key.rpartition("/")[2]: a for a in notes.actions if a.client == "emily-clark"}
    assert steps["1"].kind is ActionKind.PROPOSAL and steps["1"].template == "proposal"
    assert steps["2"].kind is ActionKind.FOLLOW_UP
    assert all(s.start > steps["1"].due for s in slots_of(steps["1"]))


def test_a_reply_after_the_invitation_is_not_read_against_the_proposal() -> None:
    proposal = sent_proposal()
    [thread] = answered("Option 2")
    invite = plan([thread], RULES, {"sam": REP}, client_calendar, {}, NOW, earlier=[proposal])
    [action] = invite.actions
    sent = Message(
        mailbox="sam",
        provider_id="p3",
        thread_id="<t@x>",
        message_id="<followup.2@acme.example>",
        sender=Address("sam@acme.example"),
        to=(Address("yuki@tanaka.jp"),),
        date=NOW + timedelta(minutes=5),
        subject="Re: Renewal",
        headers={"X-Followup-Key": action.key},
    )
    thanks = dataclasses.replace(
        sent,
        provider_id="p4",
        message_id="<m4@x>",
        sender=Address("yuki@tanaka.jp"),
        to=(Address("sam@acme.example"),),
        date=NOW + timedelta(hours=1),
        headers={},
        body="Thank you!",
    )
    msgs = [c.message for c in thread.messages] + [sent, thanks]
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    later = plan(
        build_threads(msgs, {"sam": REP.addresses}, d),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW + timedelta(hours=2),
        earlier=[proposal, action],
    )
    assert later.actions == () and later.decisions == ()


# --- who a meeting note may go to -------------------------------------------------------------


def test_a_stranger_asking_to_meet_in_a_clients_thread_gets_no_proposal() -> None:
    # Quoting the thread's References puts a stranger's mail in Yuki's thread.
    result = plan(
        thread(
            ("yuki@tanaka.jp", "Please send the invoice again."),
            ("mallory@evil.example", "Can we schedule a call next week?"),
        ),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
    )
    assert result.actions == ()
    [decision] = result.decisions
    assert decision.decision == "no meeting note: the sender is not the client"
    assert decision.message_id == "<m1@x>" and "mallory@evil.example" in decision.reason


def test_a_stranger_choosing_a_proposed_time_gets_no_invitation() -> None:
    proposal = sent_proposal()
    [thread] = answered("Option 2")
    messages = [c.message for c in thread.messages]
    messages[-1] = dataclasses.replace(messages[-1], sender=Address("mallory@evil.example"))
    d = Directory([CLIENT], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    result = plan(
        build_threads(messages, {"sam": REP.addresses}, d),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal],
    )
    assert [a.kind for a in result.actions] == []
    assert [d.decision for d in result.decisions] == [
        "no meeting note: the sender is not the client"
    ]


def test_a_colleague_at_the_clients_domain_may_ask_to_meet() -> None:
    client = dataclasses.replace(CLIENT, domains=frozenset({"tanaka.jp"}))
    msgs = [
        Message(
            mailbox="sam",
            provider_id="p0",
            thread_id="<t@x>",
            message_id="<m0@x>",
            sender=Address("aiko@tanaka.jp"),
            to=(Address("sam@acme.example"),),
            date=NOW - timedelta(hours=2),
            subject="Renewal",
            body="Can we schedule a call next week?",
        )
    ]
    d = Directory([client], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    threads = build_threads(msgs, {"sam": REP.addresses}, d)
    [action] = plan(threads, RULES, {"sam": REP}, client_calendar, {}, NOW).actions
    assert action.to == (Address("aiko@tanaka.jp"),)


def test_follow_up_times_go_only_to_a_client_address() -> None:
    step = Action(
        key="follow_up/sam/<t@x>/<m0@x>/1",
        kind=ActionKind.FOLLOW_UP,
        mailbox="sam",
        due=NOW,
        to=(Address("mallory@evil.example"),),
        language="en",
        template="follow_up",
        reason="r",
        client=CLIENT.key,
        thread_id="<t@x>",
        context={"step": 1},
    )
    result = propose_in_follow_ups(
        [step],
        lambda a: True,
        RULES,
        {CLIENT.key: CLIENT},
        {"sam": REP},
        client_calendar,
        {},
        NOW,
    )
    assert [a.kind for a in result.actions] == [ActionKind.FOLLOW_UP]
    assert [d.decision for d in result.decisions] == [
        "follow-up without times: the recipient is not the client"
    ]


def test_two_installations_do_not_answer_each_others_proposals(tmp_path: Path) -> None:
    """Sam's agent proposes times to Yuki, whose company runs its own agent with Sam as a
    client: the proposal, as it arrives there, asks for a meeting, yet gets no proposal back."""
    from agent import mime
    from agent.compose import Composer
    from agent.outbox import Outbox

    proposal = sent_proposal()
    outbox = Outbox(
        Store.open(f"sqlite:///{tmp_path / 'a.db'}"),
        {},
        Composer(Path(__file__).parent.parent / "templates"),
        {"sam": Address("sam@acme.example", "Sam")},
        domain="acme.example",
    )
    assert proposal.language == "ja"  # "候補日" in it reads as a request to meet
    composed = outbox.compose(proposal, SENT_AT)
    arrived = dataclasses.replace(
        mime.to_message(bytes(composed), mailbox="yuki", provider_id="y1"),
        body=mime.body_text(bytes(composed)),
    )
    sam = Client(key="sam", name="Sam", emails=frozenset({"sam@acme.example"}), zone="UTC")
    yuki = dataclasses.replace(
        REP, mailbox="yuki", address="yuki@tanaka.jp", addresses=frozenset({"yuki@tanaka.jp"})
    )
    d = Directory([sam], team_domains=frozenset({"tanaka.jp"}), team_addresses=yuki.addresses)
    threads = build_threads([arrived], {"yuki": yuki.addresses}, d)
    result = plan(threads, RULES, {"yuki": yuki}, client_calendar, {}, NOW)
    assert result.actions == ()
    assert [d.decision for d in result.decisions] == [
        "no meeting note: the mail was written by an agent"
    ]


# --- when answers go out ----------------------------------------------------------------------


def test_a_proposal_read_at_night_goes_out_in_the_reps_business_hours() -> None:
    late = datetime(2026, 11, 24, 22, 35, tzinfo=UTC)  # 22:35 in London, 07:35 in Tokyo
    assert not REP.calendar.is_open(late)
    [proposal] = plan(
        thread(("yuki@tanaka.jp", "Could we schedule a call next week?")),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        late,
    ).actions
    assert proposal.due == REP.calendar.next_open(late) > late
    assert all(s.start > proposal.due for s in slots_of(proposal))


def test_an_invitation_read_at_night_goes_out_in_the_reps_business_hours() -> None:
    proposal = sent_proposal()
    late = datetime(2026, 11, 24, 22, 35, tzinfo=UTC)
    [invite] = plan(
        answered("Option 3", reply_at=late - timedelta(minutes=5)),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        late,
        earlier=[proposal],
    ).actions
    assert invite.kind is ActionKind.INVITE
    assert invite.due == REP.calendar.next_open(late) > late


def test_no_time_is_offered_on_the_clients_weekend() -> None:
    import holidays

    dana = dataclasses.replace(
        CLIENT,
        key="dana",
        emails=frozenset({"dana@far.example"}),
        language="en",
        zone="Asia/Jerusalem",
        country="IL",
    )
    table = holidays.country_holidays("IL", years=2026)
    thursday_evening = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    message = Message(
        mailbox="sam",
        provider_id="p0",
        thread_id="<t@x>",
        message_id="<m0@x>",
        sender=Address("dana@far.example"),
        to=(Address("sam@acme.example"),),
        date=thursday_evening - timedelta(hours=1),
        subject="Renewal",
        body="Could we schedule a call next week?",
    )
    d = Directory([dana], team_domains=frozenset({"acme.example"}), team_addresses=REP.addresses)
    threads = build_threads([message], {"sam": REP.addresses}, d)
    [proposal] = plan(threads, RULES, {"sam": REP}, client_calendar, {}, thursday_evening).actions
    assert slots_of(proposal)
    for slot in slots_of(proposal):
        day = slot.start.astimezone(ZoneInfo("Asia/Jerusalem")).date()
        assert table.is_working_day(day), day


def test_a_new_time_chosen_after_an_invitation_moves_that_event() -> None:
    from agent.invites import build_invite, invite_for, invite_uid

    proposal = sent_proposal()
    [first] = plan(
        answered("Option 1"), RULES, {"sam": REP}, client_calendar, {}, NOW, earlier=[proposal]
    ).actions
    [moved] = plan(
        answered("Option 3"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal, first],
    ).actions
    assert moved.kind is ActionKind.INVITE and moved.key != first.key
    assert "moves the meeting" in moved.reason
    organizer = Address("sam@acme.example", "Sam")
    a, b = invite_for(first, organizer), invite_for(moved, organizer)
    assert invite_uid(a) == invite_uid(b)
    assert (a.sequence, b.sequence) == (0, 1)
    ics = build_invite(b, stamp=NOW).decode()
    assert "SEQUENCE:1" in ics and "METHOD:REQUEST" in ics


def test_a_moved_meetings_old_time_leaves_the_reps_calendar() -> None:
    from agent.invites import invite_for, invite_uid

    proposal = sent_proposal()
    [first] = plan(
        answered("Option 1"), RULES, {"sam": REP}, client_calendar, {}, NOW, earlier=[proposal]
    ).actions
    [moved] = plan(
        answered("Option 3"),
        RULES,
        {"sam": REP},
        client_calendar,
        {},
        NOW,
        earlier=[proposal, first],
    ).actions
    uid = invite_uid(invite_for(first, Address("sam@acme.example", "Sam")))
    old, new = first.context["meeting"], moved.context["meeting"]
    events = [
        Event("sam", "ev-old", "call", old["start"], old["end"], uid=uid),
        Event("sam", "ev-new", "call", new["start"], new["end"], uid=uid),
        Event("sam", "ev-other", "other", old["start"], old["end"], uid="other@example.com"),
        Event("lee", "ev-elsewhere", "call", old["start"], old["end"], uid=uid),
    ]
    [remove] = freed_events(moved, events, uid)
    assert remove.kind is ActionKind.HOLD and remove.context["op"] == "remove"
    assert remove.context["event"] == "ev-old"


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("22日でお願いします", 1),  # a day of the month alone
        ("22号可以。", 1),
        ("Nummer 2 passt.", 1),
        ("Nr. 2 passt.", 1),
        ("Termin 3 passt mir.", 2),
    ],
)
def test_a_day_of_the_month_or_a_numbered_option_is_a_choice(text: str, index: int) -> None:
    slots = [  # Mon 21, Tue 22, Wed 23 December 10:00 in Tokyo
        Interval(datetime(2026, 12, d, 1, 0, tzinfo=UTC), datetime(2026, 12, d, 1, 30, tzinfo=UTC))
        for d in (21, 22, 23)
    ]
    choice = chosen_slot(text, slots, "Asia/Tokyo")
    assert (choice.status, choice.index) == (CHOSEN, index), choice.why


def test_a_span_of_days_is_not_a_day_of_the_month() -> None:
    assert chosen_slot("3日間お待ちください。", KOLKATA_SLOTS, "Asia/Kolkata").status == NONE
