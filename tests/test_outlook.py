"""The Outlook provider and MSAL sign-in, run for real against the Graph emulator over TLS."""

from __future__ import annotations

import itertools
import json
import re
import threading
import webbrowser
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from agent.compose import Composer
from agent.errors import (
    AccessDenied,
    AuthRevoked,
    CursorExpired,
    Permanent,
    SignInFailed,
    Transient,
)
from agent.model import Address, Interval, Invite
from agent.outbox import Outbox
from agent.providers.msal_auth import (
    AppAuth,
    GraphAuth,
    connect_outlook_device,
    connect_outlook_interactive,
)
from agent.providers.outlook import (
    INTERNET_HEADER_PROPERTY,
    KEY_PROPERTY,
    MailboxGate,
    OutlookProvider,
    _merge,
    _split,
    parse_datetime_tz,
    transaction_id,
)
from agent.providers.protocol import CalendarProvider, MailProvider, key_tag
from agent.providers.ratelimit import TokenBucket
from agent.providers.tokens import MemoryCredentials, Vault, new_key
from agent.store import ACCESS_DENIED, NEEDS_ATTENTION, SENDING, SENT, Store
from agent.worker import Worker
from tests.fakes.graph import GraphEmulator
from tests.graph_world import GraphWorld
from tests.provider_contract import (
    CalendarProviderContract,
    MailProviderContract,
    incoming,
    outgoing,
)
from tests.test_outbox import NOW, TEMPLATES, reminder
from tests.worker_helpers import DEMO_NOW, GmailWorld, gmail_connect, run_until_done

ADDRESS = "asha@contoso.example"
CLIENT_ID = "00000000-1111-2222-3333-444444444444"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Rig:
    """A connected mailbox: the emulator, the sealed credentials and a provider."""

    def __init__(self, graph: GraphEmulator) -> None:
        self.graph = graph
        self.address = ADDRESS
        self.session = graph.session()
        self.vault = Vault(new_key())
        self.creds = MemoryCredentials()
        self.prompts: list[str] = []
        self.username = connect_outlook_device(
            "asha",
            CLIENT_ID,
            graph.authority,
            self.vault,
            self.creds,
            prompt=self.prompts.append,
            http_client=self.session,
            custom_authority=True,
        )
        self.sleeps: list[float] = []
        self.provider = self.make_provider()
        self.calendar = self.provider

    def auth(self) -> GraphAuth:
        return GraphAuth(
            "asha",
            CLIENT_ID,
            self.graph.authority,
            self.vault,
            self.creds,
            self.session,
            custom_authority=True,
        )

    def make_provider(self, gate: MailboxGate | None = None, **kwargs: Any) -> OutlookProvider:
        return OutlookProvider(
            "asha",
            ADDRESS,
            self.auth(),
            session=self.session,
            base_url=self.graph.graph_url,
            sleep=self.sleeps.append,
            bucket=TokenBucket(1000, 1000),
            gate=gate or MailboxGate(),
            **kwargs,
        )

    def deliver(self, raw: bytes) -> None:
        self.graph.deliver(ADDRESS, raw)

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for r in self.graph.requests if r.method == method and pattern in r.path)


@pytest.fixture
def graph() -> Iterator[GraphEmulator]:
    with GraphEmulator() as emulator:
        emulator.add_mailbox(ADDRESS, "Asha Rao")
        yield emulator


@pytest.fixture
def rig(graph: GraphEmulator) -> Iterator[Rig]:
    r = Rig(graph)
    yield r
    r.session.close()


class TestOutlookContract(MailProviderContract, CalendarProviderContract):
    @pytest.fixture
    def harness(self, rig: Rig) -> Rig:
        return rig

    @pytest.fixture
    def calendar_harness(self, rig: Rig) -> Rig:
        return rig


# -- connecting ----------------------------------------------------------------------------


def test_device_code_connect_seals_the_cache_and_tokens_work(rig: Rig) -> None:
    assert rig.username == ADDRESS
    assert len(rig.prompts) == 1 and "/devicelogin" in rig.prompts[0]
    polls = [r for r in rig.graph.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert len(polls) == 2  # authorization_pending, then the tokens
    sealed = rig.creds.load_credentials("asha")
    assert sealed is not None and b"refresh_token" not in sealed
    opened = json.loads(rig.vault.open(sealed).decode())
    assert opened["RefreshToken"]
    # The tokens themselves are not readable in the sealed blob (a fixed pattern such as "rt-"
    # would turn up in a long enough random ciphertext by chance).
    for token in opened["RefreshToken"].values():
        assert token["secret"].encode() not in sealed
    assert isinstance(rig.provider, MailProvider) and isinstance(rig.provider, CalendarProvider)
    rig.provider.sync(None)


class EmulatorBrowser(webbrowser.BaseBrowser):
    """A browser in which the user is already signed in: it submits the sign-in page's form
    to the app's loopback listener, as a real browser would after the user consents."""

    def __init__(self, session: requests.Session) -> None:
        super().__init__("followup-test-browser")
        self.session = session
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)

        def visit() -> None:
            page = self.session.get(url, timeout=10).text
            action = re.search(r'action="([^"]+)"', page)
            assert action is not None
            fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
            with requests.Session() as loopback:
                loopback.trust_env = False
                loopback.post(action.group(1), data=fields, timeout=10)

        threading.Thread(target=visit, daemon=True).start()
        return True


def test_auth_code_flow_on_a_loopback_port(graph: GraphEmulator) -> None:
    session = graph.session()
    browser = EmulatorBrowser(session)
    webbrowser.register(browser.name, None, browser, preferred=True)
    try:
        vault, creds = Vault(new_key()), MemoryCredentials()
        username = connect_outlook_interactive(
            "asha",
            CLIENT_ID,
            graph.authority,
            vault,
            creds,
            http_client=session,
            custom_authority=True,
            timeout=20,
        )
    finally:
        webbrowser._tryorder.remove(browser.name)  # type: ignore[attr-defined]
    assert username == ADDRESS and len(browser.opened) == 1
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in browser.opened[0]
    assert "offline_access" in browser.opened[0]  # added by MSAL, never by us
    token = GraphAuth(
        "asha", CLIENT_ID, graph.authority, vault, creds, session, custom_authority=True
    ).token()
    assert token.startswith("at-")
    session.close()


