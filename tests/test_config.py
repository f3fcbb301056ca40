from __future__ import annotations

from pathlib import Path

import pytest

from agent import config
from agent.errors import ConfigError

ROOT = Path(__file__).parent.parent


def test_the_example_config_loads_and_resolves_paths_next_to_the_file() -> None:
    settings = config.load(ROOT / "config.example.toml")
    assert [m.name for m in settings.mailboxes] == ["asha", "lukas", "omar"]
    assert settings.paths.rules == ROOT / "rules"
    assert settings.database.url == f"sqlite:///{ROOT / 'followup.db'}"
    assert (
        settings.mailbox("omar")
        .calendar()
        .is_business_day(__import__("datetime").date(2026, 11, 22))
    )


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[outbox]\nmode = "yolo"\ncolour = 1\n'
        '[[mailboxes]]\nname = "asha"\nprovider = "imap"\naddress = "a@x.io"\nrep_name = "A"\n'
        'zone = "Mars/Base"\nhours = "25:00-26:00"\n'
    )
    with pytest.raises(ConfigError) as err:
        config.load(path)
    text = [str(p) for p in err.value.problems]
    assert any(p.startswith(f"{path}:outbox.mode:") for p in text)
    assert any(p.startswith(f"{path}:outbox.colour: unknown key") for p in text)
    assert any(p.startswith(f"{path}:mailboxes[asha].provider:") for p in text)
    assert any("mailboxes[asha].zone: unknown time zone 'Mars/Base'" in p for p in text)
    assert any(p.startswith(f"{path}:mailboxes[asha].hours:") for p in text)


def test_broken_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[database\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")


def test_a_moved_key_says_where_it_lives_now(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[outbox]\nmin_gap_hours = 24\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    (problem,) = err.value.problems
    assert problem.where == "outbox.min_gap_hours"
    assert 'min_gap = "24h"' in problem.message and "rules/README.md" in problem.message


def test_a_mailbox_that_is_never_open_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[mailboxes]]\nname = "asha"\nprovider = "local"\naddress = "a@x.io"\nrep_name = "A"\n'
        'zone = "Asia/Kolkata"\nweekend = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
    )
    with pytest.raises(ConfigError) as err:
        config.load(path)
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith(f"{path}:mailboxes[asha]") and "no open hours" in problem
