"""The Gmail and Google Calendar adapters, run with the real Google client against the emulator."""

from __future__ import annotations

import base64
import json
import re
import threading
import webbrowser
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httplib2
import pytest
import requests
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from googleapiclient.errors import HttpError
from hypothesis import given
from hypothesis import strategies as st

from agent.compose import Rendered, build_message
from agent.errors import (
    AuthRevoked,
    CursorExpired,
    Permanent,
    SendLimitReached,
    Transient,
)
from agent.model import Address, Interval, Invite
from agent.providers.gmail import (
    GmailProvider,
    GoogleCalendarProvider,
    classify,
    event_id_for,
    google_services,
    open_google,
    retry_after_seconds,
)
from agent.providers.google_auth import SCOPES, connect_gmail, load_credentials
from agent.providers.protocol import (
    KEY_HEADER,
    CalendarProvider,
    MailProvider,
    first_sync_of,
    key_tag,
)
from agent.providers.ratelimit import TokenBucket
from agent.providers.tokens import MemoryCredentials, Vault, new_key
from tests.fakes.gmail import GoogleEmulator, raw_message
from tests.provider_contract import CalendarProviderContract, MailProviderContract

ADDRESS = "rep@example.com"


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(address=ADDRESS) as server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _free_bucket() -> TokenBucket:
    return TokenBucket(1e9, 1e9)


_open: list[GmailProvider | GoogleCalendarProvider] = []


@pytest.fixture(autouse=True)
def _close_providers() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def make_gmail(
    emu: GoogleEmulator, sleeps: Sleeps, credentials: Any = None, **kw: Any
) -> GmailProvider:
    factory = google_services(credentials or Credentials(token="t"), root=emu.root)
    provider = GmailProvider("rep", ADDRESS, factory, bucket=_free_bucket(), sleep=sleeps, **kw)
    _open.append(provider)
    return provider


def make_calendar(emu: GoogleEmulator, sleeps: Sleeps) -> GoogleCalendarProvider:
    factory = google_services(Credentials(token="t"), root=emu.root)
    provider = GoogleCalendarProvider("rep", factory, bucket=_free_bucket(), sleep=sleeps)
    _open.append(provider)
    return provider


@pytest.fixture
def gmail(emu: GoogleEmulator, sleeps: Sleeps) -> GmailProvider:
    return make_gmail(emu, sleeps)


@pytest.fixture
def calendar(emu: GoogleEmulator, sleeps: Sleeps) -> GoogleCalendarProvider:
    return make_calendar(emu, sleeps)


def outgoing(key: str, *, to: str = "client1@customer.example") -> EmailMessage:
    """The rep's answer to ``raw_message(1)``, threaded as Gmail requires (headers, subject)."""
    msg = EmailMessage()
    msg["From"] = ADDRESS
    msg["To"] = to
    msg["Subject"] = "Re: Question 1"
    msg["Message-ID"] = f"<{key}@followup.test>"
    msg["In-Reply-To"] = "<in-1@customer.example>"
    msg["References"] = "<in-1@customer.example>"
    msg.set_content("Thank you, the premium plan is 40 EUR per seat.")
    return msg


# --------------------------------------------------------------------------- contract


class _Harness:
    def __init__(self, emu: GoogleEmulator, provider: GmailProvider) -> None:
        self.emu = emu
        self.provider = provider
        self.address = ADDRESS

    def deliver(self, raw: bytes) -> None:
        self.emu.deliver(raw)


class TestGmailContract(MailProviderContract):
    @pytest.fixture
    def harness(self, emu: GoogleEmulator, gmail: GmailProvider) -> _Harness:
        return _Harness(emu, gmail)


class _CalendarHarness:
    def __init__(self, calendar: GoogleCalendarProvider) -> None:
        self.calendar = calendar
        self.address = ADDRESS


class TestGoogleCalendarContract(CalendarProviderContract):
    @pytest.fixture
    def calendar_harness(self, calendar: GoogleCalendarProvider) -> _CalendarHarness:
        return _CalendarHarness(calendar)


def test_providers_keep_the_protocols(gmail: GmailProvider, calendar: GoogleCalendarProvider):
    assert isinstance(gmail, MailProvider)
    assert isinstance(calendar, CalendarProvider)


# --------------------------------------------------------------------------- connect