def test_refresh_rotation_is_written_back_and_a_stale_worker_recovers() -> None:
    with GraphEmulator(token_lifetime=60) as graph:  # under MSAL's 5-minute margin: refresh
        graph.add_mailbox(ADDRESS)
        r = Rig(graph)
        first, second = r.auth(), r.auth()
        first.token()
        stored = r.creds.load_credentials("asha")
        second.token()  # loaded before the rotation would fail on the old refresh token
        assert r.creds.load_credentials("asha") != stored
        assert graph.refresh_redeemed == 2
        r.session.close()


def test_revoked_grant_raises_auth_revoked_without_looping(rig: Rig) -> None:
    rig.provider.sync(None)
    rig.graph.revoke(ADDRESS)
    before = len(rig.graph.requests)
    with pytest.raises(AuthRevoked):
        rig.provider.sync(None)
    assert len(rig.graph.requests) - before <= 3  # one refused call, one refused refresh
    with pytest.raises(AuthRevoked):
        rig.auth().token(force_refresh=True)


def test_no_stored_grant_is_auth_revoked(graph: GraphEmulator) -> None:
    session = graph.session()
    auth = GraphAuth(
        "nobody",
        CLIENT_ID,
        graph.authority,
        Vault(new_key()),
        MemoryCredentials(),
        session,
        custom_authority=True,
    )
    with pytest.raises(AuthRevoked):
        auth.token()
    session.close()


def test_app_only_reads_users_mailbox_and_a_bad_secret_is_permanent(graph: GraphEmulator) -> None:
    graph.client_secrets[CLIENT_ID] = "s3cret"
    graph.add_message(ADDRESS, subject="Org-wide")
    session = graph.session()
    app = AppAuth(CLIENT_ID, graph.authority, "s3cret", session, custom_authority=True)
    provider = OutlookProvider(
        "asha",
        ADDRESS,
        app,
        session=session,
        base_url=graph.graph_url,
        app_only=True,
        gate=MailboxGate(),
    )
    assert [m.subject for m in provider.sync(None).messages] == ["Org-wide"]
    assert all(r.path.startswith(f"/v1.0/users/{ADDRESS}") for r in graph.graph_requests())
    with pytest.raises(Permanent):
        AppAuth(CLIENT_ID, graph.authority, "wrong", session, custom_authority=True).token()
    session.close()


# -- mail sync -----------------------------------------------------------------------------


def test_delta_sync_of_both_folders_initial_then_incremental(rig: Rig) -> None:
    g = rig.graph
    in1 = g.add_message(
        ADDRESS,
        subject="Quote please",
        received=T0,
        headers={
            "In-Reply-To": "<a@x>",
            "References": "<r@x> <a@x>",
            "Auto-Submitted": "no",
            "Received": "from mx",
        },
    )
    out1 = g.add_message(
        ADDRESS,
        folder="sentitems",
        sender=ADDRESS,
        to=("c@customer.example",),
        subject="Re: Quote",
        received=T0 + timedelta(hours=1),
    )
    first = rig.provider.sync(None)
    assert first.full
    by_id = {m.provider_id: m for m in first.messages}
    assert by_id[in1].labels == {"INBOX"} and by_id[out1].labels == {"SENT"}
    assert by_id[in1].in_reply_to == "<a@x>" and by_id[in1].references == ("<r@x>", "<a@x>")
    assert dict(by_id[in1].headers) == {"auto-submitted": "no"}
    assert by_id[out1].sender.email == ADDRESS and by_id[out1].date == T0 + timedelta(hours=1)
    assert set(json.loads(first.cursor)) == {"v", "inbox", "sentitems"}

    in2 = g.add_message(ADDRESS, subject="Follow-up question")
    g.delete(ADDRESS, out1)
    second = rig.provider.sync(first.cursor)
    assert not second.full
    assert [m.provider_id for m in second.messages] == [in2]
    assert second.deleted == (out1,)
    third = rig.provider.sync(second.cursor)
    assert not third.messages and not third.deleted

    graph_calls = [r for r in g.requests if r.path.startswith("/v1.0")]
    assert graph_calls and all('IdType="ImmutableId"' in r.prefer for r in graph_calls)
    deltas = [r for r in graph_calls if r.path.endswith("/delta")]
    assert all("odata.maxpagesize=" in r.prefer for r in deltas)
    assert "%24select=" in deltas[0].query or "$select=" in deltas[0].query


def test_paging_follows_next_links_to_the_delta_link(rig: Rig) -> None:
    ids = {rig.graph.add_message(ADDRESS, subject=f"m{i}") for i in range(23)}
    provider = rig.make_provider(page_size=5)
    result = provider.sync(None)
    assert {m.provider_id for m in result.messages} == ids
    assert rig.count("GET", "/inbox/messages/delta") == 5


def test_flag_only_change_is_fetched_whole_through_batch(rig: Rig) -> None:
    ids = [rig.graph.add_message(ADDRESS, subject=f"m{i}") for i in range(45)]
    cursor = rig.provider.sync(None).cursor
    for pid in ids:
        rig.graph.mark_read(ADDRESS, pid)
    result = rig.provider.sync(cursor)
    assert {m.provider_id for m in result.messages} == set(ids)
    assert all(m.subject.startswith("m") for m in result.messages)
    batched = [r for r in rig.graph.requests if r.batched]
    assert len(batched) == 45 and all(r.status == 200 for r in batched)
    assert rig.count("POST", "/$batch") == 3  # 20 + 20 + 5


