"""The worker's metrics and its small HTTP endpoint: ``/healthz`` and ``/metrics``.

``/healthz`` answers 200 only while the store answers and a rule set is loaded (and the worker
is not shutting down, and no pass is stuck), 503 otherwise, with a JSON body saying which check
failed. ``/metrics``
is the Prometheus text format from prometheus-client, in a registry of the worker's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Metrics:
    """Every figure the worker exports; one instance per worker."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.syncs = Counter("followup_syncs", "Mailbox passes, by result.", ["result"], registry=r)
        self.messages = Counter(
            "followup_messages_synced", "New or changed messages synced.", registry=r
        )
        self.planned = Counter(
            "followup_actions_planned", "Actions newly planned, by kind.", ["kind"], registry=r
        )
        self.executed = Counter(
            "followup_actions_executed",
            "Outbox rows executed, by kind and resulting status (sent, drafted, ...).",
            ["kind", "status"],
            registry=r,
        )
        self.cancelled = Counter(
            "followup_actions_cancelled", "Planned actions cancelled, reason gone.", registry=r
        )
        self.promises = Gauge(
            "followup_promises",
            "Promises in the mailboxes this worker planned last, by state.",
            ["state"],
            registry=r,
        )
        self.provider_errors = Counter(
            "followup_provider_errors", "Provider errors, by class.", ["error"], registry=r
        )
        self.leases = Gauge("followup_leases_held", "Mailboxes leased right now.", registry=r)
        self.leased = Counter("followup_leases_acquired", "Mailbox leases taken.", registry=r)
        self.lease_errors = Counter(
            "followup_lease_errors",
            "Attempts to lease mailboxes that failed because the store was busy or down.",
            registry=r,
        )
        self.lost = Counter(
            "followup_leases_lost", "Leases that expired under this worker.", registry=r
        )
        self.lag = Gauge(
            "followup_loop_lag_seconds",
            "How late the last leased mailbox was started after it fell due.",
            registry=r,
        )
        self.pass_seconds = Histogram(
            "followup_pass_seconds",
            "Time to sync, plan and execute one mailbox.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.replanned = Counter(
            "followup_threads_planned",
            "Threads planned afresh: their mail changed, or a deadline or due note came.",
            registry=r,
        )
        self.deferred = Counter(
            "followup_whole_plans_deferred",
            "Planning passes put off because every slot for whole-mailbox plans was taken "
            "(service.whole_plans); the mailbox is planned at its next pass.",
            registry=r,
        )
        self.mailboxes = Gauge(
            "followup_mailboxes", "Mailboxes by stream state.", ["state"], registry=r
        )
        self.first_sync = Gauge(
            "followup_first_sync_done_ratio",
            "Share of its look-back window a mailbox's first sync has stored (1 once read).",
            ["mailbox"],
            registry=r,
        )
        self.reloads = Counter(
            "followup_reloads", "Configuration reloads, by result.", ["result"], registry=r
        )
        self.rules_loaded = Gauge(
            "followup_rules_loaded", "1 while a valid rule set is loaded.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


Check = Callable[[], dict[str, bool]]


class HealthServer:
    """Serves ``/healthz`` and ``/metrics`` on ``host:port`` from a daemon thread."""

    def __init__(self, listen: str, metrics: Metrics, check: Check) -> None:
        host, _, port = listen.rpartition(":")
        self.metrics = metrics
        self.check = check
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/healthz":
                checks = server.check()
                ok = all(checks.values())
                body = json.dumps({"status": "ok" if ok else "unavailable", **checks}).encode()
                self._send(200 if ok else 503, "application/json", body)
            elif self.path.split("?")[0] == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, server.metrics.render())
            else:
                self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    return Handler
