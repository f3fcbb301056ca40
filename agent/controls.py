"""What the rep and the lead decided by hand: a promise handled ("I phoned them"), a thread's
follow-ups snoozed until a date or stopped (and resumed), a client who opted out.

Each act is an audited decision in the store (who, when, why), written by the CLI; this module
reads them back into :class:`Controls` and holds back the planned actions they rule out, each
with a decision saying so. Pure: no store, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.golive import Gated
from agent.matching import matches_client, unsubscribe_request, unsubscribe_token
from agent.memo import PerObject
from agent.model import Action, ActionKind, Client, Message
from agent.promises import Decision

PREFIX = "control:"
HANDLED = "handled"
SNOOZED = "snoozed until "
STOPPED = "stopped"
RESUMED = "resumed"
OPTED_OUT = "opted out"
# Acts that hold in every mailbox, whichever one they were recorded in.
TEAM_WIDE = (OPTED_OUT,)
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


# -- the same acts from the mail client: a label (Gmail) or a category (Outlook) on a thread --

LABEL_PREFIX = "followup/"
HANDLED_LABEL = "followup/handled"
MARK = "label:"  # the audit rows that remember which labels were seen on which thread
LABEL_ON = "label seen: "
LABEL_OFF = "label gone: "
_SNOOZE = re.compile(r"snooze-([0-9]{1,3})([dw])")
MAX_SNOOZE = timedelta(days=366)


def _mark(thread_id: str, at: datetime) -> str:
    return f"{MARK}{at.astimezone(UTC):%Y%m%dT%H%M%S.%f}:{thread_id}"


def label_act(label: str, first_seen: datetime) -> str:
    """The decision a ``Followup/...`` label stands for ("" for one Followup does not know):
    ``Followup/Stop``, ``Followup/Handled``, ``Followup/Snooze-3d``, ``Followup/Snooze-2w``
    (days or weeks from when the label was first seen)."""
    word = label.strip().lower().removeprefix(LABEL_PREFIX)
    if word == "stop":
        return STOPPED
    if label.strip().lower() == HANDLED_LABEL:
        return HANDLED
    found = _SNOOZE.fullmatch(word)
    if found:
        span = timedelta(days=int(found[1]) * (7 if found[2] == "w" else 1))
        if timedelta(0) < span <= MAX_SNOOZE:
            return SNOOZED + (first_seen.astimezone(UTC) + span).isoformat()
    return ""


MAX_LABEL = 80  # the audit keeps "label seen: <label>" in a 100-character column


def _steering(labels: Iterable[str]) -> set[str]:
    return {
        x.strip()
        for x in labels
        if x.strip().lower().startswith(LABEL_PREFIX) and len(x.strip()) <= MAX_LABEL
    }


Row = tuple[str, str, str, str, str]  # (mailbox, thread_id, subject_id, decision, reason)


def from_labels(
    messages: Iterable[Message],
    marks: Iterable[Mapping[str, object]],
    promises: Mapping[tuple[str, str], Iterable[str]],
    now: datetime,
    *,
    where: str = "the mail client",
) -> list[Row]:
    """The decisions the ``Followup/...`` labels on threads stand for, to record now.

    A thread carries a label when one of its messages does. ``marks`` are the label rows
    recorded before (``subject_id`` starting with ``label:``): a label acts once, when first
    seen, and again only after it was seen gone. A Stop or Snooze label taken off resumes the
    thread. ``promises`` gives each (mailbox, thread) the promise keys a Handled label marks.
    A ``Followup/`` label nobody knows is recorded as seen, with a reason naming the ones known.
    """
    on: dict[tuple[str, str, str], bool] = {}
    last: dict[tuple[str, str, str], str] = {}
    for row in marks:
        subject_id = str(row.get("subject_id", ""))
        decision = str(row.get("decision", ""))
        if not subject_id.startswith(MARK):
            continue
        stamp, _, thread_id = subject_id.removeprefix(MARK).partition(":")
        for prefix, state in ((LABEL_ON, True), (LABEL_OFF, False)):
            if decision.startswith(prefix):
                key = (str(row.get("mailbox", "")), thread_id, decision.removeprefix(prefix))
                if stamp >= last.get(key, ""):
                    last[key], on[key] = stamp, state
    present: set[tuple[str, str, str]] = set()
    for m in messages:
        present |= {(m.mailbox, m.thread_id, label) for label in _steering(m.labels)}
    rows: list[Row] = []
    by = f"by the rep, label {{}} in {where}"
    for mailbox, thread_id, label in sorted(present):
        if on.get((mailbox, thread_id, label)):
            continue
        rows.append((mailbox, thread_id, _mark(thread_id, now), LABEL_ON + label, "seen"))
        decision = label_act(label, now)
        reason = by.format(label)
        if decision == HANDLED:
            targets = sorted(promises.get((mailbox, thread_id), ()))
            rows += [(mailbox, thread_id, subject(k, now), HANDLED, reason) for k in targets]
        elif decision:
            rows.append((mailbox, thread_id, subject(thread_id, now), decision, reason))
        else:
            rows[-1] = (
                *rows[-1][:4],
                "not a label Followup knows: use Followup/Stop, Followup/Handled or "
                "Followup/Snooze-3d (days) or -2w (weeks)",
            )
    for (mailbox, thread_id, label), state in sorted(on.items()):
        if not state or (mailbox, thread_id, label) in present:
            continue
        rows.append((mailbox, thread_id, _mark(thread_id, now), LABEL_OFF + label, "taken off"))
        if label_act(label, now) not in ("", HANDLED):
            reason = f"by the rep, label {label} taken off in {where}"
            rows.append((mailbox, thread_id, subject(thread_id, now), RESUMED, reason))
    return rows


# -- an unsubscribe request: the mailto of a note's List-Unsubscribe header -------------------


def _client_tokens(clients: tuple[Client, ...]) -> dict[str, Client]:
    return {unsubscribe_token(c.key): c for c in clients}


# A digest per client: worked out once per client list, not at every request (tens of thousands
# of clients cost a sizeable fraction of a second).
_tokens: PerObject[tuple[Client, ...], dict[str, Client]] = PerObject(_client_tokens)


def from_unsubscribes(messages: Iterable[Message], clients: Iterable[Client]) -> list[Row]:
    """OPTED_OUT decisions for the unsubscribe requests among ``messages``: the token names one
    of ``clients`` and the request comes from that client's own address or company domain, or
    the token names the sender's own address (a note to no known client). Recorded once per
    request mail; a token sent by anyone else is no request."""
    requests = [(m, token) for m in messages if (token := unsubscribe_request(m.subject))]
    if not requests:
        return []  # the usual case: no client's tokens are worked out at all
    tokens = _tokens(clients if isinstance(clients, tuple) else tuple(clients))
    rows: list[Row] = []
    for m, token in requests:
        client = tokens.get(token)
        if client is not None and matches_client(m.sender.email, client):
            target = client.key
        elif token == unsubscribe_token(m.sender.email):
            target = m.sender.email.lower()
        else:
            continue  # a token for nobody we write to, or sent by a stranger: nothing to stop
        rows.append(
            (
                m.mailbox,
                m.thread_id,
                subject(target, m.date),
                OPTED_OUT,
                f"by the client, unsubscribe request from {m.sender.email}",
            )
        )
    return rows


def opt_outs(rows: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """The clients who opted out (client key or address), each with when and by whom, first
    opt-out first: what ``followup status`` lists."""
    found: dict[str, tuple[datetime, str, str]] = {}
    for row in rows:
        subject_id = str(row.get("subject_id", ""))
        if not subject_id.startswith(PREFIX) or row.get("decision") != OPTED_OUT:
            continue
        stamp, _, target = subject_id.removeprefix(PREFIX).partition(":")
        try:
            at = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
        except ValueError:
            continue
        known = found.get(target.lower())
        if known is None or at < known[0]:
            found[target.lower()] = (at, target, str(row.get("reason", "")))
    return [
        {"client": target, "at": at, "reason": reason}
        for at, target, reason in sorted(found.values())
    ]
