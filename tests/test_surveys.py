from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import surveys

DATA = Path(__file__).parent / "data" / "surveys.jsonl"


@pytest.mark.parametrize(
    ("text", "scale", "score"),
    [
        ("౯", "nps", 9),
        ("तीन", "csat", 3),
        ("९", "nps", 9),
        ("٨ من ١٠", "nps", 8),
        ("９点です", "nps", 9),
        ("满分10分，我给9分。", "nps", 9),
        ("neun", "nps", 9),
        ("తొమ్మిది", "nps", 9),
        ("九", "nps", 9),
        ("9/10 – great", "nps", 9),
    ],
)
def test_scores_in_every_script(text: str, scale: str, score: int) -> None:
    got = surveys.read(text, scale)
    assert (score, "scored") == (got.score, got.status)


def test_the_comment_is_kept_without_the_score() -> None:
    got = surveys.read("8 out of 10. Would have liked more time on pricing.", "nps")
    assert got.score == 8
    assert "Would have liked more time on pricing" in got.comment


def test_ambiguous_answers_are_left_unscored_with_a_reason() -> None:
    got = surveys.read("8 or 9", "nps")
    assert (got.score, got.status) == (None, "ambiguous")
    assert "8, 9" in got.why


def test_quoted_survey_is_not_an_answer() -> None:
    body = "Very useful, thanks.\n\nOn Tue, 24 Nov 2026 at 10:00, Asha <a@x.example> wrote:\n> 0 to 10?"
    assert surveys.read(body, "nps").score is None


def test_an_unknown_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="csat"):
        surveys.read("9", "stars")


@settings(max_examples=200, deadline=None)
@given(
    st.dates(),
    st.integers(0, 23),
    st.integers(0, 59),
    st.sampled_from(["{d:%d.%m.%Y}", "{d:%d/%m}", "{d:%Y-%m-%d}", "{h}:{m:02d}", "{d:%d %B}"]),
)
def test_a_date_or_time_is_never_a_score(d, h: int, m: int, shape: str) -> None:  # type: ignore[no-untyped-def]
    text = "Let us talk on " + shape.format(d=d, h=h, m=m) + ", thanks"
    assert surveys.read(text, "nps").score is None
    assert surveys.read(text, "csat").score is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 99), min_size=3, max_size=6))
def test_a_phone_number_is_never_a_score(groups: list[int]) -> None:
    number = "+33 " + " ".join(f"{g:02d}" for g in groups)
    assert surveys.read(f"Call me: {number}", "nps").score is None
    assert surveys.read(" ".join(f"{g:02d}" for g in groups), "nps").score is None


def test_hostile_input_is_bounded() -> None:
    got = surveys.read("1 " * 200_000 + "x", "nps")
    assert got.score is None


def test_labelled_set_accuracy_meets_its_target() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} >= {
        "en",
        "te",
        "hi",
        "ja",
        "de",
        "fr",
        "es",
        "pt",
        "ar",
        "zh",
    }
    right = sum(
        (surveys.read(r["text"], r["scale"]).score, surveys.read(r["text"], r["scale"]).status)
        == (r["score"], r["status"])
        for r in rows
    )
    invented = [
        r["text"]
        for r in rows
        if surveys.read(r["text"], r["scale"]).score not in (None, r["score"])
    ]
    assert invented == []
    assert right / len(rows) >= 0.97


def test_nps_and_csat() -> None:
    assert surveys.nps([10, 9, 8, 7, 6]) == 20.0
    assert surveys.csat([5, 4, 4, 2, 1]) == 60.0
    assert surveys.nps([]) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["nps", "csat"]))
def test_any_text_is_read_without_error_and_a_score_is_on_the_scale(text: str, scale: str) -> None:
    got = surveys.read(text, scale)
    lo, hi = surveys.SCALES[scale]
    assert got.status in ("scored", "ambiguous", "none")
    assert (got.score is None) == (got.status != "scored")
    assert got.score is None or lo <= got.score <= hi
