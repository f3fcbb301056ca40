"""Composer safety (sandbox, missing values, escaping), languages, Babel formatting, messages."""

from __future__ import annotations

import base64
import email
import email.parser
import email.policy
import hashlib
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel import dates as babel_dates
from babel import lists as babel_lists
from babel import numbers as babel_numbers
from hypothesis import given
from hypothesis import strategies as st

from agent import localefmt, mime
from agent.compose import (
    MAX_HEADER_TEXT,
    Composer,
    Rendered,
    build_message,
    choose_language,
    language_chain,
    message_id_for,
    reply_subject_for,
    sample_context,
)
from agent.errors import TemplateError
from agent.model import Address
from agent.providers.protocol import key_tag

SUBJECT_TEXT = "{% block subject %}Hello{% endblock %}\n{% block text %}\n"


def write(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def simple(root: Path, name: str, text: str, html: str | None = None) -> Path:
    body = SUBJECT_TEXT + text + "\n{% endblock %}\n"
    if html is not None:
        body += "{% block html %}" + html + "{% endblock %}\n"
    return write(root, name, body)


# --- missing values and the sandbox -------------------------------------------------------------


def test_missing_value_names_file_line_and_variable(tmp_path: Path) -> None:
    path = simple(tmp_path, "thank_you/en.j2", "Dear {{ client.name }},\n\n{{ client.first_name }}")
    composer = Composer(tmp_path)
    with pytest.raises(TemplateError) as caught:
        composer.render("thank_you", "en", {"client": {"name": "Ada"}})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:5: undefined variable 'client.first_name'"
    ]


def test_missing_top_level_value_is_an_error_not_an_empty_greeting(tmp_path: Path) -> None:
    path = simple(tmp_path, "thank_you/en.j2", "Dear {{ name }},")
    with pytest.raises(TemplateError) as caught:
        Composer(tmp_path).render("thank_you", "en", {})
    assert str(caught.value) == f"{path}:3: undefined variable 'name'"


def test_fallback_fills_optional_values_only(tmp_path: Path) -> None:
    simple(
        tmp_path,
        "thank_you/en.j2",
        'Hi {{ client.first_name | fallback("there") }}, {{ client.title | fallback("-") }}',
    )
    composer = Composer(tmp_path)
    assert composer.render("thank_you", "en", {"client": {}}).text == "Hi there, -\n"
    given_values = {"client": {"first_name": "Ravi", "title": None}}
    assert composer.render("thank_you", "en", given_values).text == "Hi Ravi, -\n"


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "''.__class__.__mro__[1].__subclasses__()",
        "client.__class__",
        "self.__init__.__globals__",
        "cycler.__init__.__globals__.os",
        "lipsum.__globals__",
    ],
)
def test_sandbox_blocks_attribute_escapes(tmp_path: Path, expression: str) -> None:
    path = simple(tmp_path, "thank_you/en.j2", "{{ " + expression + " }}")
    with pytest.raises(TemplateError) as caught:
        Composer(tmp_path).render("thank_you", "en", {"client": {"name": "Ada"}})
    problem = caught.value.problems[0]
    assert (problem.file, problem.where) == (str(path), "3")
    assert "unsafe" in problem.message or "undefined" in problem.message


