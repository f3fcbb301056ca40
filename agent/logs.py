"""Logging for the service: text or one JSON object per line, and never a secret.

Log calls pass context as ``extra={"mailbox": ..., "client": ..., "rule": ..., "key": ...}``;
both formats print it. Whatever a message says, anything shaped like a bearer token, an OAuth
token or a sealed credential is replaced by ``[redacted]`` before it is written: exception
texts from HTTP libraries can quote headers or URLs, and a log line must never carry them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

CONTEXT = ("mailbox", "client", "rule", "key", "kind", "state", "worker")

_SECRETS = re.compile(
    r"(?i)"
    r"(bearer\s+)[A-Za-z0-9._~+/=-]+"  # Authorization: Bearer ...
    r"|((?:access|refresh|id)_token[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"  # JSON or form fields
    r"|((?:client_secret|code|password|secret|key)=)[^\s&\"']+"  # query strings
    r"|(ya29\.)[A-Za-z0-9._-]+"  # Google access tokens
    r"|(1//)[A-Za-z0-9._-]{20,}"  # Google refresh tokens
    r"|(eyJ)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9._-]+"  # JWTs (Microsoft access tokens)
    r"|(gAAAAA)[A-Za-z0-9_=-]{20,}"  # Fernet-sealed credentials
)


def redact(text: str) -> str:
    """``text`` with every token-shaped secret replaced by ``[redacted]``."""

    def keep_prefix(m: re.Match[str]) -> str:
        prefix = next((g for g in m.groups() if g), "")
        return f"{prefix}[redacted]"

    return _SECRETS.sub(keep_prefix, text)


class RedactingFilter(logging.Filter):
    """Renders the message once, redacted, so no formatter can leak its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
            record.exc_info = None  # tracebacks may quote request arguments
            record.exc_text = None
        record.msg = redact(text)
        record.args = ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT:
            value = getattr(record, name, None)
            if value not in (None, ""):
                entry[name] = value
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{name}={getattr(record, name)}"
            for name in CONTEXT
            if getattr(record, name, None) not in (None, "")
        ]
        return f"{line} [{' '.join(context)}]" if context else line


def setup(fmt: str = "text", *, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) in ``fmt`` ("text" or "json"): Followup's own loggers at
    ``level``, the libraries' at WARNING, all through the same redaction."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for ours in ("followup", "agent"):
        logging.getLogger(ours).setLevel(level)
