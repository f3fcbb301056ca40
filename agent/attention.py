"""Notes parked for a person too long: the lead is told, as a mail queue bounces a message.

A row in ``needs_attention`` (a render that failed, an address the message cannot carry, a send
whose outcome is unknown) waits for someone to look. Past ``ATTENTION_LIMIT`` the lead of the
rep's team gets one note about it, keyed on the row, so it is sent once however often this is
planned. Pure: the caller passes the rows, the reps and ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from agent.model import Action, ActionKind, Address
from agent.promises import Rep

__all__ = ["ATTENTION_LIMIT", "PREFIX", "bounces"]

# Postfix's bounce_queue_lifetime is five days; a client waiting on a promise cannot wait that
# long, so a day.
ATTENTION_LIMIT = timedelta(hours=24)
PREFIX = "attention/"


def bounces(
    parked: Iterable[tuple[Action, datetime, str]],
    reps: Mapping[str, Rep],
    now: datetime,
    limit: timedelta = ATTENTION_LIMIT,
) -> list[Action]:
    """One note to the lead for each parked ``(action, since, reason)`` older than ``limit``.

    ``since`` is when the row was parked, ``reason`` why. A note about a note to the lead is
    not made (it would bounce to the same lead), nor one for a rep without a lead.
    """
    notes = []
    for action, since, reason in parked:
        rep = reps.get(action.mailbox)
        if action.key.startswith(PREFIX) or rep is None or not rep.lead_email:
            continue
        if now - since < limit:
            continue
        to = ", ".join(a.email for a in action.to)
        context: dict[str, Any] = {
            "lead": {"name": rep.lead_name or rep.lead_email, "email": rep.lead_email},
            "rep": {"name": rep.name, "email": rep.address},
            "note": {
                "kind": action.kind.value,
                "to": to,
                "subject": action.subject or action.template,
                "reason": reason[:300],
            },
            "since": since,
            "waiting": now - since,
            "rep_zone": rep.zone,
        }
        notes.append(
            Action(
                key=f"{PREFIX}{action.key}",
                kind=ActionKind.ESCALATION,
                mailbox=action.mailbox,
                due=now,
                to=(Address(rep.lead_email, rep.lead_name),),
                language=rep.lead_language,
                template="attention",
                reason=f"a {action.kind.value} note to {to} has waited for a person since {since}",
                client=action.client,
                thread_id=action.thread_id,
                context=context,
            )
        )
    return notes
