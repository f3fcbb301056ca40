"""The providers of one configured mailbox: which vendor, which stored sign-in, which endpoint.

Raises ``AuthRevoked`` for a Gmail or Outlook mailbox that was never connected (or whose stored
sign-in cannot be unsealed with the operator's key), so the worker parks just that mailbox.

Each vendor's client library is imported when a mailbox of that vendor is first opened: a worker
serving only Gmail never loads MSAL and requests, one serving only Outlook never loads
google-api-python-client (together some 20 MB of resident memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import Mailbox
from agent.errors import AuthRevoked
from agent.providers.local import LocalMailbox
from agent.providers.protocol import CalendarProvider, MailProvider
from agent.providers.tokens import CredentialStore, Vault

MICROSOFT_LOGIN = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class Connection:
    mail: MailProvider
    calendar: CalendarProvider | None


def open_mailbox(m: Mailbox, creds: CredentialStore, vault: Vault | None) -> Connection:
    """Open ``m``'s mail and calendar providers. ``vault`` may be None for local mailboxes."""
    if m.provider == "local":
        if m.path is None:
            raise AuthRevoked(f"mailbox {m.name}: a local mailbox needs path = <folder>")
        box = LocalMailbox(m.path, mailbox=m.name, address=m.address)
        return Connection(box, box)
    if creds.load_credentials(m.name) is None:
        raise AuthRevoked(
            f"mailbox {m.name} is not connected: run followup connect {m.provider} "
            f"--mailbox {m.name}"
        )
    if vault is None:
        vault = Vault.from_environment()
    if m.provider == "gmail":
        from agent.providers import gmail

        mail, calendar = gmail.open_google(
            m.name,
            m.address,
            vault,
            creds,
            root=m.endpoint or None,
            first_sync_days=m.first_sync_days,
        )
        return Connection(mail, calendar)
    from agent.providers.msal_auth import GraphAuth
    from agent.providers.outlook import GRAPH, OutlookProvider

    auth = GraphAuth(m.name, m.client_id, f"{MICROSOFT_LOGIN}/{m.tenant}", vault, creds)
    outlook = OutlookProvider(
        m.name,
        m.address,
        auth,
        base_url=m.endpoint or GRAPH,
        first_sync_days=m.first_sync_days,
    )
    return Connection(outlook, outlook)
