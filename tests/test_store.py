from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.model import (
    Action,
    ActionKind,
    Address,
    Attendee,
    Event,
    EventSyncResult,
    Message,
    SyncResult,
)
from agent.store import PLANNED, SENDING, SENT, Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def msg(pid: str, minutes: int = 0) -> Message:
    return Message(
        mailbox="asha",
        provider_id=pid,
        thread_id="<t1@x>",
        message_id=f"<{pid}@x>",
        sender=Address("Kenji@Client.example", "Kenji"),
        to=(Address("asha@acme.example"),),
        date=T0 + timedelta(minutes=minutes),
        subject="Quote",
        headers={"List-Id": "x"},
        labels=frozenset({"INBOX"}),
    )


def action(key: str, due: datetime = T0) -> Action:
    return Action(
        key=key,
        kind=ActionKind.REMINDER,
        mailbox="asha",
        due=due,
        to=(Address("asha@acme.example", "Asha"),),
        language="en",
        template="reminder",
        reason="first reply due",
        context={"deadline": T0, "remaining": timedelta(hours=2), "items": [1, "a"]},
    )


def test_sync_upserts_and_advances_the_cursor_together(store: Store) -> None:
    assert store.apply_sync("asha", SyncResult((msg("a"), msg("b", 5)), cursor="10")) == 2
    assert store.apply_sync("asha", SyncResult((msg("b", 5),), cursor="11")) == 0
    assert store.cursor("asha") == "11"
    stored = store.messages("asha")
    assert [m.provider_id for m in stored] == ["a", "b"]
    assert stored[0].sender.email == "kenji@client.example"
    assert stored[0].date == T0 and stored[0].date.tzinfo is not None
    assert stored[0].headers["list-id"] == "x"


def test_deletions_and_full_listings_remove_what_is_gone(store: Store) -> None:
    store.apply_sync("asha", SyncResult((msg("a"), msg("b"), msg("c")), cursor="1"))
    store.apply_sync("asha", SyncResult((), cursor="2", deleted=("a",)))
    assert [m.provider_id for m in store.messages("asha")] == ["b", "c"]
    store.apply_sync("asha", SyncResult((msg("c"),), cursor="3", full=True))
    assert [m.provider_id for m in store.messages("asha")] == ["c"]


def test_skipped_items_are_recorded_once_with_their_reason(store: Store) -> None:
    bad = SyncResult((), cursor="1", skipped=(("x1", "no From address"),))
    store.apply_sync("asha", bad)
    store.apply_sync("asha", bad)
    assert [(r["item"], r["reason"]) for r in store.skipped()] == [("x1", "no From address")]


def test_an_action_key_is_enqueued_once(store: Store) -> None:
    assert store.enqueue([action("k1"), action("k2")]) == ["k1", "k2"]
    assert store.enqueue([action("k1"), action("k3")]) == ["k3"]
    assert len(store.outbox()) == 3
    row = store.outbox_row("k1")
    assert row is not None and row["status"] == PLANNED


def test_actions_round_trip_with_their_context(store: Store) -> None:
    from agent.store import action_from_json

    store.enqueue([action("k1")])
    row = store.outbox_row("k1")
    assert row is not None
    back = action_from_json(row["action"])
    assert back == action("k1")


def test_transition_is_guarded_by_the_expected_state(store: Store) -> None:
    store.enqueue([action("k1")])
    assert store.transition("k1", [PLANNED], SENDING)
    assert not store.transition("k1", [PLANNED], SENDING)
    assert store.transition("k1", [SENDING], SENT, sent_provider_id="p1")
    row = store.outbox_row("k1")
    assert row is not None and row["sent_provider_id"] == "p1"


def test_due_outbox_puts_unfinished_sends_first(store: Store) -> None:
    store.enqueue([action("later", T0 + timedelta(days=1)), action("now"), action("mid")])
    store.transition("mid", [PLANNED], SENDING)
    assert [r["key"] for r in store.due_outbox(T0)] == ["mid", "now"]


def test_credentials_are_replaced_in_place(store: Store) -> None:
    assert store.load_credentials("asha") is None
    store.save_credentials("asha", b"one")
    store.save_credentials("asha", b"two")
    assert store.load_credentials("asha") == b"two"


