"""The console in a real headless Chromium against ``followup web`` run as a command, with the
Google emulator as identity provider: sign in, approve a draft, snooze a follow-up, a lead's
replay of draft rules, refusals, labels and keyboard use; no console errors, nothing remote.

Screenshots of each page go to $FOLLOWUP_SCREENS (when set), for a person to look at.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.model import ActionKind
from tests.test_web import DRAFT_RULES
from tests.web_world import NOW, followup_web, served, world

SCREENS = os.environ.get("FOLLOWUP_SCREENS", "")

# Every control a person can use must have a name a screen reader says: a <label>, its own
# text, or aria-label.
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), button, select, textarea, a[href]')]
  .filter(el => !((el.labels && el.labels.length) || el.textContent.trim()
                  || el.getAttribute('aria-label')))
  .map(el => el.outerHTML)"""


def shot(page: Any, name: str) -> None:
    if SCREENS:
        Path(SCREENS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENS) / f"web-{name}.png"), full_page=True)


def sign_in(page: Any, base: str, google: Any, email: str) -> None:
    google.identity = email
    page.goto(f"{base}/signin")
    page.get_by_role("link", name="Sign in with Google").click()
    page.wait_for_url(f"{base}/*/*")


def tab_to(page: Any, text: str, limit: int = 300) -> None:
    """Move the focus with Tab alone until it rests on the control saying ``text``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if text in page.evaluate("() => document.activeElement.textContent || ''"):
            return
    raise AssertionError(f"Tab never reaches {text!r}")


def test_a_rep_signs_in_approves_and_snoozes(open_page, demo_folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from agent.worker import Worker

    with world(demo_folder, tmp_path) as w, followup_web(w.config) as base:
        draft = int(w.outbox(mailbox="asha", status="drafted")[0]["id"])  # type: ignore[call-overload]
        page, log = open_page()
        page.goto(f"{base}/signin")
        assert page.evaluate(UNLABELLED) == []
        shot(page, "signin")
        sign_in(page, base, w.google, "asha@acme.example")
        assert page.url == f"{base}/rep/asha"
        assert page.get_by_role("heading", name="Drafts waiting").is_visible()
        assert page.evaluate(UNLABELLED) == []
        shot(page, "rep")
        # Keyboard only: Tab to the draft's approve button and press Enter.
        tab_to(page, f"Approve and send #{draft}")
        page.keyboard.press("Enter")
        page.wait_for_load_state()
        assert f"#{draft}: sent" in page.get_by_role("status").inner_text()
        assert w.row(draft)["status"] == "sent"
        shot(page, "rep-approved")
        # The note page of this rep's own sent note.
        page.goto(f"{base}/rep/asha/notes/{draft}")
        assert page.get_by_role("heading", level=1).is_visible()
        shot(page, "note")
        assert log.clean, log
        # Another rep's draft by URL: refused (the browser logs each refusal as an error).
        theirs = int(w.outbox(mailbox="lukas")[0]["id"])  # type: ignore[call-overload]
        for url in (f"{base}/rep/lukas/notes/{theirs}", f"{base}/rep/asha/notes/{theirs}"):
            reply = page.goto(url)
            assert reply.status in (403, 404)
        assert "Beatriz" not in page.content()
        shot(page, "refused")
        # A POST without the CSRF token, from this signed-in browser: refused.
        refused = page.request.post(f"{base}/rep/asha/notes/{draft}/cancel", form={"x": "1"})
        assert refused.status == 403
        assert len(log.console_errors) == 2 and not (log.page_errors or log.remote_requests)

        # Lukas snoozes a follow-up from his page; the worker keeps it.
        page2, log2 = open_page()
        sign_in(page2, base, w.google, "lukas@acme.example")
        follow = next(
            r
            for r in w.outbox(mailbox="lukas", status="planned")
            if r["kind"] == ActionKind.FOLLOW_UP
        )
        until = (max(NOW, follow["due"]) + timedelta(days=10)).date()  # type: ignore[type-var]
        row = page2.get_by_role("row").filter(has_text=f"#{follow['id']} ")
        row.get_by_label("Until").fill(until.isoformat())
        row.get_by_role("button", name=f"Snooze #{follow['id']}").click()
        page2.wait_for_load_state()
        assert f"snoozed until {until:%Y-%m-%d}" in page2.get_by_role("status").inner_text()
        shot(page2, "rep-snoozed")
        at = follow["due"] + timedelta(hours=1)  # type: ignore[operator]
        Worker(w.config, clock=lambda: at, post=lambda url, payload: None).run(once=True)
        assert w.row(int(follow["id"]))["status"] == "planned"  # type: ignore[call-overload]
        assert log2.clean, log2


def test_a_lead_uploads_draft_rules_and_sees_the_diff(  # type: ignore[no-untyped-def]
    open_page, demo_folder: Path, tmp_path: Path
) -> None:
    with world(demo_folder, tmp_path) as w, followup_web(w.config) as base:
        page, log = open_page()
        sign_in(page, base, w.google, "meera@acme.example")
        assert page.url == f"{base}/lead/apac"
        assert page.get_by_role("heading", name="Rules in force").is_visible()
        assert page.evaluate(UNLABELLED) == []
        # The team report's four charts are drawn: each image loads and has pixels.
        charts = page.get_by_role("region", name="Charts").get_by_role("img")
        assert charts.count() == 4
        for i in range(4):
            charts.nth(i).scroll_into_view_if_needed()
            charts.nth(i).evaluate("img => img.decode()")
            assert charts.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
        shot(page, "lead")
        draft = tmp_path / "faster.toml"
        draft.write_text(DRAFT_RULES)
        page.get_by_label("Draft rule file (.toml)").set_input_files(str(draft))
        page.get_by_role("button", name="Replay the last 30 days").click()
        page.wait_for_load_state()
        diff = page.get_by_role("region", name="asha")
        assert diff.is_visible()
        assert diff.get_by_role("row").count() >= 5
        page.locator("#diff").scroll_into_view_if_needed()
        shot(page, "lead-diff")
        assert log.clean, log


def test_the_demo_sign_in_in_hindi(open_page, demo_folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with world(demo_folder, tmp_path) as w, served(w.config, demo=True) as base:
        page, log = open_page(locale="hi-IN")
        page.goto(f"{base}/signin")
        assert page.locator("html").get_attribute("lang") == "hi"
        shot(page, "signin-demo-hi")
        page.get_by_role("button", name="Asha Rao").click()
        page.wait_for_url(f"{base}/rep/asha")
        shot(page, "rep-hi")
        assert page.evaluate(UNLABELLED) == []
        assert log.clean, log


def test_a_rep_connects_gmail_and_sees_the_first_sync(  # type: ignore[no-untyped-def]
    open_page, demo_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    from agent.worker import Worker
    from tests.fakes.gmail import raw_message

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain http
    with world(demo_folder, tmp_path) as w, followup_web(w.config) as base:
        for n in range(30):
            when = NOW - timedelta(days=n)
            raw = raw_message(n, to="nina@acme.example", subject=f"Question {n}", date=when)
            w.google.deliver(raw, internal=when)
        page, log = open_page()
        sign_in(page, base, w.google, "nina@acme.example")
        with page.expect_navigation(url=f"{base}/rep/nina"):
            page.get_by_role("button", name="Connect Google").click()
        assert "Connected nina as nina@acme.example" in page.get_by_role("status").inner_text()
        Worker(w.config, clock=lambda: NOW, post=lambda url, payload: None).run(once=True)
        page.reload()
        assert page.get_by_role("button", name="Disconnect").is_visible()
        assert "last synced" in page.content()
        shot(page, "rep-connected")
        page.get_by_role("button", name="Disconnect").click()
        page.wait_for_url(f"{base}/rep/nina")
        assert page.get_by_role("button", name="Reconnect Google").is_visible()
        shot(page, "rep-reconnect")
        assert log.clean, log


def test_followup_demo_web_signs_in_a_demo_rep_and_lead(open_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.web_world import followup

    with followup(["demo", "--web", "--out", str(tmp_path / "demo")], wait=180) as base:
        page, log = open_page()
        page.goto(base)
        assert page.url == f"{base}/signin"
        shot(page, "demo-signin")
        page.get_by_role("button", name="Sign in as Lukas Becker").click()
        page.wait_for_url(f"{base}/rep/lukas")
        assert page.get_by_role("heading", name="Follow-ups scheduled").is_visible()
        shot(page, "demo-rep")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{base}/signin")
        page.get_by_role("button", name="Sign in as Sofia Marín").click()
        page.wait_for_url(f"{base}/lead/emea")
        assert page.get_by_role("link", name="Team mena").is_visible()
        shot(page, "demo-lead")
        assert page.evaluate(UNLABELLED) == []
        assert log.clean, log
