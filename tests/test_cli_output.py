"""What the CLI prints is text people can trust: a stranger's subject is shown as it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from agent import app, views
from agent.cli import main
from agent.demo import run_demo
from tests.test_golive import deliver

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_status_shows_subjects_from_mail_as_they_are(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo")
    config_path = result.out / "config.toml"
    subject = "Files in [/finance/q4] folder :free: [bold]now[/bold]"
    deliver(
        config_path,
        "lukas",
        "Anna Schmidt <anna.schmidt@schmidt-maschinenbau.de>",
        subject,
        NOW - timedelta(hours=1),
    )
    # the demo's store knows the mailbox; a sync brings the new mail in
    from agent.worker import Worker

    Worker(config_path, clock=lambda: NOW).run(once=True)
    run = CliRunner().invoke(
        main, ["status", "--config", str(config_path), "--now", NOW.isoformat()]
    )
    assert run.exit_code == 0, run.output  # "[/finance/q4]" used to end it as bad markup
    assert "\U0001f193" not in run.output  # ":free:" is text, not an emoji
    # Printed wide, the subject reads exactly as the client wrote it.
    wide = Console(record=True, width=400, emoji=False)
    views.status(wide, app.status(config_path, now=NOW.isoformat()))
    assert subject in wide.export_text()


def test_each_send_is_logged_once_with_its_rule(tmp_path: Path, caplog: object) -> None:
    import logging

    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    from agent.worker import Worker

    result = run_demo(tmp_path / "demo")
    config_path = result.out / "config.toml"
    for f in result.out.glob("followup-demo.db*"):
        f.unlink()
    with caplog.at_level(logging.INFO, logger="followup"):
        Worker(config_path, clock=lambda: NOW).run(once=True)
    sent = [r for r in caplog.records if r.getMessage().startswith("sent ")]
    assert sent, "the demo's first pass sends reminders and escalations"
    keys = [getattr(r, "key", "") for r in sent]
    assert len(keys) == len(set(keys))  # once each
    assert all(getattr(r, "rule", "") for r in sent if "digest" not in r.getMessage())


def test_the_log_level_is_set_in_the_config(tmp_path: Path) -> None:
    from agent.config import Service

    assert Service().log_level == "info"
    assert Service(log_level="warning").log_level == "warning"
