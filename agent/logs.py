"""Logging for the service: text or one JSON object per line, and never a secret.

Log calls pass context as ``extra={"mailbox": ..., "client": ..., "rule": ..., "key": ...}``;
both formats print it. Whatever a message says, anything shaped like a bearer token, an OAuth
token, a client secret, a password in a URL, a webhook's path or a sealed credential is replaced
by ``[redacted]`` before it is written: exception texts from HTTP libraries can quote headers,
bodies or URLs, and a log line must never carry them. The store applies the same :func:`redact`
to every error it records, so ``followup status`` never shows one either.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

CONTEXT = ("mailbox", "client", "rule", "key", "kind", "state", "worker")

# Every quantifier that runs over untrusted text is bounded or ends a match: an error text is
# hostile input, and a pattern must not take quadratic time on it.
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=!*$-]"
_SECRETS = re.compile(
    r"(?i)"
    r"(bearer\s+)[A-Za-z0-9._~+/=-]+"  # Authorization: Bearer ...
    # JSON or form fields: OAuth tokens, client secrets, passwords, signed assertions
    r"|((?:access_token|refresh_token|id_token|client_secret|password|code_verifier"
    r"|client_assertion)[\"']?\s{0,5}[:=]\s{0,5}[\"']?)[^\s\"'&,}]+"
    r"|((?:client_secret|code|password|secret|key|token|sig|signature)=)[^\s&\"']+"  # queries
    r"|(ya29\.)[A-Za-z0-9._-]+"  # Google access tokens
    r"|(1//)[A-Za-z0-9._-]{20,}"  # Google refresh tokens
    r"|(?<![A-Za-z0-9_-])(eyJ)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9._-]+"  # JWTs (Microsoft access)
    r"|(gAAAAA)[A-Za-z0-9_=-]{20,}"  # Fernet-sealed credentials
)
# Microsoft's opaque tokens, whose first letters are case-sensitive.
_CASED = re.compile(
    r"(?<![A-Za-z0-9])(Ew[A-Za-z0-9])" + _TOKEN_CHARS + r"{30,}"  # Microsoft account access
    r"|(?<![A-Za-z0-9])(M\.[A-Z]\d{0,6}_[A-Z0-9]{1,20}\.)" + _TOKEN_CHARS + r"{10,}"  # refresh
    r"|(?<![A-Za-z0-9.])(0\.A)" + _TOKEN_CHARS + r"{30,}"  # Entra ID refresh tokens
)
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}://[^\s\"'<>]+")
_USERINFO = re.compile(r"^([^/@:]*://[^/@:]*:)[^/@]*@")  # anchored: one URL at a time
# Webhooks served under paths without the word "hook": Google Chat, Azure Logic Apps.
_HOOK_HOSTS = re.compile(r"(?i)^(chat\.googleapis\.com|[a-z0-9-]+\.logic\.azure\.com)(:\d+)?$")
REDACTED = "[redacted]"


def _url(m: re.Match[str]) -> str:
    """A URL with its password hidden, and with only its host left when it is a webhook's:
    the path of a webhook URL is its credential, anyone holding it can post."""
    url = _USERINFO.sub(lambda u: f"{u.group(1)}{REDACTED}@", m.group(0))
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    if slash and ("hook" in path.lower() or _HOOK_HOSTS.match(host)):
        return f"{scheme}://{authority}/{REDACTED}"
    return url


def redact(text: str) -> str:
    """``text`` with every token-shaped secret replaced by ``[redacted]``: OAuth tokens of
    Google and Microsoft, client secrets and passwords, sealed credentials, the password of a
    ``user:password@`` URL, and the path of a webhook URL (its host stays)."""

    def keep_prefix(m: re.Match[str]) -> str:
        prefix = next((g for g in m.groups() if g), "")
        return f"{prefix}{REDACTED}"

    text = _URL.sub(_url, text)
    text = _SECRETS.sub(keep_prefix, text)
    return _CASED.sub(keep_prefix, text)


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
