"""Connecting a Google mailbox and keeping its grant fresh, sealed at rest.

``connect_gmail`` runs the OAuth installed-app flow on a loopback port and stores the
authorized-user JSON sealed by the :class:`~agent.providers.tokens.Vault`. ``load_credentials``
opens it again as google-auth ``Credentials`` whose refresh is single-flight per mailbox and writes
the refreshed token back. A grant revoked by the rep or an admin (``invalid_grant``) becomes
:class:`~agent.errors.AuthRevoked`. Tokens are never logged: the credential object's ``repr``
names only the mailbox.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.auth import exceptions as google_exceptions
from google.oauth2.credentials import Credentials

from agent.errors import AuthRevoked, Permanent, Transient
from agent.providers.tokens import CredentialStore, Vault

if TYPE_CHECKING:
    # The consent flow (oauthlib, requests) is loaded by connect_gmail only: a worker never runs it.
    from google_auth_oauthlib.flow import InstalledAppFlow

log = logging.getLogger(__name__)

# The least that the Gmail and Calendar adapters need, per the method scopes in the published
# discovery documents:
# - gmail.readonly: history.list, messages.list/get (sync, bodies, find_sent). gmail.metadata
#   would be smaller but forbids format=raw bodies and the `q` search find_sent uses.
# - gmail.compose: drafts.create/list/get and drafts.send; no label changes, no deletes, which
#   gmail.modify would add.
# - calendar.events.owned: events.list and events.insert on calendars the rep owns only, not
#   every calendar shared with them (calendar.events).
# - calendar.freebusy: freebusy.query alone, without reading event details.
SCOPES = (
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/calendar.events.owned",
    "https://www.googleapis.com/auth/calendar.freebusy",
)

FlowRunner = Callable[["InstalledAppFlow"], Any]
ProfileReader = Callable[[Credentials], str]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(mailbox: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(mailbox, threading.Lock())


def _to_info(credentials: Credentials, account: str = "") -> dict[str, Any]:
    info: dict[str, Any] = json.loads(credentials.to_json())
    # from_authorized_user_info would replace token_uri with Google's own; load_credentials
    # rebuilds Credentials itself so that the stored endpoint is the one used.
    info["token_uri"] = credentials.token_uri
    if account:
        info["account"] = account
    return info


def _expiry(info: dict[str, Any]) -> datetime | None:
    text = info.get("expiry")
    if not text:
        return None
    # google-auth compares expiry against a naive UTC clock, so it must stay naive here.
    return datetime.strptime(text.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")


def refresh_error(exc: google_exceptions.RefreshError, *, mailbox: str) -> Exception:
    """Map a failed token refresh: invalid_grant -> AuthRevoked, retryable -> Transient."""
    text = str(exc)
    if "invalid_grant" in text:
        return AuthRevoked(
            f"the Google grant for {mailbox} was revoked or expired: reconnect it", mailbox=mailbox
        )
    if getattr(exc, "retryable", False):
        return Transient(f"token refresh for {mailbox} failed: {text}", mailbox=mailbox)
    return Permanent(f"token refresh for {mailbox} failed: {text}", mailbox=mailbox)


class StoredCredentials(Credentials):
    """google-auth credentials for one mailbox, refreshed once at a time and saved sealed."""

    def __init__(
        self, mailbox: str, info: dict[str, Any], vault: Vault, store: CredentialStore
    ) -> None:
        super().__init__(
            token=info.get("token"),
            refresh_token=info.get("refresh_token"),
            token_uri=info.get("token_uri") or "https://oauth2.googleapis.com/token",
            client_id=info.get("client_id"),
            client_secret=info.get("client_secret"),
            scopes=info.get("scopes"),
            expiry=_expiry(info),
        )
        self._mailbox = mailbox
        self._vault = vault
        self._store = store
        self._account = str(info.get("account", ""))

    def __repr__(self) -> str:
        return f"StoredCredentials(mailbox={self._mailbox!r})"

    @property
    def account(self) -> str:
        return self._account

    def refresh(self, request: Any) -> None:
        with _lock_for(self._mailbox):
            # Another thread may have refreshed while this one waited: use its token instead of
            # spending a second refresh (and, with rotating refresh tokens, invalidating it).
            latest = _read_info(self._mailbox, self._vault, self._store)
            if latest and latest.get("token") and latest.get("token") != self.token:
                expiry = _expiry(latest)
                self.token = latest["token"]
                self.expiry = expiry
                self._refresh_token = latest.get("refresh_token", self._refresh_token)
                if self.valid:
                    return
            try:
                super().refresh(request)
            except google_exceptions.RefreshError as exc:
                raise refresh_error(exc, mailbox=self._mailbox) from exc
            except google_exceptions.TransportError as exc:
                raise Transient(
                    f"token refresh for {self._mailbox} failed: {exc}", mailbox=self._mailbox
                ) from exc
            _save_info(self._mailbox, _to_info(self, self._account), self._vault, self._store)
            log.info("refreshed the Google token of %s", self._mailbox)


def _read_info(mailbox: str, vault: Vault, store: CredentialStore) -> dict[str, Any] | None:
    sealed = store.load_credentials(mailbox)
    if sealed is None:
        return None
    info: dict[str, Any] = json.loads(vault.open(sealed))
    return info


def _save_info(mailbox: str, info: dict[str, Any], vault: Vault, store: CredentialStore) -> None:
    store.save_credentials(mailbox, vault.seal(json.dumps(info).encode()))


def load_credentials(mailbox: str, vault: Vault, store: CredentialStore) -> StoredCredentials:
    """The mailbox's stored grant as google-auth credentials.

    Raises ``AuthRevoked`` when nothing is stored (the mailbox was never connected) and
    ``ConfigError`` when the stored blob does not open with the vault's key.
    """
    info = _read_info(mailbox, vault, store)
    if info is None or not info.get("refresh_token"):
        raise AuthRevoked(f"{mailbox} is not connected: run the connect command", mailbox=mailbox)
    return StoredCredentials(mailbox, info, vault, store)


def _profile_email(credentials: Credentials, api_endpoint: str | None) -> str:
    from googleapiclient.discovery import build

    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    service = build(
        "gmail",
        "v1",
        credentials=credentials,
        static_discovery=True,
        cache_discovery=False,
        client_options=options,
    )
    try:
        profile = service.users().getProfile(userId="me").execute(num_retries=2)
    finally:
        service.close()
    return str(profile["emailAddress"])


def connect_gmail(
    mailbox: str,
    client_secrets: Path,
    vault: Vault,
    creds: CredentialStore,
    *,
    port: int = 0,
    open_browser: bool = True,
    flow_runner: FlowRunner | None = None,
    api_endpoint: str | None = None,
) -> str:
    """Ask the rep's consent in a browser, store the sealed grant, return the account's address.

    ``port=0`` picks a free loopback port. ``flow_runner`` replaces the consent step (tests give
    one that consents against an emulator); by default the flow listens on ``localhost:port`` and
    opens the browser unless ``open_browser`` is false, when it prints the URL to visit.
    Raises ``Permanent`` when the rep declined some of the scopes, ``AuthRevoked`` when the
    consent produced no refresh token.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=list(SCOPES))

    def default_runner(f: InstalledAppFlow) -> Any:
        # access_type=offline + prompt=consent: without them Google returns no refresh token
        # when the rep had consented before, and the grant would die within the hour.
        return f.run_local_server(
            port=port, open_browser=open_browser, access_type="offline", prompt="consent"
        )

    credentials = (flow_runner or default_runner)(flow)
    return store_grant(mailbox, credentials, vault, creds, api_endpoint)


