"""The deployment files say what the README promises, and the worker speaks systemd's notify."""

from __future__ import annotations

import configparser
import socket
from pathlib import Path

import pytest

from agent.worker import sd_notify

DEPLOY = Path(__file__).parent.parent / "deploy"


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "followup.service")
    return unit


def test_the_systemd_unit_is_hardened_and_takes_its_key_as_a_credential() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["User"] == "followup"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert service[key] == value, key
    assert service["LoadCredential"].startswith("secret-key:")
    assert service["Environment"] == "FOLLOWUP_SECRET_KEY_FILE=%d/secret-key"
    assert "run --config" in service["ExecStart"]
    assert service["ExecReload"].endswith("-HUP $MAINPID")


def test_the_container_runs_unprivileged_with_a_health_check() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert "\nUSER followup\n" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'VOLUME ["/var/lib/followup"]' in text
    assert "FOLLOWUP_SECRET_KEY_FILE=/run/secrets/followup-key" in text


def test_sd_notify_reaches_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sd_notify("READY=1")
        sock.settimeout(2)
        assert sock.recv(100) == b"READY=1"


def test_sd_notify_is_silent_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sd_notify("READY=1")  # nothing to tell, nothing raised