def test_moves_inside_the_mailbox_keep_the_id_and_archive_moves_delete(rig: Rig) -> None:
    keep = rig.graph.add_message(ADDRESS, subject="keep")
    gone = rig.graph.add_message(ADDRESS, subject="archive me")
    cursor = rig.provider.sync(None).cursor
    new_id = rig.graph.move_to_archive(ADDRESS, gone)
    result = rig.provider.sync(cursor)
    assert result.deleted == (gone,) and new_id != gone
    rig.graph.move(ADDRESS, keep, "sentitems")
    moved = rig.provider.sync(result.cursor)
    assert [m.provider_id for m in moved.messages] == [keep] and not moved.deleted
    rig.graph.move(ADDRESS, keep, "inbox")  # Sent Items is read after the Inbox
    back = rig.provider.sync(moved.cursor)
    assert [(m.provider_id, m.labels) for m in back.messages] == [(keep, {"INBOX"})]
    assert not back.deleted


def test_malformed_items_are_skipped_with_a_reason(rig: Rig) -> None:
    bad = rig.graph.add_message(ADDRESS, raw_fields={"from": None})
    worse = rig.graph.add_message(ADDRESS, raw_fields={"receivedDateTime": "yesterday"})
    good = rig.graph.add_message(ADDRESS, subject="fine")
    result = rig.provider.sync(None)
    assert [m.provider_id for m in result.messages] == [good]
    reasons = dict(result.skipped)
    assert reasons[bad] == "no From address" and "unreadable date" in reasons[worse]


def test_expired_delta_link_raises_cursor_expired_and_a_full_resync_loses_nothing(rig: Rig) -> None:
    a = rig.graph.add_message(ADDRESS, subject="a")
    cursor = rig.provider.sync(None).cursor
    b = rig.graph.add_message(ADDRESS, subject="b")
    rig.graph.expire_delta(ADDRESS)
    with pytest.raises(CursorExpired):
        rig.provider.sync(cursor)
    assert any(r.status == 410 for r in rig.graph.requests)
    full = rig.provider.sync(None)
    assert full.full and {m.provider_id for m in full.messages} == {a, b}
    assert not rig.provider.sync(full.cursor).messages
    with pytest.raises(CursorExpired):
        rig.provider.sync("not json")


def test_throttling_storm_waits_retry_after_then_succeeds(rig: Rig) -> None:
    rig.graph.add_message(ADDRESS, subject="a")
    rig.graph.throttle(3, retry_after=7)
    result = rig.provider.sync(None)
    assert len(result.messages) == 1
    assert len(rig.sleeps) == 3 and all(s >= 7 for s in rig.sleeps)
    rig.graph.throttle(10, retry_after=2, status=503)
    with pytest.raises(Transient) as err:
        rig.provider.sync(None)
    assert err.value.retry_after == 2
    assert rig.graph.graph_requests()[-1].status == 503


def test_a_retry_after_longer_than_the_cap_is_raised_at_once(rig: Rig) -> None:
    rig.graph.throttle(1, retry_after=600)
    with pytest.raises(Transient) as err:
        rig.provider.sync(None)
    assert err.value.retry_after == 600 and not rig.sleeps


