"""Provider credentials at rest: sealed with a key the operator holds, never logged.

The key comes from ``FOLLOWUP_SECRET_KEY`` (a Fernet key, urlsafe base64 of 32 bytes) or from a
file named by ``FOLLOWUP_SECRET_KEY_FILE`` (for a systemd credential:
``LoadCredential=followup-key:/etc/followup/key`` and
``FOLLOWUP_SECRET_KEY_FILE=%d/followup-key``). ``followup keygen`` prints a new key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken

from agent.errors import ConfigError, Problem

KEY_ENV = "FOLLOWUP_SECRET_KEY"
KEY_FILE_ENV = "FOLLOWUP_SECRET_KEY_FILE"


def new_key() -> str:
    return Fernet.generate_key().decode()


class Vault:
    """Seals and opens credential blobs. ``repr`` never shows the key."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                [Problem(KEY_ENV, "", "not a valid key: generate one with `followup keygen`")]
            ) from exc

    def __repr__(self) -> str:
        return "Vault(<key hidden>)"

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken as exc:
            raise ConfigError(
                [Problem(KEY_ENV, "", "stored credentials do not open with this key")]
            ) from exc

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Vault:
        env = os.environ if environ is None else environ
        if env.get(KEY_ENV):
            return cls(env[KEY_ENV].strip())
        if env.get(KEY_FILE_ENV):
            path = Path(env[KEY_FILE_ENV])
            try:
                return cls(path.read_text().strip())
            except OSError as exc:
                raise ConfigError([Problem(str(path), "", f"cannot read the key: {exc}")]) from exc
        raise ConfigError(
            [
                Problem(
                    KEY_ENV,
                    "",
                    f"no key to seal credentials: set {KEY_ENV} (from `followup keygen`) "
                    f"or {KEY_FILE_ENV}",
                )
            ]
        )


class CredentialStore(Protocol):
    """Where sealed credentials live; the SQL store implements it, tests use a dict."""

    def load_credentials(self, mailbox: str) -> bytes | None: ...

    def save_credentials(self, mailbox: str, sealed: bytes) -> None: ...


class MemoryCredentials:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def load_credentials(self, mailbox: str) -> bytes | None:
        return self.blobs.get(mailbox)

    def save_credentials(self, mailbox: str, sealed: bytes) -> None:
        self.blobs[mailbox] = sealed
