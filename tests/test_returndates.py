"""Return dates of out-of-office replies: cue, locale order, scripts, last-day, month, weekday."""

from __future__ import annotations

import time as clock
from datetime import date

import pytest

from agent.returndates import date_order, read_return

OCT_1 = date(2025, 10, 1)  # a Wednesday


def back(text: str, sent: date = OCT_1, language: str = "", country: str = "") -> date | None:
    found = read_return(text, sent, language, country)
    return None if found is None else found.day


@pytest.mark.parametrize(
    ("text", "language", "country"),
    [
        ("Ich bin bis zum 10.11.2025 nicht im Büro.", "de", ""),
        ("Je suis absente jusqu'au 10/11/2025.", "fr", "FR"),
        ("Estoy fuera de la oficina hasta el 10/11/2025.", "es", "ES"),
        ("Estarei ausente até 10/11/2025.", "pt", "BR"),
        ("أنا خارج المكتب حتى 10/11/2025.", "ar", ""),
        ("నేను 10/11/2025 వరకు సెలవులో ఉన్నాను.", "te", ""),
        ("मैं 10/11/2025 तक छुट्टी पर हूँ।", "hi", ""),
        ("I am out of the office until 10/11/2025.", "en", "IN"),
        ("I am out of the office until 10/11/2025.", "en-GB", ""),
    ],
)
def test_a_day_first_locale_reads_day_first(text: str, language: str, country: str) -> None:
    assert back(text, language=language, country=country) == date(2025, 11, 10)


def test_a_month_first_locale_reads_month_first() -> None:
    assert back("Out of the office until 11/10/2025.", language="en", country="US") == date(
        2025, 11, 10
    )


def test_an_ambiguous_numeric_date_without_a_locale_is_refused() -> None:
    assert back("I am out of the office until 10/11/2025.") is None
    assert back("I am out of the office until 10/11/2025.", language="en") is None
    # A day over 12 settles the order without a locale.
    assert back("I am out of the office until 25/10/2025.") == date(2025, 10, 25)


def test_a_date_order_comes_from_the_locale_data() -> None:
    assert date_order("de") == "DMY"
    assert date_order("en", "US") == "MDY"
    assert date_order("en", "IN") == "DMY"
    assert date_order("en") == ""
    assert date_order("") == ""


def test_a_day_and_month_without_year_is_day_first_in_german() -> None:
    assert back("Ich bin ab dem 10.9. wieder im Büro.", date(2025, 9, 1), "de") == date(2025, 9, 10)


def test_a_month_alone_invents_no_day() -> None:
    sent = date(2026, 9, 4)
    # Away for all of October at worst: back when it is over, not on the 4th.
    assert back("I am on leave until October 2026.", sent, "en") == date(2026, 11, 1)
    assert back("Ab Oktober bin ich wieder im Büro.", sent, "de") == date(2026, 10, 1)


def test_a_date_without_a_return_cue_holds_nothing() -> None:
    assert back("Out of office. Our next release is 2025-10-20.") is None
    assert back("Thanks for your mail. The webinar is on 20 October.", language="en") is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Ich bin bis einschließlich 30. Oktober im Urlaub.", "de"),
        ("I am away through 30 October.", "en"),
        ("I am away until and including 30 October.", "en"),
        ("Je suis absent jusqu'au 30 octobre inclus.", "fr"),
        ("Ik ben afwezig tot en met 30 oktober.", "nl"),
    ],
)
def test_a_last_day_away_gives_the_day_after(text: str, language: str) -> None:
    found = read_return(text, OCT_1, language)
    assert found is not None
    assert (found.day, found.kind) == (date(2025, 10, 31), "last day")


@pytest.mark.parametrize(
    "text",
    [
        "I am away from 3 to 14 November.",
        "I am away from 3 November to 14 November.",
        "Ich bin vom 3. bis 14. November nicht im Büro.",
        "I am out November 3-14.",
    ],
)
def test_a_range_counts_its_last_day(text: str) -> None:
    assert back(text, language="en") == date(2025, 11, 15)


def test_a_clock_time_is_not_a_date() -> None:
    assert back("Out of office. Hours: 5am to 6pm, back from 9:30.", language="en") is None
    assert back("Ich bin ab 10.30 Uhr erreichbar.", language="de") is None


def test_a_weekday_alone_is_the_next_such_day() -> None:
    assert back("I will be back on Monday.", language="en") == date(2025, 10, 6)
    assert back("Ich bin ab Mittwoch wieder erreichbar.", language="de") == date(2025, 10, 8)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("أنا خارج المكتب حتى ١٠ نوفمبر.", "ar"),
        ("मैं १० नवंबर तक छुट्टी पर हूँ।", "hi"),
        ("నేను ౧౦ నవంబర్ వరకు సెలవులో ఉన్నాను.", "te"),
        ("１１月１０日まで不在にしております。", "ja"),
        ("11月10日まで不在にしております。", "ja"),
        ("我十一月十日前不在办公室。", "zh"),
        ("我将于2025年11月10日返回办公室。", "zh"),
    ],
)
def test_native_digits_and_cjk_dates_are_read(text: str, language: str) -> None:
    assert back(text, language=language) == date(2025, 11, 10)


def test_the_latest_cued_date_wins_and_past_dates_do_not_count() -> None:
    text = "I was out on 2 September. I am away again until 20 October, back 21 October."
    assert back(text, language="en") == date(2025, 10, 21)


def test_a_megabyte_of_dates_and_cues_is_read_in_linear_time() -> None:
    for unit in ("until 10.11. ", "bis zum 3. bis ", "十一月三日まで", "until Monday ", "١٠/١١ "):
        text = unit * (1_000_000 // len(unit))
        started = clock.perf_counter()
        read_return(text, OCT_1, "de")
        assert clock.perf_counter() - started < 3.0, unit


def test_the_labelled_corpus_meets_the_targets() -> None:
    from tests.benchmarks.reading_returndates import check, load

    rows = load()
    results = [check(row) for row in rows]
    wrong = [
        (row["id"], got) for row, (right, _, got) in zip(rows, results, strict=True) if not right
    ]
    assert sum(r for r, _, _ in results) / len(rows) >= 0.95, wrong
    assert not [row["id"] for row, (_, invented, _) in zip(rows, results, strict=True) if invented]
