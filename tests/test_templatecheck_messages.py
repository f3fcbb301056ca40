"""``templates check`` says what is actually wrong: no second, false message beside a syntax
error, no fallback advice that repeats what fallbacks.toml already says, an import typo on the
import's line, and no Python reprs (None, timedelta) in what the author reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.templatecheck import check_templates

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "templates"
    shutil.copytree(TEMPLATES, out)
    return out


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def _messages(folder: Path, languages: list[str] | None = None) -> list[str]:
    found = check_templates(folder, languages or ["en", "de"], "en")
    return [f"{Path(p.file).relative_to(folder.parent)}:{p.where}: {p.message}" for p in found]


def test_a_syntax_error_in_the_team_default_is_reported_once_without_none(folder: Path) -> None:
    _edit(folder / "follow_up" / "en.j2", "{% endblock %}", "{% endblok %}")
    found = _messages(folder)
    assert len(found) == 1, found
    assert found[0].startswith("templates/follow_up/en.j2:5: Encountered unknown tag 'endblok'")
    assert "None" not in found[0]


def test_a_fallback_to_a_missing_language_says_the_fallback_is_the_problem(folder: Path) -> None:
    (folder / "fallbacks.toml").write_text('te = "kn"\n', encoding="utf-8")
    (folder / "follow_up" / "te.j2").unlink()
    found = _messages(folder, ["en", "te"])
    assert "templates/fallbacks.toml:te: falls back to 'kn', which has no templates" in found[0]
    [message] = [m for m in found if m.startswith("templates/follow_up")]
    assert message.startswith(
        "templates/follow_up:: no template for clients writing 'te': they would get 'en'. "
        "fallbacks.toml sends them to 'kn', but there is no follow_up/kn.j2."
    )
    assert 'declare `te = "<lang>"`' not in message


def test_a_macro_import_typo_is_named_on_the_import_line(folder: Path) -> None:
    path = folder / "follow_up" / "de.j2"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == '{% from "_shared/macros.j2" import signature %}'
    _edit(path, "import signature", "import signatur")
    found = _messages(folder)
    assert found[0] == (
        "templates/follow_up/de.j2:1: '_shared/macros.j2' has no macro 'signatur'; did you mean "
        "'signature'? (it has: scale, signature)"
    )
    assert all("is not in the follow_up context" not in m for m in found), found


def test_an_import_of_a_missing_file_names_the_file_it_meant(folder: Path) -> None:
    _edit(folder / "follow_up" / "de.j2", "_shared/macros.j2", "_shared/macro.j2")
    assert _messages(folder) == [
        "templates/follow_up/de.j2:1: imports '_shared/macro.j2', which does not exist; did you "
        "mean '_shared/macros.j2'?"
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "{{ remaining | date(rep_zone) }}",
            "the date filter takes a date and time, but was given a span of time; for a span of "
            "time use | duration",
        ),
        ("{{ remaining + 1 }}", "cannot render: cannot compute + with a span of time and a number"),
        (
            "{{ warning | duration }}",
            "the duration filter takes a span of time, but was given text",
        ),
    ],
)
def test_render_errors_speak_of_kinds_of_value_not_python_reprs(
    folder: Path, expression: str, message: str
) -> None:
    _edit(folder / "reminder" / "en.j2", "{% block text %}", "{% block text %}\n" + expression)
    found = _messages(folder)
    assert found[0] == f"templates/reminder/en.j2:3: {message}"
    for text in found:
        assert "None" not in text and "timedelta" not in text and "Error" not in text, text


def test_a_fallback_to_a_language_with_no_templates_is_named_in_fallbacks_toml(
    folder: Path,
) -> None:
    (folder / "fallbacks.toml").write_text('"zh-TW" = "zh-Hnat"\n', encoding="utf-8")
    found = _messages(folder, ["en"])
    assert len(found) == 1, found
    assert found[0].startswith(
        "templates/fallbacks.toml:zh-TW: falls back to 'zh-Hnat', which has no templates; "
        "use a language the templates have ("
    )
    assert "zh-Hant" in found[0]


def test_fallbacks_that_go_round_in_a_circle_are_reported(folder: Path) -> None:
    (folder / "fallbacks.toml").write_text('gl = "ast"\nast = "gl"\n', encoding="utf-8")
    found = _messages(folder, ["en"])
    assert found == [
        "templates/fallbacks.toml:gl: the fallbacks go round in a circle (gl -> ast -> gl); "
        "end the chain at a language that has templates",
        "templates/fallbacks.toml:ast: the fallbacks go round in a circle (ast -> gl -> ast); "
        "end the chain at a language that has templates",
    ]


def test_a_fallbacks_file_that_is_not_toml_is_one_line_naming_the_file(folder: Path) -> None:
    (folder / "fallbacks.toml").write_text('"zh-TW" = \n', encoding="utf-8")
    found = _messages(folder, ["en"])
    assert len(found) == 1 and "\n" not in found[0]
    assert found[0].startswith("templates/fallbacks.toml:: not valid TOML")


def test_rules_check_names_a_broken_fallbacks_file_too(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agent import app
    from agent.cli import main

    folder = tmp_path / "team"
    assert CliRunner().invoke(main, ["init", str(folder)]).exit_code == 0
    fallbacks = folder / "templates" / "fallbacks.toml"
    fallbacks.write_text('"zh-TW" = "zh-Hnat"\n', encoding="utf-8")
    problems, _ = app.check_rules(None, folder / "config.toml")
    assert len(problems) == 1
    assert str(problems[0]).startswith(
        f"{fallbacks}:zh-TW: falls back to 'zh-Hnat', which has no templates; use a language "
        "the templates have (ar, de, en,"
    )
    fallbacks.write_text('"zh-TW" = \n', encoding="utf-8")
    problems, _ = app.check_rules(None, folder / "config.toml")
    assert len(problems) == 1 and str(problems[0]).startswith(f"{fallbacks}: not valid TOML")
