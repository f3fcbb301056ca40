"""Safe with other people's mailboxes: secrets stay out of logs, errors and the status screen;
webhooks reach only public https hosts; what the agent writes is private to its user."""

from __future__ import annotations

import configparser
import io
import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from rich.console import Console

from agent import config, logs, views
from agent.app import check_rules
from agent.errors import ConfigError, Permanent, WebhookRefused
from agent.model import Address, Invite
from agent.providers.local import LocalMailbox
from agent.providers.memory import MemoryMailbox
from agent.rules import parse_rules
from agent.store import FAILED, PLANNED, SENDING, Store
from agent.webhooks import check_addresses, check_url, post_json
from tests.test_outbox import _Hook, webhook

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEPLOY = Path(__file__).parent.parent / "deploy"

# Shaped like what Microsoft, Google and Slack hand out (made up, not live).
MS_ACCESS = (
    "EwBwA8l6BAAUO9chh8cJscQLmU+LSWpbnr0vmwwAAXCfD1p8x8A5zlQkVAdTQp3ZSdKyyJzGf3Ov5w4o4bBQx7lV"
)
MS_REFRESH = "M.C507_BAY.0.U.-Cq3GyuZzv3Jiv7fKx!Zn6*ZJi0fO$K9mPq2WbR7tYv"
ENTRA_REFRESH = (
    "0.ARwA6WgJJ9X2qk-3p1Ta1HPzY5nQ6Jjs3rhBkGD9YzQ7qH0cAAA.AgABAAEAAAD--DLA3VO7QrddgJg7Wev"
)
CLIENT_SECRET = "GOCSPX-s3cr3tV4lueOfTheClient"
HOOK_PATH = "/services/T0AC0ME00/B0HOOK000/sEcReTpAtHoFtHeHoOk"


# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"Graph said 401 for token {MS_ACCESS} at /me", "BAAUO9chh8", "token EwB[redacted]"),
        (f"refresh with {MS_REFRESH} failed", "Cq3GyuZzv3", "with M.C507_BAY.[redacted]"),
        (f"AADSTS70000: refresh_token {ENTRA_REFRESH} is expired", "6WgJJ9X2qk", "0.A[redacted]"),
        (f'{{"client_id": "abc", "client_secret": "{CLIENT_SECRET}"}}', "s3cr3t", '"abc"'),
        (f"{{'client_secret': '{CLIENT_SECRET}', 'x': 1}}", "s3cr3t", "'x': 1"),
        (
            f"404 Client Error: Not Found for url: https://hooks.slack.com{HOOK_PATH}",
            "sEcReT",
            "url: https://hooks.slack.com/[redacted]",
        ),
        (
            "POST https://acme.webhook.office.com/webhookb2/1a2b@3c4d/IncomingWebhook/9f8e/7d6c",
            "1a2b@3c4d",
            "https://acme.webhook.office.com/[redacted]",
        ),
        (
            "https://chat.googleapis.com/v1/spaces/AAAA0000/messages?key=K3Y&token=T0KEN",
            "AAAA0000",
            "https://chat.googleapis.com/[redacted]",
        ),
        (
            "connection failed: postgresql+psycopg://followup:hunter2@db.internal:5432/followup",
            "hunter2",
            "postgresql+psycopg://followup:[redacted]@db.internal:5432/followup",
        ),
    ],
)
def test_redaction_covers_what_real_providers_send(text: str, secret: str, kept: str) -> None:
    shown = logs.redact(text)
    assert secret not in shown
    assert kept in shown


@pytest.mark.parametrize(
    "text",
    [
        "Ewald Meyer wrote on 2026-11-02",
        "M.Sc. in 0.5 days; 0.Amount left",
        "GET https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta failed",
        "see https://acme.example/pricing",
    ],
)
def test_redaction_leaves_ordinary_text_alone(text: str) -> None:
    assert logs.redact(text) == text


def test_logs_never_carry_microsoft_tokens_or_webhook_paths() -> None:
    out = io.StringIO()
    logs.setup("text", stream=out)
    try:
        log = logging.getLogger("followup.test")
        log.warning("token refresh failed: %s", {"refresh_token": MS_REFRESH, "x": MS_ACCESS})
        try:
            raise RuntimeError(f"for url: https://hooks.slack.com{HOOK_PATH} ({ENTRA_REFRESH})")
        except RuntimeError:
            log.exception("post failed")
    finally:
        logging.getLogger().handlers.clear()
    text = out.getvalue()
    for secret in ("Cq3GyuZzv3", "BAAUO9chh8", "sEcReT", "6WgJJ9X2qk"):
        assert secret not in text
    assert "hooks.slack.com" in text


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'followup.db'}")
    yield store
    store.close()