def test_at_most_four_requests_in_flight_per_mailbox() -> None:
    with GraphEmulator(latency=0.05) as graph:
        graph.add_mailbox(ADDRESS)
        r = Rig(graph)
        ids = [graph.add_message(ADDRESS, body=f"body {i}") for i in range(12)]
        bodies: list[str] = []
        threads = [
            threading.Thread(target=lambda i=i: bodies.append(r.provider.fetch_body(i)))
            for i in ids
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(bodies) == sorted(f"body {i}" for i in range(12))
        assert graph.max_inflight[ADDRESS] == 4
        assert all(req.status == 200 for req in graph.graph_requests())
        r.session.close()


def test_mailbox_concurrency_answers_lower_the_gate(rig: Rig) -> None:
    pid = rig.graph.add_message(ADDRESS, body="hello")
    rig.graph.inject(
        "GET",
        r"/messages/",
        status=429,
        code="ApplicationThrottled",
        message="Application is over its MailboxConcurrency limit.",
        retry_after=1,
    )
    gate = MailboxGate()
    assert rig.make_provider(gate=gate).fetch_body(pid) == "hello"
    assert gate.limit == 3 and rig.sleeps == [1.0]


# -- sending exactly once ------------------------------------------------------------------


def _sent_count(rig: Rig) -> int:
    return sum(1 for i in rig.graph.boxes[ADDRESS].messages.values() if i.folder == "sentitems")


def test_draft_is_tagged_with_the_key_property(rig: Rig) -> None:
    draft_id = rig.provider.draft(outgoing(ADDRESS, key="k:1"), key="k:1")
    item = rig.graph.boxes[ADDRESS].messages[draft_id]
    assert item.ext == {KEY_PROPERTY: key_tag("k:1")} and item.folder == "drafts"
    assert item.data["toRecipients"][0]["emailAddress"]["address"] == "client1@customer.example"
    assert {"name": "X-Followup-Key", "value": key_tag("k:1")} in item.headers


def test_the_key_is_opaque_and_a_note_tagged_before_tags_is_still_found(rig: Rig) -> None:
    key = "proposal/asha/<t@x>/<m@x>"
    draft_id = rig.provider.draft(outgoing(ADDRESS, key=key), key=key)
    item = rig.graph.boxes[ADDRESS].messages[draft_id]
    shown = json.dumps([item.ext, item.headers])
    assert "asha" not in shown and "proposal" not in shown
    assert rig.provider.find_draft(key) == draft_id
    # A draft an earlier version tagged with the key itself.
    old = rig.provider.draft(outgoing(ADDRESS, key="k:old"), key="k:new")
    rig.graph.boxes[ADDRESS].messages[old].ext[KEY_PROPERTY] = "k:old"
    assert rig.provider.find_draft("k:old") == old


def test_auto_submitted_and_x_headers_reach_graph(rig: Rig) -> None:
    message = outgoing(ADDRESS, key="k:a")
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    item = rig.graph.boxes[ADDRESS].messages[rig.provider.draft(message, key="k:a")]
    assert {"name": "X-Auto-Response-Suppress", "value": "All"} in item.headers
    assert item.ext[INTERNET_HEADER_PROPERTY + "Auto-Submitted"] == "auto-generated"


def test_crash_after_drafting_finds_the_draft_and_sends_it_once(rig: Rig) -> None:
    rig.provider.draft(outgoing(ADDRESS, key="k:1"), key="k:1")  # the id was lost in a crash
    found = rig.provider.find_draft("k:1")
    assert found is not None
    sent = rig.provider.send_draft(found)
    assert sent.provider_id == found and sent.message_id.startswith("<")
    assert rig.provider.find_sent("k:1") == sent and _sent_count(rig) == 1


def test_send_failing_before_it_took_effect_leaves_the_draft(rig: Rig) -> None:
    draft_id = rig.provider.draft(outgoing(ADDRESS, key="k:2"), key="k:2")
    rig.graph.inject("POST", r"/send$", status=503, retry_after=1)
    with pytest.raises(Transient):
        rig.provider.send_draft(draft_id)
    assert rig.count("POST", "/send") == 1  # never retried
    assert rig.provider.find_sent("k:2") is None
    assert rig.provider.find_draft("k:2") == draft_id
    rig.provider.send_draft(draft_id)
    assert _sent_count(rig) == 1


def test_send_whose_response_was_lost_is_reconciled_not_repeated(rig: Rig) -> None:
    draft_id = rig.provider.draft(outgoing(ADDRESS, key="k:3"), key="k:3")
    rig.graph.inject("POST", r"/send$", after=True, drop=True)
    with pytest.raises(Transient):
        rig.provider.send_draft(draft_id)
    assert rig.count("POST", "/send") == 1
    found = rig.provider.find_sent("k:3")
    assert found is not None and found.provider_id == draft_id
    assert rig.provider.find_draft("k:3") is None
    again = rig.provider.send_draft(draft_id)  # a confused caller: still no second send
    assert again.provider_id == draft_id and rig.count("POST", "/send") == 1
    assert _sent_count(rig) == 1


def test_throttled_send_is_not_retried(rig: Rig) -> None:
    draft_id = rig.provider.draft(outgoing(ADDRESS, key="k:4"), key="k:4")
    rig.graph.inject("POST", r"/send$", status=429, code="TooManyRequests", retry_after=30)
    with pytest.raises(Transient) as err:
        rig.provider.send_draft(draft_id)
    assert err.value.retry_after == 30 and rig.count("POST", "/send") == 1 and not rig.sleeps


def test_crash_after_send_before_reading_back_is_found_by_key(rig: Rig) -> None:
    draft_id = rig.provider.draft(outgoing(ADDRESS, key="k:5"), key="k:5")
    # The read before the send passes; the read-back after it fails: the send still counts.
    rig.graph.inject("GET", draft_id, status=503, skip=1)
    sent = rig.provider.send_draft(draft_id)
    assert sent.provider_id == draft_id and rig.count("POST", "/send") == 1
    assert rig.provider.find_sent("k:5") == sent and rig.provider.find_draft("k:5") is None


def test_reply_is_threaded_by_exchange_through_create_reply(rig: Rig) -> None:
    rig.deliver(incoming(1, to=ADDRESS))
    first = rig.provider.sync(None)
    original = first.messages[0]
    reply = outgoing(ADDRESS, key="k:r", reply_to=original.message_id)
    draft_id = rig.provider.draft(reply, key="k:r")
    assert rig.count("POST", "/createReply") == 1
    rig.provider.send_draft(draft_id)
    sent = [m for m in rig.provider.sync(first.cursor).messages if "SENT" in m.labels]
    assert len(sent) == 1
    # Sent Items copies carry no internetMessageHeaders: the conversation threads the reply,
    # and the key property (not an x- header) says it is the agent's note.
    assert sent[0].thread_id == original.thread_id
    assert sent[0].in_reply_to == "" and sent[0].headers == {"x-followup-key": key_tag("k:r")}


def test_sent_items_copies_carry_no_internet_headers(rig: Rig) -> None:
    rig.deliver(incoming(1, to=ADDRESS))
    original = rig.provider.sync(None).messages[0]
    draft_id = rig.provider.draft(
        outgoing(ADDRESS, key="k:h", reply_to=original.message_id), key="k:h"
    )
    rig.provider.send_draft(draft_id)
    url = f"{rig.graph.graph_url}/me/messages/{draft_id}?$select=internetMessageHeaders"
    token = rig.auth().token()
    row = rig.session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert not row.get("internetMessageHeaders")
    assert rig.provider.find_sent("k:h") is not None  # found by the property alone


def test_reply_to_an_unknown_message_starts_a_new_thread(rig: Rig) -> None:
    draft_id = rig.provider.draft(outgoing(ADDRESS, key="k:n", reply_to="<gone@x>"), key="k:n")
    assert rig.count("POST", "/createReply") == 0 and draft_id


# -- calendar ------------------------------------------------------------------------------


def test_get_schedule_across_25_people_takes_two_chunks_in_one_batch(rig: Rig) -> None:
    people = [f"rep{i}@contoso.example" for i in range(25)]
    for i, who in enumerate(people):
        rig.graph.add_mailbox(who)
        rig.graph.add_event(
            who, "Call", T0 + timedelta(hours=i % 5), T0 + timedelta(hours=i % 5, minutes=30)
        )
        rig.graph.add_event(
            who, "Lunch", T0 + timedelta(hours=3), T0 + timedelta(hours=4), show_as="free"
        )
    window = Interval(T0, T0 + timedelta(days=7))
    busy = rig.provider.schedules(people, window)
    assert set(busy) == set(people)
    assert busy["rep7@contoso.example"] == [
        Interval(T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=30))
    ]
    calls = [r for r in rig.graph.requests if r.path.endswith("/getSchedule")]
    assert len(calls) == 2 and all(r.batched for r in calls)
    assert rig.count("POST", "/$batch") == 1


