"""The rep and the client steering the agent from their mail: a ``Followup/...`` label
(Gmail) or category (Outlook) on a thread, and an unsubscribe request sent from a note's
``List-Unsubscribe`` link.

Run on every pass right after the sync, so a label acts on the next sync whether or not
new mail came. The decisions come from the pure steps in :mod:`agent.controls` and are
recorded like the acts of ``followup promise done`` / ``thread stop`` / ``client optout``;
open outbox rows the controls now rule out are withdrawn (a snoozed chase is moved to the
snooze's end) the way those commands withdraw them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from agent import controls
from agent.model import Client
from agent.store import CANCELLED, DRAFTED, PLANNED, Store, action_from_json

WHERE = {"gmail": "Gmail", "outlook": "Outlook", "local": "the mail folder"}


def steer(
    store: Store, mailbox: str, clients: Iterable[Client], now: datetime, *, provider: str = ""
) -> int:
    """Record what the labels and unsubscribe requests in ``mailbox`` decide; return how many
    open outbox rows were withdrawn or moved."""
    messages = store.steering_messages(mailbox)
    handled = {
        m.thread_id
        for m in messages
        if any(x.strip().lower() == controls.HANDLED_LABEL for x in m.labels)
    }
    promises = {
        (mailbox, thread_id): keys
        for thread_id, keys in store.promise_keys(mailbox, handled).items()
    }
    marks = store.label_marks(mailbox)
    rows = controls.from_labels(
        messages, marks, promises, now, where=WHERE.get(provider, provider or "the mail client")
    )
    rows += controls.from_unsubscribes(messages, clients)
    if not rows:
        return 0
    store.record_decisions(rows, at=now)
    by_hand = store.control_decisions(mailbox, team_wide=controls.TEAM_WIDE)
    return withdraw(store, controls.Controls.from_decisions(by_hand), now)


def withdraw(store: Store, by_hand: controls.Controls, now: datetime) -> int:
    """Cancel the open outbox rows ``by_hand`` rules out; move a snoozed chase instead."""
    changed = 0
    for r in store.outbox(statuses=(PLANNED, DRAFTED)):
        action = action_from_json(r["action"])
        if not by_hand.why_not(action, now):
            continue
        until = by_hand.snoozed.get(action.thread_id)
        stopped = controls.Controls(
            handled=by_hand.handled, stopped=by_hand.stopped, opted_out=by_hand.opted_out
        )
        if until is not None and not stopped.why_not(action, now) and r["status"] == PLANNED:
            if r["due"] < until:
                changed += store.reschedule(r["key"], until, [PLANNED])
        else:
            changed += store.transition(r["key"], [PLANNED, DRAFTED], CANCELLED)
    return changed