def store_grant(
    mailbox: str,
    credentials: Credentials,
    vault: Vault,
    creds: CredentialStore,
    api_endpoint: str | None = None,
) -> str:
    """Check a consent's grant, store it sealed, return the account's address (see
    :func:`connect_gmail` for what it raises)."""
    granted = set(getattr(credentials, "granted_scopes", None) or credentials.scopes or ())
    missing = sorted(set(SCOPES) - granted)
    if missing:
        raise Permanent(
            f"consent for {mailbox} did not grant {', '.join(missing)}: connect again and keep "
            "every permission ticked",
            mailbox=mailbox,
        )
    if not credentials.refresh_token:
        raise AuthRevoked(f"consent for {mailbox} returned no refresh token", mailbox=mailbox)
    account = _profile_email(credentials, api_endpoint)
    _save_info(mailbox, _to_info(credentials, account), vault, creds)
    log.info("connected %s as %s", mailbox, account)
    return account


def consent_url(client_secrets: Path, redirect_uri: str) -> tuple[str, str, str]:
    """The web-server flow's first leg, for a console: the URL of Google's consent page (offline
    access, consent asked again so a refresh token comes back, PKCE), its ``state`` and the PKCE
    verifier the second leg needs."""
    from google_auth_oauthlib.flow import Flow

    flow = Flow.from_client_secrets_file(
        str(client_secrets),
        scopes=list(SCOPES),
        redirect_uri=redirect_uri,
        autogenerate_code_verifier=True,
    )
    url, state = flow.authorization_url(access_type="offline", prompt="consent")
    return url, state, str(flow.code_verifier)


def finish_consent(
    mailbox: str,
    client_secrets: Path,
    redirect_uri: str,
    *,
    state: str,
    verifier: str,
    code: str,
    vault: Vault,
    creds: CredentialStore,
    api_endpoint: str | None = None,
) -> str:
    """The web-server flow's second leg: redeem ``code`` with the verifier and store the grant
    sealed, exactly as :func:`connect_gmail` does. Return the account's address."""
    from google_auth_oauthlib.flow import Flow
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    flow = Flow.from_client_secrets_file(
        str(client_secrets),
        scopes=list(SCOPES),
        redirect_uri=redirect_uri,
        state=state,
        code_verifier=verifier,
    )
    try:
        flow.fetch_token(code=code)
    except OAuth2Error as exc:
        raise Permanent(
            f"Google refused the consent for {mailbox}: {exc.error}", mailbox=mailbox
        ) from exc
    return store_grant(mailbox, flow.credentials, vault, creds, api_endpoint)
