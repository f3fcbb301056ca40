"""The console over HTTP: sign-in with the Google emulator as identity provider, who may see
and do what, CSRF, headers and cookies, and each action landing in the store as the CLI's."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import SignInFailed
from agent.model import ActionKind
from agent.web import oidc
from tests.web_world import NOW, csrf_of, served, sign_in_google, world


def _draft(w, mailbox: str) -> int:  # type: ignore[no-untyped-def]
    rows = w.outbox(mailbox=mailbox, status="drafted")
    assert rows, f"the demo leaves a draft waiting in {mailbox}"
    return int(rows[0]["id"])


def _sent_files(folder: Path) -> int:
    return len([p for p in (folder / "sent").rglob("*") if p.is_file()])


def test_pages_need_a_sign_in(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        for path in ("/rep/asha", "/lead/apac", "/rep/asha/notes/1"):
            reply = requests.get(base + path, allow_redirects=False, timeout=10)
            assert reply.status_code == 303
            assert reply.headers["location"] == "/signin"


def test_google_sign_in_lands_on_the_reps_own_page(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        http = sign_in_google(base, w.google, "asha@acme.example")
        page = http.get(f"{base}/", timeout=10)
        assert page.url == f"{base}/rep/asha"
        assert "Asha Rao" in page.text
        assert w.google.consents == 1
        # The code was redeemed once with its PKCE verifier; it cannot be used again.
        assert not w.google.codes


def test_an_account_the_config_does_not_name_is_refused(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        http = sign_in_google(base, w.google, "stranger@elsewhere.example")
        assert http.get(f"{base}/rep/asha", timeout=10).url == f"{base}/signin"
        assert "may not use the console" in http.get(f"{base}/signin?e=denied", timeout=10).text


def test_a_callback_with_another_state_signs_nobody_in(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        http = requests.Session()
        start = http.get(f"{base}/signin/google", allow_redirects=False, timeout=10)
        consent = requests.get(start.headers["location"], allow_redirects=False, timeout=10)
        forged = re.sub(r"state=[^&]+", "state=forged", consent.headers["location"])
        reply = http.get(forged, timeout=10)
        assert reply.url == f"{base}/signin?e=failed"
        assert http.get(f"{base}/rep/asha", timeout=10).url == f"{base}/signin"


def test_an_id_token_with_another_nonce_or_audience_is_refused(tmp_path: Path) -> None:
    from tests.fakes.gmail import GoogleEmulator

    with GoogleEmulator("asha@acme.example") as google:
        issuer = oidc.Issuer(
            "google",
            "Google",
            f"{google.issuer}/.well-known/openid-configuration",
            google.client_id,
        )
        meta = oidc.metadata(issuer)
        good = oidc.verify_id_token(issuer, meta, google.id_token("n-1"), "n-1")
        assert good["email"] == "asha@acme.example"
        with pytest.raises(SignInFailed, match="nonce"):
            oidc.verify_id_token(issuer, meta, google.id_token("n-2"), "n-1")
        with pytest.raises(SignInFailed):
            oidc.verify_id_token(issuer, meta, google.id_token("n-1", aud="someone-else"), "n-1")
        with pytest.raises(SignInFailed):
            oidc.verify_id_token(issuer, meta, google.id_token("n-1", iss="https://evil"), "n-1")
        with pytest.raises(SignInFailed):
            expired = google.id_token("n-1", now=NOW.timestamp() - 7200)  # expired an hour ago
            oidc.verify_id_token(issuer, meta, expired, "n-1")


def test_a_rep_cannot_open_or_act_on_another_reps_mail(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        theirs = _draft(w, "lukas")
        before = w.row(theirs)["status"]
        http = sign_in_google(base, w.google, "asha@acme.example")
        assert http.get(f"{base}/rep/lukas", timeout=10).status_code == 403
        assert http.get(f"{base}/rep/lukas/notes/{theirs}", timeout=10).status_code == 403
        # The id in asha's own address space: another mailbox's note reads as unknown.
        page = http.get(f"{base}/rep/asha/notes/{theirs}", timeout=10)
        assert page.status_code == 404
        token = csrf_of(http.get(f"{base}/rep/asha", timeout=10).text)
        http.post(f"{base}/rep/asha/notes/{theirs}/approve", data={"csrf": token}, timeout=10)
        http.post(f"{base}/rep/lukas/notes/{theirs}/cancel", data={"csrf": token}, timeout=10)
        assert w.row(theirs)["status"] == before
        assert http.get(f"{base}/lead/apac", timeout=10).status_code == 403


def test_a_post_without_the_csrf_token_is_refused(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        mine = _draft(w, "asha")
        http = sign_in_google(base, w.google, "asha@acme.example")
        for data in ({}, {"csrf": "guessed-" + "x" * 40}):
            reply = http.post(f"{base}/rep/asha/notes/{mine}/approve", data=data, timeout=10)
            assert reply.status_code == 403
        assert w.row(mine)["status"] == "drafted"


def test_approving_a_draft_sends_it_once_and_says_who(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        mine = _draft(w, "asha")
        before = _sent_files(w.folder / "mail" / "asha")
        http = sign_in_google(base, w.google, "asha@acme.example")
        page = http.get(f"{base}/rep/asha", timeout=10).text
        assert f"Approve and send #{mine}" in page
        token = csrf_of(page)
        first = http.post(f"{base}/rep/asha/notes/{mine}/approve", data={"csrf": token}, timeout=10)
        assert f"#{mine}: sent" in first.text
        again = http.post(f"{base}/rep/asha/notes/{mine}/approve", data={"csrf": token}, timeout=10)
        assert "nothing to approve" in again.text
        assert w.row(mine)["status"] == "sent"
        assert _sent_files(w.folder / "mail" / "asha") == before + 1  # sent once
        store = w.store()
        try:
            audit = [d for d in store.decisions("asha") if d["subject_id"].startswith("audit:")]
        finally:
            store.close()
        assert audit and {d["decision"] for d in audit} == {"approved"}
        assert "asha@acme.example" in audit[0]["reason"]


def test_a_snooze_moves_the_follow_up_and_the_worker_keeps_it(
    demo_folder: Path, tmp_path: Path
) -> None:
    from agent.worker import Worker

    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        follow = [
            r
            for r in w.outbox(mailbox="lukas", status="planned")
            if r["kind"] == ActionKind.FOLLOW_UP
        ]
        assert follow, "the demo has a follow-up planned in lukas's mailbox"
        row = follow[0]
        until = (max(NOW, row["due"]) + timedelta(days=10)).date()  # type: ignore[type-var]
        http = sign_in_google(base, w.google, "lukas@acme.example")
        token = csrf_of(http.get(f"{base}/rep/lukas", timeout=10).text)
        done = http.post(
            f"{base}/rep/lukas/threads/snooze",
            data={"csrf": token, "thread_id": row["thread_id"], "until": until.isoformat()},
            timeout=10,
        )
        assert f"snoozed until {until:%Y-%m-%d}" in done.text
        moved = w.row(int(row["id"]))  # type: ignore[call-overload]
        assert moved["due"].date() == until  # type: ignore[attr-defined]
        # A worker's round after the old due time sends nothing in the snoozed thread.
        at = row["due"] + timedelta(hours=1)  # type: ignore[operator]
        Worker(w.config, clock=lambda: at, post=lambda url, payload: None).run(once=True)
        after = [
            r for r in w.outbox(thread_id=row["thread_id"]) if r["kind"] == ActionKind.FOLLOW_UP
        ]
        assert all(r["status"] != "sent" for r in after)
        store = w.store()
        try:
            acts = [d for d in store.control_decisions() if "lukas@acme.example" in d["reason"]]
        finally:
            store.close()
        assert acts and acts[-1]["decision"].startswith("snoozed until")


DRAFT_RULES = """
[[promise]]
name = "first-reply-fast"
kind = "first_reply"
target = "1h"
clock = "calendar"
"""


def test_a_lead_replays_draft_rules_against_the_rules_in_force(
    demo_folder: Path, tmp_path: Path
) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        http = sign_in_google(base, w.google, "meera@acme.example")
        page = http.get(f"{base}/", timeout=10)
        assert page.url == f"{base}/lead/apac"
        assert "Rules in force" in page.text and "asha" in page.text
        reply = http.post(
            f"{base}/lead/apac/simulate",
            data={"csrf": csrf_of(page.text)},
            files={"rules": ("../../etc/evil.toml", DRAFT_RULES.encode(), "text/plain")},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert "What the draft would have done" in reply.text
        assert 'class="diff" aria-label="asha"' in reply.text
        assert "lukas" not in re.sub(r"<nav.*?</nav>", "", reply.text, flags=re.S).split("diff")[-1]
        broken = http.post(
            f"{base}/lead/apac/simulate",
            data={"csrf": csrf_of(page.text)},
            files={"rules": ("draft.toml", b"[[promise]\nname=", "text/plain")},
            timeout=60,
        )
        assert "The draft rules do not load" in broken.text


def test_headers_cookies_and_no_secrets_in_pages(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        http = sign_in_google(base, w.google, "asha@acme.example")
        pages = [http.get(f"{base}/rep/asha", timeout=10), http.get(f"{base}/signin", timeout=10)]
        for page in pages:
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert "<script>" not in page.text and " style=" not in page.text
            assert "hooks.slack.com" not in page.text  # the team's webhook URL
            assert w.google.client_secret not in page.text
        cookie = next(c for c in http.cookies if c.name == "followup_session")
        assert cookie.has_nonstandard_attr("HttpOnly") or "httponly" in str(cookie._rest).lower()
        # Message-IDs (<...@...>) are client text: shown escaped, never as markup.
        body = pages[0].text
        assert "&lt;" in body and re.search(r"<\d{6,}", body) is None


def test_secure_cookies_unless_demo(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w:
        text = w.config.read_text().replace("secure_cookies = false", "secure_cookies = true")
        w.config.write_text(text)
        with served(w.config) as base:
            reply = requests.get(f"{base}/signin", timeout=10)
            header = reply.headers["set-cookie"].lower()
            assert "secure" in header and "httponly" in header and "samesite=lax" in header
            assert "max-age=" in header


def test_sign_in_is_rate_limited(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path, per_minute=3) as w, served(w.config) as base:
        seen = [
            requests.get(f"{base}/signin/google", allow_redirects=False, timeout=10).headers[
                "location"
            ]
            for _ in range(5)
        ]
        assert [s.startswith(w.google.issuer) for s in seen] == [True, True, True, False, False]
        assert seen[-1] == "/signin?e=busy"


def test_demo_sign_in_only_in_demo_mode(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w:
        with served(w.config, demo=True) as base:
            http = requests.Session()
            page = http.get(f"{base}/signin", timeout=10).text
            assert "Sign in as Asha Rao" in page
            http.post(
                f"{base}/signin/demo",
                data={"csrf": csrf_of(page), "email": "sofia@acme.example"},
                timeout=10,
            )
            assert http.get(f"{base}/", timeout=10).url == f"{base}/lead/emea"
        with served(w.config) as base:
            http = requests.Session()
            page = http.get(f"{base}/signin", timeout=10).text
            assert "Sign in as" not in page
            reply = http.post(
                f"{base}/signin/demo",
                data={"csrf": "any", "email": "asha@acme.example"},
                timeout=10,
            )
            assert reply.status_code == 404


def test_pages_in_hindi_and_telugu(demo_folder: Path, tmp_path: Path) -> None:
    from agent.web import i18n

    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        english = requests.get(f"{base}/signin", timeout=10).text
        for lang in ("hi", "te"):
            page = requests.get(
                f"{base}/signin", headers={"Accept-Language": f"{lang}-IN,en;q=0.5"}, timeout=10
            ).text
            assert f'<html lang="{lang}">' in page
            word = i18n.translations(lang).gettext("Sign in to Followup")
            assert word != "Sign in to Followup" and word in page and word not in english


def test_console_users_are_checked_against_the_config(tmp_path: Path) -> None:
    from agent import config
    from agent.configcheck import setup_problems
    from agent.errors import ConfigError
    from agent.web.server import check_cookies

    base = {
        "mailboxes": [
            {
                "name": "asha",
                "provider": "local",
                "address": "a@x.example",
                "rep_name": "A",
                "zone": "Asia/Kolkata",
                "team": "apac",
            }
        ],
    }
    settings = config.parse_settings(
        {
            **base,
            "web": {
                "google_client_secrets": "missing.json",
                "users": [
                    {"email": "a@x.example", "mailboxes": ["ahsa"]},
                    {"email": "m@x.example", "lead_of": ["apak"]},
                    {"email": "n@x.example"},
                ],
            },
        },
        str(tmp_path / "config.toml"),
    )
    found = [(p.where, p.message) for p in setup_problems(settings, "config.toml")]
    assert (
        "web.users[a@x.example].mailboxes",
        "'ahsa' is not a [[mailboxes]] name; one of asha",
    ) in found
    assert ("web.users[m@x.example].lead_of", "'apak' is no mailbox's team; one of apac") in found
    assert (
        "web.users[n@x.example]",
        "has no role: give mailboxes, lead_of or admin = true",
    ) in found
    assert any(
        w == "web.google_client_secrets" and "missing.json is not a file" in m for w, m in found
    )
    with pytest.raises(ConfigError) as bad:
        config.parse_settings(
            {**base, "web": {"users": [{"email": "nobody", "admin": True}], "tls": 1}}, "c.toml"
        )
    wheres = {p.where for p in bad.value.problems}
    assert wheres == {"web.users[nobody].email", "web.tls"}
    plain = config.parse_settings({**base, "web": {"secure_cookies": False}}, "c.toml")
    check_cookies(plain, "127.0.0.1", demo=False)
    with pytest.raises(ConfigError, match="secure_cookies"):
        check_cookies(plain, "0.0.0.0", demo=False)


def test_every_console_text_has_a_hindi_and_telugu_translation() -> None:
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir

    from agent.web import i18n

    folder = str(Path(i18n.__file__).parent)  # as agent/web/babel.cfg extracts them
    texts = {
        m[2]
        for m in extract_from_dir(
            folder,
            method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
            keywords={**DEFAULT_KEYWORDS, "N_": None},
        )
    }
    assert {"Drafts waiting", "This mailbox is not yours.", "breached"} <= texts
    for lang in ("hi", "te"):
        missing = sorted(t for t in texts if i18n.translations(lang).gettext(t) == t)
        assert missing == [], f"{lang}: {missing}"


def test_the_console_unit_runs_beside_the_worker_hardened_alike() -> None:
    import configparser

    deploy = Path(__file__).parent.parent / "deploy"

    def unit(name: str) -> configparser.ConfigParser:
        parsed = configparser.ConfigParser(interpolation=None, strict=False)
        parsed.optionxform = str  # type: ignore[assignment,method-assign]
        parsed.read(deploy / name)
        return parsed

    web, worker = unit("followup-web.service")["Service"], unit("followup.service")["Service"]
    assert "followup web --config /etc/followup/config.toml" in web["ExecStart"]
    for key in (
        "User",
        "StateDirectory",
        "WorkingDirectory",
        "LoadCredential",
        "Environment",
        "ProtectSystem",
        "NoNewPrivileges",
        "SystemCallFilter",
        "ReadWritePaths",
        "UMask",
    ):
        assert web[key] == worker[key], key
    assert "followup web --listen 0.0.0.0:8080" in (deploy / "Containerfile").read_text()


def test_a_rep_connects_gmail_sees_the_first_sync_and_disconnects(
    demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from agent.providers.tokens import Vault
    from agent.worker import Worker

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain http
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        key = os.environ["FOLLOWUP_SECRET_KEY"]
        http = sign_in_google(base, w.google, "nina@acme.example")
        page = http.get(f"{base}/rep/nina", timeout=10)
        assert "Connect Google" in page.text
        done = http.post(f"{base}/rep/nina/connect", data={"csrf": csrf_of(page.text)}, timeout=20)
        assert done.url == f"{base}/rep/nina"
        assert "Connected nina as nina@acme.example" in done.text
        store = w.store()
        try:
            sealed = store.load_credentials("nina")
        finally:
            store.close()
        assert sealed is not None and b"refresh_token" not in sealed  # sealed at rest
        grant = json.loads(Vault(key).open(sealed))
        assert grant["account"] == "nina@acme.example" and grant["refresh_token"]
        assert grant["client_id"] == w.google.client_id and grant["token_uri"] == w.google.token_uri
        assert "refresh_token" not in done.text and grant["refresh_token"] not in done.text
        # The worker's first pass over the connected mailbox shows on the page.
        Worker(w.config, clock=lambda: NOW, post=lambda url, payload: None).run(once=True)
        page = http.get(f"{base}/rep/nina", timeout=10).text
        assert "Disconnect" in page and "last synced" in page
        # Disconnect: the grant is deleted, the mailbox parked, a reconnect button offered.
        gone = http.post(f"{base}/rep/nina/disconnect", data={"csrf": csrf_of(page)}, timeout=10)
        assert "nina disconnected" in gone.text
        assert "Reconnect Google" in gone.text
        store = w.store()
        try:
            assert store.load_credentials("nina") is None
            stream = next(r for r in store.streams("nina") if r["kind"] == "mail")
        finally:
            store.close()
        assert stream["state"] == "needs_reconnect"
        # Another rep cannot start a connection of nina's mailbox.
        other = sign_in_google(base, w.google, "asha@acme.example")
        token = csrf_of(other.get(f"{base}/rep/asha", timeout=10).text)
        refused = other.post(f"{base}/rep/nina/connect", data={"csrf": token}, timeout=10)
        assert refused.status_code == 403


def test_microsoft_sign_in_through_the_identity_platform(
    demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.graph import GraphEmulator

    with GraphEmulator(tenant="contoso") as graph, world(demo_folder, tmp_path) as w:
        # The console trusts the emulator's test CA, as it trusts a real CA.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", graph.ca_path)
        monkeypatch.setenv("SSL_CERT_FILE", graph.ca_path)
        text = w.config.read_text().replace(
            "[web]\n",
            "[web]\n"
            'microsoft_client_id = "console-app"\n'
            'microsoft_tenant = "contoso"\n'
            f'microsoft_authority = "{graph.base_url}"\n',
        )
        w.config.write_text(text)
        with served(w.config) as base:
            graph.signin_user = "lukas@acme.example"
            http = requests.Session()
            assert "Sign in with Microsoft" in http.get(f"{base}/signin", timeout=10).text
            landed = http.get(f"{base}/signin/microsoft", timeout=20)
            assert landed.url == f"{base}/rep/lukas"
            # A code redeemed without the PKCE verifier is refused by the platform.
            start = requests.get(f"{base}/signin/microsoft", allow_redirects=False, timeout=10)
            consent = requests.get(
                start.headers["location"], allow_redirects=False, timeout=10, verify=graph.ca_path
            )
            code = re.search(r"code=([^&]+)", consent.headers["location"])
            assert code is not None
            refused = requests.post(
                f"{graph.authority}/oauth2/v2.0/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code[1],
                    "client_id": "console-app",
                },
                timeout=10,
                verify=graph.ca_path,
            )
            assert refused.json()["error"] == "invalid_grant"


def test_a_rep_connects_outlook_from_the_console(
    demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msal

    from agent.providers.tokens import Vault
    from tests.fakes.graph import GraphEmulator

    with GraphEmulator(tenant="contoso") as graph, world(demo_folder, tmp_path) as w:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", graph.ca_path)
        monkeypatch.setenv("SSL_CERT_FILE", graph.ca_path)
        text = w.config.read_text().replace(
            "[web]\n", f'[web]\nmicrosoft_authority = "{graph.base_url}"\n'
        )
        text = text.replace(
            '[[web.users]]\nemail = "nina@acme.example"',
            '[[web.users]]\nemail = "olga@acme.example"\nmailboxes = ["olga"]\n\n'
            '[[web.users]]\nemail = "nina@acme.example"',
        )
        text = text.replace(
            "\n[web]\n",
            '\n[[mailboxes]]\nname = "olga"\nprovider = "outlook"\naddress = "olga@acme.example"\n'
            'rep_name = "Olga Novak"\nzone = "Europe/Warsaw"\nteam = "emea"\n'
            'lead = "sofia@acme.example"\nclient_id = "rep-app"\ntenant = "contoso"\n'
            f'endpoint = "{graph.graph_url}"\n\n[web]\n',
            1,
        )
        w.config.write_text(text)
        with served(w.config) as base:
            http = sign_in_google(base, w.google, "olga@acme.example")
            page = http.get(f"{base}/rep/olga", timeout=10)
            assert "Connect Microsoft" in page.text
            graph.signin_user = "olga@acme.example"
            done = http.post(
                f"{base}/rep/olga/connect", data={"csrf": csrf_of(page.text)}, timeout=20
            )
            assert done.url == f"{base}/rep/olga"
            assert "Connected olga as olga@acme.example" in done.text
            store = w.store()
            try:
                sealed = store.load_credentials("olga")
            finally:
                store.close()
            assert sealed is not None
            cache = msal.SerializableTokenCache()
            cache.deserialize(Vault(os.environ["FOLLOWUP_SECRET_KEY"]).open(sealed).decode())
            accounts = list(cache.search(msal.TokenCache.CredentialType.ACCOUNT))
            assert [a["username"] for a in accounts] == ["olga@acme.example"]
            assert list(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN))
            assert "Disconnect" in done.text
            refresh = next(iter(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)))
            assert refresh["secret"] not in done.text


def test_a_session_ends_after_session_hours_and_at_sign_out(
    demo_folder: Path, tmp_path: Path
) -> None:
    moment = [1_800_000_000.0]
    with world(demo_folder, tmp_path) as w, served(w.config, seconds=lambda: moment[0]) as base:
        http = sign_in_google(base, w.google, "asha@acme.example")
        assert http.get(f"{base}/rep/asha", timeout=10).url == f"{base}/rep/asha"
        moment[0] += 11 * 3600  # [web] session_hours defaults to 12
        page = http.get(f"{base}/rep/asha", timeout=10)
        assert page.url == f"{base}/rep/asha"
        moment[0] += 2 * 3600
        assert http.get(f"{base}/rep/asha", timeout=10).url == f"{base}/signin"
        # Sign-out needs the token too, then the session is gone.
        http = sign_in_google(base, w.google, "asha@acme.example")
        page = http.get(f"{base}/rep/asha", timeout=10)
        assert http.post(f"{base}/signout", timeout=10).status_code == 403
        http.post(f"{base}/signout", data={"csrf": csrf_of(page.text)}, timeout=10)
        assert http.get(f"{base}/rep/asha", timeout=10).url == f"{base}/signin"


def test_followup_web_will_not_start_without_a_key_to_sign_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from agent.cli import main

    for name in ("FOLLOWUP_WEB_SESSION_KEY", "FOLLOWUP_SECRET_KEY", "FOLLOWUP_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.toml"
    config.write_text("")
    result = CliRunner().invoke(main, ["web", "--config", str(config)])
    assert result.exit_code == 1
    assert "FOLLOWUP_WEB_SESSION_KEY" in result.output


def test_an_oversized_post_is_refused_before_it_is_read(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        http = sign_in_google(base, w.google, "meera@acme.example")
        page = http.get(f"{base}/lead/apac", timeout=10)
        big = http.post(
            f"{base}/lead/apac/simulate",
            data={"csrf": csrf_of(page.text)},
            files={"rules": ("draft.toml", b"#" * (2 * 1024 * 1024), "text/plain")},
            timeout=30,
        )
        assert big.status_code == 413

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(64):
                yield b"x" * 65536

        streamed = http.post(
            f"{base}/lead/apac/simulate",
            data=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        # Refused by the body limit, or by the form parser's own part limit (256 KB), whichever
        # the chunks reach first: never read to the end.
        assert streamed.status_code in (400, 413)


def test_client_text_is_shown_as_text_never_as_markup(demo_folder: Path, tmp_path: Path) -> None:
    from email.message import EmailMessage
    from email.utils import format_datetime

    from agent.worker import Worker

    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)"> {{ 7*7 }}'
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        message = EmailMessage()
        message["From"] = "Priya Reddy <priya@reddytextiles.in>"
        message["To"] = "asha@acme.example"
        message["Subject"] = hostile
        message["Date"] = format_datetime(NOW - timedelta(hours=2))
        message["Message-ID"] = "<hostile-1@reddytextiles.in>"
        message.set_content("Please quote " + hostile)
        (w.folder / "mail" / "asha" / "inbox" / "new" / "hostile.eml").write_bytes(bytes(message))
        later = NOW + timedelta(minutes=5)  # the mailbox is due again
        Worker(w.config, clock=lambda: later, post=lambda url, payload: None).run(once=True)
        http = sign_in_google(base, w.google, "asha@acme.example")
        page = http.get(f"{base}/rep/asha", timeout=10).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the promise's subject
        assert "<script>" not in page and "<img" not in page and "{{ 7*7 }}" in page


def test_the_rate_limit_slides_over_a_minute_per_client() -> None:
    from agent.web.guard import RateLimit

    now = [100.0]
    limit = RateLimit(2, clock=lambda: now[0])
    assert [limit.allow("a"), limit.allow("a"), limit.allow("a"), limit.allow("b")] == [
        True,
        True,
        False,
        True,
    ]
    now[0] += 59.9
    assert not limit.allow("a")
    now[0] += 0.2  # the first attempt is a minute old
    assert limit.allow("a")


def test_a_csrf_token_must_be_the_sessions_own() -> None:
    from agent.web.guard import csrf_ok, csrf_token

    session: dict[str, object] = {}
    token = csrf_token(session)
    assert csrf_token(session) == token and len(token) >= 32
    assert csrf_ok(session, token)
    for sent in (None, "", token[:-1], token + "x", b"bytes", token.upper()):
        assert not csrf_ok(session, sent)
    assert not csrf_ok({}, token)


def test_the_lead_sees_what_is_due_today_for_each_rep(demo_folder: Path, tmp_path: Path) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        row = w.outbox(mailbox="asha", status="drafted")[0]
        store = w.store()
        try:  # the draft falls due later today, in Asha's zone
            assert store.reschedule(str(row["key"]), NOW + timedelta(hours=3), ["drafted"])
        finally:
            store.close()
        http = sign_in_google(base, w.google, "meera@acme.example")
        page = http.get(f"{base}/lead/apac", timeout=10).text
        today = page.split('id="today"')[1].split('id="rules"')[0]
        # Kinds read as words on the page ("thank you").
        shown = str(row["kind"]).replace("_", " ")
        assert f"Note: {shown} · {row['client']}" in today, today
        assert "Nothing due today." in today  # nina has nothing


@given(st.text(max_size=3000), st.sampled_from(["", "hi", "te", "en", "xx"]))
def test_any_accept_language_picks_one_of_the_consoles_languages(header: str, own: str) -> None:
    from agent.web import i18n

    chosen = i18n.choose(own, header)
    assert chosen in i18n.LANGUAGES
    if own in i18n.LANGUAGES:
        assert chosen == own


def test_the_body_limit_stops_a_streamed_body_midway() -> None:
    import asyncio

    from agent.web.guard import BodyLimit

    read: list[int] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        while True:  # an app that reads everything it is given
            message = await receive()
            read.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}] * 10
    sent: list[dict[str, object]] = []

    async def receive():  # type: ignore[no-untyped-def]
        return chunks.pop(0)

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    scope = {"type": "http", "headers": []}
    # In a thread of its own: a browser test before this one in the same process leaves
    # Playwright's event loop running in this thread, where asyncio.run() refuses to start.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(BodyLimit(app, limit=3500)(scope, receive, send))).result()
    assert sent[0]["status"] == 413
    assert sum(read) == 3000  # the fourth chunk was never handed to the app


def test_a_first_sync_under_way_shows_how_far_it_has_come(
    demo_folder: Path, tmp_path: Path
) -> None:
    import json

    from agent.model import SyncResult

    window = {
        "started": "2026-11-26T08:00:00+00:00",
        "floor": "2026-08-28T08:00:00+00:00",  # 90 days back
        "reached": "2026-10-27T08:00:00+00:00",  # 30 of them read
    }
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        store = w.store()
        try:
            store.apply_sync("nina", SyncResult((), json.dumps({"first_sync": window})), at=NOW)
        finally:
            store.close()
        http = sign_in_google(base, w.google, "nina@acme.example")
        page = http.get(f"{base}/rep/nina", timeout=10).text
        assert '<progress max="100" value="33" aria-label="First sync">' in page
        assert "first sync: 33% of the window read" in page


def test_a_lead_sees_the_team_reports_charts_and_a_rep_cannot(
    demo_folder: Path, tmp_path: Path
) -> None:
    with world(demo_folder, tmp_path) as w, served(w.config) as base:
        lead = sign_in_google(base, w.google, "meera@acme.example")
        page = lead.get(f"{base}/lead/apac", timeout=30).text
        names = ("sla-trend", "first-response", "nps-csat", "funnel")
        for name in names:
            assert f'src="/lead/apac/charts/{name}.png"' in page
            chart = lead.get(f"{base}/lead/apac/charts/{name}.png", timeout=30)
            assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
            assert chart.content.startswith(b"\x89PNG")
        assert lead.get(f"{base}/lead/apac/charts/secrets.png", timeout=30).status_code == 404
        rep = sign_in_google(base, w.google, "asha@acme.example")
        assert rep.get(f"{base}/lead/apac/charts/funnel.png", timeout=30).status_code == 403
