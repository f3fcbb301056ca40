"""``followup init``: a new team's starting set works as written, and overwrites nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from agent import app
from agent.cli import main
from agent.config import load


def test_init_writes_a_starting_set_that_checks_clean_and_starts_in_shadow(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    result = CliRunner().invoke(main, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    assert "[[mailboxes]]" in result.output  # the next steps, printed as text
    config = folder / "config.toml"
    settings = load(config)
    assert settings.outbox.mode == "shadow"
    assert settings.paths.rules == folder / "rules" and settings.paths.templates.is_dir()
    assert (folder / "clients.csv").read_text().startswith("name,emails,")
    problems, summary = app.check_rules(None, config)
    assert problems == [] and "all good" in summary
    problems, _ = app.check_templates(config, None)
    assert problems == []
    # the rules and templates are the team's own copies, to edit
    assert sorted(p.name for p in (folder / "rules").glob("*.toml"))
    assert not list(folder.rglob("__pycache__"))


def test_init_overwrites_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "config.toml").write_text("# the team's own\n")
    result = CliRunner().invoke(main, ["init", str(folder)])
    assert result.exit_code == 1
    assert "config.toml: exists already" in result.output
    assert (folder / "config.toml").read_text() == "# the team's own\n"
    assert not (folder / "rules").exists()
