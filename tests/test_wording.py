"""How client notes read: names in greetings, call lengths, voice, and times shown once.

The wording asserted here is the templates' own; locale data (zone names) comes from Babel
through agent.localefmt, never written out.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import localefmt
from agent.businesstime import BusinessCalendar
from agent.compose import Composer, sample_context
from agent.matching import Directory, build_threads
from agent.meetings import parse_meeting_rules, plan
from agent.model import ActionKind, Address, Client, Message
from agent.pipeline import client_calendar
from agent.promises import Rep

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SHIPPED = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")
CLIENT_FACING = ("thank_you", "follow_up", "feedback", "proposal", "invitation", "cancellation")


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(TEMPLATES)


def render(composer: Composer, purpose: str, language: str, **changes: Any) -> str:
    context = sample_context(purpose, language=language)
    for key, value in changes.items():
        if key.startswith("person_"):
            field = key.removeprefix("person_")
            if value is None:
                context["client"].pop(field, None)
            else:
                context["client"][field] = value
        else:
            context[key] = value
    rendered = composer.render(purpose, language, context)
    return f"{rendered.subject}\n{rendered.text}"


# --- call lengths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "said"), [(30, "30 मिनट की"), (60, "1 घंटे की"), (90, "डेढ़ घंटे की")]
)
@pytest.mark.parametrize("purpose", ["proposal", "invitation"])
def test_hindi_call_length_before_ki_is_oblique(
    composer: Composer, purpose: str, minutes: int, said: str
) -> None:
    text = render(composer, purpose, "hi", duration_minutes=minutes)
    assert said in text
    assert "घंटा की" not in text and "घंटा और" not in text


@pytest.mark.parametrize(("minutes", "said"), [(30, "30分钟"), (60, "1小时"), (90, "90分钟")])
@pytest.mark.parametrize("purpose", ["proposal", "invitation"])
def test_chinese_call_length_is_one_unit(
    composer: Composer, purpose: str, minutes: int, said: str
) -> None:
    text = render(composer, purpose, "zh", duration_minutes=minutes)
    assert said in text and "和" not in text


@pytest.mark.parametrize("minutes", [30, 45, 90])
@pytest.mark.parametrize("purpose", ["proposal", "invitation"])
def test_german_call_length_is_an_adjective(composer: Composer, purpose: str, minutes: int) -> None:
    text = render(composer, purpose, "de", duration_minutes=minutes)
    assert f"{minutes}-minütiges Gespräch" in text
    assert "Gespräch von" not in text


# --- Arabic ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gender", "honorific", "opening"),
    [
        ("female", None, "الأستاذة Anjali Rao المحترمة،"),
        ("male", None, "الأستاذ Anjali Rao المحترم،"),
        (None, None, "الأستاذ/ة Anjali Rao المحترم/ة،"),
        (None, "السيدة", "السيدة Anjali Rao المحترمة،"),
        (None, "الدكتور", "الدكتور Anjali Rao المحترم،"),
    ],
)
@pytest.mark.parametrize("purpose", CLIENT_FACING)
def test_arabic_opens_with_a_formal_salutation_gendered_when_known(
    composer: Composer, purpose: str, gender: str | None, honorific: str | None, opening: str
) -> None:
    text = render(composer, purpose, "ar", person_gender=gender, person_honorific=honorific)
    body = text.split("\n", 1)[1]
    assert body.startswith(f"{opening}\nتحية طيبة وبعد،")


# The writer as "we" (a verb or suffix of the first person plural): the Arabic notes are
# written by the rep, in the first person singular, throughout.
ARABIC_WE = ("يسعدنا", "سيسعدنا", "ندرك", "نفترض", "نتابع", "تلقينا", "نودّ", "نشكركم")


@pytest.mark.parametrize(
    ("purpose", "step"), [("thank_you", 0), *(("follow_up", s) for s in (1, 2, 3))]
)
def test_arabic_notes_keep_one_voice(composer: Composer, purpose: str, step: int) -> None:
    text = render(composer, purpose, "ar", **({"step": step} if step else {}))
    assert [w for w in ARABIC_WE if w in text] == []


# --- Telugu ------------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["proposal", "invitation", "cancellation"])
def test_telugu_is_in_the_active_voice(composer: Composer, purpose: str) -> None:
    text = render(composer, purpose, "te")
    # "-బడ్డాయి", "-బడింది", "-బడుతుంది": the passive auxiliary, translationese in a letter
    assert [w for w in ("బడ్డాయి", "బడింది", "బడుతుంది") if w in text] == []


# --- the rep's time only when it differs --------------------------------------------------------


@pytest.mark.parametrize("language", SHIPPED)
def test_a_proposal_in_the_clients_own_zone_shows_each_time_once(
    composer: Composer, language: str
) -> None:
    context = sample_context("proposal", language=language)
    start = context["slots"][0]["start"]
    name = localefmt.zone_name("Asia/Riyadh", localefmt.locale_for(language).language, start)
    same = render(composer, "proposal", language, client_zone="Asia/Riyadh", rep_zone="Asia/Riyadh")
    assert same.count(name) == 1  # in the sentence saying which zone the times are in
    other = render(composer, "proposal", language, client_zone="Asia/Riyadh")
    assert other.count(name) == 1
    berlin = localefmt.zone_name("Europe/Berlin", localefmt.locale_for(language).language, start)
    assert other.count(berlin) == 3  # beside each time


@pytest.mark.parametrize("language", SHIPPED)
def test_an_invitation_in_the_clients_own_zone_names_the_time_once(
    composer: Composer, language: str
) -> None:
    context = sample_context("invitation", language=language)
    start = context["meeting"]["start"]
    name = localefmt.zone_name("Asia/Riyadh", localefmt.locale_for(language).language, start)
    same = render(
        composer, "invitation", language, client_zone="Asia/Riyadh", rep_zone="Asia/Riyadh"
    )
    assert same.count(name) == 1


# --- planners pass what the formal branches need -------------------------------------------------

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # Tuesday
RULES, _ = parse_meeting_rules(
    [{"name": "m", "duration": "30m", "within": "7d", "count": 3, "_source": "r.toml"}]
)


def rep(zone: str) -> Rep:
    return Rep(
        mailbox="sam",
        name="Daniel Becker",
        address="daniel@northwind.example",
        addresses=frozenset({"daniel@northwind.example"}),
        language="en",
        zone=zone,
        calendar=BusinessCalendar.simple(zone, "07:00-20:00"),
    )


def asked(client: Client, display: str, body: str) -> list[Any]:
    sender = next(iter(sorted(client.emails)))
    message = Message(
        mailbox="sam",
        provider_id="p0",
        thread_id="<t@x>",
        message_id="<m0@x>",
        sender=Address(sender, display),
        to=(Address("daniel@northwind.example"),),
        date=NOW - timedelta(hours=2),
        subject="Renewal",
        body=body,
    )
    directory = Directory(
        [client],
        team_domains=frozenset({"northwind.example"}),
        team_addresses=frozenset({"daniel@northwind.example"}),
    )
    return build_threads([message], {"sam": frozenset({"daniel@northwind.example"})}, directory)


def proposal_for(client: Client, display: str, zone: str = "Europe/Berlin") -> Any:
    result = plan(
        asked(client, display, "Could we schedule a call next week?"),
        RULES,
        {"sam": rep(zone)},
        client_calendar,
        {},
        NOW,
        rep_details={"sam": {"company": "Northwind Analytics"}},
    )
    return next(a for a in result.actions if a.kind is ActionKind.PROPOSAL)


def client(**fields: Any) -> Client:
    base = Client(key="c", name="Kavya Rao", emails=frozenset({"kavya@godavari.example"}))
    return dataclasses.replace(base, **fields)


@pytest.mark.parametrize(
    ("display", "language", "greeting"),
    [
        ("K. Rao", "te", "నమస్కారం K. Rao గారు,"),
        ("Dr. Rao", "hi", "नमस्ते Dr. Rao जी,"),
        ("Rao,", "en", "Hi Rao,"),
        ("Rao, Kavya", "en", "Hi Kavya,"),
    ],
)
def test_a_display_name_with_initials_or_titles_greets_with_the_whole_name(
    composer: Composer, display: str, language: str, greeting: str
) -> None:
    action = proposal_for(client(language=language, zone="Asia/Kolkata"), display)
    text = composer.render("proposal", language, action.context).text
    assert text.startswith(f"{greeting}\n")


def test_the_clients_file_parts_reach_the_german_and_arabic_formal_branches(
    composer: Composer,
) -> None:
    anna = client(
        name="Anna Weber",
        emails=frozenset({"anna@weber.example"}),
        language="de",
        zone="Europe/Berlin",
        first_name="Anna",
        last_name="Weber",
        gender="female",
    )
    action = proposal_for(anna, "Anna Weber")
    assert {"last_name": "Weber", "gender": "female"}.items() <= action.context["client"].items()
    de = composer.render("proposal", "de", action.context).text
    assert de.startswith("Sehr geehrte Frau Weber,\n")
    ar = composer.render("proposal", "ar", action.context).text
    assert ar.startswith("الأستاذة Anna Weber المحترمة،\n")


def test_a_japanese_invitation_names_the_reps_company(composer: Composer) -> None:
    yuki = client(
        name="田中 由紀",
        emails=frozenset({"yuki@tanaka.jp"}),
        language="ja",
        zone="Asia/Tokyo",
        company="田中商事",
    )
    proposal = proposal_for(yuki, "田中 由紀")
    sent = Message(
        mailbox="sam",
        provider_id="p1",
        thread_id="<t@x>",
        message_id="<p1@northwind.example>",
        sender=Address("daniel@northwind.example"),
        to=(Address("yuki@tanaka.jp"),),
        date=NOW,
        subject="Re: Renewal",
        headers={"X-Followup-Key": proposal.key},
    )
    reply = Message(
        mailbox="sam",
        provider_id="p2",
        thread_id="<t@x>",
        message_id="<m2@x>",
        sender=Address("yuki@tanaka.jp", "田中 由紀"),
        to=(Address("daniel@northwind.example"),),
        date=NOW + timedelta(hours=1),
        subject="Re: Renewal",
        body="2番目でお願いいたします。",
        references=("<m0@x>", "<p1@northwind.example>"),
    )
    [thread] = asked(yuki, "田中 由紀", "Could we schedule a call next week?")
    directory = Directory(
        [yuki],
        team_domains=frozenset({"northwind.example"}),
        team_addresses=frozenset({"daniel@northwind.example"}),
    )
    threads = build_threads(
        [thread.messages[0].message, sent, reply],
        {"sam": frozenset({"daniel@northwind.example"})},
        directory,
    )
    result = plan(
        threads,
        RULES,
        {"sam": rep("Europe/Berlin")},
        client_calendar,
        {},
        NOW + timedelta(hours=2),
        earlier=[proposal],
        rep_details={"sam": {"company": "Northwind Analytics"}},
    )
    [invite] = [a for a in result.actions if a.kind is ActionKind.INVITE]
    text = composer.render("invitation", "ja", invite.context).text
    assert "田中様" in text  # the family name, from a name written family name first
    assert "Northwind AnalyticsのDaniel Beckerです。" in text


def test_a_proposal_in_one_zone_says_so_once() -> None:
    riyadh = client(language="ar", zone="Asia/Riyadh", country="SA")
    action = proposal_for(riyadh, "Kavya Rao", zone="Asia/Riyadh")
    assert "Asia/Riyadh and Asia/Riyadh" not in action.reason
    assert "times that suit Asia/Riyadh" in action.reason


# --- variants ------------------------------------------------------------------------------------

# Characters only Simplified Chinese writes (their Traditional forms: 們 這 郵 時 間 謝 請 會 發
# 對 與 為 關 見 議 個 回覆).
SIMPLIFIED_ONLY = set("们这邮时间谢请会发对与为关见议个复")


@pytest.mark.parametrize("tag", ["zh-TW", "zh-HK", "zh-Hant", "zh-Hant-TW", "zh-MO"])
@pytest.mark.parametrize("purpose", CLIENT_FACING)
def test_traditional_chinese_readers_get_traditional_chinese(
    composer: Composer, purpose: str, tag: str
) -> None:
    assert composer.resolve_language(purpose, tag) == "zh-Hant"
    text = render(composer, purpose, tag)
    assert sorted(SIMPLIFIED_ONLY & set(text)) == []
    assert "您" in text


@pytest.mark.parametrize("tag", ["pt-PT", "pt-AO", "pt-MZ"])
@pytest.mark.parametrize("purpose", CLIENT_FACING)
def test_european_portuguese_readers_are_not_addressed_as_voce(
    composer: Composer, purpose: str, tag: str
) -> None:
    assert composer.resolve_language(purpose, tag) == "pt-PT"
    steps = (1, 2, 3) if purpose == "follow_up" else (0,)
    for step in steps:
        text = render(composer, purpose, tag, **({"step": step} if step else {}))
        lowered = text.lower()
        assert "você" not in lowered and "ligação" not in lowered and "contato" not in lowered


def test_brazilian_portuguese_still_gets_the_brazilian_templates(composer: Composer) -> None:
    assert composer.resolve_language("proposal", "pt-BR") == "pt"


def test_the_shipped_fallbacks_name_languages_that_have_templates(composer: Composer) -> None:
    languages = set().union(*(composer.languages(p) for p in CLIENT_FACING))
    assert composer.fallbacks
    assert set(composer.fallbacks.values()) <= languages


def test_a_colleague_at_the_clients_address_is_not_greeted_with_the_contacts_parts() -> None:
    row = client(
        name="Kavya Rao",
        emails=frozenset({"kavya@godavari.example", "team@godavari.example"}),
        language="de",
        first_name="Kavya",
        last_name="Rao",
        gender="female",
    )
    colleague = Client(**{**row.__dict__, "emails": frozenset({"team@godavari.example"})})
    action = proposal_for(colleague, "Ravi Kumar")
    person = action.context["client"]
    assert (person["first_name"], person.get("last_name"), person.get("gender")) == (
        "Ravi",
        "Kumar",
        None,
    )


@pytest.mark.parametrize(
    ("language", "hour", "ninety"),
    [
        ("es", "llamada de una hora", "llamada de 90 minutos"),
        ("fr", "échange d'une heure", "échange de 90 minutes"),
        ("pt", "conversa de uma hora", "conversa de 90 minutos"),
        ("pt-PT", "chamada de uma hora", "chamada de 90 minutos"),
    ],
)
@pytest.mark.parametrize("purpose", ["proposal", "invitation"])
def test_romance_call_lengths_read_as_spoken(
    composer: Composer, purpose: str, language: str, hour: str, ninety: str
) -> None:
    assert hour in render(composer, purpose, language, duration_minutes=60)
    text = render(composer, purpose, language, duration_minutes=90)
    assert ninety in text
    assert [w for w in (" y 30", " et 30", " e 30") if w in text] == []
