"""A real headless Chromium for tests of anything a person sees in a browser.

Pages are driven with Playwright pointed at the system's Chromium (Debian's ``chromium``
package; set ``FOLLOWUP_CHROMIUM`` to use another binary), so no browser is downloaded. Every
page opened through :func:`open_page` records its console errors, failed loads and every request
that leaves the machine, for tests to assert that a page loads clean and offline.

Outside CI the browser tests are skipped when no Chromium is installed; in CI its absence is a
failure, because ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when none is installed."""
    configured = os.environ.get("FOLLOWUP_CHROMIUM", "")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLog:
    """What a page did while a test drove it."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.console_errors or self.page_errors or self.failed or self.remote_requests)


def _is_remote(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "file", "cid"):
        return False
    return (parts.hostname or "") not in LOCAL_HOSTS


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """A headless Chromium shared by a session's tests (a Playwright ``Browser``)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed: apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(chromium: object) -> Iterator[object]:
    """A factory ``open_page() -> (page, log)``: a fresh browser context per call, with its log.

    Requests to hosts other than this machine are recorded and aborted, so a page that would
    fetch a font or a script from a CDN fails its test instead of reaching the network.
    """
    contexts = []

    def make(**context_options: object) -> tuple[object, PageLog]:
        context = chromium.new_context(**context_options)  # type: ignore[attr-defined]
        contexts.append(context)
        page = context.new_page()
        log = PageLog()

        def route(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            if _is_remote(url):
                log.remote_requests.append(url)
                route.abort()  # type: ignore[attr-defined]
            else:
                route.continue_()  # type: ignore[attr-defined]

        page.route("**/*", route)
        page.on(
            "console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: log.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: log.failed.append(f"{r.url}: {r.failure}"))
        return page, log

    yield make
    for context in contexts:
        context.close()