def test_provider_errors_are_stored_redacted(sqlite_store: Store) -> None:
    action = webhook("https://hooks.example/x")
    sqlite_store.enqueue([action])
    sqlite_store.transition(action.key, [PLANNED], SENDING)
    sqlite_store.transition(
        action.key, [SENDING], FAILED, last_error=f"401: {{'access_token': '{MS_ACCESS}'}}"
    )
    row = sqlite_store.outbox_row(action.key)
    assert row is not None and "BAAUO9chh8" not in row["last_error"]

    sqlite_store.register_mailboxes(["asha"], NOW)
    assert sqlite_store.lease("w1", NOW, timedelta(minutes=2), 10)
    sqlite_store.finish(
        "w1", "asha", state="backoff", next_run_at=NOW, error=f"Permanent: {MS_REFRESH}"
    )
    [stream] = [s for s in sqlite_store.streams("asha") if s["kind"] == "mail"]
    assert "Cq3GyuZzv3" not in stream["last_error"]

    sqlite_store.record_skipped("asha", "mail", "m1", f"400 for {{'id_token': '{MS_ACCESS}'}}")
    [skipped] = sqlite_store.skipped()
    assert "BAAUO9chh8" not in skipped["reason"]


def test_status_shows_errors_redacted_and_as_plain_text() -> None:
    # A row written before errors were redacted, and provider text that looks like markup.
    error = f"[bold]401[/bold] token {MS_ACCESS}"
    outbox = [
        {
            "id": 1,
            "due": NOW,
            "kind": "webhook",
            "mailbox": "asha",
            "client": "",
            "status": "failed",
            "last_error": error,
        }
    ]
    streams = [{"mailbox": "asha", "state": "backoff", "last_error": error}]
    console = Console(file=io.StringIO(), width=300, record=True)
    console.print(views.outbox_table(outbox))
    console.print(views.mailbox_table(streams, {}))
    text = console.export_text()
    assert "BAAUO9chh8" not in text
    assert text.count("[bold]401[/bold] token EwB[redacted]") == 2


# --- the last check before a mailbox --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_draft_whose_header_would_split_into_lines_is_refused(kind: str, tmp_path: Path) -> None:
    box: LocalMailbox | MemoryMailbox
    if kind == "local":
        box = LocalMailbox(tmp_path, mailbox="asha", address="asha@acme.example", clock=lambda: NOW)
    else:
        box = MemoryMailbox(mailbox="asha", address="asha@acme.example", clock=lambda: NOW)
    msg = EmailMessage()
    msg["From"] = "asha@acme.example"
    msg["To"] = "kenji@client.example"
    msg["Subject"] = "Re: =?utf-8?q?Offer=0D=0ABcc:_spy=40evil.example?="
    msg.set_content("Hello")
    with pytest.raises(Permanent, match="header lines of its own"):
        box.draft(msg, key="k1")
    assert box.find_draft("k1") is None


# --- webhook policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow", "problem"),
    [
        ("https://hooks.slack.com/services/T/B/X", [], ""),
        ("http://hooks.slack.com/services/T/B/X", [], "must be https://"),
        ("http://127.0.0.1:8080/hook", ["127.0.0.1"], ""),
        ("https://127.0.0.1/hook", [], "loopback, link-local or private"),
        ("https://169.254.169.254/latest", [], "loopback, link-local or private"),
        ("https://[fd00::1]/hook", [], "loopback, link-local or private"),
        ("https://10.0.0.8/hook", ["10.0.0.9"], "loopback, link-local or private"),
        ("https://user:pw@hooks.example/x", [], "user name or password"),
        ("ftp://hooks.example/x", [], "must be an https:// URL"),
        ("https:///x", [], "must be an https:// URL"),
    ],
)
def test_webhook_urls_follow_the_policy(url: str, allow: list[str], problem: str) -> None:
    found = check_url(url, allow)
    assert (problem in found) if problem else found == ""


