"""What planning remembers between calls changes no answer: caches, indexes and fast paths.

Each fast path is held against the plain definition it replaced (kept here as the reference),
and a whole pass over a synthetic team is planned cold, warm, and with a freshly built team.
"""

from __future__ import annotations

import dataclasses
import random
import unicodedata
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import language, phrases, pipeline, textparts
from agent.businesstime import BusinessCalendar
from agent.matching import Directory
from agent.model import (
    Address,
    Classified,
    Client,
    Direction,
    Interval,
    Message,
    MessageKind,
    Thread,
)
from tests import zones
from tests.benchmarks import bench_planning as bench

# -- text -------------------------------------------------------------------------------------


def reference_spans(text: str) -> list[tuple[int, int]]:
    """Tokens as first defined: a loop over characters."""
    out: list[tuple[int, int]] = []
    start = -1
    for i, ch in enumerate(text):
        if phrases._dense(ch):
            if start >= 0:
                out.append((start, i))
                start = -1
            out.append((i, i + 1))
        elif phrases._wordlike(ch):
            if start < 0:
                start = i
        elif start >= 0:
            out.append((start, i))
            start = -1
    if start >= 0:
        out.append((start, len(text)))
    return out


def reference_normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(phrases._APOSTROPHES)
    text = "".join(
        ch for ch in unicodedata.normalize("NFD", text) if ord(ch) not in phrases._DROPPED
    )
    return unicodedata.normalize("NFC", text).translate(phrases._ARABIC_LETTERS)


MIXED = st.text(
    st.sampled_from(
        list("ab Z,.?!'-\n\t12")
        + list("éüß\u0301\u0300\u200c\u200d\u064b\u0640\u093c")
        + list("日本語ありがとうカナ한글ㇰ")
        + list("شكراً धन्यवाद ధన్యవాదాలు")
        + ["\U00020000", "\ufb01", "\u2019", "\u212a", "\u017f", "\u0131"]
    ),
    max_size=60,
)


@given(MIXED)
@settings(max_examples=400)
def test_tokens_match_the_per_character_definition(text: str) -> None:
    assert reference_spans(text) == phrases._spans(text)
    assert reference_normalise(text) == phrases.normalise(text)


ATTRIBUTION_BITS = st.lists(
    st.sampled_from(
        [
            "On Mon, 9 Nov 2026 at 10:00",
            "Am 9. Nov. 2026 um 10:00 schrieb",
            "Le lun. 9 nov. 2026, Anne a écrit",
            "El lunes",
            "escribió",
            "Em seg.",
            "escreveu",
            "2024年3月4日(月) 10:00 山田 <a@b.jp>",
            "写道",
            "さんは書きました",
            "ने लिखा",
            "రాశారు",
            "كتب",
            "في",
            "написал(а)",
            "작성",
            "<x@y.com> wrote",
            "wrote",
            "WROTE",
            "ſchrieb",
            ":",
            "：",
            " ",
            "Anna",
            "x" * 120,
        ]
    ),
    max_size=6,
)


@given(ATTRIBUTION_BITS)
@settings(max_examples=400)
def test_the_joined_attribution_pattern_agrees_with_each_form(bits: list[str]) -> None:
    line = " ".join(bits)
    each = any(p.match(line.strip()) for p in textparts._ATTRIBUTION)
    assert each == textparts._is_attribution(line)


def test_remembered_answers_depend_on_the_language_asked_for() -> None:
    # The acknowledgement lexicon is limited to the given language and English, so the same
    # text has two answers; a cache keyed on the text alone would give the first one twice.
    assert phrases.needs_no_answer("Vielen Dank!", "de")[0] is True
    assert phrases.needs_no_answer("Vielen Dank!", "ja")[0] is False
    assert phrases.needs_no_answer("Vielen Dank!", "de")[0] is True


def test_language_choice_is_per_thread_within_one_plan() -> None:
    team = bench.build_team(2)

    def thread(n: int, body: str) -> Thread:
        m = Message(
            mailbox="rep00",
            provider_id=f"p{n}",
            thread_id=f"t{n}",
            message_id=f"<m{n}@x>",
            sender=Address(f"c{n}@client{n}.example"),
            to=(Address("rep00@acme.example"),),
            date=datetime(2026, 11, 2, 9, tzinfo=UTC),
            body=body,
        )
        classified = Classified(m, Direction.INBOUND, MessageKind.HUMAN, f"c{n}")
        return Thread("rep00", f"t{n}", (classified,), Client(f"c{n}", f"C {n}"))

    german = thread(1, "Können Sie uns bitte das Angebot für die neue Anlage bis Freitag schicken?")
    japanese = thread(2, "見積書の納期について教えていただけますか。よろしくお願いいたします。")
    choose = pipeline.language_of(team)
    assert [choose(german), choose(japanese), choose(german)] == ["de", "ja", "de"]
    language._scores.cache_clear()
    assert pipeline.language_of(team)(japanese) == "ja"


# -- matching and the team --------------------------------------------------------------------


