"""``followup web``: serve the console with uvicorn, on localhost unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent import config
from agent.errors import ConfigError, Problem

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def check_cookies(settings: config.Settings, host: str, demo: bool) -> None:
    """Plain-http session cookies only on this machine: elsewhere they would cross a network."""
    if not settings.web.secure_cookies and not demo and host not in LOOPBACK:
        raise ConfigError(
            [
                Problem(
                    "config",
                    "web.secure_cookies",
                    f"is false but the console listens on {host}: keep it true behind HTTPS, "
                    "or listen on 127.0.0.1",
                )
            ]
        )


def serve(
    config_path: Path,
    listen: str | None,
    *,
    demo: bool = False,
    clock: Callable[[], datetime] | None = None,
    ready: Callable[[str], None] = print,
) -> None:
    import uvicorn

    from agent.store import wall_clock
    from agent.web.console import create_app

    settings = config.load(config_path)
    host, port = listen_address(listen or settings.web.listen)
    check_cookies(settings, host, demo)
    application = create_app(config_path, demo=demo, clock=clock or wall_clock)
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=True,  # behind the TLS proxy: the client's address and scheme
            server_header=False,
        )
    )
    ready(f"Followup console on http://{host}:{port}/ (Ctrl-C stops it)")
    server.run()


def demo_data(out: Path) -> tuple[Path, Callable[[], datetime]]:
    """Run the demo into ``out`` (as ``followup demo`` does, with its service and controls
    rounds) and return its config and a clock that starts where the demo ended."""
    from datetime import timedelta

    from agent.app import shifted_clock
    from agent.demo import controls_round, run_demo, service_round

    result = run_demo(out)
    service_round(out, result.now + timedelta(hours=1))
    end = result.now + timedelta(days=1)
    controls_round(out, end)
    return out / "config.toml", shifted_clock(end.isoformat())
