"""Every shipped template renders, reads as its language should, and passes ``templates check``."""

from __future__ import annotations

import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel import dates as babel_dates

from agent.compose import CONTRACTS, Composer, sample_context
from agent.templatecheck import check_templates, preview

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SHIPPED = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")
FILES = sorted(
    (path.parent.name, path.stem)
    for path in TEMPLATES.glob("*/*.j2")
    if not path.parent.name.startswith("_")
)


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(TEMPLATES)


def test_every_purpose_ships_every_language(composer: Composer) -> None:
    assert set(CONTRACTS) == composer.purposes()
    for purpose in CONTRACTS:
        assert set(SHIPPED) <= composer.languages(purpose), purpose


@pytest.mark.parametrize(("purpose", "language"), FILES, ids=[f"{p}/{lang}" for p, lang in FILES])
@pytest.mark.parametrize("minimal", [False, True], ids=["all-fields", "required-only"])
def test_template_renders_with_sample_data(
    composer: Composer, purpose: str, language: str, minimal: bool
) -> None:
    steps = (1, 2, 3) if purpose == "follow_up" else (1,)
    for step in steps:
        context = sample_context(purpose, language=language, minimal=minimal)
        if purpose == "follow_up":
            context["step"] = step
        rendered = composer.render_exact(purpose, language, context)
        assert rendered.language == language
        assert rendered.template_path == TEMPLATES / purpose / f"{language}.j2"
        assert rendered.subject and "\n" not in rendered.subject
        assert rendered.text.endswith("\n") and not rendered.text.startswith("\n")
        for leftover in ("{{", "{%", "Undefined", "None"):
            assert leftover not in rendered.subject + rendered.text
        if rendered.html is not None:
            assert f'lang="{language}"' in rendered.html
            direction = "rtl" if language == "ar" else "ltr"
            assert f'<html lang="{language}" dir="{direction}">' in rendered.html


def test_shipped_templates_pass_the_check() -> None:
    assert check_templates(TEMPLATES, [*SHIPPED, "pt-BR", "en-IN", "zh-CN"], "en") == []


def test_arabic_html_is_right_to_left(composer: Composer) -> None:
    for purpose in ("thank_you", "feedback", "proposal"):
        rendered = composer.render(purpose, "ar", sample_context(purpose, language="ar"))
        assert rendered.html is not None
        assert '<html lang="ar" dir="rtl">' in rendered.html
        assert '<body dir="rtl">' in rendered.html


def test_follow_up_steps_change_the_wording(composer: Composer) -> None:
    for language in SHIPPED:
        texts = set()
        for step in (1, 2, 3):
            context = sample_context("follow_up", language=language)
            context["step"] = step
            texts.add(composer.render("follow_up", language, context).text)
        assert len(texts) == 3, language


def test_last_step_of_a_short_cadence_is_the_last_check_in(composer: Composer) -> None:
    def text(step: int, steps: int) -> str:
        context = {**sample_context("follow_up"), "step": step, "steps": steps}
        return composer.render("follow_up", "en", context).text

    last = "will not follow up again"
    assert last in text(2, 2) and last in text(5, 5) and last in text(3, 3)
    assert last not in text(1, 1) and last not in text(1, 2) and last not in text(4, 5)
    assert "walk you through" in text(4, 5)


def test_japanese_uses_keigo_and_sama(composer: Composer) -> None:
    context = sample_context("thank_you", language="ja")
    text = composer.render("thank_you", "ja", context).text
    assert "Rao様" in text
    assert "いつもお世話になっております。" in text
    # the meeting's date in Japanese (Babel's long form), on the day it was in the client's zone
    meeting = context["meeting"]
    day = meeting["start"].astimezone(ZoneInfo(meeting["zone"])).date()
    assert babel_dates.format_date(day, "long", locale="ja") in text


def test_german_greeting_follows_the_honorific(composer: Composer) -> None:
    context = sample_context("thank_you", language="de")
    assert composer.render("thank_you", "de", context).text.startswith("Sehr geehrte Frau Rao,")
    context["client"]["honorific"] = "Herr Dr."
    context["client"]["last_name"] = "Weber"
    assert composer.render("thank_you", "de", context).text.startswith(
        "Sehr geehrter Herr Dr. Weber,"
    )
    minimal = sample_context("thank_you", language="de", minimal=True)
    assert composer.render("thank_you", "de", minimal).text.startswith("Guten Tag Anjali Rao,")


def test_chinese_and_telugu_forms_of_address(composer: Composer) -> None:
    zh = composer.render("follow_up", "zh", sample_context("follow_up", language="zh")).text
    assert zh.startswith("尊敬的Rao女士：") and "您" in zh
    te = composer.render("thank_you", "te", sample_context("thank_you", language="te")).text
    assert te.startswith("నమస్కారం Anjali గారు,")
    # the meeting's weekday in Telugu, by Babel, in the client's zone
    meeting = sample_context("thank_you", language="te")["meeting"]
    day = meeting["start"].astimezone(ZoneInfo(meeting["zone"])).date()
    assert babel_dates.format_date(day, "EEEE", locale="te") in te


