"""The go-live point: the agent acts only on what happened after it was switched on.

A team that switches Followup on has weeks of mail behind it: promises broken long ago, meetings
nobody thanked for, sequences that went quiet. Acting on all of that at once would flood the
lead with escalations and the clients with late notes. Mail and meetings from before the go-live
point stay in the store, as context for threads that go on and for ``rules simulate`` and
``report``; the agent plans on them as usual and then, here, holds back every action whose
cause came before the point, each with a decision saying so.

What caused an action, by kind: the client's message that started a promise (reminders,
escalations, webhooks), the rep's message a follow-up sequence chases, the end of the meeting a
thank-you or feedback note is for, the client's reply a proposal or invitation answers. An action
whose cause is unknown is kept: this module only ever holds back.

Pure: no store, no clock. The worker records the point (see ``Store.go_live``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.model import Action
from agent.promises import Decision, Promise

DECISION = "not sent: before go-live"


@dataclass(frozen=True)
class Gated:
    """The actions to carry out, and a decision for each one held back."""

    actions: tuple[Action, ...]
    decisions: tuple[Decision, ...]


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def cause(action: Action, promises: Mapping[str, Promise]) -> datetime | None:
    """When what ``action`` answers to happened, or None when that is not known."""
    context = action.context
    for name in ("answered", "received", "last_sent"):
        found = _moment(context.get(name))
        if found is not None:
            return found
    meeting = context.get("meeting")
    if isinstance(meeting, Mapping):
        found = _moment(meeting.get("end"))
        if found is not None:
            return found
    promise = promises.get(action.key.rsplit("/", 2)[0])
    return promise.received if promise is not None else None


def gate(
    actions: Iterable[Action], go_live: datetime | None, promises: Iterable[Promise] = ()
) -> Gated:
    """Keep the actions caused at or after ``go_live`` (all of them when it is None)."""
    actions = tuple(actions)
    if go_live is None:
        return Gated(actions, ())
    by_key = {p.key: p for p in promises}
    kept: list[Action] = []
    held: list[Decision] = []
    for action in actions:
        when = cause(action, by_key)
        if when is None or when >= go_live:
            kept.append(action)
            continue
        held.append(
            Decision(
                mailbox=action.mailbox,
                thread_id=action.thread_id,
                message_id=action.key,
                decision=DECISION,
                reason=(
                    f"{action.kind.value.replace('_', '-')} for what came at "
                    f"{when:%Y-%m-%d %H:%M} UTC, before the go-live point "
                    f"{go_live:%Y-%m-%d %H:%M} UTC: history, kept for context and reports"
                ),
            )
        )
    return Gated(tuple(kept), tuple(held))
