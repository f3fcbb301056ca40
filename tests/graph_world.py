"""The demo's three reps on the Graph emulator: Outlook's counterpart of ``GmailWorld``.

    world = GraphWorld.start(["asha", "lukas", "omar"])
    config = world.write_config(tmp_path, db_url=f"sqlite:///{tmp_path / 'followup.db'}")
    world.connect_all(Store.open(url), vault)
    worker = Worker(config, clock=Clock(DEMO_NOW), connect=world.connect())

One emulator serves the tenant; the worker reaches it through the real Outlook provider and MSAL
over TLS. Mail is seeded as Exchange keeps it: a conversation id per thread, internet headers on
received mail only (Sent Items copies carry none).
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests

from agent.config import Mailbox
from agent.providers.msal_auth import GraphAuth, connect_outlook_device
from agent.providers.outlook import KEY_PROPERTY, MailboxGate, OutlookProvider
from agent.providers.ratelimit import TokenBucket
from agent.providers.registry import Connection
from agent.providers.tokens import CredentialStore, Vault
from tests.fakes.graph import GraphEmulator
from tests.worker_helpers import (
    DEMO_MAILBOXES,
    DEMO_NOW,
    demo_raw,
    demo_scenario,
    write_team_config,
)

CLIENT_ID = "7f1c2d3e-0000-4a5b-8c9d-0e1f2a3b4c5d"


@dataclass
class GraphWorld:
    graph: GraphEmulator
    addresses: dict[str, str]

    @classmethod
    def start(cls, names: Iterable[str] = DEMO_MAILBOXES) -> GraphWorld:
        graph = GraphEmulator(tenant="acme").start()
        graph.random_ids = False  # the same ids in every replay, like the Gmail emulator's
        addresses = {n: f"{n}@acme.example" for n in names}
        for name, address in addresses.items():
            graph.add_mailbox(address, name.title())
        world = cls(graph, addresses)
        world.seed_demo()
        return world

    def stop(self) -> None:
        self.graph.stop()

    def __enter__(self) -> GraphWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the freshly seeded demo (same ids, sign-ins kept)."""
        self.graph.reset_mailboxes()
        self.seed_demo()

    def seed_demo(self) -> None:
        scenario = demo_scenario()
        by_id = {m["id"]: m for m in scenario["message"]}
        by_mailbox = {n: a for n, a in self.addresses.items()}
        for item in scenario["message"]:
            address = by_mailbox.get(item["mailbox"])
            if address is None:
                continue
            root = item["id"]
            while by_id[root].get("reply_to"):
                root = by_id[root]["reply_to"]
            msg = email.message_from_bytes(demo_raw(item, by_id), policy=email.policy.default)
            sender = getaddresses([str(msg["from"])])[0]
            sent = item["folder"] != "inbox"
            part = msg.get_body(preferencelist=("plain",))
            self.graph.add_message(
                address,
                folder="sentitems" if sent else "inbox",
                sender=sender[1],
                sender_name=sender[0],
                to=tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("to", [])])),
                subject=str(msg["subject"]),
                received=parsedate_to_datetime(str(msg["date"])),
                internet_message_id=str(msg["message-id"]),
                conversation_id=f"AAQkAGConv-{root}",
                headers=None if sent else {k: str(v) for k, v in msg.items()},
                body=part.get_content() if part is not None else "",
            )
        day = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
        if "asha" in self.addresses:
            self._event(
                "asha",
                "ライセンス更新のご相談 / License review",
                day,
                day + timedelta(hours=1),
                [("kenji.sato@sato-trading.co.jp", "accepted")],
            )
        if "lukas" in self.addresses:
            start = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
            self._event(
                "lukas",
                "Llamada Ruiz Logística",
                start,
                start + timedelta(minutes=30),
                [("carlos.ruiz@ruizlogistica.mx", "accepted")],
                cancelled=True,
            )

    def _event(
        self,
        name: str,
        subject: str,
        start: datetime,
        end: datetime,
        attendees: list[tuple[str, str]],
        *,
        cancelled: bool = False,
    ) -> None:
        address = self.addresses[name]
        event_id = self.graph.add_event(address, subject, start, end, cancelled=cancelled)
        with self.graph._lock:
            self.graph.boxes[address].events[event_id].attendees = [
                {
                    "emailAddress": {"address": who, "name": ""},
                    "status": {"response": response, "time": "2026-11-20T00:00:00Z"},
                    "type": "required",
                }
                for who, response in attendees
            ]

    # -- configuration and sign-in ---------------------------------------------------------
    def write_config(self, folder: Path, *, db_url: str, **settings: Any) -> Path:
        return write_team_config(
            folder,
            {
                n: {
                    "provider": "outlook",
                    "client_id": CLIENT_ID,
                    "tenant": self.graph.tenant,
                    "endpoint": self.graph.graph_url,
                }
                for n in self.addresses
            },
            db_url=db_url,
            **settings,
        )

    def connect_all(self, creds: CredentialStore, vault: Vault) -> None:
        """Sign every rep in with the device-code flow, as ``followup connect outlook`` would."""
        session = self.graph.session()
        try:
            for name, address in self.addresses.items():
                self.graph.signin_user = address
                connect_outlook_device(
                    name,
                    CLIENT_ID,
                    self.graph.authority,
                    vault,
                    creds,
                    prompt=lambda _text: None,
                    http_client=session,
                    custom_authority=True,
                )
        finally:
            session.close()

    def connect(self, sleep: Callable[[float], None] | None = None) -> GraphConnect:
        return GraphConnect(self.graph, sleep)

    # -- what the mailboxes hold -----------------------------------------------------------
    def sent_keys(self) -> Counter[str]:
        """How many times a message carrying each key was filed in Sent Items."""
        return Counter(ext[KEY_PROPERTY] for _, ext in self.graph.sends if KEY_PROPERTY in ext)

    def draft_keys(self) -> Counter[str]:
        """How many unsent drafts carry each key."""
        counts: Counter[str] = Counter()
        with self.graph._lock:
            for box in self.graph.boxes.values():
                for item in box.messages.values():
                    if item.folder == "drafts" and KEY_PROPERTY in item.ext:
                        counts[item.ext[KEY_PROPERTY]] += 1
        return counts


class GraphConnect:
    """A worker ``connect`` factory for Outlook mailboxes on the emulator: the real provider and
    MSAL, trusting the emulator's CA, with no client-side pacing and the demo's clock for the
    calendar's window."""

    def __init__(self, graph: GraphEmulator, sleep: Callable[[float], None] | None = None) -> None:
        self.graph = graph
        self.sleep = sleep
        self.sessions: list[requests.Session] = []

    def __call__(self, m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
        assert vault is not None
        session = self.graph.session()
        self.sessions.append(session)
        auth = GraphAuth(
            m.name, m.client_id, self.graph.authority, vault, creds, session, custom_authority=True
        )
        extra: dict[str, Any] = {"sleep": self.sleep} if self.sleep else {}
        provider = OutlookProvider(
            m.name,
            m.address,
            auth,
            session=session,
            base_url=self.graph.graph_url,
            bucket=TokenBucket(1e9, 1e9),
            gate=MailboxGate(),
            clock=lambda: DEMO_NOW,
            **extra,
        )
        return Connection(provider, provider)

    def close(self) -> None:
        while self.sessions:
            self.sessions.pop().close()
