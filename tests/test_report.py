from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.demo import run_demo

NOW = "2026-11-25T08:00Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_demo(out)
    return out / "config.toml"


def simulate(config: Path, *extra: str) -> dict:
    result = CliRunner().invoke(
        main,
        [
            "rules",
            "simulate",
            "--config",
            str(config),
            "--since",
            "30d",
            "--now",
            NOW,
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_simulate_replays_the_demo_and_scores_each_rep(demo: Path) -> None:
    data = simulate(demo)
    reps = {row["group"]: row for row in data["per_rep"]}
    # Emily's invoice request of 4 November went unanswered: before the demo's go-live point,
    # so nothing was sent for it, but the figures count it, as history should be.
    assert reps["lukas"]["met"] == 1 and reps["lukas"]["missed"] == 1
    assert reps["lukas"]["sla_percent"] == 50.0
    # Omar: Fatima's two promises (one missed) and Noa's four (three answered by the notes the
    # agent wrote and Omar sent, one still open).
    assert reps["omar"]["applied"] == 5 and reps["omar"]["missed"] == 1
    assert reps["omar"]["open"] == 1 and reps["omar"]["sla_percent"] == 80.0
    assert reps["all"]["reminders"] == len([a for a in data["actions"] if a["kind"] == "reminder"])
    # Fatima's next-reply reminder fired on Tuesday, long before the escalation on Wednesday.
    fatima = sorted(
        (a["kind"], a["due"]) for a in data["actions"] if a["client"] == "fatima-al-sayed"
    )
    assert fatima == [
        ("escalation", "2026-11-25T07:00:00Z"),
        ("reminder", "2026-11-24T14:00:00Z"),
        ("webhook", "2026-11-25T07:00:00Z"),
    ]


def test_a_draft_rule_set_is_previewed_without_touching_the_rules_in_force(
    demo: Path, tmp_path: Path
) -> None:
    draft = tmp_path / "draft.toml"
    draft.write_text('[[promise]]\nname = "relaxed"\nkind = "first_reply"\ntarget = "40h"\n')
    data = simulate(demo, "--rules", str(draft))
    assert {p["rule"] for p in data["promises"]} == {"relaxed"}
    reps = {row["group"]: row for row in data["per_rep"]}
    assert reps["all"]["missed"] == 1  # 40 hours: only the invoice request of 4 November
    assert "relaxed" not in simulate(demo)["rules"]


def test_report_prints_per_rep_and_team_figures(demo: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--config", str(demo), "--now", NOW])
    assert result.exit_code == 0, result.output
    assert "Per rep" in result.output and "Per team" in result.output


def test_bad_since_and_now_are_clear_errors(demo: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--config", str(demo), "--since", "a while"])
    assert result.exit_code == 1 and "--since" in result.output
    result = CliRunner().invoke(
        main, ["report", "--config", str(demo), "--now", "2026-11-25T08:00"]
    )
    assert result.exit_code == 1 and "needs a zone" in result.output


def test_status_lists_open_promises_and_the_outbox(demo: Path) -> None:
    result = CliRunner().invoke(
        main, ["status", "--config", str(demo), "--now", NOW, "--mailbox", "asha"]
    )
    assert result.exit_code == 0, result.output
    assert "priya-reddy" in result.output and "anna-schmidt" not in result.output
    unknown = CliRunner().invoke(main, ["status", "--config", str(demo), "--mailbox", "nobody"])
    assert unknown.exit_code == 1 and "no mailbox 'nobody'" in unknown.output


def test_outbox_cancel_moves_a_planned_note_to_cancelled(demo: Path) -> None:
    listing = CliRunner().invoke(main, ["outbox", "list", "--config", str(demo)])
    assert listing.exit_code == 0 and "planned" in listing.output
    from agent import config
    from agent.store import Store

    store = Store.open(config.load(demo).database.url)
    planned = store.outbox(statuses=["planned"])[0]
    result = CliRunner().invoke(
        main, ["outbox", "cancel", str(planned["id"]), "--config", str(demo)]
    )
    assert result.exit_code == 0, result.output
    assert store.outbox_row(planned["id"])["status"] == "cancelled"
    store.close()