def test_directory_finds_the_first_client_with_a_key() -> None:
    first, second = Client("k", "First"), Client("k", "Second")
    directory = Directory([first, second, Client("j", "Other")])
    assert directory.get("k") is first
    assert directory.get("j") is not None and directory.get("j").name == "Other"
    assert directory.get("missing") is None


def test_a_team_keeps_its_reps_and_a_new_team_gets_its_own() -> None:
    team = bench.build_team(3)
    reps = team.reps()
    with pytest.raises(TypeError):  # read-only: no caller can change another's reps
        reps["rep00"] = reps["rep01"]  # type: ignore[index]
    assert "rep00" in team.reps()
    assert team.reps() is reps  # not copied for each caller: a team may have thousands
    assert team.reps()["rep01"].calendar is team.reps()["rep01"].calendar
    moved = team.settings.model_copy(
        update={
            "mailboxes": [
                m.model_copy(update={"zone": "Pacific/Apia"}) for m in team.settings.mailboxes
            ]
        }
    )
    reloaded = dataclasses.replace(team, settings=moved)
    assert reloaded.reps()["rep01"].zone == "Pacific/Apia"
    assert team.reps()["rep01"].zone != "Pacific/Apia"


def _plans(team: pipeline.Team, messages: list[Message], events: list, now: datetime) -> tuple:
    p = pipeline.plan(team, messages, now)
    n = pipeline.plan_notes(team, messages, events, now)
    m = pipeline.plan_meetings(team, messages, events, now)
    return (
        p.promises,
        p.actions,
        p.decisions,
        sorted(p.obsolete),
        n.actions,
        n.decisions,
        sorted(n.obsolete),
        sorted(n.modes.items()),
        m.actions,
        m.decisions,
    )


def test_a_pass_plans_the_same_cold_warm_and_with_a_fresh_team() -> None:
    rng = random.Random(3)
    team = bench.build_team(6)
    clients = bench.build_clients(60, 6, rng)
    team = dataclasses.replace(team, clients=tuple(clients))
    messages, events = bench.build_mail(team, clients, 600, rng)
    for cache in (
        phrases._needs_no_answer,
        phrases._asks_to_stop,
        phrases._asks_for_meeting,
        language._scores,
    ):
        cache.cache_clear()
    for now in (bench.NOW, bench.NOW + timedelta(days=3, hours=7)):
        cold = _plans(team, messages, events, now)
        warm = _plans(team, messages, events, now)
        fresh = _plans(dataclasses.replace(team), messages, events, now)
        assert cold == warm == fresh
        assert cold[0] and cold[1] and cold[4]  # the sample does plan promises and notes


# -- business time ----------------------------------------------------------------------------

CALENDARS = [
    BusinessCalendar.simple(zones.BERLIN, "09:00-12:30,13:30-18:00", country="DE"),
    BusinessCalendar.simple(zones.KATHMANDU, "10:00-17:00", ("sat",)),
    BusinessCalendar.simple(zones.APIA, "22:00-24:00,00:00-02:00"),
    BusinessCalendar.simple(zones.RIYADH, "09:00-17:00", ("fri", "sat"), country="SA"),
    BusinessCalendar(
        zones.LORD_HOWE,
        BusinessCalendar.simple(zones.LORD_HOWE, "01:00-03:00,08:00-16:00").hours,
        closures=[date(2026, 4, 6)],
        absences=[
            Interval(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 3, 5, tzinfo=UTC)),
            Interval(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 9, tzinfo=UTC)),
        ],
    ),
]
INSTANTS = st.datetimes(
    min_value=datetime(2026, 3, 20), max_value=datetime(2026, 11, 10), timezones=st.just(UTC)
)


@given(st.sampled_from(range(len(CALENDARS))), INSTANTS, st.integers(0, 30 * 24 * 60))
@settings(max_examples=300, deadline=None)
def test_between_is_the_sum_of_the_open_intervals(which: int, a: datetime, minutes: int) -> None:
    cal = CALENDARS[which]
    b = a + timedelta(minutes=minutes)
    summed = sum((i.end - i.start for i in cal.open_intervals(a, b)), timedelta(0))
    assert summed == cal.between(a, b)
    assert -summed == cal.between(b, a)


def test_a_tuple_of_messages_is_grouped_once_and_new_mail_is_grouped_again() -> None:
    rng = random.Random(4)
    team = bench.build_team(2)
    clients = bench.build_clients(10, 2, rng)
    team = dataclasses.replace(team, clients=tuple(clients))
    messages, _ = bench.build_mail(team, clients, 40, rng)
    frozen = tuple(messages)
    first = pipeline.threads(team, frozen)
    assert first[0] is pipeline.threads(team, frozen)[0]  # remembered, not rebuilt
    assert first == pipeline.threads(team, messages)
    assert first[0] is not pipeline.threads(team, messages)[0]  # a list is always grouped anew
    newer = dataclasses.replace(messages[0], provider_id="late", message_id="<late@x>")
    grown = pipeline.threads(team, (*frozen, newer))
    assert sum(len(t.messages) for t in grown) == len(messages) + 1
    other = dataclasses.replace(team)
    assert pipeline.threads(other, frozen)[0] is not first[0]
