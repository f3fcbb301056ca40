"""Templates are limited like any hostile input: they stay in their folder, a render is bounded
in time and size, and a template broken in a way no check foresaw is refused, not a crash."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from agent import compose
from agent.compose import Composer
from agent.errors import TemplateError
from agent.worker import Worker
from tests.test_compose import simple, write
from tests.test_worker import NOW, demo_config

__all__ = ["demo_config"]

SECRET = "FOLLOWUP_SECRET_KEY=s3cr3t-from-the-environment"


def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "environ"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    return secret


def test_an_include_cannot_follow_a_symlink_out_of_the_templates_folder(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    simple(root, "escalation/en.j2", "Details: {% include 'partials/env.txt' %}")
    (root / "partials").mkdir()
    (root / "partials" / "env.txt").symlink_to(_outside(tmp_path))
    composer = Composer(root)
    with pytest.raises(TemplateError) as caught:
        composer.render("escalation", "en", {})
    assert "outside the templates folder" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_an_import_cannot_follow_a_symlink_out_of_the_templates_folder(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    simple(root, "escalation/en.j2", "{% import 'macros.j2' as m %}{{ m }}")
    (root / "macros.j2").symlink_to(_outside(tmp_path))
    with pytest.raises(TemplateError) as caught:
        Composer(root).render("escalation", "en", {})
    assert "s3cr3t" not in str(caught.value)


def test_a_template_that_is_a_symlink_out_of_the_folder_is_refused_at_load(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    simple(root, "thank_you/en.j2", "Thanks")
    (root / "escalation").mkdir()
    (root / "escalation" / "en.j2").symlink_to(_outside(tmp_path))
    composer = Composer(root, strict=False)
    assert composer.purposes() == {"thank_you"}
    assert ["outside the templates folder" in p.message for p in composer.problems] == [True]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ 'x' * 100000000 }}", "over the 1000000 limit"),
        ("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "over the 1000000 limit"),
        ("{{ 10 ** 100000000 }}", "over the 256 limit"),
        ("{{ '%0999999999d' % 1 }}", "format width"),
        ("{{ '{:>999999999}'.format(1) }}", "format width"),
        ("{{ '%0999999999d' | format(1) }}", "format width"),
        ("{{ 2.0 ** 5000 }}", "OverflowError"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ],
)
def test_a_render_past_its_limits_is_a_template_error(
    tmp_path: Path, body: str, reason: str
) -> None:
    simple(tmp_path, "thank_you/en.j2", body)
    with pytest.raises(TemplateError, match=reason):
        Composer(tmp_path).render("thank_you", "en", {})


def test_a_render_that_runs_too_long_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compose, "MAX_RENDER_SECONDS", 0.2)
    simple(
        tmp_path,
        "thank_you/en.j2",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    with pytest.raises(TemplateError, match="took more than"):
        Composer(tmp_path).render("thank_you", "en", {})


def test_a_template_nested_past_the_parser_stack_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    simple(tmp_path, "thank_you/en.j2", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    with pytest.raises(TemplateError, match="too deeply nested"):
        Composer(tmp_path)


def test_a_template_that_fails_on_reload_is_refused_and_the_worker_keeps_running(
    demo_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(demo_config, clock=lambda: NOW)
    text = demo_config.read_text()
    line = next(x for x in text.splitlines() if x.startswith("templates = "))
    copied = demo_config.parent / "templates"
    shutil.copytree(Path(json.loads(line.removeprefix("templates = "))), copied)
    demo_config.write_text(text.replace(line, 'templates = "templates"'))
    assert worker.reload()
    good = worker.loaded

    write(copied, "thank_you/en.j2", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    with caplog.at_level(logging.ERROR, logger="followup.worker"):
        assert not worker.reload()
    assert "reload refused" in caplog.text and "thank_you/en.j2" in caplog.text
    assert worker.loaded is good
    assert all(worker.health().values())
    worker.store.close()
