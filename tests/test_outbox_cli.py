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


def test_scripts_get_json_and_monitoring_gets_an_exit_code(demo: Path) -> None:
    import json

    code, out = invoke("status", "--json", "--config", str(demo), "--now", "2026-11-25T09:00Z")
    assert code == 0, out
    data = json.loads(out)
    assert {"now", "promises", "outbox", "shadowed", "mailboxes", "skipped"} <= set(data)
    breached = [p for p in data["promises"] if p["state"] == "breached"]
    assert breached and all(p["deadline"].endswith("Z") and p["zone"] for p in breached)
    code, _ = invoke(
        "status", "--check", "--json", "--config", str(demo), "--now", "2026-11-25T09:00Z"
    )
    assert code == 1  # a promise is breached
    code, out = invoke("outbox", "list", "--json", "--config", str(demo))
    listed = json.loads(out)
    assert code == 0 and listed and {"id", "key", "kind", "status", "due"} <= set(listed[0])
    code, out = invoke("outbox", "show", str(listed[0]["id"]), "--json", "--config", str(demo))
    assert code == 0 and "headers" in json.loads(out)
    for command in (["rules", "check"], ["templates", "check"]):
        code, out = invoke(*command, "--json", "--config", str(demo))
        assert code == 0 and json.loads(out)["ok"] is True, out
    bad = demo.parent / "bad-rules"
    bad.mkdir(exist_ok=True)
    (bad / "x.toml").write_text('[[promise]]\nname = "x"\nkind = "first_reply"\ntarget = "0h"\n')
    code, out = invoke("rules", "check", str(bad), "--json", "--config", str(demo))
    answer = json.loads(out)
    assert code == 1 and answer["ok"] is False and answer["problems"][0]["file"].endswith("x.toml")
