"""A note parked for a person too long is told to the lead once, as a mail queue bounces."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from agent.attention import ATTENTION_LIMIT, bounces
from agent.compose import Composer
from agent.model import ActionKind, Address
from agent.outbox import Outbox
from agent.pipeline import load_team
from agent.providers.memory import MemoryMailbox
from agent.store import NEEDS_ATTENTION, SENT, Store
from agent.worker import Worker
from tests.test_outbox import NOW, TEMPLATES, box, reminder, sent_count
from tests.test_worker import demo_config

__all__ = ["box", "demo_config"]

REASON = "cannot compose: ValueError: invalid address"


def _reps(config: Path) -> dict[str, object]:
    from agent import config as config_mod

    return dict(load_team(config_mod.load(config)).reps())


def test_a_note_parked_past_the_limit_goes_to_the_lead_once_and_younger_ones_wait(
    demo_config: Path,
) -> None:
    reps = _reps(demo_config)
    old = replace(reminder("promise/asha/t1/0/warn/0"), to=(Address("kenji@client.example"),))
    young = reminder("promise/asha/t2/0/warn/0")
    parked = [
        (old, NOW - ATTENTION_LIMIT - timedelta(minutes=1), REASON),
        (young, NOW - ATTENTION_LIMIT + timedelta(minutes=1), REASON),
    ]
    [note] = bounces(parked, reps, NOW)  # type: ignore[arg-type]
    assert note.key == f"attention/{old.key}" and note.kind is ActionKind.ESCALATION
    assert [a.email for a in note.to] == ["meera@acme.example"] and note.language == "hi"
    assert note.context["note"]["reason"] == REASON
    assert note.context["note"]["to"] == "kenji@client.example"
    # A note to the lead about a note to the lead would bounce to the same lead: not made.
    assert bounces([(note, NOW - timedelta(days=9), REASON)], reps, NOW) == []  # type: ignore[arg-type]


def test_the_lead_gets_a_readable_note_in_the_leads_language(
    store: Store, box: MemoryMailbox, demo_config: Path
) -> None:
    reps = _reps(demo_config)
    parked = [(reminder(), NOW - timedelta(days=2), REASON)]
    [note] = bounces(parked, reps, NOW)  # type: ignore[arg-type]
    outbox = Outbox(
        store,
        {"asha": box},
        Composer(TEMPLATES),
        {"asha": Address("asha@acme.example", "Asha")},
        mode="draft",
        domain="acme.example",
    )
    store.enqueue([note])
    [outcome] = outbox.run(NOW)
    assert outcome.status == SENT and sent_count(box) == 1  # an internal note: never held back
    [sent] = [m for m in box.messages.values() if "SENT" in m.labels]
    text = sent.raw.decode("utf-8", "replace")
    assert "meera@acme.example" in text


def test_the_worker_tells_the_lead_of_a_row_parked_too_long(demo_config: Path) -> None:
    worker = Worker(demo_config, clock=lambda: NOW)
    parked = replace(
        reminder("promise/asha/t9/0/warn/0"), to=(Address('"john smith"@client.example'),)
    )
    worker.store.enqueue([parked])
    worker.store.transition(parked.key, ["planned"], NEEDS_ATTENTION, last_error=REASON)
    since = worker.store.outbox_row(parked.key)["updated_at"]  # type: ignore[index]
    assert worker.bounce(worker.loaded, "asha", since + timedelta(hours=1)) == []
    later = since + ATTENTION_LIMIT + timedelta(hours=1)
    assert worker.bounce(worker.loaded, "asha", later) == [f"attention/{parked.key}"]
    assert worker.bounce(worker.loaded, "asha", later + timedelta(days=1)) == []  # once
    worker.store.close()
