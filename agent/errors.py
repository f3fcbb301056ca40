"""Every exception Followup raises on purpose derives from :class:`FollowupError`.

::

    FollowupError
    ├── UserError                 bad input a person can fix; carries every problem found
    │   ├── ConfigError           config.toml
    │   ├── RulesError            rules/*.toml
    │   ├── TemplateError         templates/<purpose>/<lang>.j2
    │   └── ClientsError          the clients file
    ├── WebhookRefused            a webhook URL the policy forbids (agent/webhooks.py)
    └── ProviderError             anything a mail or calendar provider answered
        ├── Transient             retry later with backoff; honours ``retry_after`` (seconds)
        │   ├── SendLimitReached  the mailbox's daily sending limit; retry after ``retry_after``
        │   └── Refused           turned away before it was acted on (throttled): not done
        ├── CursorExpired         the sync cursor is stale: resync fully, lose nothing
        ├── AuthRevoked           the grant is gone: park the mailbox, tell the rep, never loop
        ├── AccessDenied          refused for what an administrator must fix (no licence, a
        │                         mailbox not enabled, a permission): say so, retry hourly
        ├── SignInFailed          the rep's sign-in ended without a grant (declined, expired,
        │                         a wrong code): say so, and how to start again
        └── Permanent             record it, do not retry

The CLI is the one place that turns a ``UserError`` into a message for a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file a person edits: where it is and what would be right."""

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.where}" if self.where else self.file
        return f"{place}: {self.message}"


class FollowupError(Exception):
    """Root of every exception Followup raises on purpose."""


class UserError(FollowupError):
    """Bad input a person can fix. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(UserError):
    pass


class RulesError(UserError):
    pass


class TemplateError(UserError):
    pass


class ClientsError(UserError):
    pass


class WebhookRefused(FollowupError):
    """A webhook URL that may not be posted to: not https, or a host at a private address.
    The message names the host only, never the URL (its path is a credential)."""


class ProviderError(FollowupError):
    """Something a provider answered. ``mailbox`` names the mailbox when known."""

    def __init__(self, message: str, *, mailbox: str | None = None) -> None:
        self.mailbox = mailbox
        super().__init__(message)


class Transient(ProviderError):
    """Retry later. ``retry_after`` is the provider's Retry-After in seconds, if it gave one."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, mailbox: str | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, mailbox=mailbox)


class SendLimitReached(Transient):
    """The mailbox hit its provider's daily sending limit; sends wait ``retry_after`` seconds."""


class Refused(Transient):
    """The provider turned the request away before acting on it (a 429 from Graph's
    throttling): a send refused so was not made, and may be made again."""


class CursorExpired(ProviderError):
    """The stored sync cursor is no longer valid: a full resync is needed."""


class AuthRevoked(ProviderError):
    """The grant was revoked or expired: the mailbox needs reconnecting by its rep."""


class AccessDenied(ProviderError):
    """The service refuses the mailbox for a reason only an administrator can fix: no licence,
    a mailbox not enabled for the API, a missing permission or an access policy. Not a revoked
    sign-in: reconnecting would not help, and a fix arrives unannounced, so it is retried
    hourly."""


class SignInFailed(ProviderError):
    """A sign-in the rep started ended without a grant: declined on the consent page, the code
    expired before it was entered, or a wrong code. Nothing to retry by itself."""


class Permanent(ProviderError):
    """A request that will never succeed as made: record it and move on."""
