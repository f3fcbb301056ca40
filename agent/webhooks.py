"""Where a team webhook may post: a public host over https, unless the operator allows more.

Webhook URLs come from config.toml (``[team] webhook_url``) and rule files (``webhook = ...``),
and the worker posts escalations to them. So that a wrong or planted URL cannot make the worker
reach into the network it runs in (a cloud's metadata service on a link-local address, a
database on localhost), a post goes only to an ``https://`` URL whose host resolves to public
addresses alone. ``[team] webhook_allow_hosts`` names the hosts exempt from both rules (a chat
server on the office network, a test server on 127.0.0.1). Redirects are never followed: a
public host could otherwise send the post on to a private one.

A webhook URL is a credential (anyone holding its path can post), so every error names its host
only (:func:`host_of`), and the logs and the store redact such paths too.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from agent.errors import WebhookRefused

Resolver = Callable[[str, int], Sequence[str]]


def host_of(url: str) -> str:
    """The host of ``url`` (lower case, no port or credentials); "" when there is none."""
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""


def _allowed(host: str, allow: Collection[str]) -> bool:
    return host in {a.strip().lower().strip("[]") for a in allow}


def check_shape(url: str) -> str:
    """What is wrong with ``url`` as any webhook's URL; "" when nothing is: an http(s) URL with
    a host and no ``user:password@``. (Rule files are checked this far: the policy below needs
    the config's allowed hosts, and is applied again to each post.)"""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        return "not a URL"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.username is not None or parts.password is not None:
        return f"must not carry a user name or password (host {host})"
    return ""


def check_url(url: str, allow: Collection[str] = ()) -> str:
    """What is wrong with ``url`` as a webhook, without resolving it; "" when nothing is.

    :func:`check_shape`, then https only (http to an allowed host) and, when the host is an IP
    address, a public one (or an allowed one)."""
    problem = check_shape(url)
    if problem:
        return problem
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if _allowed(host, allow):
        return ""
    if parts.scheme != "https":
        return f"must be https:// (http only to a host in team.webhook_allow_hosts; host {host})"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ""
    return "" if address.is_global and not address.is_multicast else _private(host)


def _private(host: str) -> str:
    return (
        f"host {host} is a loopback, link-local or private address; "
        "list it in team.webhook_allow_hosts to allow it"
    )


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_addresses(url: str, allow: Collection[str], resolve: Resolver = _resolve) -> None:
    """Raise ``WebhookRefused`` unless every address ``url``'s host resolves to is public (or
    the host is allowed). ``OSError`` when the name does not resolve (worth retrying)."""
    problem = check_url(url, allow)
    if problem:
        raise WebhookRefused(f"webhook to {host_of(url) or 'no host'} refused: {problem}")
    host = host_of(url)
    if _allowed(host, allow):
        return
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not all(_public(found) for found in resolve(host, port)):
        raise WebhookRefused(f"webhook to {host} refused: {_private(host)}")


def describe(exc: BaseException, url: str) -> str:
    """``exc`` as one line naming the webhook's host, never its URL, path or query (HTTP
    libraries quote the URL, or the path alone: "Max retries exceeded with url: /services/...")."""
    host = host_of(url) or "no host"
    text = str(exc)
    url = url.strip()
    if url:
        text = text.replace(url, host)
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None:
            query = f"?{parts.query}" if parts.query else ""
            for secret in (parts.path + query, parts.path, parts.query):
                if len(secret) > 1:
                    text = text.replace(secret, "/[redacted]" if secret[0] == "/" else "[redacted]")
    if isinstance(exc, WebhookRefused):
        return text
    return f"webhook to {host}: {type(exc).__name__}: {text}"


def _public(address: str) -> bool:
    found = ipaddress.ip_address(address.split("%", 1)[0])
    return found.is_global and not found.is_multicast


@functools.cache
def _checked_adapter() -> Any:
    """A requests transport adapter whose direct connections check the address they reached
    before a byte is sent: the name may resolve differently the second time (DNS rebinding).
    Through a proxy the proxy resolves the name, and only the check before the post applies."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def checked(sock: socket.socket, host: str) -> socket.socket:
        peer = str(sock.getpeername()[0])
        if not _public(peer):
            sock.close()
            raise WebhookRefused(f"webhook to {host} refused: {_private(host)}")
        return sock

    class Plain(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn(), self.host)

    class Secure(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn(), self.host)

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = Secure

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": PlainPool, "https": SecurePool}

    return Adapter


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    allow: Collection[str] = (),
    timeout: float = 10,
    resolve: Resolver = _resolve,
) -> None:
    """POST a Slack-compatible JSON body after :func:`check_addresses`, over a connection that
    checks the address it reached again (unless the host is allowed); raise on any failure, a
    redirect included."""
    import requests  # loaded with the first webhook: most workers post none

    check_addresses(url, allow, resolve)
    with requests.Session() as session:  # one per post: posts are rare, sessions not shared
        if not _allowed(host_of(url), allow):
            session.mount("http://", _checked_adapter()())
            session.mount("https://", _checked_adapter()())
        response = session.post(url, json=payload, timeout=timeout, allow_redirects=False)
    if response.is_redirect:
        raise WebhookRefused(
            f"webhook to {host_of(url)} answered a redirect ({response.status_code}); "
            "redirects are not followed: configure the final URL"
        )
    response.raise_for_status()
