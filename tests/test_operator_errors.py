"""An operator's mistake is one line that names the key and the fix, never a traceback; a
configuration the worker cannot start with exits 78 (EX_CONFIG), which systemd does not
restart on."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import EX_CONFIG, main
from agent.config import load
from agent.errors import ConfigError
from agent.store import Store
from tests.test_deploy import _unit

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "config.example.toml"


def config_with(tmp_path: Path, extra: str, *, url: str | None = None) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    if url is not None:
        text = text.replace('url = "sqlite:///followup.db"', f'url = "{url}"')
    path = tmp_path / "config.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def problems_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return "\n".join(str(p) for p in caught.value.problems)


def test_postgres_urls_as_hosts_hand_them_out_are_postgresql(tmp_path: Path) -> None:
    for url in ("postgres://app:pw@db.internal/followup", "postgresql://app@db/followup"):
        settings = load(config_with(tmp_path, "", url=url))
        assert settings.database.url.startswith("postgresql+psycopg://app")
    said = problems_of(config_with(tmp_path, "", url="mysql://app@db/followup"))
    assert "database.url" in said and "sqlite:///FILE or postgresql+psycopg://" in said


@pytest.mark.parametrize(
    ("listen", "hint"),
    [("9464", "HOST:PORT"), ("127.0.0.1:70000", "0 to 65535"), (":9464", "has no host")],
)
def test_listen_must_be_host_and_port(tmp_path: Path, listen: str, hint: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'listen = "127.0.0.1:9464"', f'listen = "{listen}"'
    )
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    said = problems_of(path)
    assert "service.listen" in said and hint in said


def test_a_sqlite_file_in_a_missing_folder_names_the_folder_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(ConfigError) as caught:
        Store.open(f"sqlite:///{missing / 'followup.db'}")
    said = str(caught.value.problems[0])
    assert str(missing) in said and f"mkdir -p {missing}" in said


def test_postgresql_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as caught:
        Store.open("postgresql+psycopg://followup@127.0.0.1:1/postgres")
    assert "pip install 'followup-agent[postgres]'" in str(caught.value.problems[0])


def test_the_database_url_may_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_with(tmp_path, "")
    monkeypatch.setenv("FOLLOWUP_DATABASE_URL", "postgres://app:secret@db/followup")
    assert load(path).database.url == "postgresql+psycopg://app:secret@db/followup"
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+psycopg://app:other@db/followup\n", encoding="utf-8")
    monkeypatch.setenv("FOLLOWUP_DATABASE_URL_FILE", str(secret))
    assert load(path).database.url == "postgresql+psycopg://app:other@db/followup"
    monkeypatch.setenv("FOLLOWUP_DATABASE_URL_FILE", str(tmp_path / "absent"))
    assert "FOLLOWUP_DATABASE_URL_FILE" in problems_of(path)
    monkeypatch.delenv("FOLLOWUP_DATABASE_URL_FILE")
    monkeypatch.setenv("FOLLOWUP_DATABASE_URL", "oracle://x")
    said = problems_of(path)
    assert said.startswith("FOLLOWUP_DATABASE_URL") and "is not a database" in said


def test_run_exits_78_on_a_config_it_cannot_start_with(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text('[outbox]\nmode = "yolo"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--once", "--config", str(bad)])
    assert result.exit_code == EX_CONFIG == 78
    assert "outbox.mode" in result.output
    assert _unit()["Service"]["RestartPreventExitStatus"] == "78"


def test_a_port_in_use_is_a_config_error_even_with_once(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        path = tmp_path / "config.toml"
        (tmp_path / "clients.csv").write_text("name,emails\n", encoding="utf-8")
        path.write_text(
            f'[database]\nurl = "sqlite:///{tmp_path / "f.db"}"\n'
            f"[paths]\nrules = {json.dumps(str(REPO / 'rules'))}\n"
            f"templates = {json.dumps(str(REPO / 'templates'))}\n"
            f'[service]\nlisten = "127.0.0.1:{port}"\n',
            encoding="utf-8",
        )
        result = CliRunner().invoke(main, ["run", "--once", "--config", str(path)])
    finally:
        holder.close()
    assert result.exit_code == EX_CONFIG, result.output
    assert "service.listen" in result.output and "choose another port" in result.output


def test_the_webhook_url_may_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_with(tmp_path, "")
    secret = tmp_path / "hook"
    secret.write_text("https://hooks.example.com/services/T/B/X\n", encoding="utf-8")
    monkeypatch.setenv("FOLLOWUP_WEBHOOK_URL_FILE", str(secret))
    assert load(path).team.webhook_url == "https://hooks.example.com/services/T/B/X"
