"""The rep steers from the mail client (a Followup/... label in Gmail, a category in Outlook, a
Keywords header in a Maildir) and the client from a note's List-Unsubscribe link. Each act is
an audited decision and the worker honours it on its next pass."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox as mbox
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import CliRunner

from agent import app, controls, matching, pipeline, steering
from agent.cli import main
from agent.demo import run_demo
from agent.matching import kind_of
from agent.model import Address, Client, Message, MessageKind
from agent.providers.protocol import key_tag
from agent.providers.tokens import Vault, new_key
from agent.store import CANCELLED, PLANNED, SENT, Store
from agent.worker import Worker
from tests.graph_world import GraphWorld
from tests.worker_helpers import DEMO_NOW, GmailWorld, gmail_connect

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def message(labels: set[str], *, thread: str = "t1", subject: str = "Re: quote") -> Message:
    return Message(
        mailbox="asha",
        provider_id=f"{thread}-1",
        thread_id=thread,
        message_id=f"<{thread}@x>",
        sender=Address("kenji@sato.example"),
        to=(Address("asha@acme.example"),),
        date=NOW - timedelta(days=1),
        subject=subject,
        labels=frozenset(labels),
    )


def rows_as_decisions(rows: list[controls.Row]) -> list[dict[str, object]]:
    return [
        {"mailbox": m, "thread_id": t, "subject_id": s, "decision": d, "reason": r}
        for m, t, s, d, r in rows
    ]


def test_labels_become_decisions_once_each_and_a_label_taken_off_resumes() -> None:
    promises = {("asha", "t2"): ["promise/asha/t2/0"]}
    seen = [
        message({"INBOX", "Followup/Stop"}, thread="t1"),
        message({"INBOX", "followup/handled"}, thread="t2"),
        message({"Followup/Snooze-3d"}, thread="t3"),
        message({"Followup/Snooze-2w"}, thread="t4"),
        message({"Followup/Later"}, thread="t5"),  # not one Followup knows
        message({"Work/Stop", "INBOX"}, thread="t6"),  # not a Followup label
    ]
    rows = controls.from_labels(seen, [], promises, NOW, where="Gmail")
    by_hand = controls.Controls.from_decisions(rows_as_decisions(rows))
    assert by_hand.stopped == {"t1"}
    assert by_hand.handled == {"promise/asha/t2/0"}
    assert by_hand.snoozed == {"t3": NOW + timedelta(days=3), "t4": NOW + timedelta(weeks=2)}
    reasons = {r[3]: r[4] for r in rows}
    assert reasons[controls.STOPPED] == "by the rep, label Followup/Stop in Gmail"
    assert any("not a label Followup knows" in r[4] for r in rows if r[1] == "t5")
    assert not [r for r in rows if r[1] == "t6"]

    # The next pass, labels unchanged: nothing new, so a `thread resume` by hand stands.
    marks = rows_as_decisions(rows)
    assert controls.from_labels(seen, marks, promises, NOW + timedelta(hours=1)) == []

    # The Stop label taken off: the thread resumes; put back later, it stops again.
    later = NOW + timedelta(hours=2)
    off = controls.from_labels(seen[1:], marks, promises, later)
    assert controls.Controls.from_decisions(rows_as_decisions(rows + off)).stopped == frozenset()
    again = controls.from_labels(
        seen, marks + rows_as_decisions(off), promises, later + NOW.resolution
    )
    assert controls.Controls.from_decisions(rows_as_decisions(rows + off + again)).stopped == {"t1"}


def test_only_the_exact_token_is_an_unsubscribe_request() -> None:
    subject = matching.unsubscribe_subject("kenji-sato")
    token = matching.unsubscribe_token("kenji-sato")
    assert "kenji" not in token and token.startswith("fu-")
    request = message(set(), subject=subject.upper())
    assert kind_of(request)[0] is MessageKind.UNSUBSCRIBE
    kenji = Client("kenji-sato", "Kenji Sato", domains=frozenset({"sato.example"}))
    other = Client("other", "Other", emails=frozenset({"x@other.example"}))
    rows = controls.from_unsubscribes([request], [kenji, other])
    assert [(r[3], r[4]) for r in rows] == [
        (controls.OPTED_OUT, "by the client, unsubscribe request from kenji@sato.example")
    ]
    assert controls.Controls.from_decisions(rows_as_decisions(rows)).opted_out == {"kenji-sato"}
    for subject_text in (
        "unsubscribe",
        "Please unsubscribe me",
        "Weekly digest - unsubscribe anytime",
        f"Re: {subject}",
        matching.unsubscribe_subject("someone-else"),  # a token for nobody we know
    ):
        assert controls.from_unsubscribes([message(set(), subject=subject_text)], [kenji]) == []
    # The right token from someone who is not the client is no request.
    stranger = Message(**{**request.__dict__, "sender": Address("mallory@else.example")})
    assert controls.from_unsubscribes([stranger], [kenji, other]) == []
    # Mail with no request never works out the clients' tokens: a team's client list may run to
    # tens of thousands, and steering runs whenever mail comes.
    assert controls.from_unsubscribes([message(set(), subject="Rollout")], _Untouchable()) == []
    # Asked again about the same client list, the tokens are not worked out again.
    team = (kenji, other)
    assert controls.from_unsubscribes([request], team) == rows
    assert controls._tokens(team) is controls._tokens(team)


class _Untouchable(tuple):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise AssertionError("the whole client list was walked")


# -- end to end through the Gmail and Graph emulators ------------------------------------------


class Steered:
    """One emulated world: run worker passes, label a thread, read what was sent."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.world: Any = GmailWorld.start() if kind == "gmail" else GraphWorld.start()
        self.url = f"sqlite:///{tmp_path / 'followup.db'}"
        self.config = self.world.write_config(tmp_path, db_url=self.url)
        self.store = Store.open(self.url)
        self.world.connect_all(self.store, Vault.from_environment())
        self.connect: Any = gmail_connect() if kind == "gmail" else self.world.connect()

    def close(self) -> None:
        self.connect.close()
        self.store.close()
        self.world.stop()

    def run(self, at: datetime) -> None:
        Worker(self.config, owner="w", clock=lambda: at, connect=self.connect).run(once=True)

    def label(self, mailbox: str, thread_id: str, label: str) -> None:
        if self.kind == "gmail":
            self.world.emulators[mailbox].label_thread(thread_id, label)
            return
        graph, address = self.world.graph, self.world.addresses[mailbox]
        items = [
            i.id
            for i in graph.boxes[address].messages.values()
            if i.data["conversationId"] == thread_id
        ]
        assert items
        for item_id in items:
            graph.set_categories(address, item_id, [label])

    def sent(self) -> set[str]:
        """The keys of notes the mailboxes' Sent folders hold, by tag."""
        if self.kind == "gmail":
            return set(self.world.sent_keys())
        return set(self.world.sent_keys())


