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
