"""A console to test against: the demo's data in a fresh folder per test, the Google emulator as
the identity provider, and ``followup web`` served on a free port (in a thread, or as the real
command in a child process for the browser tests).

The demo runs once per test session (it takes seconds); each test gets a copy of its folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from agent.store import Store
from tests.fakes.gmail import GoogleEmulator

# Where the demo ends (its controls round): the console's "now" in every test.
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SESSION_KEY = "test-session-key-" + "0" * 32
# A Gmail mailbox served by the emulator, to connect from the console.
GMAIL_MAILBOX = """
[[mailboxes]]
name = "nina"
provider = "gmail"
address = "nina@acme.example"
rep_name = "Nina Patel"
zone = "Asia/Kolkata"
team = "apac"
lead = "meera@acme.example"
client_secrets = "google-client.json"
endpoint = "{root}"
"""
WEB_SECTION = """
[web]
secure_cookies = false
google_client_secrets = "google-client.json"
google_issuer = "{issuer}"
sign_in_per_minute = {per_minute}

[[web.users]]
email = "asha@acme.example"
mailboxes = ["asha"]

[[web.users]]
email = "lukas@acme.example"
mailboxes = ["lukas"]

[[web.users]]
email = "nina@acme.example"
mailboxes = ["nina"]

[[web.users]]
email = "meera@acme.example"
name = "Meera Iyer"
lead_of = ["apac"]
zone = "Asia/Kolkata"
"""


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agent.web.server import demo_data

    out = tmp_path_factory.mktemp("web-demo") / "demo"
    demo_data(out)
    return out


@dataclass
class World:
    folder: Path
    config: Path
    google: GoogleEmulator

    def store(self) -> Store:
        from agent import config

        return Store.open(config.load(self.config).database.url)

    def outbox(self, **where: object) -> list[dict[str, object]]:
        store = self.store()
        try:
            return [r for r in store.outbox() if all(r[k] == v for k, v in where.items())]
        finally:
            store.close()

    def row(self, ident: int) -> dict[str, object]:
        store = self.store()
        try:
            found = store.outbox_row(ident)
            assert found is not None
            return found
        finally:
            store.close()


@contextmanager
def world(demo_folder: Path, tmp_path: Path, *, per_minute: int = 30) -> Iterator[World]:
    folder = tmp_path / "demo"
    shutil.copytree(demo_folder, folder)
    from agent.providers.tokens import KEY_ENV, new_key

    # The Gmail mailbox's grant is sealed with the operator's key: the console, the worker and
    # a child `followup web` all read it from the environment.
    before = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = new_key()
    try:
        with _world(folder, per_minute) as made:
            yield made
    finally:
        if before is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = before


@contextmanager
def _world(folder: Path, per_minute: int) -> Iterator[World]:
    with GoogleEmulator("nina@acme.example") as google:
        secrets = google.client_secrets()
        (folder / "google-client.json").write_text(json.dumps({"web": secrets["installed"]}))
        config = folder / "config.toml"
        config.write_text(
            config.read_text(encoding="utf-8")
            + GMAIL_MAILBOX.format(root=google.root)
            + WEB_SECTION.format(issuer=google.issuer, per_minute=per_minute),
            encoding="utf-8",
        )
        yield World(folder, config, google)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(
    config: Path, *, demo: bool = False, seconds: Callable[[], float] | None = None
) -> Iterator[str]:
    """The console over ``config`` in a thread of this process; yields its base URL.
    ``seconds``: the clock sessions age by (default: the real one)."""
    import uvicorn

    from agent.web.console import create_app

    app = create_app(
        config, demo=demo, clock=lambda: NOW, key=SESSION_KEY, seconds=seconds or time.time
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def followup_web(config: Path) -> Iterator[str]:
    """``followup web`` as a person runs it, in a child process on a free port."""
    with followup(["web", "--config", str(config), "--now", NOW.isoformat()]) as base:
        yield base


@contextmanager
def followup(args: list[str], *, wait: float = 60) -> Iterator[str]:
    """``followup ARGS --listen 127.0.0.1:PORT`` in a child process; yields its base URL."""
    port = free_port()
    env = {**os.environ, "FOLLOWUP_WEB_SESSION_KEY": SESSION_KEY}
    child = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *args, "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            assert child.poll() is None, child.stdout.read().decode() if child.stdout else ""
            try:
                requests.get(f"{base}/signin", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "followup web did not start"
                time.sleep(0.1)
        yield base
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found[1]


def sign_in_google(base: str, google: GoogleEmulator, email: str) -> requests.Session:
    """Sign in through the emulator as ``email``, as a browser follows the redirects."""
    google.identity = email
    http = requests.Session()
    reply = http.get(f"{base}/signin/google", timeout=10)
    reply.raise_for_status()
    return http