@pytest.fixture(params=["gmail", "graph"])
def steered(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    world = Steered(request.param, tmp_path)
    yield world
    world.close()


def test_a_label_on_a_thread_stops_snoozes_or_hands_off_its_notes(steered: Steered) -> None:
    store = steered.store
    steered.run(DEMO_NOW)
    planned = store.outbox(statuses=(PLANNED,))

    def thread_of(kind: str, client: str) -> tuple[str, str]:
        row = next(r for r in planned if r["kind"] == kind and r["client"] == client)
        return row["mailbox"], row["thread_id"]

    stop = thread_of("follow_up", "carlos-ruiz")
    snooze = thread_of("follow_up", "emily-clark")
    handled = thread_of("escalation", "beatriz-costa")
    steered.label(*stop, "Followup/Stop")
    steered.label(*snooze, "Followup/Snooze-2w")
    steered.label(*handled, "Followup/Handled")
    labelled_at = DEMO_NOW + timedelta(minutes=5)
    steered.run(labelled_at)

    where = "Gmail" if steered.kind == "gmail" else "Outlook"
    audit = {(d["thread_id"], d["decision"]): d["reason"] for d in store.control_decisions()}
    assert audit[(stop[1], controls.STOPPED)] == f"by the rep, label Followup/Stop in {where}"
    until = (labelled_at + timedelta(weeks=2)).isoformat()
    assert f"label Followup/Snooze-2w in {where}" in audit[(snooze[1], controls.SNOOZED + until)]
    assert f"label Followup/Handled in {where}" in audit[(handled[1], controls.HANDLED)]

    status = app.status(steered.config, now=labelled_at.isoformat())
    assert handled[1] not in {p.thread_id for p in status.promises}

    steered.run(DEMO_NOW + timedelta(days=10))  # every chase of the two threads is due by now
    rows = store.outbox()
    sent = steered.sent()

    def never_sent(thread: tuple[str, str], kinds: set[str]) -> None:
        waiting = {r["key"] for r in planned}  # what was still to go when labelled
        mine = [
            r
            for r in rows
            if r["thread_id"] == thread[1] and r["kind"] in kinds and r["key"] in waiting
        ]
        assert mine, f"nothing was planned for {thread}"
        assert all(r["status"] != SENT for r in mine)
        assert not {key_tag(r["key"]) for r in mine} & sent

    never_sent(stop, {"follow_up"})
    never_sent(snooze, {"follow_up"})
    never_sent(handled, {"escalation", "reminder", "webhook"})
    assert {
        r["status"] for r in rows if r["thread_id"] == stop[1] and r["kind"] == "follow_up"
    } == {CANCELLED}
    moved = [r for r in rows if r["thread_id"] == snooze[1] and r["kind"] == "follow_up"]
    assert all(r["due"] >= labelled_at + timedelta(weeks=2) for r in moved)
    # Other threads went on as planned.
    assert [r for r in rows if r["status"] == SENT and r["thread_id"] not in {stop[1], snooze[1]}]


def test_a_worker_reads_labels_only_when_mail_changed_or_another_worker_synced_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steering reads the labels when a pass synced a change, and when the mailbox was synced
    last by someone else: another worker that stopped between its sync and its steering leaves
    a label in the store that no later sync brings again. A pass over an unchanged mailbox it
    synced itself reads none."""
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    world = Steered("gmail", tmp_path)
    calls: list[str] = []
    real = steering.steer

    def counting(store: Store, mailbox: str, *args: Any, **kwargs: Any) -> int:
        calls.append(mailbox)
        return real(store, mailbox, *args, **kwargs)

    monkeypatch.setattr(steering, "steer", counting)
    try:
        clock = [DEMO_NOW]
        worker = Worker(world.config, owner="a", clock=lambda: clock[-1], connect=world.connect)
        worker.run(once=True)
        boxes = sorted(worker.loaded.enabled)
        assert sorted(calls) == boxes  # the first pass reads every mailbox's labels
        planned = world.store.outbox(statuses=(PLANNED,))
        row = next(r for r in planned if r["kind"] == "follow_up")
        mailbox, thread_id = row["mailbox"], row["thread_id"]

        clock.append(DEMO_NOW + timedelta(minutes=3))
        worker.run(once=True)  # syncs the notes the first pass sent
        calls.clear()
        clock.append(DEMO_NOW + timedelta(minutes=5))
        worker.run(once=True)
        assert calls == []  # nothing changed, and it synced every mailbox last itself

        # Another worker syncs the label, then stops before steering.
        world.label(mailbox, thread_id, "Followup/Stop")
        other = world.connect(
            worker.loaded.settings.mailbox(mailbox), world.store, Vault.from_environment()
        )
        synced = pipeline.sync_mailbox(
            world.store, mailbox, other.mail, at=DEMO_NOW + timedelta(minutes=7)
        )
        assert synced == 0 and synced.touched == 1
        assert not [d for d in world.store.control_decisions() if d["thread_id"] == thread_id]

        clock.append(DEMO_NOW + timedelta(minutes=10))
        worker.run(once=True)
        assert calls == [mailbox]  # its own sync found nothing new; the other's sync was last
        decided = {
            d["decision"] for d in world.store.control_decisions() if d["thread_id"] == thread_id
        }
        assert controls.STOPPED in decided
        assert {r["status"] for r in world.store.outbox() if r["key"] == row["key"]} == {CANCELLED}
    finally:
        world.close()


# -- end to end through the local provider: Keywords header and the unsubscribe link -----------


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return run_demo(tmp_path / "demo").out / "config.toml"


def rewrite(box: mbox.Maildir, key: str, change: Callable[[EmailMessage], None]) -> None:
    msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    change(msg)
    box[key] = msg


def test_a_keywords_header_in_a_maildir_stops_a_thread(demo: Path) -> None:
    store = Store.open(f"sqlite:///{demo.parent / 'followup-demo.db'}")
    try:
        chase = next(r for r in store.outbox(statuses=(PLANNED,)) if r["kind"] == "follow_up")
        [first, *_] = [m for m in store.messages() if m.thread_id == chase["thread_id"]]
        folder, _, key = first.provider_id.partition("/")
        box = mbox.Maildir(demo.parent / "mail" / chase["mailbox"] / folder, create=False)
        rewrite(box, key, lambda msg: msg.__setitem__("Keywords", "Followup/Stop"))
        Worker(demo, clock=lambda: NOW).run(once=True)
        decisions = [
            d
            for d in store.control_decisions()
            if d["thread_id"] == chase["thread_id"] and d["decision"] == controls.STOPPED
        ]
        assert [d["reason"] for d in decisions] == [
            "by the rep, label Followup/Stop in the mail folder"
        ]
        row = store.outbox_row(chase["id"])
        assert row is not None and row["status"] == CANCELLED
    finally:
        store.close()


def test_the_unsubscribe_link_of_a_follow_up_opts_the_client_out(demo: Path) -> None:
    store = Store.open(f"sqlite:///{demo.parent / 'followup-demo.db'}")
    try:
        chases = [r for r in store.outbox(statuses=(PLANNED,)) if r["kind"] == "follow_up"]
        first = min(chases, key=lambda r: r["due"])
        client, mailbox = first["client"], first["mailbox"]
        # The first follow-up goes out (the demo drafts: the draft holds the headers sent).
        Worker(demo, clock=lambda: first["due"]).run(once=True)
        drafts = mbox.Maildir(demo.parent / "mail" / mailbox / "drafts", create=False)
        notes = [
            email.message_from_bytes(drafts.get_bytes(k), policy=email.policy.default)
            for k in drafts.iterkeys()
        ]
        note = next(n for n in notes if n["X-Followup-Key"] == key_tag(first["key"]))
        link = str(note["List-Unsubscribe"]).strip().strip("<>")
        assert note["List-Unsubscribe-Post"] is None  # one-click needs an HTTPS address
        target = urlsplit(link)
        assert target.scheme == "mailto" and target.path == str(note["From"].addresses[0].addr_spec)
        subject = parse_qs(target.query)["subject"][0]
        assert client not in unquote(link) and "follow_up" not in unquote(link)

        # The client's mail program sends what the link says, to the rep's inbox.
        request = EmailMessage()
        request["From"] = str(note["To"])
        request["To"] = target.path
        request["Subject"] = subject
        request["Date"] = format_datetime(first["due"] + timedelta(hours=1))
        request["Message-ID"] = "<unsub-1@client.example>"
        request.set_content("This message was automatically generated by Gmail.")
        newsletter = EmailMessage()
        newsletter["From"] = "news@vendor.example"
        newsletter["To"] = target.path
        newsletter["Subject"] = "Our weekly news"
        newsletter["List-Unsubscribe"] = "<mailto:news@vendor.example?subject=unsubscribe>"
        newsletter["Date"] = format_datetime(first["due"] + timedelta(hours=1))
        newsletter.set_content(f"To stop these mails: {subject}")
        inbox = mbox.Maildir(demo.parent / "mail" / mailbox / "inbox", create=False)
        inbox.add(request)
        inbox.add(newsletter)
        later = first["due"] + timedelta(hours=2)
        Worker(demo, clock=lambda: later).run(once=True)

        [audit] = [d for d in store.control_decisions() if d["decision"] == controls.OPTED_OUT]
        assert audit["reason"].startswith("by the client, unsubscribe request from ")
        rows = [r for r in store.outbox() if r["client"] == client and r["kind"] == "follow_up"]
        assert {r["status"] for r in rows if r["key"] != first["key"]} == {CANCELLED}
        status = app.status(demo, now=later.isoformat())
        assert [r["client"] for r in status.opted_out] == [client]
        shown = CliRunner().invoke(
            main, ["status", "--config", str(demo), "--now", later.isoformat()]
        )
        assert shown.exit_code == 0 and "Opted out" in shown.output and client in shown.output
        as_json = CliRunner().invoke(
            main, ["status", "--json", "--config", str(demo), "--now", later.isoformat()]
        )
        assert [r["client"] for r in json.loads(as_json.output)["opted_out"]] == [client]
        # The request starts no promise clock: no promise waits on the rep for it.
        request_thread = next(m.thread_id for m in store.messages(mailbox) if m.subject == subject)
        assert request_thread not in {p.thread_id for p in status.promises}
        # Nothing more goes to the client, however long the worker runs.
        Worker(demo, clock=lambda: later + timedelta(days=20)).run(once=True)
        assert not [
            r
            for r in store.outbox(statuses=(SENT, "drafted"))
            if r["client"] == client and r["kind"] == "follow_up" and r["key"] != first["key"]
        ]
    finally:
        store.close()
