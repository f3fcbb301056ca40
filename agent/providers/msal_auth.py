"""Microsoft identity for the Outlook provider: connect a mailbox once, then hand out tokens.

Delegated access (a rep's own mailbox) is connected with the device-code flow (headless: the rep
opens a URL on any device and types a code) or with the auth-code flow on a loopback port. The
resulting MSAL ``SerializableTokenCache`` is sealed with :class:`agent.providers.tokens.Vault` and
kept in a :class:`~agent.providers.tokens.CredentialStore` under the mailbox name; it is written
back only when MSAL says it changed (a refresh rotated the refresh token).

Application access (an organisation's admin consents once; the agent reads reps' mailboxes as
``/users/{address}``) uses client credentials and needs no per-mailbox state.

Errors: a grant that is gone (``invalid_grant``, ``interaction_required``, nothing cached) raises
:class:`agent.errors.AuthRevoked`; an identity platform that is down or throttling raises
:class:`agent.errors.Transient`. Tokens never appear in logs or exception messages.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import msal
import requests

from agent.errors import AuthRevoked, Permanent, SignInFailed, Transient
from agent.providers.tokens import CredentialStore, Vault

log = logging.getLogger(__name__)

# Least privilege that does the job, as delegated permissions:
# - Mail.ReadWrite: read both folders and create drafts (Mail.Read cannot write a draft, and the
#   exactly-once send needs a draft tagged with the outbox key);
# - Mail.Send: send that draft;
# - Calendars.ReadWrite: create invitations; it also covers getSchedule and calendarView.
# offline_access, openid and profile are reserved: MSAL adds them itself and refuses them here.
DELEGATED_SCOPES = ("Mail.ReadWrite", "Mail.Send", "Calendars.ReadWrite")
# Client credentials can only ask for the app's consented permissions as a whole.
APP_SCOPES = ("https://graph.microsoft.com/.default",)

# Errors after which only the rep can help: the refresh token was revoked, rotated away or
# expired, or the tenant now demands MFA or consent again.
_REVOKED = {"invalid_grant", "interaction_required", "consent_required", "login_required"}
_BAD_CLIENT = {"invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"}
# How a device-code sign-in ends without tokens (RFC 8628 section 3.5, and Microsoft's device
# code flow reference), told to the rep as what happened and what to do.
_SIGN_IN_ENDS = {
    "authorization_declined": "the sign-in was declined on Microsoft's page",
    "expired_token": "the code expired before the sign-in was finished",
    "bad_verification_code": "Microsoft did not recognise the code that was entered",
    "access_denied": "the sign-in was declined on Microsoft's page",
}

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _mailbox_lock(mailbox: str) -> threading.Lock:
    """One lock per mailbox in this process: a refresh is single-flight, so two threads never
    redeem the same refresh token (the second would fail with invalid_grant after rotation)."""
    with _locks_guard:
        return _locks.setdefault(mailbox, threading.Lock())


def _msal_options(http_client: requests.Session | None, custom_authority: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if http_client is not None:
        options["http_client"] = http_client
    if custom_authority:
        # An authority that is not a Microsoft cloud host (a private or test identity server):
        # skip the instance-discovery call to login.microsoftonline.com.
        options["instance_discovery"] = False
        options["validate_authority"] = False
    return options


def _classify(result: dict[str, Any], mailbox: str) -> Exception:
    """Map an MSAL error response to our error tree; the message carries no token."""
    code = str(result.get("error", "unknown_error"))
    description = str(result.get("error_description", "")).splitlines()[0:1]
    text = f"{code}: {description[0] if description else ''}".strip()
    if code in _REVOKED:
        return AuthRevoked(
            f"Microsoft sign-in for {mailbox} is no longer valid ({text})", mailbox=mailbox
        )
    if code in _BAD_CLIENT:
        return Permanent(f"Microsoft rejected the app registration ({text})", mailbox=mailbox)
    if code in _SIGN_IN_ENDS:
        return SignInFailed(
            f"{_SIGN_IN_ENDS[code]} ({code}); run followup connect outlook --mailbox {mailbox} "
            "again and finish the sign-in with the new code",
            mailbox=mailbox,
        )
    return Transient(f"Microsoft sign-in failed ({text})", mailbox=mailbox)


class _SealedCache:
    """The MSAL cache of one mailbox, read from and written back to the credential store."""

    def __init__(self, mailbox: str, vault: Vault, creds: CredentialStore) -> None:
        self.mailbox = mailbox
        self._vault = vault
        self._creds = creds
        self.cache = msal.SerializableTokenCache()
        self._seen: bytes | None = None

    def reload(self) -> bool:
        """Load the stored cache if it differs from what we hold; return whether it did."""
        sealed = self._creds.load_credentials(self.mailbox)
        if sealed is None or sealed == self._seen:
            return False
        self.cache.deserialize(self._vault.open(sealed).decode())
        self._seen = sealed
        return True

    def save_if_changed(self) -> None:
        if self.cache.has_state_changed:
            sealed = self._vault.seal(self.cache.serialize().encode())
            self._creds.save_credentials(self.mailbox, sealed)
            self._seen = sealed


def connect_outlook_device(
    mailbox: str,
    client_id: str,
    authority: str,
    vault: Vault,
    creds: CredentialStore,
    *,
    prompt: Callable[[str], None],
    http_client: requests.Session | None = None,
    custom_authority: bool = False,
    timeout: float | None = None,
) -> str:
    """Connect ``mailbox`` with the device-code flow; return the signed-in account's username.

    ``prompt`` receives the sentence to show the rep (the verification URL and the code). Blocks
    until the rep finishes or ``timeout`` seconds pass; a sign-in declined, expired or given a
    wrong code raises ``SignInFailed`` saying which.
    ``authority`` is ``https://login.microsoftonline.com/{tenant}``.
    """
    sealed = _SealedCache(mailbox, vault, creds)
    app = msal.PublicClientApplication(
        client_id,
        authority=authority,
        token_cache=sealed.cache,
        **_msal_options(http_client, custom_authority),
    )
    flow = app.initiate_device_flow(scopes=list(DELEGATED_SCOPES))
    if "user_code" not in flow:
        raise _classify(flow, mailbox)
    if timeout is not None:
        flow["expires_at"] = min(float(flow.get("expires_at", 0)), time.time() + timeout)
    prompt(
        str(flow.get("message") or f"Open {flow['verification_uri']} and enter {flow['user_code']}")
    )
    result = app.acquire_token_by_device_flow(flow)
    return _finish(result, sealed, mailbox)


def connect_outlook_interactive(
    mailbox: str,
    client_id: str,
    authority: str,
    vault: Vault,
    creds: CredentialStore,
    *,
    port: int = 0,
    http_client: requests.Session | None = None,
    custom_authority: bool = False,
    timeout: float | None = 300,
) -> str:
    """Connect ``mailbox`` with the auth-code flow: a browser opens the sign-in page and
    Microsoft redirects back to ``http://localhost:{port}``. Return the account's username.

    ``port=0`` picks a free port (the app registration must list ``http://localhost``).
    """
    sealed = _SealedCache(mailbox, vault, creds)
    app = msal.PublicClientApplication(
        client_id,
        authority=authority,
        token_cache=sealed.cache,
        **_msal_options(http_client, custom_authority),
    )
    result = app.acquire_token_interactive(
        list(DELEGATED_SCOPES), port=port or None, timeout=timeout, prompt="select_account"
    )
    return _finish(result, sealed, mailbox)


def begin_outlook_web(
    client_id: str,
    authority: str,
    redirect_uri: str,
    *,
    http_client: requests.Session | None = None,
    custom_authority: bool = False,
) -> dict[str, Any]:
    """The first leg of connecting from a console (the auth-code flow redirected to the
    console): MSAL's flow, holding ``auth_uri`` to send the browser to and the ``state``,
    ``nonce`` and PKCE verifier the second leg checks. Keep it private to the browser's session."""
    app = msal.PublicClientApplication(
        client_id, authority=authority, **_msal_options(http_client, custom_authority)
    )
    try:
        with warnings.catch_warnings():
            # MSAL recommends response_mode=form_post; but the console's session cookie is
            # SameSite=Lax, which a browser leaves off the cross-site POST that form_post makes,
            # so the flow could not be matched. The code comes back in the query instead: PKCE
            # binds it to this flow, and the console sends no Referer and logs no URL.
            warnings.filterwarnings("ignore", "response_mode='form_post'", UserWarning)
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                list(DELEGATED_SCOPES),
                redirect_uri=redirect_uri,
                prompt="select_account",
                response_mode="query",
            )
    except requests.RequestException as exc:
        raise Transient(f"Microsoft sign-in unreachable: {type(exc).__name__}") from exc
    return flow