def test_schema_head_is_alembics_head_and_a_current_database_skips_alembic(
    tmp_path: Path,
) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from agent.store import MIGRATIONS, SCHEMA_HEAD

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [SCHEMA_HEAD]

    url = f"sqlite:///{tmp_path / 'f.db'}"
    fresh = Store.open(url)
    assert fresh.schema_version() == SCHEMA_HEAD
    fresh.close()
    # A second open of a database at the head does not load Alembic: run in a fresh interpreter,
    # since this one has it loaded already.
    code = (
        "import sys; from agent.store import Store; s = Store.open(sys.argv[1]); "
        "s.ping(); print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'alembic', 'mako', 'pygments'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]"


def test_an_empty_database_has_no_schema_version_and_is_migrated(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    empty = Store(create_engine(f"sqlite:///{tmp_path / 'e.db'}"))
    assert empty.schema_version() is None
    empty.migrate()
    assert empty.schema_version() is not None
    empty.close()


def test_each_sqlite_connection_keeps_a_small_page_cache(tmp_path: Path) -> None:
    # A worker's pool holds connections for months: 512 KiB each, not SQLite's default 2 MB.
    store = Store.open(f"sqlite:///{tmp_path / 'f.db'}")
    with store.tx() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -512
    store.close()


def test_nul_bytes_and_lone_surrogates_from_a_provider_are_cleaned_not_fatal(store: Store) -> None:
    # Gmail's and Graph's JSON can carry "\u0000" and an unpaired "\ud800" in any text: PostgreSQL
    # refuses the first, every database the second, and one such mail used to fail the mailbox's
    # whole sync on every pass.
    m = Message(
        mailbox="asha",
        provider_id="p1",
        thread_id="<t1@x>",
        message_id="<m\x001@x>",
        sender=Address("kenji@client.example", "Ken\x00ji"),
        to=(Address("asha@acme.example", "Asha \ud800"),),
        date=T0,
        subject="Quote\x00 for \ud83d",
        headers={"X-Note": "a\x00b"},
        labels=frozenset({"INBOX"}),
        body="Hello\x00 there",
    )
    assert store.apply_sync("asha", SyncResult(messages=(m,), cursor="c1", full=True)) == 1
    [kept] = store.messages("asha")
    assert kept.provider_id == "p1" and kept.message_id == "<m1@x>"
    assert kept.sender.name == "Kenji" and kept.to[0].name == "Asha ?"
    assert kept.subject == "Quote for ?" and kept.body == "Hello there"
    assert dict(kept.headers) == {"x-note": "ab"}
    store.set_body("asha", "p1", "Again\x00 \udfff")
    assert store.messages("asha")[0].body == "Again ?"

    event = Event(
        mailbox="asha",
        provider_id="e1",
        summary="Call\x00 \ud800",
        start=T0,
        end=T0 + timedelta(hours=1),
        organizer="kenji@client.example\x00",
        attendees=(Attendee("kenji@client.example", "Ken\x00ji", "accepted"),),
        uid="u\x001",
    )
    store.apply_event_sync("asha", EventSyncResult(events=(event,), cursor="c", full=True))
    [stored] = store.events("asha")
    assert (stored.summary, stored.organizer, stored.uid) == (
        "Call ?",
        "kenji@client.example",
        "u1",
    )
    assert stored.attendees[0].name == "Kenji"


def test_a_pass_reads_its_own_acts_by_hand_and_every_opt_out_but_no_planner_decision(
    store: Store,
) -> None:
    from agent import controls

    at = datetime(2026, 11, 25, 9, tzinfo=UTC)
    store.record_control("asha", "t1", controls.subject("t1", at), controls.STOPPED, "by Asha")
    store.record_control("lukas", "t9", controls.subject("t9", at), controls.STOPPED, "by Lukas")
    store.record_control("", "", controls.subject("kenji", at), controls.OPTED_OUT, "by Kenji")
    store.record_control(
        "lukas", "", controls.subject("ana", at), controls.OPTED_OUT, "unsubscribe request"
    )
    store.record_decisions(
        [
            ("asha", "t1", "<m1@x>", "no reminder", "answered"),
            ("asha", "t1", controls._mark("t1", at), "seen Followup/Stop", "label"),
        ]
    )
    mine = store.control_decisions("asha", team_wide=controls.TEAM_WIDE)
    assert [(r["mailbox"], r["decision"]) for r in mine] == [
        ("asha", controls.STOPPED),
        ("", controls.OPTED_OUT),
        ("lukas", controls.OPTED_OUT),
    ]
    assert controls.Controls.from_decisions(mine).opted_out == {"kenji", "ana"}
    assert len(store.control_decisions()) == 4  # every act, for the pages
    assert [r["decision"] for r in store.label_marks("asha")] == ["seen Followup/Stop"]
    assert store.label_marks("lukas") == []
