"""One bad note stops itself, never the notes behind it.

A note whose address the message cannot carry, a template that fails in a way nobody planned
(OverflowError, RecursionError), or a disk that refuses the draft: each row is parked as
``needs_attention`` with its reason, and the rows due after it are still sent.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from agent.compose import Composer
from agent.model import Action, Address
from agent.outbox import Outbox
from agent.providers.memory import MemoryMailbox
from agent.store import NEEDS_ATTENTION, SENT, Store
from tests.test_outbox import NOW, TEMPLATES, box, make, reminder, sent_count

__all__ = ["box"]


def _pair() -> tuple[Action, Action]:
    bad = reminder("promise/asha/bad/0/warn/0")
    # to another reader: two team notes for one reader in one pass would be one digest
    good = replace(
        reminder("promise/asha/good/0/warn/0"),
        due=bad.due + timedelta(minutes=1),
        to=(Address("meera@acme.example", "Meera"),),
    )
    return bad, good


def _statuses(store: Store, *keys: str) -> list[tuple[str, str]]:
    rows = [store.outbox_row(k) for k in keys]
    return [(r["status"], r["last_error"] or "") for r in rows if r is not None]


def test_an_address_the_message_cannot_carry_parks_its_note_only(
    store: Store, box: MemoryMailbox
) -> None:
    bad, good = _pair()
    bad = replace(bad, to=(Address('"john smith"@client.example'),))
    store.enqueue([bad, good])
    make(store, box).run(NOW)
    [(bad_status, reason), (good_status, _)] = _statuses(store, bad.key, good.key)
    assert bad_status == NEEDS_ATTENTION and reason.startswith("cannot compose:")
    assert good_status == SENT and sent_count(box) == 1


def _templates_with(tmp_path: Path, body: str) -> Path:
    for folder in TEMPLATES.iterdir():
        if folder.is_dir():
            (tmp_path / folder.name).mkdir()
            for f in folder.iterdir():
                (tmp_path / folder.name / f.name).write_bytes(f.read_bytes())
        else:
            (tmp_path / folder.name).write_bytes(folder.read_bytes())
    (tmp_path / "reminder" / "xx.j2").write_text(
        "{% block subject %}Hi{% endblock %}{% block text %}" + body + "{% endblock %}",
        encoding="utf-8",
    )
    return tmp_path


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{ 2.0 ** 5000 }}", "OverflowError"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ],
)
def test_a_render_that_fails_in_any_way_parks_its_note_only(
    store: Store, box: MemoryMailbox, tmp_path: Path, body: str, error: str
) -> None:
    composer = Composer(_templates_with(tmp_path, body))
    outbox = Outbox(
        store,
        {"asha": box},
        composer,
        {"asha": Address("asha@acme.example", "Asha")},
        mode="send",
        domain="acme.example",
    )
    bad, good = _pair()
    store.enqueue([replace(bad, language="xx"), good])
    outbox.run(NOW)
    [(bad_status, reason), (good_status, _)] = _statuses(store, bad.key, good.key)
    assert bad_status == NEEDS_ATTENTION and error in reason
    assert good_status == SENT and sent_count(box) == 1


def test_a_disk_that_refuses_the_draft_parks_that_note_and_the_rest_go_on(
    store: Store, box: MemoryMailbox
) -> None:
    bad, good = _pair()
    box.fail("draft", OSError(28, "No space left on device"))  # type: ignore[arg-type]
    store.enqueue([bad, good])
    make(store, box).run(NOW)
    [(bad_status, reason), (good_status, _)] = _statuses(store, bad.key, good.key)
    assert bad_status == NEEDS_ATTENTION and "No space left on device" in reason
    assert good_status == SENT and sent_count(box) == 1
