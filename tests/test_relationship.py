"""Relationship figures over hand-built threads and outbox rows, with a fixed ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent import relationship as rel
from agent.model import (
    Address,
    Attendee,
    Classified,
    Client,
    Direction,
    Event,
    Message,
    MessageKind,
    Thread,
)

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
REP = Address("asha@acme.example", "Asha Rao")
PRIYA = Client(
    key="priya",
    name="Priya Reddy",
    emails=frozenset({"priya@reddy.example"}),
    tier="gold",
    tags=frozenset({"textiles"}),
)
KENJI = Client(
    key="kenji", name="Kenji Sato", emails=frozenset({"kenji@sato.example"}), tier="silver"
)
CLIENTS = {c.key: c for c in (PRIYA, KENJI)}
GROUPING = rel.Grouping({"asha": "apac"}, CLIENTS)


def msg(
    mid: str,
    at: datetime,
    inbound: bool,
    client: Client = PRIYA,
    body: str = "",
    reply_to: str = "",
    thread: str = "t1",
) -> Classified:
    them = Address(next(iter(client.emails)), client.name)
    m = Message(
        mailbox="asha",
        provider_id=mid,
        thread_id=thread,
        message_id=mid,
        sender=them if inbound else REP,
        to=(REP,) if inbound else (them,),
        date=at,
        subject="Our meeting",
        in_reply_to=reply_to,
        references=(reply_to,) if reply_to else (),
        body=body,
    )
    direction = Direction.INBOUND if inbound else Direction.OUTBOUND
    return Classified(m, direction, MessageKind.HUMAN, client.key)


def thread(*messages: Classified, client: Client = PRIYA, tid: str = "t1") -> Thread:
    return Thread("asha", tid, tuple(messages), client)


def feedback_row(
    key: str, mid: str, at: datetime, client: str = "priya", scale: str = "nps"
) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "feedback",
        "mailbox": "asha",
        "client": client,
        "status": "sent",
        "sent_message_id": mid,
        "due": at,
        "action": {"context": {"scale": scale}},
    }


def test_a_reply_to_a_survey_is_read_and_tied_to_rep_client_tier_and_segment() -> None:
    sent = NOW - timedelta(days=3)
    t = thread(
        msg("<note>", sent, inbound=False),
        msg("<answer>", sent + timedelta(hours=5), True, body="౯ – చాలా బాగుంది", reply_to="<note>"),
    )
    answers = rel.survey_answers(
        [feedback_row("feedback/asha/e1/priya", "<note>", sent)], [t], CLIENTS
    )
    assert [(a.score, a.status, a.mailbox, a.client, a.tier, a.segment) for a in answers] == [
        (9, "scored", "asha", "priya", "gold", "textiles")
    ]
    assert "చాలా బాగుంది" in answers[0].comment


def test_a_message_that_answers_nothing_we_sent_is_no_survey_answer() -> None:
    sent = NOW - timedelta(days=3)
    t = thread(msg("<other>", sent, True, body="9"))
    assert rel.survey_answers([feedback_row("feedback/x", "<note>", sent)], [t], CLIENTS) == []


def _answers(scores: list[int | None], scale: str = "nps") -> list[rel.Answer]:
    return [
        rel.Answer(
            survey=f"feedback/{i}",
            mailbox="asha",
            client="priya",
            tier="gold",
            segment="textiles",
            scale=scale,
            score=s,
            status="scored" if s is not None else "ambiguous",
            comment="",
            why="",
            answered_at=NOW - timedelta(days=1 + i),
            message_id=f"<a{i}>",
        )
        for i, s in enumerate(scores)
    ]


def test_nps_is_hidden_below_the_minimum_n_and_shown_with_n_and_response_rate_above() -> None:
    rows = [feedback_row(f"feedback/{i}", f"<n{i}>", NOW - timedelta(days=2 + i)) for i in range(8)]
    few = rel.survey_figures(_answers([10, 9, 3]), rows, GROUPING, NOW - timedelta(days=30), NOW, 5)
    everyone = {(f.dimension, f.group): f for f in few}["all", "all"]
    assert everyone.nps.hidden and everyone.nps.value is None and everyone.nps.n == 3
    many = rel.survey_figures(
        _answers([10, 9, 9, 7, 3, None]), rows, GROUPING, NOW - timedelta(days=30), NOW, 5
    )
    by = {(f.dimension, f.group): f for f in many}
    assert by["all", "all"].nps == rel.Value(40.0, 5)  # 3 promoters, 1 detractor of 5
    assert (by["all", "all"].sent, by["all", "all"].answered) == (8, 6)
    assert by["all", "all"].response_rate == rel.Value(75.0, 8)
    assert {("rep", "asha"), ("team", "apac"), ("tier", "gold"), ("segment", "textiles")} <= set(by)


def test_csat_counts_fours_and_fives() -> None:
    rows = [feedback_row(f"feedback/{i}", f"<n{i}>", NOW - timedelta(days=2)) for i in range(5)]
    figures = rel.survey_figures(
        _answers([5, 4, 3, 2, 5], "csat"), rows, GROUPING, NOW - timedelta(days=30), NOW, 5
    )
    assert figures[0].csat == rel.Value(60.0, 5)


def test_the_funnel_counts_replies_after_each_step_and_why_cadences_stopped() -> None:
    start = NOW - timedelta(days=20)
    base = "follow_up/asha/t1/<quote>"
    rows = [
        {"key": f"{base}/{step}", "kind": "follow_up", "mailbox": "asha", "client": "priya",
         "thread_id": "t1", "status": "sent", "due": start + timedelta(days=3 * step)}
        for step in (1, 2)
    ]  # fmt: skip
    t = thread(
        msg("<quote>", start, False),
        msg("<reply>", start + timedelta(days=7), True, body="Thanks, let's talk"),
    )
    decisions = [
        {"mailbox": "asha", "thread_id": "t1", "decision": "follow-ups stopped: meeting booked",
         "at": start + timedelta(days=8)}
    ]  # fmt: skip
    funnel = rel.follow_up_funnel(rows, [t], decisions, GROUPING, NOW - timedelta(days=30), NOW, 1)
    everyone = funnel[0]
    assert (everyone.dimension, everyone.cadences) == ("all", 1)
    assert everyone.steps_sent == (1, 1, 0)
    assert everyone.replied_after == (0, 1, 0)  # the reply came after step 2
    assert everyone.meetings == 1 and everyone.stops == {"meeting booked": 1}
    assert everyone.reply_rate == rel.Value(100.0, 1)


def test_a_client_silent_for_longer_than_their_rhythm_is_going_quiet_with_the_last_exchange() -> (
    None
):
    weekly = []
    for week in range(6):  # Priya opened a conversation every week until five weeks ago
        at = NOW - timedelta(weeks=10 - week)
        weekly.append(
            thread(
                msg(f"<q{week}>", at, True),
                msg(f"<r{week}>", at + timedelta(hours=2), False),
                tid=f"w{week}",
            )
        )
    recent = thread(
        msg("<k1>", NOW - timedelta(days=15), True, KENJI, thread="k"),
        msg("<k2>", NOW - timedelta(days=8), True, KENJI, thread="k"),
        msg("<k3>", NOW - timedelta(days=1), True, KENJI, thread="k"),
        msg("<k4>", NOW - timedelta(hours=20), False, KENJI, thread="k"),
        client=KENJI,
        tid="k",
    )
    quiet = rel.going_quiet([*weekly, recent], CLIENTS, NOW)
    assert [q.client for q in quiet] == ["priya"]
    assert quiet[0].rhythm_days == 7.0 and quiet[0].silent_days == 35.0
    assert (quiet[0].last_direction, quiet[0].last_at) == (
        "rep",
        NOW - timedelta(weeks=5, hours=-2),
    )


def test_time_to_meeting_runs_from_the_first_message_to_the_first_meeting() -> None:
    first = NOW - timedelta(days=10)
    t = thread(msg("<q>", first, True), msg("<r>", first + timedelta(hours=1), False))
    meeting = Event(
        mailbox="asha",
        provider_id="e1",
        summary="Review",
        start=first + timedelta(days=4),
        end=first + timedelta(days=4, hours=1),
        attendees=(Attendee("priya@reddy.example", "Priya", "ACCEPTED"),),
    )
    rows = rel.time_to_meeting([t], [meeting], GROUPING, NOW - timedelta(days=30), NOW, 1)
    assert rows[0].median_days == rel.Value(4.0, 1)
    hidden = rel.time_to_meeting([t], [meeting], GROUPING, NOW - timedelta(days=30), NOW, 5)
    assert hidden[0].median_days.hidden


def test_weekly_sla_per_rep_counts_only_decided_promises() -> None:
    from agent.promises import Promise, State

    def promise(received: datetime, state: State, deadline: datetime) -> Promise:
        return Promise(
            key=f"p{received}", rule="r", kind="first_reply", mailbox="asha", thread_id="t",
            client="priya", subject="s", message_id="m", received=received,
            clock_start=received, deadline=deadline, state=state, hours_of="rep",
            met_at=received + timedelta(hours=1) if state is State.MET else None,
        )  # fmt: skip

    monday = datetime(2026, 11, 16, tzinfo=UTC)
    weeks = rel.sla_weeks(
        [
            promise(monday + timedelta(hours=9), State.MET, monday + timedelta(hours=17)),
            promise(monday + timedelta(hours=10), State.BREACHED, monday + timedelta(hours=18)),
            promise(NOW - timedelta(hours=1), State.ACTIVE, NOW + timedelta(hours=5)),  # open
        ],
        monday,
        NOW,
    )
    assert [(w.week.date().isoformat(), w.sla.value, w.sla.n) for w in weeks] == [
        ("2026-11-16", 50.0, 2),
        ("2026-11-23", None, 0),
    ]