def finish_outlook_web(
    mailbox: str,
    client_id: str,
    authority: str,
    flow: dict[str, Any],
    params: dict[str, str],
    vault: Vault,
    creds: CredentialStore,
    *,
    http_client: requests.Session | None = None,
    custom_authority: bool = False,
) -> str:
    """The second leg: MSAL checks ``state`` and ``nonce`` and redeems the code with the
    verifier; the token cache is sealed and stored as the other connect flows store it.
    Return the account's username."""
    sealed = _SealedCache(mailbox, vault, creds)
    app = msal.PublicClientApplication(
        client_id,
        authority=authority,
        token_cache=sealed.cache,
        **_msal_options(http_client, custom_authority),
    )
    try:
        result = app.acquire_token_by_auth_code_flow(flow, params)
    except ValueError as exc:  # MSAL: a state that does not match, a flow used twice
        raise SignInFailed(
            f"the Microsoft sign-in for {mailbox} did not match: start again"
        ) from exc
    except requests.RequestException as exc:
        raise Transient(f"Microsoft sign-in unreachable: {type(exc).__name__}") from exc
    return _finish(result, sealed, mailbox)


def _finish(result: dict[str, Any] | None, sealed: _SealedCache, mailbox: str) -> str:
    if not result or "access_token" not in result:
        raise _classify(result or {"error": "authorization_declined"}, mailbox)
    sealed.save_if_changed()
    claims = result.get("id_token_claims") or {}
    username = str(claims.get("preferred_username") or claims.get("email") or "")
    if not username:
        accounts = sealed.cache.find(msal.TokenCache.CredentialType.ACCOUNT)
        username = str(accounts[0].get("username", "")) if accounts else ""
    log.info("connected Outlook mailbox %s as %s", mailbox, username)
    return username


