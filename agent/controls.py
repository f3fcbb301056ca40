"""What the rep and the lead decided by hand: a promise handled ("I phoned them"), a thread's
follow-ups snoozed until a date or stopped (and resumed), a client who opted out.

Each act is an audited decision in the store (who, when, why), written by the CLI; this module
reads them back into :class:`Controls` and holds back the planned actions they rule out, each
with a decision saying so. Pure: no store, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.golive import Gated
from agent.model import Action, ActionKind
from agent.promises import Decision

PREFIX = "control:"
HANDLED = "handled"
SNOOZED = "snoozed until "
STOPPED = "stopped"
RESUMED = "resumed"
OPTED_OUT = "opted out"
HELD = "not sent: by hand"

# What a snooze or a stop holds back: the notes that chase the client in the thread.
CHASES = frozenset({ActionKind.FOLLOW_UP, ActionKind.PROPOSAL, ActionKind.HOLD})
# What an opt-out holds back: everything written to the client.
TO_CLIENT = frozenset(
    {
        ActionKind.FOLLOW_UP,
        ActionKind.PROPOSAL,
        ActionKind.HOLD,
        ActionKind.THANK_YOU,
        ActionKind.FEEDBACK,
        ActionKind.INVITE,
    }
)


def subject(target: str, at: datetime) -> str:
    """The decision's subject: the target (a promise key, a thread id, a client) and the
    moment, so each act is its own audited row and the latest one wins."""
    return f"{PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%S.%f}:{target}"


@dataclass(frozen=True)
class Controls:
    handled: frozenset[str] = frozenset()  # promise keys
    snoozed: Mapping[str, datetime] = field(default_factory=dict)  # thread id -> until
    stopped: frozenset[str] = frozenset()  # thread ids
    opted_out: frozenset[str] = frozenset()  # client keys and addresses, lower case

    @classmethod
    def from_decisions(cls, rows: Iterable[Mapping[str, object]]) -> Controls:
        """The controls in force after the decision rows (any order; the latest act on a
        thread wins)."""
        acts = []
        for row in rows:
            subject_id = str(row.get("subject_id", ""))
            if not subject_id.startswith(PREFIX):
                continue
            stamp, _, target = subject_id.removeprefix(PREFIX).partition(":")
            acts.append((stamp, target, str(row.get("decision", ""))))
        handled: set[str] = set()
        opted: set[str] = set()
        threads: dict[str, tuple[str, datetime | None]] = {}
        for _stamp, target, decision in sorted(acts):
            if decision == HANDLED:
                handled.add(target)
            elif decision == OPTED_OUT:
                opted.add(target.lower())
            elif decision in (STOPPED, RESUMED):
                threads[target] = (decision, None)
            elif decision.startswith(SNOOZED):
                try:
                    until = datetime.fromisoformat(decision.removeprefix(SNOOZED))
                except ValueError:
                    continue
                threads[target] = (SNOOZED, until)
        return cls(
            handled=frozenset(handled),
            snoozed={t: u for t, (d, u) in threads.items() if d == SNOOZED and u is not None},
            stopped=frozenset(t for t, (d, _) in threads.items() if d == STOPPED),
            opted_out=frozenset(opted),
        )

    def why_not(self, action: Action, now: datetime) -> str:
        """Why ``action`` is held back by hand, or "" when it is not."""
        promise = action.key.rsplit("/", 2)[0]
        if action.key.startswith("promise/") and promise in self.handled:
            return "the promise was marked handled"
        if action.kind in TO_CLIENT and (
            action.client.lower() in self.opted_out
            or any(a.email.lower() in self.opted_out for a in action.to)
        ):
            return "the client opted out"
        if action.kind in CHASES:
            if action.thread_id in self.stopped:
                return "follow-ups in this thread were stopped"
            until = self.snoozed.get(action.thread_id)
            if until is not None and now < until:
                return f"follow-ups in this thread are snoozed until {until:%Y-%m-%d %H:%M} UTC"
        return ""


def gate(actions: Iterable[Action], controls: Controls, now: datetime) -> Gated:
    """Keep the actions no hand-made decision rules out."""
    kept: list[Action] = []
    held: list[Decision] = []
    for action in actions:
        why = controls.why_not(action, now)
        if not why:
            kept.append(action)
            continue
        held.append(
            Decision(
                mailbox=action.mailbox,
                thread_id=action.thread_id,
                message_id=action.key,
                decision=HELD,
                reason=f"{action.kind.value.replace('_', '-')} not sent: {why}",
            )
        )
    return Gated(tuple(kept), tuple(held))