def test_busy_splits_windows_under_62_days_and_merges(rig: Rig) -> None:
    rig.graph.add_event(ADDRESS, "a", T0, T0 + timedelta(hours=2))
    rig.graph.add_event(
        ADDRESS, "b", T0 + timedelta(hours=1), T0 + timedelta(hours=3), show_as="tentative"
    )
    rig.graph.add_event(
        ADDRESS, "far", T0 + timedelta(days=80), T0 + timedelta(days=80, hours=1), show_as="oof"
    )
    rig.graph.add_event(
        ADDRESS, "gone", T0 + timedelta(days=2), T0 + timedelta(days=3), cancelled=True
    )
    window = Interval(T0 - timedelta(days=1), T0 + timedelta(days=100))
    assert rig.provider.busy(window) == [
        Interval(T0, T0 + timedelta(hours=3)),
        Interval(T0 + timedelta(days=80), T0 + timedelta(days=80, hours=1)),
    ]
    assert len([r for r in rig.graph.requests if r.path.endswith("/getSchedule")]) == 2


def test_event_created_twice_with_the_same_transaction_id_is_one_event(rig: Rig) -> None:
    invite = Invite(
        key="meet:t1:1",
        summary="Pricing call",
        start=T0,
        end=T0 + timedelta(minutes=30),
        zone="Asia/Kolkata",
        organizer=Address(ADDRESS),
        attendees=(Address("client1@customer.example", "Client One"),),
    )
    first = rig.provider.create_event(invite)
    rig.graph.inject("POST", r"/events$", status=504, after=True)  # created, answer lost
    second = rig.provider.create_event(invite)
    assert first == second and len(rig.graph.boxes[ADDRESS].events) == 1
    event = rig.graph.boxes[ADDRESS].events[first]
    assert event.transaction_id == transaction_id("meet:t1:1") and event.start == T0


def test_hold_shows_as_tentative_invites_nobody_and_is_deleted(rig: Rig) -> None:
    invite = Invite(
        key="hold/1",
        summary="Tentative: Client One [followup hold]",
        start=T0,
        end=T0 + timedelta(minutes=30),
        zone="Asia/Kolkata",
        organizer=Address(ADDRESS),
        attendees=(Address(ADDRESS),),
        send_updates=False,
        tentative=True,
    )
    event_id = rig.provider.create_event(invite)
    event = rig.graph.boxes[ADDRESS].events[event_id]
    assert event.show_as == "tentative" and event.attendees == []
    assert rig.provider.busy(Interval(T0, T0 + timedelta(hours=1))) == [
        Interval(T0, T0 + timedelta(minutes=30))
    ]
    rig.provider.delete_event(event_id)
    assert event_id not in rig.graph.boxes[ADDRESS].events
    rig.provider.delete_event(event_id)  # 404: already gone
    assert rig.count("DELETE", "/events/") == 2


def test_delete_rides_out_throttling_and_a_refusal_is_permanent(rig: Rig) -> None:
    rig.graph.add_event(ADDRESS, "Board", T0, T0 + timedelta(hours=1))
    [event_id] = rig.graph.boxes[ADDRESS].events
    rig.graph.inject("DELETE", r"/events/", status=429, code="TooManyRequests", retry_after=1)
    rig.provider.delete_event(event_id)
    assert rig.sleeps and not rig.graph.boxes[ADDRESS].events
    rig.graph.inject("DELETE", r"/events/", status=400, code="ErrorInvalidIdMalformed")
    with pytest.raises(Permanent):
        rig.provider.delete_event("not-an-id")


def test_events_delta_reports_changes_and_deletions(rig: Rig) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    a = rig.graph.add_event(
        ADDRESS, "Demo", now + timedelta(days=1), now + timedelta(days=1, hours=1)
    )
    first = rig.provider.events(None)
    assert first.full and [e.provider_id for e in first.events] == [a]
    assert first.events[0].start == now + timedelta(days=1)
    b = rig.graph.add_event(
        ADDRESS,
        "Free slot",
        now + timedelta(days=2),
        now + timedelta(days=2, hours=1),
        show_as="free",
    )
    second = rig.provider.events(first.cursor)
    assert not second.full and [e.provider_id for e in second.events] == [b]
    assert second.events[0].transparent


def test_date_time_time_zone_has_no_offset_and_is_read_in_its_zone() -> None:
    assert parse_datetime_tz({"dateTime": "2026-11-02T09:00:00.0000000", "timeZone": "UTC"}) == T0
    india = {"dateTime": "2026-11-02T14:30:00.0000000", "timeZone": "India Standard Time"}
    assert parse_datetime_tz(india) == T0
    # 01:30 happens twice in Los Angeles on 2026-11-01; zoneinfo takes the first (PDT).
    fold = {"dateTime": "2026-11-01T01:30:00", "timeZone": "Pacific Standard Time"}
    assert parse_datetime_tz(fold) == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def test_events_in_windows_zones_are_read_in_their_zone(rig: Rig) -> None:
    rig.graph.ignore_timezone_preference = True  # Graph answers in each event's own zone
    now = datetime.now(UTC).replace(microsecond=0)
    rig.graph.add_event(
        ADDRESS,
        "Sync",
        now + timedelta(days=1),
        now + timedelta(days=1, hours=1),
        zone="Tokyo Standard Time",
    )
    result = rig.provider.events(None)
    assert [(e.start, e.end) for e in result.events] == [
        (now + timedelta(days=1), now + timedelta(days=1, hours=1))
    ]
    assert '"Tokyo Standard Time"' in json.dumps(
        rig.graph._event_json(next(iter(rig.graph.boxes[ADDRESS].events.values())), "")
    )


def test_unknown_zone_is_malformed_not_a_crash() -> None:
    with pytest.raises(ValueError, match="Mars"):
        parse_datetime_tz({"dateTime": "2026-11-02T09:00:00", "timeZone": "Mars Standard Time"})


@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_schedule_windows_cover_the_window_in_chunks_under_62_days(
    start: datetime, length: timedelta
) -> None:
    window = Interval(start, start + length)
    chunks = list(_split(window, timedelta(days=61)))
    assert all(c.end - c.start < timedelta(days=62) for c in chunks)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    if chunks:
        assert chunks[0].start == window.start and chunks[-1].end == window.end


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 600)).map(
            lambda p: Interval(T0 + timedelta(minutes=p[0]), T0 + timedelta(minutes=p[0] + p[1]))
        ),
        max_size=30,
    )
)
def test_merged_busy_time_is_sorted_disjoint_and_covers_the_same_minutes(
    spans: list[Interval],
) -> None:
    merged = _merge(spans)
    assert all(a.end < b.start for a, b in itertools.pairwise(merged))
    for span in spans:
        assert any(m.start <= span.start and span.end <= m.end for m in merged)
    for m in merged:
        assert any(s.start == m.start for s in spans) and any(s.end == m.end for s in spans)