class _ConsentingBrowser(webbrowser.BaseBrowser):
    """Stands in for the rep's browser: opens the consent URL and follows the redirect back
    to the loopback listener, as a person clicking "Allow" would."""

    def __init__(self) -> None:
        super().__init__("consent")
        self.visited: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.visited.append(url)

        def visit() -> None:
            with requests.Session() as session:
                session.trust_env = False
                session.get(url, timeout=10)

        threading.Thread(target=visit, daemon=True).start()
        return True


@pytest.fixture
def browser() -> _ConsentingBrowser:
    controller = _ConsentingBrowser()
    webbrowser.register("followup-test-consent", None, controller)
    return controller


@pytest.fixture
def client_secrets(emu: GoogleEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The emulator speaks plain HTTP on loopback; oauthlib refuses that unless told.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    path = tmp_path / "client_secret.json"
    path.write_text(json.dumps(emu.client_secrets()))
    return path


def _connect(
    emu: GoogleEmulator, client_secrets: Path, browser: _ConsentingBrowser
) -> tuple[Vault, MemoryCredentials, str]:
    vault, store = Vault(new_key()), MemoryCredentials()
    account = connect_gmail(
        "rep",
        client_secrets,
        vault,
        store,
        flow_runner=lambda flow: flow.run_local_server(
            port=0, open_browser=True, browser="followup-test-consent", timeout_seconds=20
        ),
        api_endpoint=emu.root,
    )
    return vault, store, account


def test_connect_runs_the_loopback_flow_and_stores_a_sealed_grant(
    emu: GoogleEmulator, client_secrets: Path, browser: _ConsentingBrowser, sleeps: Sleeps
) -> None:
    emu.strict_auth = True
    vault, store, account = _connect(emu, client_secrets, browser)
    assert account == ADDRESS
    assert emu.consents == 1
    consent_url = browser.visited[0]
    assert consent_url.startswith(emu.auth_uri)
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in consent_url
    for scope in SCOPES:
        assert scope.rsplit("/", 1)[1] in consent_url
    sealed = store.blobs["rep"]
    refresh_token = next(iter(emu.refresh_tokens))
    assert refresh_token.encode() not in sealed
    info = json.loads(vault.open(sealed))
    assert info["refresh_token"] == refresh_token
    assert info["token_uri"] == emu.token_uri
    assert info["account"] == ADDRESS

    credentials = load_credentials("rep", vault, store)
    assert refresh_token not in repr(credentials) and "rep" in repr(credentials)
    emu.deliver(raw_message(1))
    result = make_gmail(emu, sleeps, credentials).sync(None)
    assert [m.message_id for m in result.messages] == ["<in-1@customer.example>"]


def test_refresh_is_single_flight_and_written_back(
    emu: GoogleEmulator, client_secrets: Path, browser: _ConsentingBrowser
) -> None:
    vault, store, _ = _connect(emu, client_secrets, browser)
    before = store.blobs["rep"]
    first = load_credentials("rep", vault, store)
    second = load_credentials("rep", vault, store)
    asked = emu.token_requests
    with requests.Session() as session:
        session.trust_env = False
        first.refresh(Request(session))
        second.refresh(Request(session))
    assert emu.token_requests == asked + 1
    assert second.token == first.token
    assert store.blobs["rep"] != before
    assert json.loads(vault.open(store.blobs["rep"]))["token"] == first.token


def test_revoked_grant_raises_auth_revoked_without_looping(
    emu: GoogleEmulator, client_secrets: Path, browser: _ConsentingBrowser, sleeps: Sleeps
) -> None:
    vault, store, _ = _connect(emu, client_secrets, browser)
    provider = make_gmail(emu, sleeps, load_credentials("rep", vault, store))
    provider.sync(None)
    emu.revoke()
    asked = emu.token_requests
    with pytest.raises(AuthRevoked) as info:
        provider.sync(None)
    assert info.value.mailbox == "rep"
    assert emu.token_requests - asked <= 2
    assert sleeps == []


def test_missing_grant_is_auth_revoked() -> None:
    with pytest.raises(AuthRevoked):
        load_credentials("nobody", Vault(new_key()), MemoryCredentials())


def test_open_google_gives_both_providers_on_the_stored_grant(
    emu: GoogleEmulator, client_secrets: Path, browser: _ConsentingBrowser
) -> None:
    emu.strict_auth = True
    vault, store, account = _connect(emu, client_secrets, browser)
    mail, cal = open_google("rep", account, vault, store, root=emu.root)
    _open.extend([mail, cal])
    emu.deliver(raw_message(1))
    day = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    emu.add_event(day, day + timedelta(hours=1))
    assert len(mail.sync(None).messages) == 1
    assert cal.busy(Interval(day, day + timedelta(days=1))) == [
        Interval(day, day + timedelta(hours=1))
    ]


def test_declined_scope_is_refused(
    emu: GoogleEmulator, client_secrets: Path, browser: _ConsentingBrowser
) -> None:
    partial = Credentials(
        token="t", refresh_token="rt", scopes=list(SCOPES), granted_scopes=[SCOPES[0]]
    )
    store = MemoryCredentials()
    with pytest.raises(Permanent, match="did not grant"):
        connect_gmail(
            "rep", client_secrets, Vault(new_key()), store, flow_runner=lambda flow: partial
        )
    assert store.blobs == {}


# --------------------------------------------------------------------------- sync


def test_full_sync_reads_headers_labels_and_skips_malformed(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    for n in range(1, 121):
        emu.deliver(raw_message(n, extra={"List-Id": "<news.customer.example>"} if n == 7 else {}))
    bad_date = emu.deliver(raw_message(200).replace(b"Date: ", b"Date: not a date, ", 1))
    no_from = emu.deliver(re.sub(rb"From: [^\r]*\r\n", b"", raw_message(201)))
    emu.deliver(raw_message(202), labels=["SPAM"])
    emu.deliver(raw_message(203, sender=ADDRESS, to=ADDRESS), labels=["SENT", "INBOX"])
    profile_history = emu.history_id
    emu.reset_counters()

    result = gmail.sync(None)

    assert result.full
    assert result.cursor == str(profile_history)
    ids = [m.message_id for m in result.messages]
    assert len(ids) == len(set(ids)) == 121
    assert "<in-202@customer.example>" not in ids
    skipped = dict(result.skipped)
    assert skipped.keys() == {bad_date, no_from}
    assert skipped[bad_date].startswith("unreadable Date header 'not a date")
    assert skipped[no_from] == "no From address"
    seventh = next(m for m in result.messages if m.message_id == "<in-7@customer.example>")
    assert seventh.headers["list-id"] == "<news.customer.example>"
    assert seventh.sender == Address("client7@customer.example", "Client 7")
    assert seventh.date == datetime(2026, 11, 2, 9, 7, tzinfo=UTC)
    assert "INBOX" in seventh.labels
    to_self = next(m for m in result.messages if m.message_id == "<in-203@customer.example>")
    assert {"SENT", "INBOX"} <= to_self.labels
    # 1 profile + 1 list page + 3 batches of at most 50
    assert emu.requests == 5
    assert emu.calls.count("messages.get") == 123  # SPAM is not listed


def test_incremental_sync_reports_changes_and_deletions(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    old = [emu.deliver(raw_message(n)) for n in range(1, 4)]
    first = gmail.sync(None)
    new = emu.deliver(raw_message(10))
    emu.delete(old[0])
    emu.add_label(old[1], "IMPORTANT")
    fleeting = emu.deliver(raw_message(11))
    emu.delete(fleeting)
    emu.add_label(old[2], "TRASH")

    second = gmail.sync(first.cursor)

    assert not second.full
    assert [m.provider_id for m in second.messages] == [new, old[1]]
    assert "IMPORTANT" in second.messages[1].labels
    assert set(second.deleted) == {old[0], old[2]}
    assert fleeting not in second.deleted
    assert second.cursor == str(emu.history_id)
    third = gmail.sync(second.cursor)
    assert third.messages == () and third.deleted == ()


def test_incremental_sync_pages_through_history(emu: GoogleEmulator, sleeps: Sleeps) -> None:
    provider = make_gmail(emu, sleeps, page_size=7)
    cursor = provider.sync(None).cursor
    ids = [emu.deliver(raw_message(n)) for n in range(30)]
    result = provider.sync(cursor)
    assert [m.provider_id for m in result.messages] == ids
    assert emu.calls.count("history.list") == 5


def test_stale_cursor_expires_and_full_sync_loses_and_duplicates_nothing(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    first = gmail.sync(None)
    ids = {emu.deliver(raw_message(n)) for n in range(40)}
    emu.expire_history()
    with pytest.raises(CursorExpired):
        gmail.sync(first.cursor)
    again = gmail.sync(None)
    listed = [m.provider_id for m in again.messages]
    assert len(listed) == len(set(listed))
    assert set(listed) == ids
    later = emu.deliver(raw_message(99))
    assert [m.provider_id for m in gmail.sync(again.cursor).messages] == [later]


def test_fetch_body_returns_the_plain_text(emu: GoogleEmulator, gmail: GmailProvider) -> None:
    mid = emu.deliver(raw_message(1, body="Grüße aus Köln, what does it cost?"))
    assert "Grüße aus Köln" in gmail.fetch_body(mid)
    with pytest.raises(Permanent):
        gmail.fetch_body("no-such-id")


def test_bodies_are_fetched_fifty_to_a_batch(emu: GoogleEmulator, gmail: GmailProvider) -> None:
    ids = [emu.deliver(raw_message(n, body=f"Body number {n}.")) for n in range(120)]
    emu.reset_counters()
    got = gmail.fetch_bodies([*ids, "no-such-id"])
    assert emu.requests == 3  # 121 reads in batches of 50, not 121 requests
    assert [len(b) for b in emu.batches] == [50, 50, 21]
    assert emu.quota_units == 120 * 5  # each answered part costs its own units
    assert {pid: "Body number" in text for pid, text in got.found.items()} == dict.fromkeys(
        ids, True
    )
    assert "Body number 7." in got.found[ids[7]]
    assert list(got.failed) == ["no-such-id"]


def test_the_emulator_threads_by_headers_and_subject_as_gmail_does(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    """Gmail's "Manage threads" guide: a message joins a thread only when its References or
    In-Reply-To name a message of the thread and the Subject matches; threadId alone is not
    enough."""
    first = emu.deliver(raw_message(1))
    thread = emu.messages[first].thread_id
    ref = {"In-Reply-To": "<in-1@customer.example>", "References": "<in-1@customer.example>"}
    reply = emu.deliver(raw_message(2, subject="RE:  question 1", extra=ref))
    new_subject = emu.deliver(raw_message(3, subject="Another matter", extra=ref))
    no_headers = emu.deliver(raw_message(4, subject="Question 1"))
    assert emu.messages[reply].thread_id == thread
    assert emu.messages[new_subject].thread_id != thread
    assert emu.messages[no_headers].thread_id != thread

    bare = EmailMessage()
    bare["From"], bare["To"], bare["Subject"] = (
        ADDRESS,
        "client1@customer.example",
        "Re: Question 1",
    )
    bare.set_content("No threading headers.")
    alone = gmail.send_draft(gmail.draft(bare, key="k-bare", thread_id=thread))
    threaded = gmail.send_draft(gmail.draft(outgoing("k-ok"), key="k-ok", thread_id=thread))
    assert alone.thread_id != thread
    assert threaded.thread_id == thread


# --------------------------------------------------------------------------- first sync

WINDOW_NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_a_first_sync_reads_the_window_newest_first_a_chunk_at_a_time(
    emu: GoogleEmulator, sleeps: Sleeps
) -> None:
    # 400 messages, one every 12 hours back from the clock: 200 days, 180 inside 90 days.
    when = {
        emu.deliver(raw_message(n, date=WINDOW_NOW - timedelta(hours=12 * n)), internal=t): t
        for n in range(400)
        for t in [WINDOW_NOW - timedelta(hours=12 * n)]
    }
    inside = {pid for pid, t in when.items() if t >= WINDOW_NOW - timedelta(days=90)}
    gmail = make_gmail(emu, sleeps, first_sync_days=90, first_sync_chunk=50)
    first = gmail.sync(None)
    newest = sorted(when, key=when.__getitem__, reverse=True)
    assert {m.provider_id for m in first.messages} == set(newest[:50])  # the newest 50 first
    assert not first.full  # mail older than the window stays where it is
    progress = first_sync_of(first.cursor)
    assert progress is not None and progress.floor == WINDOW_NOW - timedelta(days=90)
    assert 0.2 < progress.done < 0.35  # 50 of 180 messages, evenly spread

    seen = {m.provider_id for m in first.messages}
    cursor, dones, passes = first.cursor, [progress.done], 1
    arrived = emu.deliver(raw_message(999, date=WINDOW_NOW), internal=WINDOW_NOW)
    while first_sync_of(cursor) is not None:
        result = gmail.sync(cursor)
        seen |= {m.provider_id for m in result.messages}
        cursor, passes = result.cursor, passes + 1
        dones.append(first_sync_of(cursor).done if first_sync_of(cursor) else 1.0)
    assert seen == inside | {arrived}  # the window, what arrived meanwhile, nothing older
    assert passes == 4 and dones == sorted(dones) and dones[-1] == 1.0
    assert cursor.isdigit()  # from now on a plain history id
    later = emu.deliver(raw_message(1000, date=WINDOW_NOW), internal=WINDOW_NOW)
    assert [m.provider_id for m in gmail.sync(cursor).messages] == [later]


# --------------------------------------------------------------------------- throttling


def test_rate_limit_storm_is_ridden_out_honouring_retry_after(
    emu: GoogleEmulator, gmail: GmailProvider, sleeps: Sleeps
) -> None:
    for n in range(60):
        emu.deliver(raw_message(n))
    emu.inject(403, times=1, match="/profile$", reason="userRateLimitExceeded")
    emu.inject(429, times=2, match="/messages$", retry_after=3)
    emu.inject(429, times=4, match=r"/messages/\w+$", retry_after=1)  # parts inside a batch
    result = gmail.sync(None)
    assert len(result.messages) == 60
    assert len(sleeps) == 4
    assert sleeps[1] >= 3 and sleeps[2] >= 3 and sleeps[3] >= 1
    # only the four failed parts were asked again
    assert emu.calls.count("messages.get") == 60


def test_reads_give_up_after_the_retry_budget(emu: GoogleEmulator, gmail: GmailProvider):
    emu.inject(503, times=10, match="/profile")
    with pytest.raises(Transient):
        gmail.sync(None)
    assert emu.calls.count("getProfile") == 0


def test_sends_are_never_retried(emu: GoogleEmulator, gmail: GmailProvider, sleeps: Sleeps) -> None:
    draft_id = gmail.draft(outgoing("k1"), key="k1")
    emu.inject(429, times=1, match="/drafts/send", retry_after=1)
    with pytest.raises(Transient):
        gmail.send_draft(draft_id)
    assert emu.units["drafts.send"] == 0 and sleeps == []
    assert emu.sent() == []
    sent = gmail.send_draft(draft_id)
    assert [m.id for m in emu.sent()] == [sent.provider_id]


def test_daily_send_limit_is_reported(emu: GoogleEmulator, gmail: GmailProvider) -> None:
    draft_id = gmail.draft(outgoing("k2"), key="k2")
    emu.inject(403, match="/drafts/send", reason="dailyLimitExceeded")
    with pytest.raises(SendLimitReached) as info:
        gmail.send_draft(draft_id)
    assert info.value.retry_after and info.value.retry_after >= 3600
    assert gmail.find_draft("k2") == draft_id


# --------------------------------------------------------------------------- exactly once


def test_send_rewrites_message_id_and_reads_it_back(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    thread = emu.deliver(raw_message(1))
    draft_id = gmail.draft(outgoing("k3"), key="k3", thread_id=thread)
    sent = gmail.send_draft(draft_id)
    assert sent.thread_id == thread
    assert sent.message_id.endswith("@mail.gmail.com>")
    assert emu.header(sent.provider_id, "Message-ID") == sent.message_id
    assert emu.header(sent.provider_id, KEY_HEADER) == key_tag("k3")


def test_crash_after_draft_created_is_reconciled_to_one_send(
    emu: GoogleEmulator, gmail: GmailProvider, sleeps: Sleeps
) -> None:
    gmail.draft(outgoing("k4"), key="k4")
    # a new process after the crash: it knows only the key
    again = make_gmail(emu, sleeps)
    assert again.find_sent("k4") is None
    draft_id = again.find_draft("k4")
    assert draft_id is not None
    again.send_draft(draft_id)
    assert again.find_draft("k4") is None
    assert len(emu.sent()) == 1


def test_crash_after_send_accepted_is_found_in_sent(
    emu: GoogleEmulator, gmail: GmailProvider, sleeps: Sleeps
) -> None:
    for n in range(5):
        other = gmail.draft(outgoing(f"other{n}"), key=f"other{n}")
        gmail.send_draft(other)
    draft_id = gmail.draft(outgoing("k5"), key="k5")
    emu.lose_response("/drafts/send")
    with pytest.raises(Transient):
        gmail.send_draft(draft_id)
    found = make_gmail(emu, sleeps).find_sent("k5")
    assert found is not None
    assert emu.header(found.provider_id, KEY_HEADER) == key_tag("k5")
    assert found.message_id == emu.header(found.provider_id, "Message-ID")
    assert len(emu.sent()) == 6
    assert gmail.find_draft("k5") is None


def test_crash_after_send_returned_but_before_recording(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    draft_id = gmail.draft(outgoing("k6"), key="k6")
    sent = gmail.send_draft(draft_id)  # the outbox dies before it stores this
    found = gmail.find_sent("k6")
    assert found == sent
    assert gmail.find_draft("k6") is None


def test_sync_ignores_drafts_until_sent(emu: GoogleEmulator, gmail: GmailProvider) -> None:
    cursor = gmail.sync(None).cursor
    draft_id = gmail.draft(outgoing("k7"), key="k7")
    assert gmail.sync(None).messages == ()
    step = gmail.sync(cursor)
    assert step.messages == ()
    sent = gmail.send_draft(draft_id)
    after = gmail.sync(step.cursor)
    assert [m.provider_id for m in after.messages] == [sent.provider_id]
    assert after.messages[0].headers[KEY_HEADER.lower()] == key_tag("k7")


# --------------------------------------------------------------------------- calendar


def test_events_sync_full_then_incremental_then_expired(
    emu: GoogleEmulator, calendar: GoogleCalendarProvider
) -> None:
    base = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    ids = [
        emu.add_event(base + timedelta(hours=h), base + timedelta(hours=h, minutes=30))
        for h in range(5)
    ]
    all_day = emu.add_event(base, base + timedelta(days=1), "Holiday", all_day=True)
    calendar._page_size = 2
    full = calendar.events(None)
    assert full.full and len(full.events) == 6
    holiday = next(e for e in full.events if e.provider_id == all_day)
    # all-day in Europe/Berlin: midnight local is 23:00 UTC the day before
    assert holiday.all_day and holiday.start == datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
    emu.cancel_event(ids[0])
    moved = emu.add_event(base + timedelta(days=1), base + timedelta(days=1, hours=1), "New")
    step = calendar.events(full.cursor)
    assert not step.full
    assert [e.provider_id for e in step.events] == [moved]
    assert step.deleted == (ids[0],)
    emu.expire_sync_tokens()
    with pytest.raises(CursorExpired):
        calendar.events(step.cursor)


def test_busy_merges_and_chunks_long_windows(
    emu: GoogleEmulator, calendar: GoogleCalendarProvider
) -> None:
    day = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    emu.add_event(day, day + timedelta(hours=1))
    emu.add_event(day + timedelta(minutes=30), day + timedelta(hours=2))
    emu.add_event(day + timedelta(hours=3), day + timedelta(hours=4), transparent=True)
    far = day + timedelta(days=100)
    emu.add_event(far, far + timedelta(hours=1))
    window = Interval(day - timedelta(days=1), day + timedelta(days=150))
    busy = calendar.busy(window)
    assert busy == [
        Interval(day, day + timedelta(hours=2)),
        Interval(far, far + timedelta(hours=1)),
    ]
    assert emu.calls.count("freebusy.query") == 3


def test_invitation_created_twice_makes_one_event(
    emu: GoogleEmulator, calendar: GoogleCalendarProvider
) -> None:
    invite = Invite(
        key="proposal:t9:1",
        summary="Pricing call",
        start=datetime(2026, 11, 3, 8, 0, tzinfo=UTC),
        end=datetime(2026, 11, 3, 8, 30, tzinfo=UTC),
        zone="Asia/Kolkata",
        organizer=Address(ADDRESS),
        attendees=(Address("client1@customer.example", "Client One"),),
    )
    first = calendar.create_event(invite)
    second = calendar.create_event(invite)
    assert first == second == event_id_for(invite.key)
    assert list(emu.events) == [first]
    assert emu.notifications == [(first, "all")]
    event = emu.events[first]
    assert event["start"] == {"dateTime": "2026-11-03T13:30:00+05:30", "timeZone": "Asia/Kolkata"}
    assert event["attendees"] == [
        {"email": "client1@customer.example", "displayName": "Client One"}
    ]
    quiet = Invite(**{**invite.__dict__, "key": "proposal:t9:2", "send_updates": False})
    calendar.create_event(quiet)
    assert emu.notifications[-1] == (event_id_for("proposal:t9:2"), "none")


def test_invitation_retried_after_a_lost_answer_is_created_once(
    emu: GoogleEmulator, calendar: GoogleCalendarProvider
) -> None:
    invite = Invite(
        key="proposal:t10:1",
        summary="Demo",
        start=datetime(2026, 11, 3, 8, 0, tzinfo=UTC),
        end=datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
        zone="UTC",
        organizer=Address(ADDRESS),
        attendees=(),
    )
    emu.lose_response("/events")
    assert calendar.create_event(invite) == event_id_for(invite.key)
    assert len(emu.events) == 1 and len(emu.notifications) == 1


def _hold(key: str) -> Invite:
    return Invite(
        key=key,
        summary="Tentative: Client One [followup hold]",
        start=datetime(2026, 11, 3, 8, 0, tzinfo=UTC),
        end=datetime(2026, 11, 3, 8, 30, tzinfo=UTC),
        zone="Asia/Kolkata",
        organizer=Address(ADDRESS),
        attendees=(Address(ADDRESS),),
        send_updates=False,
        tentative=True,
    )


def test_hold_is_tentative_without_attendees_and_deleted_without_notice(
    emu: GoogleEmulator, calendar: GoogleCalendarProvider
) -> None:
    event_id = calendar.create_event(_hold("hold/1"))
    event = emu.events[event_id]
    assert event["status"] == "tentative" and "attendees" not in event
    assert event.get("transparency", "opaque") == "opaque"
    calendar.delete_event(event_id)
    assert emu.events[event_id]["status"] == "cancelled"
    assert emu.notifications == [(event_id, "none"), (event_id, "none")]
    calendar.delete_event(event_id)  # 410 Gone
    calendar.delete_event(event_id_for("never-made"))  # 404
    assert emu.calls.count("events.delete") == 1  # the two refused deletes changed nothing


def test_delete_is_retried_through_a_rate_limit_and_a_refusal_is_permanent(
    emu: GoogleEmulator, calendar: GoogleCalendarProvider, sleeps: Sleeps
) -> None:
    event_id = calendar.create_event(_hold("hold/2"))
    emu.inject(429, match="DELETE /calendar", retry_after=2)
    calendar.delete_event(event_id)
    assert sleeps and emu.events[event_id]["status"] == "cancelled"
    emu.inject(403, match="DELETE /calendar", reason="forbidden")
    with pytest.raises(Permanent):
        calendar.delete_event(event_id_for("hold/3"))


@given(st.text(min_size=1, max_size=300))
def test_event_ids_are_valid_base32hex_and_stable(key: str) -> None:
    eid = event_id_for(key)
    assert re.fullmatch(r"[a-v0-9]{5,1024}", eid)
    assert eid == event_id_for(key)


# --------------------------------------------------------------------------- classification


def _http_error(status: int, reason: str = "", headers: dict[str, str] | None = None) -> HttpError:
    resp = httplib2.Response({"status": str(status), **(headers or {})})
    body = {"error": {"code": status, "message": "m", "errors": [{"reason": reason}]}}
    return HttpError(resp, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "reason", "sending", "expected"),
    [
        (429, "rateLimitExceeded", False, Transient),
        (500, "backendError", False, Transient),
        (503, "", True, Transient),
        (403, "rateLimitExceeded", False, Transient),
        (403, "userRateLimitExceeded", True, Transient),
        (403, "dailyLimitExceeded", True, SendLimitReached),
        (403, "quotaExceeded", True, SendLimitReached),
        (401, "authError", False, AuthRevoked),
        (400, "invalidArgument", False, Permanent),
        (403, "insufficientPermissions", False, Permanent),
        (404, "notFound", True, Permanent),
    ],
)
def test_classify(status: int, reason: str, sending: bool, expected: type) -> None:
    err = classify(_http_error(status, reason), mailbox="rep", sending=sending)
    assert type(err) is expected
    assert err.mailbox == "rep"


def test_retry_after_from_header_or_message() -> None:
    err = classify(_http_error(429, "rateLimitExceeded", {"retry-after": "17"}), mailbox="m")
    assert isinstance(err, Transient) and err.retry_after == 17
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after_seconds(None, "Retry after 2026-01-01T00:00:30.000Z", now=lambda: now) == 30
    assert retry_after_seconds("Thu, 01 Jan 2026 00:01:00 GMT", now=lambda: now) == 60
    assert retry_after_seconds(None, "no hint") is None


@pytest.mark.parametrize(
    "value",
    [
        "a@b.example",
        "Name <a@b.example>",
        '"Quoted, Name" <x@y.example>, b@c.example',
        "A <a@b.example>, B <b@c.example>,",
        "x@y.example (comment)",
        "undisclosed-recipients:;",
        "Team: a@b.example, c@d.example;",
        "no address here",
        "<only@angle.example>",
        "",
        # The email package folds the spaces between a name's words: found by Hypothesis.
        "A  A <a@b.example>",
        "A \t A <a@b.example>, B   C <c@d.example>",
    ],
)
def test_fast_address_path_agrees_with_the_email_package(value: str) -> None:
    from email.utils import getaddresses

    from agent.providers.gmail import _addresses

    expected = tuple(Address(a, n) for n, a in getaddresses([value]) if "@" in a)
    assert expected == _addresses(value)


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z .'-]{0,20}", fullmatch=True) | st.just(""),
            st.from_regex(r"[a-z0-9._+-]{1,12}@[a-z0-9-]{1,10}\.[a-z]{2,6}", fullmatch=True),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fast_address_path_agrees_on_generated_lists(pairs: list[tuple[str, str]]) -> None:
    from email.utils import formataddr, getaddresses

    from agent.providers.gmail import _addresses

    value = ", ".join(formataddr((n, a)) for n, a in pairs)
    expected = tuple(Address(a, n) for n, a in getaddresses([value]) if "@" in a)
    assert expected == _addresses(value)


def test_reply_to_a_subject_encoded_twice_adds_no_header(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    # The client's Subject is an encoded word of an encoded word of "Offer<CR><LF>Bcc: ...".
    # Gmail hands it over decoded once; the reply's draft must still carry no Bcc line.
    inner = "=?utf-8?q?Offer=0D=0ABcc:_spy@evil.example?="
    twice = f"=?utf-8?b?{base64.b64encode(inner.encode()).decode()}?="
    thread = emu.deliver(raw_message(1, subject=twice))
    incoming = next(m for m in gmail.sync(None).messages if m.thread_id == thread)
    reply = build_message(
        Rendered("unused", "Thank you.\n", None, "en", Path("t.j2")),
        sender=Address(ADDRESS, "Rep"),
        to=[incoming.sender],
        in_reply_to=incoming.message_id,
        reply_subject=incoming.subject,
        message_id="<followup.1@example.com>",
        key="k-inject",
    )
    draft_id = gmail.draft(reply, key="k-inject", thread_id=thread)
    stored = emu.messages[emu.drafts[draft_id]]
    head = stored.raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    assert b"\nbcc:" not in head.lower()
    assert emu.header(stored.id, "Bcc") is None
    assert emu.header(stored.id, "Subject") == "Re: Offer Bcc: spy@evil.example"


def test_a_draft_whose_header_would_split_into_lines_is_refused(
    emu: GoogleEmulator, gmail: GmailProvider
) -> None:
    # A header that reached the provider without the composer's cleaning: on Python 3.11.7 the
    # email package would decode the word and write its CR/LF as a Bcc line of its own. (The
    # outbox key itself is a digest in the header, so a client's Message-ID cannot do this.)
    message = outgoing("k-split")
    del message["Subject"]
    message["Subject"] = "Re: =?utf-8?q?Offer=0D=0ABcc:_spy=40evil.example?="
    with pytest.raises(Permanent, match="header lines of its own"):
        gmail.draft(message, key="k-split")
    assert emu.drafts == {}
