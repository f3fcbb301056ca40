"""Sign-in to the console with OpenID Connect: the authorization-code flow with PKCE.

One :class:`Issuer` per identity provider (Google, Microsoft), built from the same app
registrations the mailboxes connect with. :func:`begin` makes the authorization URL and the
secrets the callback must match (``state``, ``nonce``, the PKCE verifier); :func:`finish` checks
``state``, redeems the code with the verifier, and verifies the ID token's signature (the
issuer's published keys), issuer, audience, expiry and ``nonce`` before it names anyone.

Sources: OpenID Connect Core 1.0 sections 3.1.2 and 3.1.3.7 (ID token validation); RFC 7636
(PKCE, S256); Google's "OpenID Connect" guide (``email_verified``); Microsoft identity
platform "OpenID Connect on the Microsoft identity platform" (the ``{tenantid}`` issuer of the
multi-tenant endpoints).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import requests

from agent.errors import SignInFailed

TIMEOUT = 10  # seconds for each call to an identity provider


@dataclass(frozen=True)
class Issuer:
    """An identity provider the console trusts, with the app registered there."""

    name: str  # "google" or "microsoft": also the callback's path, /auth/<name>
    label: str  # what the sign-in button says
    discovery_url: str
    client_id: str
    client_secret: str = ""  # "" for a public client (PKCE alone)

    def __repr__(self) -> str:  # the secret never shows
        return f"Issuer({self.name!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Pending:
    """What the callback must match: kept in the signed session between the two legs."""

    issuer: str
    state: str
    nonce: str
    verifier: str

    def as_json(self) -> dict[str, str]:
        return {"issuer": self.issuer, "state": self.state, "nonce": self.nonce, "v": self.verifier}

    @classmethod
    def from_json(cls, data: object) -> Pending | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["issuer"]), str(data["state"]), str(data["nonce"]), str(data["v"]))
        except KeyError:
            return None


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str
    name: str


def google_issuer(client_secrets: Path, issuer_url: str) -> Issuer:
    """Google, from the OAuth client JSON the Gmail mailboxes connect with."""
    try:
        data = json.loads(client_secrets.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SignInFailed(f"cannot read the Google client JSON {client_secrets}: {exc}") from exc
    entry = data.get("web") or data.get("installed") or {}
    return Issuer(
        "google",
        "Google",
        f"{issuer_url}/.well-known/openid-configuration",
        str(entry.get("client_id", "")),
        str(entry.get("client_secret", "")),
    )


def microsoft_issuer(client_id: str, tenant: str, authority: str, secret: str = "") -> Issuer:
    """Microsoft, from the Entra app the Outlook mailboxes connect with."""
    return Issuer(
        "microsoft",
        "Microsoft",
        f"{authority}/{tenant}/v2.0/.well-known/openid-configuration",
        client_id,
        secret,
    )


_metadata: dict[str, Metadata] = {}
_jwks: dict[str, jwt.PyJWKClient] = {}
_guard = threading.Lock()


def metadata(issuer: Issuer) -> Metadata:
    """The provider's discovery document (cached for the process)."""
    with _guard:
        known = _metadata.get(issuer.discovery_url)
    if known is not None:
        return known
    try:
        reply = requests.get(issuer.discovery_url, timeout=TIMEOUT)
        reply.raise_for_status()
        doc = reply.json()
        found = Metadata(
            str(doc["issuer"]),
            str(doc["authorization_endpoint"]),
            str(doc["token_endpoint"]),
            str(doc["jwks_uri"]),
        )
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise SignInFailed(
            f"{issuer.label} sign-in is unreachable ({type(exc).__name__}); try again"
        ) from exc
    with _guard:
        _metadata[issuer.discovery_url] = found
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def begin(issuer: Issuer, redirect_uri: str) -> tuple[str, Pending]:
    """The URL to send the browser to, and the secrets its return must match."""
    meta = metadata(issuer)
    pending = Pending(
        issuer.name, secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    )
    challenge = _b64(hashlib.sha256(pending.verifier.encode()).digest())
    query = {
        "response_type": "code",
        "client_id": issuer.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "select_account",
    }
    return f"{meta.authorization_endpoint}?{urlencode(query)}", pending


def finish(
    issuer: Issuer, redirect_uri: str, pending: Pending | None, params: dict[str, str]
) -> Identity:
    """Check the callback against ``pending`` and return who signed in.

    Raises ``SignInFailed`` for a callback without a matching state, a provider's error, a
    code that does not redeem, or an ID token that fails any check."""
    if pending is None or pending.issuer != issuer.name:
        raise SignInFailed("this sign-in was not started here, or it expired: start again")
    if not secrets.compare_digest(params.get("state", ""), pending.state):
        raise SignInFailed("the sign-in's state does not match: start again")
    if params.get("error"):
        raise SignInFailed(f"{issuer.label} did not sign you in ({params['error'][:80]})")
    code = params.get("code", "")
    if not code:
        raise SignInFailed(f"{issuer.label} returned no code: start again")
    meta = metadata(issuer)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": issuer.client_id,
        "code_verifier": pending.verifier,
    }
    if issuer.client_secret:
        form["client_secret"] = issuer.client_secret
    try:
        reply = requests.post(meta.token_endpoint, data=form, timeout=TIMEOUT)
        body: dict[str, Any] = reply.json()
    except (requests.RequestException, ValueError) as exc:
        raise SignInFailed(f"{issuer.label} sign-in is unreachable: try again") from exc
    if reply.status_code != 200 or "id_token" not in body:
        raise SignInFailed(
            f"{issuer.label} refused the sign-in ({str(body.get('error', reply.status_code))[:80]})"
        )
    claims = verify_id_token(issuer, meta, str(body["id_token"]), pending.nonce)
    if issuer.name == "google":
        if claims.get("email_verified") is not True:
            raise SignInFailed("Google has not verified this account's address")
        email = str(claims.get("email") or "")
    else:
        # Microsoft's `email` claim may be an address nobody verified (any tenant's admin can
        # set it); the sign-in name is in a domain the tenant verified.
        email = str(claims.get("preferred_username") or "")
    if "@" not in email:
        raise SignInFailed(f"{issuer.label} did not say which address signed in")
    return Identity(issuer.name, str(claims["sub"]), email.lower(), str(claims.get("name", "")))


def verify_id_token(issuer: Issuer, meta: Metadata, token: str, nonce: str) -> dict[str, Any]:
    """OpenID Connect Core 3.1.3.7: signature by the issuer's keys, iss, aud, exp, nonce."""
    try:
        with _guard:
            keys = _jwks.setdefault(meta.jwks_uri, jwt.PyJWKClient(meta.jwks_uri, timeout=TIMEOUT))
        key = keys.get_signing_key_from_jwt(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
        expected = meta.issuer
        if "{tenantid}" in expected:  # Microsoft's multi-tenant endpoints
            expected = expected.replace("{tenantid}", str(unverified.get("tid", "")))
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=issuer.client_id,
            issuer=expected,
            leeway=60,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
        )
    except (jwt.PyJWTError, KeyError) as exc:
        raise SignInFailed(f"the {issuer.label} ID token is not valid ({exc})") from exc
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInFailed("the ID token's nonce does not match this sign-in: start again")
    return claims