def test_paging_links_to_other_hosts_are_refused(rig: Rig) -> None:
    cursor = json.dumps({"v": 1, "inbox": "https://evil.example/steal", "sentitems": "x"})
    before = len(rig.graph.requests)
    with pytest.raises(Permanent):
        rig.provider.sync(cursor)
    assert len(rig.graph.requests) == before


def test_the_owners_own_answer_to_an_invitation_is_read_from_response_status(rig: Rig) -> None:
    # Graph: an invitee's copy has the owner's answer in event.responseStatus, while the
    # owner's attendee row says "none".
    now = datetime.now(UTC).replace(microsecond=0)

    def row(email: str) -> dict[str, Any]:
        return {
            "emailAddress": {"address": email, "name": ""},
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "type": "required",
        }

    for subject, response in (("Accepted", "accepted"), ("Unanswered", "notResponded")):
        rig.graph.add_event(
            ADDRESS,
            subject,
            now + timedelta(days=1),
            now + timedelta(days=1, hours=1),
            organizer="client1@customer.example",
            attendees=[row("client1@customer.example"), row(ADDRESS)],
            response=response,
        )
    found = {e.summary: e for e in rig.provider.events(None).events}
    own = {s: next(a.partstat for a in e.attendees if a.email == ADDRESS) for s, e in found.items()}
    assert own == {"Accepted": "ACCEPTED", "Unanswered": "NEEDS-ACTION"}
    assert found["Accepted"].organizer == "client1@customer.example"


# -- the outbox under Outlook's asynchronous send ------------------------------------------


def _outbox(store: Store, provider: Any) -> Outbox:
    return Outbox(
        store,
        {"asha": provider},
        Composer(TEMPLATES),
        {"asha": Address(ADDRESS, "Asha")},
        mode="send",
        domain="contoso.example",
    )


def _sends(rig: Rig, key: str) -> int:
    return sum(1 for _, ext in rig.graph.sends if ext.get(KEY_PROPERTY) == key_tag(key))


def test_a_send_accepted_but_slow_to_reach_sent_items_is_never_posted_twice(
    rig: Rig, store: Store
) -> None:
    rig.graph.hold_sends = True  # accepted; Exchange files it in Sent Items later
    rig.graph.inject("POST", r"/send$", after=True, drop=True)  # and the answer is lost
    outbox, key = _outbox(store, rig.provider), reminder().key
    store.enqueue([reminder()])
    assert [o.status for o in outbox.run(NOW)] == [SENDING]
    assert rig.provider.find_draft(key) is not None  # it still reads as a draft
    for minutes in (1, 5, 30):
        [o] = outbox.run(NOW + timedelta(minutes=minutes))
        assert (o.status, o.detail) == (SENDING, "send requested: waiting for the sent copy")
    assert rig.count("POST", "/send") == 1
    rig.graph.file_sends()
    [o] = outbox.run(NOW + timedelta(minutes=31))
    assert o.status == SENT and _sends(rig, key) == 1 and rig.count("POST", "/send") == 1


def test_a_requested_send_never_filed_goes_to_a_person_not_out_again(
    rig: Rig, store: Store
) -> None:
    rig.graph.hold_sends = True
    rig.graph.inject("POST", r"/send$", after=True, drop=True)
    outbox, key = _outbox(store, rig.provider), reminder().key
    store.enqueue([reminder()])
    outbox.run(NOW)
    [o] = outbox.run(NOW + OutlookProvider.sent_copy_lag)
    assert o.status == NEEDS_ATTENTION and rig.count("POST", "/send") == 1
    row = store.outbox_row(key)
    assert row is not None and "never sent twice" in row["last_error"]


def test_a_throttled_send_was_not_made_and_goes_out_on_the_next_pass(
    rig: Rig, store: Store
) -> None:
    rig.graph.inject("POST", r"/send$", status=429, code="TooManyRequests", retry_after=30)
    outbox, key = _outbox(store, rig.provider), reminder().key
    store.enqueue([reminder()])
    assert [o.status for o in outbox.run(NOW)] == [SENDING]
    row = store.outbox_row(key)
    assert row is not None and row["send_requested_at"] is None
    assert [o.status for o in outbox.run(NOW + timedelta(minutes=1))] == [SENT]
    assert _sends(rig, key) == 1 and rig.count("POST", "/send") == 2


class Stalling:
    """The provider of a worker that stalls (a long pause, a hung connection) at ``point`` of
    ``send_draft`` while its lease runs out, and only then carries on: ``meanwhile`` runs in
    the pause, as the worker that took the mailbox over."""

    def __init__(self, inner: OutlookProvider, point: str, meanwhile: Any) -> None:
        self._inner, self._point, self._meanwhile = inner, point, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send_draft(self, draft_id: str, *, before_post: Any = None) -> Any:
        if self._point == "claimed":
            self._meanwhile()

        def stalled_before_post() -> None:
            if before_post is not None:
                before_post()
            if self._point == "requested":
                self._meanwhile()

        return self._inner.send_draft(draft_id, before_post=stalled_before_post)


@pytest.mark.parametrize("point", ["claimed", "requested"])
def test_a_worker_that_lost_its_lease_mid_send_never_sends_a_second_time(
    rig: Rig, store: Store, point: str
) -> None:
    rig.graph.hold_sends = True  # Outlook is slow to file it: both see a draft
    key = reminder().key
    successor = _outbox(store, rig.make_provider())
    taken_over: list[str] = []

    def take_over() -> None:
        taken_over.extend(o.status for o in successor.run(NOW + timedelta(minutes=2)))

    stalled = _outbox(store, Stalling(rig.provider, point, take_over))
    store.enqueue([reminder()])
    stalled.run(NOW)
    # Claimed but not requested: the successor sends and the stalled worker gives way.
    # Requested: the successor only waits for the sent copy.
    assert taken_over == ([SENT] if point == "claimed" else [SENDING])
    assert rig.count("POST", "/send") == 1
    rig.graph.file_sends()
    successor.run(NOW + timedelta(minutes=3))
    row = store.outbox_row(key)
    assert row is not None and row["status"] == SENT and _sends(rig, key) == 1