def test_a_public_name_that_resolves_to_a_private_address_is_refused() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return {"public.example": ["93.184.215.14"], "sneaky.example": ["8.8.8.8", "10.0.0.1"]}[
            host
        ]

    check_addresses("https://public.example/hook", [], resolve)
    with pytest.raises(WebhookRefused, match=r"sneaky\.example") as err:
        check_addresses("https://sneaky.example/secret/path", [], resolve)
    assert "secret" not in str(err.value)
    check_addresses("https://sneaky.example/hook", ["sneaky.example"], resolve)


def test_a_name_that_resolves_again_to_loopback_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: the check before the post is told a public address, the connection then
    # reaches loopback. The connection itself checks where it landed.
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    hook = _Hook()
    try:
        port = hook.server.server_address[1]
        with pytest.raises(WebhookRefused, match="localhost"):
            post_json(
                f"https://localhost:{port}/hook",
                {"text": "x"},
                resolve=lambda host, port: ["93.184.215.14"],
            )
    finally:
        hook.close()
    assert hook.bodies == []


def test_the_config_refuses_a_webhook_outside_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[team]\nwebhook_url = "http://chat.office.lan/hooks/abc"\n')
    with pytest.raises(ConfigError) as err:
        config.load(path)
    [problem] = err.value.problems
    assert problem.where == "team.webhook_url" and "webhook_allow_hosts" in problem.message
    assert "abc" not in problem.message
    path.write_text(
        '[team]\nwebhook_url = "http://chat.office.lan/hooks/abc"\n'
        'webhook_allow_hosts = ["chat.office.lan"]\n'
    )
    assert config.load(path).team.webhook_allow_hosts == ["chat.office.lan"]


def test_a_rule_webhook_must_be_an_http_url_without_credentials() -> None:
    text = (
        '[[promise]]\nname = "a"\nkind = "first_reply"\ntarget = "4h"\n'
        'webhook = "ftp://hooks.example/x"\n'
        '[[promise]]\nname = "b"\nkind = "next_reply"\ntarget = "4h"\n'
        'webhook = "https://u:p@hooks.example/x"\n'
    )
    _, problems = parse_rules([("team.toml", text)])
    assert len(problems) == 2
    assert all(p.where.endswith(":webhook") for p in problems)
    assert "must be an https:// URL" in problems[0].message
    assert "user name or password" in problems[1].message and "u:p" not in problems[1].message


def test_rules_check_applies_the_webhook_policy_with_the_configs_allowed_hosts(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "team.toml").write_text(
        '[[promise]]\nname = "office"\nkind = "first_reply"\ntarget = "4h"\n'
        'webhook = "http://chat.office.lan/hooks/abc"\n'
        '[[promise]]\nname = "metadata"\nkind = "next_reply"\ntarget = "4h"\n'
        'webhook = "https://169.254.169.254/latest"\n'
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text('[team]\nwebhook_allow_hosts = ["chat.office.lan"]\n')
    found, _ = check_rules(None, cfg)
    found = [p for p in found if p.where.endswith(":webhook")]  # not the missing clients file
    assert [p.where for p in found] == ["metadata:webhook"]
    assert "link-local" in found[0].message


# --- files private to the agent's user -----------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "followup.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        store.enqueue([webhook("https://hooks.example/x")])
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


def test_maildir_notes_and_calendar_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    root = tmp_path / "asha"
    box = LocalMailbox(root, mailbox="asha", address="asha@acme.example", clock=lambda: NOW)
    msg = EmailMessage()
    msg["From"] = "asha@acme.example"
    msg["To"] = "kenji@client.example"
    msg["Subject"] = "Thank you"
    msg.set_content("Hello")
    box.send_draft(box.draft(msg, key="k1"))
    box.draft(msg, key="k2")
    box.deliver(msg.as_bytes())
    box.create_event(
        Invite(
            key="hold/1",
            summary="Hold",
            start=NOW + timedelta(days=1),
            end=NOW + timedelta(days=1, hours=1),
            zone="UTC",
            organizer=Address("asha@acme.example", "Asha"),
            attendees=(Address("kenji@client.example", "Kenji"),),
        )
    )
    files = [p for p in root.rglob("*") if p.is_file()]
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    assert len(files) == 4
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    assert {str(p): _mode(p) for p in folders} == {str(p): 0o700 for p in folders}


def test_the_container_sets_the_same_umask_as_the_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "followup.service")
    umask = unit["Service"]["UMask"]
    entry = next(
        line
        for line in (DEPLOY / "Containerfile").read_text().splitlines()
        if line.startswith("ENTRYPOINT")
    )
    assert umask == "0077" and f"umask {umask} && exec followup" in entry