def test_proposal_lists_each_slot_in_both_zones(composer: Composer) -> None:
    text = composer.render("proposal", "en", sample_context("proposal")).text
    # 09:00 UTC is 14:30 in Kolkata and 10:00 in Berlin on 18 March 2025: the client's time
    # in full, the rep's clock beside it with the rep's zone named as it is that day.
    context = sample_context("proposal")
    start = context["slots"][0]["start"]
    kolkata = start.astimezone(ZoneInfo(context["client_zone"]))
    berlin = start.astimezone(ZoneInfo(context["rep_zone"]))
    first = next(line for line in text.splitlines() if line.startswith("- "))
    assert first.startswith(f"- {babel_dates.format_date(kolkata.date(), 'full', locale='en')}")
    assert babel_dates.format_time(kolkata, "short", locale="en") in first
    assert f"({babel_dates.format_time(berlin, 'short', locale='en')} " in first
    assert babel_dates.get_timezone_name(berlin, "long", locale="en") in first
    assert text.count("\n- ") == 3


def test_feedback_html_links_each_score(composer: Composer) -> None:
    rendered = composer.render("feedback", "hi", sample_context("feedback", language="hi"))
    assert rendered.html is not None
    for score in range(11):
        assert f'/r/7f3a?score={score}"' in rendered.html
    minimal = composer.render("feedback", "hi", sample_context("feedback", minimal=True))
    assert minimal.html is not None and "score=" not in minimal.html


def test_preview_renders_sample_data() -> None:
    rendered = preview(TEMPLATES, "follow_up", "pt-BR", step=3)
    assert rendered.language == "pt"
    assert "não voltarei a escrever" in rendered.text


# --- the check catches what it should -----------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def test_check_catches_a_variable_outside_the_contract(copy: Path) -> None:
    path = copy / "thank_you" / "fr.j2"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if "{% block text %}" in line) + 1
    lines.insert(at, "{{ client.nickname }}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    problems = check_templates(copy, ["fr"], "en")

    assert [str(p) for p in problems] == [
        f"{path}:{at + 1}: 'client.nickname' is not in the thank_you context "
        "(client has: company, email, first_name, gender, honorific, last_name, name, zone)"
    ]


def test_check_catches_an_optional_field_used_without_fallback(copy: Path) -> None:
    path = copy / "follow_up" / "es.j2"
    source = path.read_text(encoding="utf-8")
    path.write_text(source.replace("{{ greeting }}", "{{ client.honorific }}", 1), "utf-8")

    problems = check_templates(copy, ["es"], "en")

    assert len(problems) == 1
    assert problems[0].file == str(path)
    assert problems[0].message == (
        "undefined variable 'client.honorific' (with the optional fields left out)"
    )


def test_check_catches_a_missing_language_and_honours_declared_fallbacks(copy: Path) -> None:
    (copy / "proposal" / "te.j2").unlink()

    problems = check_templates(copy, ["te", "ko"], "en")

    messages = sorted(str(p) for p in problems)
    assert any(f"{copy / 'proposal'}: no template for clients writing 'te'" in m for m in messages)
    assert sum("'ko'" in m for m in messages) == 6  # the six client-facing purposes
    (copy / "fallbacks.toml").write_text('te = "hi"\nko = "en"\n', encoding="utf-8")
    assert check_templates(copy, ["te", "ko"], "en") == []


def test_check_asks_only_for_the_team_language_on_internal_purposes(copy: Path) -> None:
    for purpose in ("reminder", "escalation"):
        (copy / purpose / "de.j2").unlink()
    assert check_templates(copy, ["de"], "en") == []
    problems = check_templates(copy, [], "de")
    assert {p.file for p in problems} == {str(copy / "reminder"), str(copy / "escalation")}
    assert all("no template for the team" in p.message for p in problems)


def test_check_reports_parse_errors_with_file_and_line(copy: Path) -> None:
    path = copy / "reminder" / "ja.j2"
    path.write_text("{% block subject %}x{% endblock %}\n{% block text %}\n{% if %}\n", "utf-8")
    problems = check_templates(copy, [], "en")
    assert [(p.file, p.where) for p in problems] == [(str(path), "3")]


def test_a_cached_composer_is_made_again_only_when_a_template_changes(tmp_path: Path) -> None:
    import os

    from agent.compose import cached_composer
    from agent.demo import bundled

    folder = tmp_path / "templates"
    shutil.copytree(bundled("templates"), folder)
    first = cached_composer(folder, team_default="en")
    assert cached_composer(folder, team_default="en") is first
    note = folder / "follow_up" / "en.j2"
    note.write_text(note.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    os.utime(note, ns=(1, 1))  # a different modification time even on a coarse clock
    assert cached_composer(folder, team_default="en") is not first