# -- $batch as Graph accepts it --------------------------------------------------------------


def test_a_sync_after_six_messages_were_marked_read_fetches_them_in_one_parallel_batch(
    rig: Rig,
) -> None:
    ids = [rig.graph.add_message(ADDRESS, subject=f"m{i}") for i in range(6)]
    cursor = rig.provider.sync(None).cursor
    for pid in ids:
        rig.graph.mark_read(ADDRESS, pid)
    result = rig.provider.sync(cursor)
    assert {m.provider_id for m in result.messages} == set(ids)
    assert [r.status for r in rig.graph.requests if r.path.endswith("/$batch")] == [200]


@pytest.mark.parametrize(("people", "days", "calls"), [(100, 7, 5), (25, 200, 8)])
def test_schedules_of_many_people_over_many_days_go_in_batches_graph_accepts(
    rig: Rig, people: int, days: int, calls: int
) -> None:
    who = [f"rep{i}@contoso.example" for i in range(people)]
    for i, address in enumerate(who):
        rig.graph.add_mailbox(address)
        rig.graph.add_event(
            address, "Call", T0 + timedelta(hours=i % 7), T0 + timedelta(hours=i % 7, minutes=30)
        )
    busy = rig.provider.schedules(who, Interval(T0, T0 + timedelta(days=days)))
    assert busy["rep8@contoso.example"] == [
        Interval(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30))
    ]
    assert len([r for r in rig.graph.requests if r.path.endswith("/getSchedule")]) == calls
    assert all(r.status == 200 for r in rig.graph.requests if r.path.endswith("$batch"))
    assert not rig.sleeps  # nothing throttled: Graph paces a parallel batch itself


def _raw_batch(rig: Rig, requests_: list[dict[str, Any]]) -> requests.Response:
    return rig.session.post(
        f"{rig.graph.graph_url}/$batch",
        json={"requests": requests_},
        headers={"Authorization": f"Bearer {rig.auth().token()}"},
        timeout=10,
    )


def test_the_emulator_refuses_a_batch_mixing_chains_and_parallel_requests(rig: Rig) -> None:
    def get(i: int, depends: list[str] | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"id": str(i), "method": "GET", "url": "/me/messages?$top=1"}
        if depends:
            item["dependsOn"] = depends
        return item

    mixed = _raw_batch(rig, [get(0), get(1), get(2), get(3), get(4, ["0"])])
    assert mixed.status_code == 400
    assert mixed.json()["error"]["message"] == (
        "Batch should be either fully sequential or fully parallel."
    )
    parallel = _raw_batch(rig, [get(i) for i in range(20)])
    assert parallel.status_code == 200
    assert {r["status"] for r in parallel.json()["responses"]} == {200}
    sequential = _raw_batch(rig, [get(0)] + [get(i, [str(i - 1)]) for i in range(1, 6)])
    on_one = _raw_batch(rig, [get(0)] + [get(i, ["0"]) for i in range(1, 6)])
    assert sequential.status_code == on_one.status_code == 200


# -- transactionId and extended properties as Graph treats them --------------------------------


def _invite(description: str = "") -> Invite:
    return Invite(
        key="meet:t2:1",
        summary="Pricing call",
        start=T0,
        end=T0 + timedelta(minutes=30),
        zone="Asia/Kolkata",
        organizer=Address(ADDRESS),
        attendees=(Address("client1@customer.example", "Client One"),),
        description=description,
    )


def test_the_emulator_refuses_a_transaction_id_reused_for_another_event(rig: Rig) -> None:
    url = f"{rig.graph.graph_url}/me/events"
    headers = {"Authorization": f"Bearer {rig.auth().token()}"}
    body = {
        "subject": "Call",
        "start": {"dateTime": "2026-11-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-02T09:30:00", "timeZone": "UTC"},
        "transactionId": "7f3b2a8e-0000-4000-8000-000000000001",
    }
    first = rig.session.post(url, json=body, headers=headers, timeout=10).json()
    again = rig.session.post(url, json=body, headers=headers, timeout=10).json()
    assert first["id"] == again["id"]
    other = rig.session.post(url, json=dict(body, subject="Other"), headers=headers, timeout=10)
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "ErrorDuplicateTransactionId"


def test_an_invitation_made_again_with_a_changed_body_updates_the_event_it_made(
    rig: Rig,
) -> None:
    first = rig.provider.create_event(_invite("Agenda: pricing"))
    again = rig.provider.create_event(_invite("Agenda: pricing and the renewal date"))
    assert first == again and len(rig.graph.boxes[ADDRESS].events) == 1
    assert rig.graph.boxes[ADDRESS].events[first].body == "Agenda: pricing and the renewal date"


def test_keys_that_differ_only_in_case_never_find_each_others_mail(rig: Rig) -> None:
    # Graph's $filter on an extended property's value ignores case.
    upper = rig.provider.draft(outgoing(ADDRESS, key="k:Ab"), key="k:Ab")
    lower = rig.provider.draft(outgoing(ADDRESS, key="k:ab"), key="k:ab")
    assert rig.provider.find_draft("k:ab") == lower and rig.provider.find_draft("k:Ab") == upper
    rig.provider.send_draft(upper)
    assert rig.provider.find_sent("k:ab") is None
    found = rig.provider.find_sent("k:Ab")
    assert found is not None and found.provider_id == upper


