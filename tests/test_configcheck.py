"""Loud, never silent: mistakes that pass each file's own checks and only show where the files
meet are reported by rules check, status and the worker, naming the file, key or line and the
fix."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agent import app
from agent.cli import EX_CONFIG, main
from agent.demo import run_demo

REPO = Path(__file__).parent.parent


def demo_config(tmp_path: Path) -> Path:
    return run_demo(tmp_path / "demo").out / "config.toml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def check(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rules", "check", "--config", str(config)])
    return result.exit_code, result.output


def test_a_lead_address_with_a_typo_is_named_with_the_likely_one(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    edit(config, 'lead = "sofia@acme.example"', 'lead = "sofia@acme.exmaple"')
    code, out = check(config)
    assert code == 1
    assert (
        "lead" in out and "sofia@acme.exmaple" in out and "did you mean 'sofia@acme.example'" in out
    )
    run = CliRunner().invoke(main, ["run", "--once", "--config", str(config)])
    assert run.exit_code == EX_CONFIG and "sofia@acme.exmaple" in run.output


def test_a_local_mailbox_folder_that_is_not_there_is_an_error_not_an_empty_mailbox(
    tmp_path: Path,
) -> None:
    config = demo_config(tmp_path)
    missing = tmp_path / "elsewhere" / "asha"
    edit(config, 'path = "mail/asha"', f"path = {json.dumps(str(missing))}")
    code, out = check(config)
    assert code == 1 and "mailboxes[asha].path" in out and "does not exist" in out
    run = CliRunner().invoke(main, ["run", "--once", "--config", str(config)])
    assert run.exit_code == EX_CONFIG
    assert not missing.exists()  # nothing was created in its place


def test_a_rule_naming_a_template_that_does_not_exist(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    for f in (REPO / "rules").glob("*.toml"):
        (rules / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    rule_file = next(
        f for f in rules.glob("*.toml") if "[[follow_up]]" in f.read_text(encoding="utf-8")
    )
    edit(rule_file, "[[follow_up]]\n", '[[follow_up]]\ntemplate = "followup"\n')
    problems, _ = app.check_rules(rules, config)
    said = "\n".join(str(p) for p in problems)
    assert "template" in said and "'followup'" in said and "did you mean 'follow_up'" in said


def test_bad_client_rows_are_named_with_their_line_and_the_rest_load(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    clients = config.parent / "clients.csv"
    with clients.open("a", encoding="utf-8") as f:
        f.write("Mars Base,ops@mars.example,mars.example,Mars Inc,en,Mars/Base,XX,gold,,\n")
    code, out = check(config)
    assert code == 1
    lines = len(clients.read_text(encoding="utf-8").splitlines())
    assert f"line {lines}" in out and "Mars/Base" in out and "'XX'" in out
    status = app.status(config)
    assert any(s["item"] == f"line {lines}" for s in status.skipped)
    assert "priya-reddy" in {p.client for p in status.promises}  # the other rows loaded