class GraphAuth:
    """Access tokens for one connected mailbox (delegated). ``token()`` is safe from threads.

    Each call returns a cached access token or redeems the refresh token; a rotated cache is
    sealed and stored. Raises ``AuthRevoked`` when the mailbox must be connected again.
    """

    def __init__(
        self,
        mailbox: str,
        client_id: str,
        authority: str,
        vault: Vault,
        creds: CredentialStore,
        http_client: requests.Session | None = None,
        *,
        custom_authority: bool = False,
    ) -> None:
        self.mailbox = mailbox
        self._sealed = _SealedCache(mailbox, vault, creds)
        self._lock = _mailbox_lock(mailbox)
        self._app = msal.PublicClientApplication(
            client_id,
            authority=authority,
            token_cache=self._sealed.cache,
            **_msal_options(http_client, custom_authority),
        )

    def __repr__(self) -> str:
        return f"GraphAuth({self.mailbox!r})"

    def token(self, force_refresh: bool = False) -> str:
        """An access token for Graph. ``force_refresh``: the last one was refused (401)."""
        with self._lock:
            # Another worker may have rotated the refresh token since we last looked.
            self._sealed.reload()
            result = self._acquire(force_refresh)
            if result is not None and result.get("error") in _REVOKED and self._sealed.reload():
                # Our copy was stale but the store holds a newer one: that is not a revocation.
                result = self._acquire(force_refresh)
            if result is None:
                raise AuthRevoked(
                    f"no Microsoft sign-in stored for {self.mailbox}: connect it first",
                    mailbox=self.mailbox,
                )
            if "access_token" not in result:
                raise _classify(result, self.mailbox)
            self._sealed.save_if_changed()
            return str(result["access_token"])

    def _acquire(self, force_refresh: bool) -> dict[str, Any] | None:
        accounts = self._app.get_accounts()
        if not accounts:
            return None
        try:
            result = self._app.acquire_token_silent_with_error(
                list(DELEGATED_SCOPES), account=accounts[0], force_refresh=force_refresh
            )
        except requests.RequestException as exc:
            raise Transient(
                f"Microsoft sign-in unreachable: {type(exc).__name__}", mailbox=self.mailbox
            ) from exc
        return dict(result) if result is not None else None


class AppAuth:
    """Application (client-credentials) tokens for an organisation's tenant.

    The app reads every rep's mailbox as ``/users/{address}`` after an admin granted the
    application permissions Mail.ReadWrite, Mail.Send and Calendars.ReadWrite (scope them to
    the sales team with an application access policy). MSAL caches the token in memory; there
    is no refresh token to store.
    """

    def __init__(
        self,
        client_id: str,
        authority: str,
        client_secret: str,
        http_client: requests.Session | None = None,
        *,
        custom_authority: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=authority,
            **_msal_options(http_client, custom_authority),
        )

    def __repr__(self) -> str:
        return "AppAuth(<secret hidden>)"

    def token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh:
                # MSAL serves client-credential tokens from its cache; drop them to get a new one.
                cache = self._app.token_cache
                for at in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(at)
            try:
                result = self._app.acquire_token_for_client(scopes=list(APP_SCOPES))
            except requests.RequestException as exc:
                raise Transient(f"Microsoft sign-in unreachable: {type(exc).__name__}") from exc
        if "access_token" not in result:
            raise _classify(result, "(application)")
        return str(result["access_token"])