def test_sandbox_forbids_changing_the_data(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", "{{ client.update({'name': 'x'}) }}{{ client.name }}")
    client = {"name": "Ada"}
    with pytest.raises(TemplateError, match="not allowed"):
        Composer(tmp_path).render("thank_you", "en", {"client": client})
    assert client == {"name": "Ada"}


def test_html_is_escaped_and_text_is_not(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", "Hi {{ name }}", html="<p>Hi {{ name }}</p>")
    rendered = Composer(tmp_path).render("thank_you", "en", {"name": "<b>Tom & Jerry</b>"})
    assert rendered.text == "Hi <b>Tom & Jerry</b>\n"
    assert rendered.html is not None
    assert "<p>Hi &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>" in rendered.html


def test_top_level_set_and_macros_reach_every_block(tmp_path: Path) -> None:
    write(
        tmp_path,
        "thank_you/en.j2",
        "{% set who = name | upper %}{% macro sign() %}-- {{ who }}{% endmacro %}"
        "{% block subject %}For {{ who }}{% endblock %}"
        "{% block text %}{{ sign() }}{% endblock %}"
        "{% block html %}<p>{{ sign() }}</p>{% endblock %}",
    )
    rendered = Composer(tmp_path).render("thank_you", "en", {"name": "ada"})
    assert (rendered.subject, rendered.text) == ("For ADA", "-- ADA\n")
    assert rendered.html is not None and "<p>-- ADA</p>" in rendered.html


def test_plain_text_template_has_no_html(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", "Hi")
    assert Composer(tmp_path).render("thank_you", "en", {}).html is None


def test_start_up_lists_every_broken_template(tmp_path: Path) -> None:
    bad_syntax = simple(tmp_path, "thank_you/en.j2", "{% if x %}never closed")
    no_text = write(tmp_path, "follow_up/de.j2", "{% block subject %}x{% endblock %}")
    typo = write(
        tmp_path, "feedback/fr.j2", SUBJECT_TEXT + "{% endblock %}{% block htm %}{% endblock %}"
    )
    simple(tmp_path, "proposal/en.j2", "fine")
    with pytest.raises(TemplateError) as caught:
        Composer(tmp_path)
    found = {(p.file, p.where) for p in caught.value.problems}
    assert found == {(str(bad_syntax), "4"), (str(no_text), ""), (str(typo), "3")}


def test_missing_templates_folder_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no templates folder"):
        Composer(tmp_path / "nowhere")


# --- languages ----------------------------------------------------------------------------------


def test_language_chain_order() -> None:
    assert language_chain("pt-BR", "de") == ["pt-br", "pt", "de", "en"]
    assert language_chain("zh_Hant_TW", "en") == ["zh-hant-tw", "zh", "en"]
    assert language_chain("gl", "en", {"gl": "es", "es": "pt"}) == ["gl", "es", "pt", "en"]
    assert language_chain("x", "en", {"x": "y", "y": "x"}) == ["x", "y", "en"]  # no loop


@pytest.mark.parametrize(
    ("tag", "team_default", "expected"),
    [
        ("pt-BR", "en", "pt-BR"),
        ("pt-PT", "en", "pt"),
        ("PT", "en", "pt"),
        ("ko", "de", "de"),
        ("ko", "sv", "en"),
        ("", "de", "de"),
    ],
)
def test_resolve_language_falls_back_tag_base_team_english(
    tmp_path: Path, tag: str, team_default: str, expected: str
) -> None:
    for lang in ("en", "de", "pt", "pt-BR"):
        simple(tmp_path, f"thank_you/{lang}.j2", lang)
    composer = Composer(tmp_path, team_default=team_default)
    assert composer.resolve_language("thank_you", tag) == expected
    assert composer.render("thank_you", tag, {}).language == expected


def test_declared_fallbacks_come_before_the_team_default(tmp_path: Path) -> None:
    for lang in ("en", "hi"):
        simple(tmp_path, f"thank_you/{lang}.j2", lang)
    write(tmp_path, "fallbacks.toml", 'ur = "hi"\n')
    composer = Composer(tmp_path)
    assert composer.resolve_language("thank_you", "ur-PK") == "hi"
    assert choose_language({"en"}, "ur", "en", {"ur": "hi"}) == "en"


def test_bad_fallbacks_file_is_reported(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", "x")
    write(tmp_path, "fallbacks.toml", "ur = 3\n")
    with pytest.raises(TemplateError, match=r"fallbacks\.toml:ur"):
        Composer(tmp_path)


def test_purpose_without_any_template_is_an_error(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", "x")
    composer = Composer(tmp_path)
    assert composer.purposes() == {"thank_you"} and composer.languages("follow_up") == set()
    with pytest.raises(TemplateError, match="no template for 'de'"):
        composer.render("follow_up", "de", {})


def test_dates_follow_the_requested_regional_locale(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", '{{ when | date("Europe/London", "long") }}')
    composer = Composer(tmp_path)
    # 23:30 UTC on the 14th is already the 15th in London's summer time.
    when = {"when": datetime(2025, 7, 14, 23, 30, tzinfo=UTC)}
    day = date(2025, 7, 15)
    british = babel_dates.format_date(day, "long", locale="en_GB")
    assert composer.render("thank_you", "en-GB", when).text == f"{british}\n"
    assert composer.render("thank_you", "en", when).text == f"{cldr_date(day, 'long', 'en')}\n"
    # a template in another language formats in its own language, not the requested one
    assert composer.render("thank_you", "ja", when).text == f"{cldr_date(day, 'long', 'en')}\n"


def test_naive_datetime_is_a_template_error_with_line(tmp_path: Path) -> None:
    path = simple(tmp_path, "thank_you/en.j2", '{{ when | datetime("Asia/Tokyo") }}')
    with pytest.raises(TemplateError) as caught:
        Composer(tmp_path).render("thank_you", "en", {"when": datetime(2025, 1, 1)})
    assert caught.value.problems[0].file == str(path)
    assert caught.value.problems[0].where == "3"
    assert "naive datetime" in caught.value.problems[0].message


# --- Babel formatting ---------------------------------------------------------------------------
# Locale data (names of days, months, zones, units) changes with every CLDR release, so the
# expected text comes from Babel itself: what these tests hold is what the project decides, which
# zone a time is shown in, which locale and width, which name, how parts are joined.

FRIDAY = datetime(2025, 3, 14, 4, 30, tzinfo=UTC)  # 10:00 in Kolkata, 13:30 in Tokyo
LATE_THURSDAY = datetime(2025, 3, 13, 20, 0, tzinfo=UTC)  # already Friday in Kolkata and Tokyo


def cldr_date(day: date, pattern: str, locale: str) -> str:
    return str(babel_dates.format_date(day, pattern, locale=locale))


def cldr_span(locale: str, *spans: timedelta) -> str:
    parts = [babel_dates.format_timedelta(span, threshold=1, locale=locale) for span in spans]
    return str(babel_lists.format_list(parts, style="standard", locale=locale))


def local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone))


def test_japanese_dates_and_zones() -> None:
    text = localefmt.format_datetime(LATE_THURSDAY, "Asia/Tokyo", "ja", "full")
    tokyo = local(LATE_THURSDAY, "Asia/Tokyo")
    assert cldr_date(tokyo.date(), "full", "ja") in text
    assert babel_dates.format_time(tokyo, "short", locale="ja") in text
    assert babel_dates.format_time(tokyo, "medium", locale="ja") not in text  # no seconds
    long = localefmt.format_date(LATE_THURSDAY, "Asia/Tokyo", "ja", "long")
    assert long == cldr_date(tokyo.date(), "long", "ja")
    specific = babel_dates.get_timezone_name(tokyo, "long", locale="ja")
    assert localefmt.zone_name("Asia/Tokyo", "ja", at=FRIDAY) == specific
    assert localefmt.format_duration(timedelta(hours=2), "ja") == cldr_span(
        "ja", timedelta(hours=2)
    )


def test_telugu_dates_and_durations() -> None:
    kolkata = local(LATE_THURSDAY, "Asia/Kolkata")
    assert localefmt.format_weekday(LATE_THURSDAY, "Asia/Kolkata", "te") == cldr_date(
        kolkata.date(), "EEEE", "te"
    )
    assert localefmt.format_weekday(LATE_THURSDAY, "UTC", "te") == cldr_date(
        LATE_THURSDAY.date(), "EEEE", "te"
    )
    assert localefmt.format_date(LATE_THURSDAY, "Asia/Kolkata", "te", "long") == cldr_date(
        kolkata.date(), "long", "te"
    )
    assert localefmt.format_duration(timedelta(hours=2), "te") == cldr_span(
        "te", timedelta(hours=2)
    )


def test_arabic_dates_and_durations() -> None:
    riyadh = local(FRIDAY, "Asia/Riyadh")
    assert localefmt.format_weekday(FRIDAY, "Asia/Riyadh", "ar") == cldr_date(
        riyadh.date(), "EEEE", "ar"
    )
    assert localefmt.format_date(FRIDAY, "Asia/Riyadh", "ar", "long") == cldr_date(
        riyadh.date(), "long", "ar"
    )
    assert localefmt.format_duration(timedelta(hours=2), "ar") == cldr_span(
        "ar", timedelta(hours=2)
    )
    # each unit spelt out by itself, joined the locale's way
    assert localefmt.format_duration(timedelta(hours=2, minutes=30), "ar") == cldr_span(
        "ar", timedelta(hours=2), timedelta(minutes=30)
    )
    assert localefmt.is_rtl("ar-EG") and localefmt.is_rtl("he") and not localefmt.is_rtl("en")


def test_hindi_duration_and_english_forms() -> None:
    assert localefmt.format_duration(timedelta(hours=2), "hi") == cldr_span(
        "hi", timedelta(hours=2)
    )
    assert localefmt.format_duration(timedelta(hours=2), "en") == cldr_span(
        "en", timedelta(hours=2)
    )
    # the sign is dropped; days, hours and minutes each appear once, zero parts left out
    assert localefmt.format_duration(-timedelta(days=1, minutes=5), "en") == cldr_span(
        "en", timedelta(days=1), timedelta(minutes=5)
    )
    # spans under a minute read as seconds
    assert localefmt.format_duration(timedelta(seconds=20), "en") == str(
        babel_dates.format_timedelta(timedelta(seconds=20), locale="en")
    )
    assert localefmt.format_number(1234.5, "de") == babel_numbers.format_decimal(
        1234.5, locale="de"
    )


def test_zone_names_know_summer_time() -> None:
    ny = ZoneInfo("America/New_York")
    july = datetime(2025, 7, 1, 12, tzinfo=UTC)
    january = datetime(2025, 1, 15, 12, tzinfo=UTC)
    summer = localefmt.zone_name("America/New_York", "en", at=july)
    winter = localefmt.zone_name("America/New_York", "en", at=january)
    assert summer == babel_dates.get_timezone_name(july.astimezone(ny), "long", locale="en")
    assert winter == babel_dates.get_timezone_name(january.astimezone(ny), "long", locale="en")
    assert summer != winter
    # 14 March 2025 is after New York's change to summer time (9 March)
    assert localefmt.zone_name("America/New_York", "en", at=FRIDAY) == summer
    # without a moment: the generic name
    generic = babel_dates.get_timezone_name(ny, "long", locale="en")
    assert localefmt.zone_name("America/New_York", "en") == generic


@pytest.mark.parametrize("language", ["en", "te", "hi", "ja", "ar"])
@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo"])
def test_zone_names_are_names_never_a_bare_offset(zone: str, language: str) -> None:
    tz = ZoneInfo(zone)
    named = {
        babel_dates.get_timezone_name(FRIDAY.astimezone(tz), "long", locale=language),
        babel_dates.get_timezone_name(tz, "long", locale=language),
    }
    offset = babel_dates.get_timezone_gmt(FRIDAY.astimezone(tz), "long", locale=language)
    name = localefmt.zone_name(zone, language, at=FRIDAY)
    assert name in named
    assert name.replace("\u200e", "") != offset.replace("\u200e", "")


def test_unknown_locale_and_zone() -> None:
    assert localefmt.locale_for("xx-YY").language == "en"
    assert str(localefmt.locale_for("pt-BR")) == "pt_BR"
    with pytest.raises(ValueError, match="unknown time zone"):
        localefmt.format_time(FRIDAY, "Mars/Olympus", "en")
    with pytest.raises(ValueError, match="format must be one of"):
        localefmt.format_datetime(FRIDAY, "UTC", "en", "huge")


ZONES = ["Asia/Kathmandu", "Pacific/Apia", "Pacific/Auckland", "America/St_Johns", "Asia/Kolkata"]


@given(
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(ZONES),
    other=st.sampled_from([*ZONES, "Europe/Berlin", "America/Los_Angeles"]),
)
def test_time_beside_another_zone_shows_the_day_exactly_when_it_differs(
    instant: datetime, zone: str, other: str
) -> None:
    shown = localefmt.format_time(instant, zone, "en", beside=other)
    plain = localefmt.format_time(instant, zone, "en")
    differs = (
        instant.astimezone(ZoneInfo(zone)).date() != instant.astimezone(ZoneInfo(other)).date()
    )
    day = cldr_date(instant.astimezone(ZoneInfo(zone)).date(), "EEE", "en")
    assert shown == (f"{day} {plain}" if differs else plain)


@given(minutes=st.integers(min_value=1, max_value=6 * 24 * 60))
def test_duration_spells_out_every_minute(minutes: int) -> None:
    text = localefmt.format_duration(timedelta(minutes=minutes), "en")
    total = 0
    for number, unit in zip(
        text.replace(",", "").replace(" and", "").split()[::2],
        text.replace(",", "").replace(" and", "").split()[1::2],
        strict=True,
    ):
        total += int(number) * {"day": 1440, "hour": 60, "minute": 1}[unit.rstrip("s")]
    assert total == minutes


# --- messages -----------------------------------------------------------------------------------

REP = Address("ravi@northwind.example", "Ravi Kumar")
CLIENT = Address("anjali@godavari.example", "Anjali Rao")


def rendered(subject: str = "Thank you", html: str | None = None) -> Rendered:
    return Rendered(subject, "Hello\n", html, "en", Path("templates/thank_you/en.j2"))


def roundtrip(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_message_id_is_deterministic() -> None:
    digest = hashlib.sha256(b"rule/thread/1").hexdigest()[:32]
    assert message_id_for("rule/thread/1", "Northwind.example") == (
        f"<followup.{digest}@northwind.example>"
    )
    assert message_id_for("a", "x.example") != message_id_for("b", "x.example")
    with pytest.raises(ValueError, match="not a mail domain"):
        message_id_for("a", "x.example>\r\nBcc: a@b")


def test_threaded_reply_headers() -> None:
    msg = roundtrip(
        build_message(
            rendered(),
            sender=REP,
            to=[CLIENT],
            in_reply_to="<parent@godavari.example>",
            references=["<root@godavari.example>", "<mid@northwind.example>", "junk"],
            reply_subject="Pricing for 2025",
            message_id="<followup.1@northwind.example>",
            key="k1",
        )
    )
    assert msg["In-Reply-To"] == "<parent@godavari.example>"
    assert msg["References"].split() == [
        "<root@godavari.example>",
        "<mid@northwind.example>",
        "<parent@godavari.example>",
    ]
    assert msg["Subject"] == "Re: Pricing for 2025"
    assert msg["Message-ID"] == "<followup.1@northwind.example>"
    assert msg["X-Followup-Key"] == key_tag("k1")  # opaque: the key names mailboxes
    assert msg["Date"] is None
    assert msg.get_content_type() == "text/plain"


def test_new_message_uses_the_rendered_subject() -> None:
    msg = build_message(
        rendered("Thank you – Rollout"),
        sender=REP,
        to=[CLIENT],
        message_id="<followup.2@northwind.example>",
        key="k2",
        extra_headers={"Date": "Fri, 14 Mar 2025 10:00:00 +0000", "Auto-Submitted": "no"},
    )
    assert msg["Subject"] == "Thank you – Rollout"
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["Date"] == "Fri, 14 Mar 2025 10:00:00 +0000"


@pytest.mark.parametrize(
    ("thread", "expected"),
    [
        ("Pricing", "Re: Pricing"),
        ("Re: Pricing", "Re: Pricing"),
        ("RE: Pricing", "RE: Pricing"),
        ("AW: Angebot", "AW: Angebot"),
        ("SV: Tilbud", "SV: Tilbud"),
        ("回复：报价", "回复：报价"),
        ("Re[2]: Pricing", "Re[2]: Pricing"),
        ("Regarding pricing", "Re: Regarding pricing"),
        ("Résumé", "Re: Résumé"),
        ("", "Re:"),
    ],
)
def test_reply_prefix(thread: str, expected: str) -> None:
    assert reply_subject_for(thread) == expected


def test_html_makes_multipart_alternative() -> None:
    msg = roundtrip(
        build_message(
            rendered(html="<!DOCTYPE html><html><body><p>Hello</p></body></html>"),
            sender=REP,
            to=[CLIENT],
            message_id="<followup.3@northwind.example>",
            key="k3",
        )
    )
    assert msg.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Content-Language"] == "en"


def test_header_injection_in_names_and_subject_is_neutralised() -> None:
    evil = Address("anjali@godavari.example", "Anjali\r\nBcc: spy@evil.example")
    msg = build_message(
        rendered("Hi\r\nBcc: spy@evil.example"),
        sender=Address("ravi@northwind.example", "Ravi\nX-Evil: 1"),
        to=[evil],
        in_reply_to="<p@x.example>",
        reply_subject="Offer\r\nBcc: spy@evil.example",
        message_id="<followup.4@northwind.example>",
        key="k4\r\nBcc: spy@evil.example",
    )
    raw = msg.as_bytes()
    parsed = roundtrip(msg)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert b"\nBcc:" not in raw and b"\nX-Evil:" not in raw
    assert parsed["To"].addresses[0].addr_spec == "anjali@godavari.example"
    assert parsed["Subject"] == "Re: Offer Bcc: spy@evil.example"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": [Address("a@b.example\r\nBcc: c@d.example")]},
        {"to": []},
        {"message_id": "not an id"},
        {"extra_headers": {"Bad Name": "x"}},
        {"extra_headers": {"Subject": "override"}},
        {"extra_headers": {"x-followup-key": "other"}},
    ],
)
def test_malformed_input_is_rejected(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "sender": REP,
        "to": [CLIENT],
        "message_id": "<followup.5@northwind.example>",
        "key": "k5",
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        build_message(rendered(), **args)  # type: ignore[arg-type]


def test_sample_context_drops_optional_fields_when_minimal() -> None:
    full = sample_context("thank_you", language="de")
    minimal = sample_context("thank_you", language="de", minimal=True)
    assert full["client"]["honorific"] == "Frau" and "honorific" not in minimal["client"]
    assert "next_steps" in full["meeting"] and "next_steps" not in minimal["meeting"]
    assert full["meeting"]["start"] == minimal["meeting"]["start"]
    minimal["client"]["name"] = "changed"
    assert sample_context("thank_you")["client"]["name"] == "Anjali Rao"


# --- encoded words that decode to CR/LF ---------------------------------------------------------


def _ew(text: str) -> str:
    """``text`` as one RFC 2047 encoded word (base64, UTF-8)."""
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


INJECTED = "Offer\r\nBcc: spy@evil.example"
BASE_HEADERS = [
    "from",
    "to",
    "subject",
    "message-id",
    "x-followup-key",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-language",
]


def _header_names(msg: EmailMessage) -> list[str]:
    """The header names a mail server reads in the message as written."""
    head = msg.as_bytes().split(b"\n\n", 1)[0]
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return sorted(name.lower() for name in parsed)


def _names_of_clean_message(**kwargs: object) -> list[str]:
    args: dict[str, object] = {
        "sender": REP,
        "to": [CLIENT],
        "message_id": "<followup.6@northwind.example>",
        "key": "k6",
        "in_reply_to": "<p@x.example>",
        "reply_subject": "Offer",
    }
    args.update(kwargs)
    return _header_names(build_message(rendered(), **args))  # type: ignore[arg-type]


def test_subject_encoded_twice_by_a_client_adds_no_header() -> None:
    # Decoded once when the client's mail is read, the subject is an encoded word again; written
    # out as is, the email package would decode it and fold a Bcc line into the reply.
    raw = (
        "From: Anjali <anjali@godavari.example>\r\nTo: ravi@northwind.example\r\n"
        f"Subject: {_ew(_ew(INJECTED))}\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <q1@godavari.example>\r\n\r\nHello\r\n"
    ).encode()
    incoming = mime.to_message(raw, mailbox="ravi", provider_id="1")
    msg = build_message(
        rendered(),
        sender=REP,
        to=[incoming.sender],
        in_reply_to=incoming.message_id,
        reply_subject=incoming.subject,
        message_id="<followup.6@northwind.example>",
        key="k6",
    )
    assert _header_names(msg) == _names_of_clean_message()
    assert b"\nBcc:" not in msg.as_bytes()
    assert roundtrip(msg)["Subject"] == "Re: Offer Bcc: spy@evil.example"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reply_subject": _ew(INJECTED)},
        {"reply_subject": "", "in_reply_to": ""},  # the rendered subject below
        {"to": [Address("anjali@godavari.example", _ew(INJECTED))]},
        {"to": [Address("anjali@godavari.example", f"Anjali {_ew(_ew(INJECTED))}")]},
        {"sender": Address("ravi@northwind.example", _ew(INJECTED))},
        {"key": _ew(INJECTED)},
        {"extra_headers": {"X-Note": _ew(INJECTED)}},
    ],
)
def test_encoded_words_decoding_to_line_breaks_add_no_header(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "sender": REP,
        "to": [CLIENT],
        "message_id": "<followup.7@northwind.example>",
        "key": "k7",
        "in_reply_to": "<p@x.example>",
        "reply_subject": "Offer",
    }
    args.update(kwargs)
    msg = build_message(rendered(_ew(INJECTED)), **args)  # type: ignore[arg-type]
    expected = [*BASE_HEADERS, "x-note"] if "extra_headers" in kwargs else BASE_HEADERS
    if args["in_reply_to"]:
        expected = [*expected, "in-reply-to", "references"]
    assert _header_names(msg) == sorted(expected)
    assert b"\nBcc:" not in msg.as_bytes()


def test_encoded_words_in_parent_ids_are_dropped() -> None:
    evil = "<=?utf-8?q?a=0D=0ABcc:_spy=40evil.example?=@x.example>"
    msg = build_message(
        rendered(),
        sender=REP,
        to=[CLIENT],
        in_reply_to=evil,
        references=[evil, "<root@x.example>"],
        message_id="<followup.8@northwind.example>",
        key="k8",
    )
    assert b"\nBcc:" not in msg.as_bytes()
    assert msg["In-Reply-To"] is None
    assert "evil" not in msg.as_string()


_PIECES = st.sampled_from(
    ["Offer", " ", "\r\n", "\n", "Bcc: spy@evil.example", "=?", "?=", "=?utf-8?q?", "é", "x" * 30]
)


@st.composite
def _hostile_text(draw: st.DrawFn) -> str:
    text = "".join(draw(st.lists(_PIECES, max_size=8)))
    for _ in range(draw(st.integers(0, 3))):
        text = _ew(text) if draw(st.booleans()) else f"Re: {_ew(text)} x"
    return text


@given(subject=_hostile_text(), name=_hostile_text())
def test_no_subject_or_name_adds_a_header(subject: str, name: str) -> None:
    msg = build_message(
        rendered(),
        sender=REP,
        to=[Address("anjali@godavari.example", name)],
        in_reply_to="<p@x.example>",
        reply_subject=subject,
        message_id="<followup.9@northwind.example>",
        key="k9",
    )
    assert _header_names(msg) == _names_of_clean_message()


def test_a_huge_subject_is_cut_before_it_is_decoded() -> None:
    huge = "a=?utf-8?q?" * 20_000  # the email package's parser is slower than linear on this
    msg = build_message(
        rendered(),
        sender=REP,
        to=[CLIENT],
        in_reply_to="<p@x.example>",
        reply_subject=huge,
        message_id="<followup.10@northwind.example>",
        key="k10",
    )
    assert len(str(msg["Subject"])) <= MAX_HEADER_TEXT + len("Re: ")
