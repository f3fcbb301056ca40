"""The rep's hands on the outbox: see a note as it reads, approve what is due, and hear it
plainly when an approval or a cancellation cannot do what was asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.demo import run_demo
from agent.store import PLANNED, SENT, Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_demo(tmp_path_factory.mktemp("outbox") / "demo").out / "config.toml"


def rows(config: Path) -> list[dict]:
    store = Store.open(f"sqlite:///{config.parent / 'followup-demo.db'}")
    try:
        return store.outbox()
    finally:
        store.close()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_show_prints_the_note_as_it_reads(demo: Path) -> None:
    note = next(r for r in rows(demo) if r["kind"] == "thank_you")
    code, out = invoke("outbox", "show", str(note["id"]), "--config", str(demo))
    assert code == 0, out
    assert f"#{note['id']} thank_you" in out
    assert "Subject: " in out and "To: " in out and "From: " in out
    assert "--- the HTML part, as text ---" not in out or out.count("Subject: ") == 1
    hook = next(r for r in rows(demo) if r["kind"] == "webhook")
    code, out = invoke("outbox", "show", str(hook["id"]), "--config", str(demo))
    assert code == 0 and "#" in out
    code, out = invoke("outbox", "show", "99999", "--config", str(demo))
    assert code == 1 and "no such outbox entry" in out


def test_approving_a_note_not_yet_due_asks_for_force(demo: Path) -> None:
    later = next(r for r in rows(demo) if r["status"] == PLANNED and r["kind"] == "follow_up")
    code, out = invoke("outbox", "approve", str(later["id"]), "--config", str(demo))
    assert code == 1 and "--force" in out
    assert next(r for r in rows(demo) if r["id"] == later["id"])["status"] == PLANNED


def test_cancelling_a_sent_note_says_so_and_fails(demo: Path) -> None:
    sent = next(r for r in rows(demo) if r["status"] == SENT)
    code, out = invoke("outbox", "cancel", str(sent["id"]), "--config", str(demo))
    assert code == 1 and "already sent" in out
    assert next(r for r in rows(demo) if r["id"] == sent["id"])["status"] == SENT