# -- how sign-ins end ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        ("authorization_declined", "declined"),
        ("expired_token", "expired"),
        ("bad_verification_code", "did not recognise the code"),
    ],
)
def test_a_device_code_sign_in_that_ends_without_tokens_says_how(
    graph: GraphEmulator, outcome: str, said: str
) -> None:
    graph.device_outcome = outcome
    session = graph.session()
    creds = MemoryCredentials()
    with pytest.raises(SignInFailed) as err:
        connect_outlook_device(
            "asha",
            CLIENT_ID,
            graph.authority,
            Vault(new_key()),
            creds,
            prompt=lambda _text: None,
            http_client=session,
            custom_authority=True,
        )
    session.close()
    assert not isinstance(err.value, Transient)
    assert said in str(err.value) and outcome in str(err.value)
    assert "followup connect outlook --mailbox asha" in str(err.value)
    assert creds.load_credentials("asha") is None


# -- what a refusal means ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "raised", "said"),
    [
        (403, "InvalidAuthenticationToken", "Access token has expired.", AuthRevoked, ""),
        (
            403,
            "Authorization_RequestDenied",
            "The user or administrator has not consented to use the application.",
            AuthRevoked,
            "",
        ),
        (403, "ErrorAccessDenied", "User does not have a valid license.", AccessDenied, "licence"),
        (
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            AccessDenied,
            "not enabled",
        ),
        (
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
            AccessDenied,
            "permission",
        ),
    ],
)
def test_only_token_and_consent_refusals_need_the_rep_to_reconnect(
    rig: Rig, status: int, code: str, message: str, raised: type[Exception], said: str
) -> None:
    rig.graph.inject("GET", r"/delta$", status=status, code=code, message=message)
    with pytest.raises(raised) as err:
        rig.provider.sync(None)
    assert type(err.value) is raised and said in str(err.value)


def test_a_mailbox_without_a_licence_is_marked_for_an_administrator_not_for_reconnecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    with GraphWorld.start(["asha"]) as world:
        url = f"sqlite:///{tmp_path / 'followup.db'}"
        config = world.write_config(tmp_path, db_url=url)
        store = Store.open(url)
        world.connect_all(store, Vault.from_environment())
        message = "User does not have a valid license."
        world.graph.inject("GET", r"/delta$", status=403, code="ErrorAccessDenied", message=message)
        connect = world.connect()
        Worker(config, owner="w", clock=lambda: DEMO_NOW, connect=connect).run(once=True)
        connect.close()
        [mail] = [r for r in store.streams("asha") if r["kind"] == "mail"]
        store.close()
    assert mail["state"] == ACCESS_DENIED and "licence" in mail["last_error"]
    assert mail["next_run_at"] == DEMO_NOW + timedelta(hours=1)


def test_the_demo_plans_the_same_on_outlook_as_on_gmail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outlook's Sent Items keep no In-Reply-To or References: the rep's replies thread by the
    conversation and the agent's notes are known by the key property. The demo's mail, on
    Outlook, plans and sends what it does on Gmail, where the headers stay."""
    monkeypatch.setenv("FOLLOWUP_SECRET_KEY", new_key())
    outcomes = []
    for world in (GraphWorld.start(), GmailWorld.start()):
        with world:
            url = f"sqlite:///{tmp_path / type(world).__name__}.db"
            config = world.write_config(tmp_path / type(world).__name__, db_url=url)
            store = Store.open(url)
            world.connect_all(store, Vault.from_environment())
            connect = world.connect() if isinstance(world, GraphWorld) else gmail_connect()
            try:
                run_until_done(config, url, DEMO_NOW, timedelta(seconds=6), connect)
            finally:
                connect.close()
            outcomes.append(
                sorted((r["kind"], r["mailbox"], r["client"], r["status"]) for r in store.outbox())
            )
            store.close()
    # What reaches people is the same; rows planned and then cancelled may differ, as Gmail
    # threads a reply whose subject changed apart from its thread and Outlook does not.
    on_outlook, on_gmail = ([row for row in o if row[3] != "cancelled"] for o in outcomes)
    assert on_outlook == on_gmail
    # notes to clients went out too, not only the team's own mail
    assert {kind for kind, _, _, status in on_outlook if status == SENT} >= {"proposal", "digest"}


def test_bodies_are_fetched_twenty_to_a_batch(rig: Rig) -> None:
    ids = [rig.graph.add_message(ADDRESS, body=f"body {i}") for i in range(45)]
    before = len(rig.graph.graph_requests())
    got = rig.provider.fetch_bodies([*ids, "AAMkAGone"])
    assert len(rig.graph.graph_requests()) - before == 3  # 46 reads in $batch calls of 20
    assert got.found == {pid: f"body {i}" for i, pid in enumerate(ids)}
    assert list(got.failed) == ["AAMkAGone"]


def test_a_first_sync_reads_only_the_window_before_the_newest_message(rig: Rig) -> None:
    newest = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    recent = [
        rig.graph.add_message(ADDRESS, subject=f"recent {i}", received=newest - timedelta(days=i))
        for i in range(0, 80, 10)
    ]
    old = [
        rig.graph.add_message(ADDRESS, subject=f"old {i}", received=newest - timedelta(days=i))
        for i in range(120, 400, 40)
    ]
    sent = rig.graph.add_message(
        ADDRESS, folder="sentitems", subject="sent", received=newest - timedelta(days=1)
    )
    provider = rig.make_provider(first_sync_days=90)
    first = provider.sync(None)
    assert {m.provider_id for m in first.messages} == {*recent, sent}
    assert not first.full  # what the store has from before the window is not gone
    assert not set(old) & {m.provider_id for m in first.messages}
    # the window is kept by the delta links: new mail comes on the next round
    later = rig.graph.add_message(ADDRESS, subject="new", received=newest + timedelta(hours=1))
    second = provider.sync(first.cursor)
    assert [m.provider_id for m in second.messages] == [later]
    # without a window the first sync is the whole folder, as before
    assert len(rig.make_provider().sync(None).messages) == len(recent) + len(old) + 2


def test_message_delta_takes_a_filter_on_the_reception_time_alone(rig: Rig) -> None:
    response = rig.session.get(
        f"{rig.graph.graph_url}/me/mailFolders/inbox/messages/delta",
        params={"$filter": "subject eq 'x'"},
        headers={"Authorization": f"Bearer {rig.auth().token(False)}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ErrorInvalidUrlQueryFilter"
