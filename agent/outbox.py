"""Executes planned actions exactly once.

Each action sits in the outbox under its unique key and moves forward only::

    planned -> drafting -> drafted -> sending -> sent
                  |           |          |
                  +-----------+----------+--> needs_attention | failed | cancelled

The state is written *before* each provider call, so after a crash the outbox knows which call
may have happened and asks the provider before doing anything else:

- ``drafting``: a draft carrying the key may exist. Sent already -> ``sent``; a draft ->
  ``drafted``;
  nothing -> ``planned`` again.
- ``sending``: the send may have happened. A sent message carrying the key -> ``sent``; the draft
  still there -> send that same draft; neither -> ``needs_attention`` for a person.

A send is never retried blindly: a Transient error during ``send_draft`` leaves the row in
``sending`` for the next reconciliation. In ``draft`` mode notes to clients stop at ``drafted``
(the draft waits in the rep's Drafts folder) until the rep sends it or runs
``followup outbox approve``; reminders and escalations to the team are always sent.

An INVITE note carries its ``text/calendar; method=REQUEST`` part, added where the message is
composed. HOLD actions send no mail: given the mailbox's calendar (``calendars``), a ``create``
puts a tentative hold on the rep's calendar (``create_event`` is idempotent on the key, so an
unknown outcome is simply tried again) and a ``release`` deletes it with ``delete_event``
(deleting an event already gone is not an error, so that too is simply tried again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from agent.compose import Composer, build_message, message_id_for
from agent.errors import AuthRevoked, Permanent, Problem, ProviderError, TemplateError, Transient
from agent.invites import attach_invite, build_invite, hold_for, invite_for
from agent.model import Action, ActionKind, Address, SentRef
from agent.providers.protocol import CalendarProvider, MailProvider
from agent.store import (
    CANCELLED,
    DRAFTED,
    DRAFTING,
    FAILED,
    NEEDS_ATTENTION,
    PLANNED,
    SENDING,
    SENT,
    Store,
    action_from_json,
)

log = logging.getLogger("followup.outbox")
# Never held back by the mode or counted against the daily cap of notes to clients.
INTERNAL_KINDS = frozenset(
    {ActionKind.REMINDER, ActionKind.ESCALATION, ActionKind.WEBHOOK, ActionKind.HOLD}
)
MAX_POSTS = 5


def post_json(url: str, payload: dict[str, str]) -> None:
    """POST a Slack-compatible JSON body; raise on any failure."""
    import requests  # loaded with the first webhook: most workers post none

    response = requests.post(url, json=payload, timeout=10)
    response.raise_for_status()


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str
    detail: str = ""


class Outbox:
    def __init__(
        self,
        store: Store,
        providers: Mapping[str, MailProvider],
        composer: Composer,
        senders: Mapping[str, Address],
        *,
        mode: str = "draft",
        daily_cap: int = 50,
        domain: str = "followup.invalid",
        on_message: Callable[[Action, Any], None] | None = None,
        post: Callable[[str, dict[str, str]], None] | None = None,
        calendars: Mapping[str, CalendarProvider] | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.composer = composer
        self.senders = senders
        self.mode = mode
        self.daily_cap = daily_cap
        self.domain = domain
        self.on_message = on_message
        self.post = post or post_json
        self.calendars = calendars or {}

    # -- the one entry point ----------------------------------------------------------------
    def run(self, now: datetime, *, mailbox: str | None = None) -> list[Outcome]:
        """Discard the drafts of cancelled notes, reconcile unfinished sends, then execute what
        is due. Returns one outcome per row executed."""
        self._discard_withdrawn(mailbox)
        outcomes = []
        for row in self.store.due_outbox(now, mailbox=mailbox):
            provider = self.providers.get(row["mailbox"])
            if provider is None:
                continue
            try:
                outcomes.append(self._step(row, provider, now))
            except AuthRevoked:
                raise  # the worker parks the whole mailbox
            except Transient as exc:
                log.warning("outbox %s: transient provider error: %s", row["key"], exc)
                now_row = self.store.outbox_row(row["key"]) or row
                outcomes.append(Outcome(row["key"], now_row["status"], f"will retry: {exc}"))
            except Exception as exc:  # one bad row stops itself, never the rows behind it
                outcomes.append(self._set_aside(row["key"], exc))
        return outcomes

    def _set_aside(self, key: str, exc: BaseException) -> Outcome:
        """Park a row that failed in a way nobody planned for (a disk that refused a file, a
        provider that raised something unexpected) as ``needs_attention`` with the reason, from
        whatever state it was in: whether a message left is for a person to check."""
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        log.error("outbox %s: set aside for a person: %s", key, reason, exc_info=exc)
        row = self.store.outbox_row(key)
        if row is not None and row["status"] in (PLANNED, DRAFTING, DRAFTED, SENDING):
            self.store.transition(key, [row["status"]], NEEDS_ATTENTION, last_error=reason)
        return Outcome(key, NEEDS_ATTENTION, reason)

    def cancel_obsolete(self, keys: set[str] | frozenset[str]) -> int:
        """Cancel rows whose reason has gone (the client was answered): planned ones, and drafts
        still waiting for the rep, so that a stale note can be neither approved nor left in the
        rep's drafts; the next ``run`` discards the draft itself."""
        return sum(self.store.transition(k, [PLANNED, DRAFTED], CANCELLED) for k in keys)

    def _discard_withdrawn(self, mailbox: str | None) -> None:
        for row in self.store.withdrawn_drafts(mailbox):
            provider = self.providers.get(row["mailbox"])
            if provider is None:
                continue
            try:
                # The rep may have sent the draft by hand before it was withdrawn: a pass plans
                # (and cancels) before it executes, so the sent note is only seen here. The
                # record is then corrected to what happened, and the cadence counts the note.
                sent = provider.find_sent(row["key"])
                if sent is None:
                    provider.discard_draft(row["draft_id"])
            except AuthRevoked:
                raise
            except ProviderError as exc:  # tried again on the next run
                log.warning("outbox %s: cannot discard the draft yet: %s", row["key"], exc)
                continue
            if sent is not None:
                self._mark_sent(row["key"], CANCELLED, sent)
                log.info("cancelled %s had been sent by the rep", row["key"])
                continue
            self.store.transition(row["key"], [CANCELLED], CANCELLED, draft_id=None)
            log.info("discarded the draft of cancelled %s", row["key"])

    # -- the protocol -------------------------------------------------------------------
    def _step(self, row: dict[str, Any], provider: MailProvider, now: datetime) -> Outcome:
        key, status = row["key"], row["status"]
        action = action_from_json(row["action"])
        if action.kind is ActionKind.WEBHOOK:
            return self._post(action, row)
        if action.kind is ActionKind.HOLD:
            return self._hold(action, row)
        if status == DRAFTING:
            reconciled = self._reconcile_drafting(action, provider)
            fresh = self.store.outbox_row(key)
            if reconciled.status not in (PLANNED, DRAFTED) or fresh is None:
                return reconciled
            if fresh["status"] != reconciled.status:
                return reconciled
            # Carry on at once, as a draft found in ``sending`` is sent at once. Left for the
            # next pass, notes due after this one would go out first, and the planner, seeing
            # them, could cancel this one (an overdue escalation overtaken by a proposal).
            return self._step(fresh, provider, now)
        if status == SENDING:
            return self._reconcile_sending(action, row, provider)
        if status == DRAFTED:
            if self._sends(action):
                return self._send(action, row["draft_id"], provider, expect=DRAFTED)
            found = provider.find_sent(key)  # the rep may have sent the draft by hand
            if found:
                self._mark_sent(key, DRAFTED, found)
                return Outcome(key, SENT, "sent by the rep")
            return Outcome(key, DRAFTED, "waiting for the rep to send or approve")
        if status == PLANNED:
            if self._over_cap(action, now):
                return Outcome(key, PLANNED, f"daily cap of {self.daily_cap} reached")
            return self._draft_and_send(action, provider, now)
        return Outcome(key, status)

    def _post(self, action: Action, row: dict[str, Any]) -> Outcome:
        """A team webhook: no mailbox involved. A repeated post after a crash at worst repeats
        a chat line, so an unknown outcome is posted again, up to MAX_POSTS attempts."""
        key = action.key
        if not self.store.transition(
            key, [PLANNED, SENDING], SENDING, attempts=row["attempts"] + 1
        ):
            return Outcome(key, "taken", "another worker took it")
        try:
            self.post(str(action.context["url"]), {"text": str(action.context["text"])})
        except Exception as exc:  # any transport or HTTP error: retried on the next pass
            failed = row["attempts"] + 1 >= MAX_POSTS
            self.store.transition(
                key,
                [SENDING],
                FAILED if failed else PLANNED,
                last_error=f"webhook: {type(exc).__name__}: {exc}",
            )
            return Outcome(key, FAILED if failed else PLANNED, f"webhook failed: {exc}")
        self.store.transition(key, [SENDING], SENT)
        return Outcome(key, SENT, "posted to the team's webhook")

    def _hold(self, action: Action, row: dict[str, Any]) -> Outcome:
        """Create or release a tentative hold on the rep's calendar; no mail is involved."""
        key = action.key
        calendar = self.calendars.get(action.mailbox)
        if calendar is None:
            return Outcome(key, row["status"], "no calendar to hold the time on")
        if not self.store.transition(
            key, [PLANNED, SENDING], SENDING, attempts=row["attempts"] + 1
        ):
            return Outcome(key, "taken", "another worker took it")
        if action.context.get("op") == "release":
            return self._release(action, calendar)
        try:
            event_id = calendar.create_event(hold_for(action, self.senders[action.mailbox]))
        except (Permanent, ValueError) as exc:
            self.store.transition(key, [SENDING], FAILED, last_error=f"hold: {exc}")
            return Outcome(key, FAILED, str(exc))
        # Transient errors propagate with the row in ``sending``: the create is idempotent on
        # the key, so the next pass simply makes it again.
        self.store.transition(key, [SENDING], SENT, sent_provider_id=event_id)
        return Outcome(key, SENT, "held on the rep's calendar")

    def _release(self, action: Action, calendar: CalendarProvider) -> Outcome:
        key, hold = action.key, str(action.context.get("hold", ""))
        if self.store.transition(hold, [PLANNED], CANCELLED):
            self.store.transition(key, [SENDING], SENT)
            return Outcome(key, SENT, "the hold was never made")
        held = self.store.outbox_row(hold)
        if held is None or held["status"] != SENT:
            if held is not None and held["status"] == SENDING:
                self.store.transition(key, [SENDING], PLANNED)
                return Outcome(key, PLANNED, "waits until the hold is made")
            self.store.transition(key, [SENDING], SENT)
            return Outcome(key, SENT, "no hold to release")
        try:
            # Deleting an event already gone is not an error, so after a crash the release
            # is simply made again.
            calendar.delete_event(held["sent_provider_id"])
        except Permanent as exc:
            self.store.transition(key, [SENDING], FAILED, last_error=f"release: {exc}")
            return Outcome(key, FAILED, str(exc))
        self.store.transition(key, [SENDING], SENT)
        return Outcome(key, SENT, "hold released")

    def _sends(self, action: Action) -> bool:
        return action.kind in INTERNAL_KINDS or (action.mode or self.mode) == "send"

    def _over_cap(self, action: Action, now: datetime) -> bool:
        if action.kind in INTERNAL_KINDS:
            return False
        sent = self.store.sent_since(action.mailbox, now - timedelta(days=1))
        return len([r for r in sent if r["kind"] not in INTERNAL_KINDS]) >= self.daily_cap

    def compose(self, action: Action, now: datetime) -> Any:
        sender = self.senders[action.mailbox]
        rendered = self.composer.render(action.template, action.language, dict(action.context))
        msg = build_message(
            rendered,
            sender=sender,
            to=action.to,
            in_reply_to=action.reply_to_message_id,
            references=action.references,
            reply_subject=action.subject if action.reply_to_message_id else "",
            message_id=message_id_for(action.key, self.domain),
            key=action.key,
        )
        if msg["Date"] is None:
            msg["Date"] = format_datetime(now)
        if action.kind is ActionKind.INVITE:
            language = msg["Content-Language"]
            try:
                attach_invite(msg, build_invite(invite_for(action, sender), stamp=now))
            except ValueError as exc:
                raise TemplateError([Problem("invitation", action.key, str(exc))]) from exc
            if language and msg["Content-Language"] is None:
                # Making the body multipart moved every Content-* header into the text part.
                msg["Content-Language"] = language
        return msg

    def _draft_and_send(
        self, action: Action, provider: MailProvider, now: datetime, *, force_send: bool = False
    ) -> Outcome:
        key = action.key
        try:
            message = self.compose(action, now)
        except TemplateError as exc:
            self.store.transition(key, [PLANNED], NEEDS_ATTENTION, last_error=str(exc))
            return Outcome(key, NEEDS_ATTENTION, str(exc))
        except Exception as exc:
            # A render or an address the message cannot carry (OverflowError, RecursionError,
            # MemoryError, ValueError ...): this note waits for a person; the others go on.
            reason = f"cannot compose: {type(exc).__name__}: {str(exc)[:300]}"
            self.store.transition(key, [PLANNED], NEEDS_ATTENTION, last_error=reason)
            return Outcome(key, NEEDS_ATTENTION, reason)
        if not self.store.transition(key, [PLANNED], DRAFTING, attempts=1):
            return Outcome(key, "taken", "another worker took it")
        try:
            draft_id = provider.draft(message, key=key, thread_id=action.thread_id)
        except Permanent as exc:
            self.store.transition(key, [DRAFTING], FAILED, last_error=str(exc))
            return Outcome(key, FAILED, str(exc))
        except ProviderError:
            raise  # stays in drafting: reconciled next time
        self.store.transition(key, [DRAFTING], DRAFTED, draft_id=draft_id)
        if self.on_message:
            self.on_message(action, message)
        if not (force_send or self._sends(action)):
            return Outcome(key, DRAFTED, "draft waiting for the rep")
        return self._send(action, draft_id, provider, expect=DRAFTED)

    def _send(
        self, action: Action, draft_id: str, provider: MailProvider, *, expect: str
    ) -> Outcome:
        key = action.key
        if not self.store.transition(key, [expect], SENDING):
            return Outcome(key, "taken", "another worker took it")
        try:
            sent = provider.send_draft(draft_id)
        except Permanent as exc:
            self.store.transition(key, [SENDING], NEEDS_ATTENTION, last_error=str(exc))
            return Outcome(key, NEEDS_ATTENTION, str(exc))
        # Transient and AuthRevoked propagate with the row in ``sending``: the outcome is
        # unknown, and only reconciliation may decide whether to send again.
        self._mark_sent(key, SENDING, sent)
        log.info("sent %s %s via %s", action.kind.value, key, action.mailbox)
        return Outcome(key, SENT)

    def _mark_sent(self, key: str, expect: str, sent: SentRef) -> None:
        self.store.transition(
            key, [expect], SENT, sent_provider_id=sent.provider_id, sent_message_id=sent.message_id
        )

    def _reconcile_drafting(self, action: Action, provider: MailProvider) -> Outcome:
        key = action.key
        sent = provider.find_sent(key)
        if sent:
            self._mark_sent(key, DRAFTING, sent)
            return Outcome(key, SENT, "reconciled: found in sent mail")
        draft_id = provider.find_draft(key)
        if draft_id:
            self.store.transition(key, [DRAFTING], DRAFTED, draft_id=draft_id)
            return Outcome(key, DRAFTED, "reconciled: draft found")
        self.store.transition(key, [DRAFTING], PLANNED)
        return Outcome(key, PLANNED, "reconciled: no draft was made, planned again")

    def _reconcile_sending(
        self, action: Action, row: dict[str, Any], provider: MailProvider
    ) -> Outcome:
        key = action.key
        sent = provider.find_sent(key)
        if sent:
            self._mark_sent(key, SENDING, sent)
            return Outcome(key, SENT, "reconciled: found in sent mail")
        draft_id = provider.find_draft(key)
        if draft_id:
            self.store.transition(key, [SENDING], DRAFTED, draft_id=draft_id)
            return self._send(action, draft_id, provider, expect=DRAFTED)
        self.store.transition(
            key,
            [SENDING],
            NEEDS_ATTENTION,
            last_error="neither a sent message nor a draft carries the key",
        )
        return Outcome(key, NEEDS_ATTENTION, "a person must check whether it was sent")

    # -- the rep's draft workflow ---------------------------------------------------------------
    def approve(self, ident: int | str, now: datetime) -> Outcome:
        row = self.store.outbox_row(ident)
        if row is None:
            raise KeyError(ident)
        if row["status"] == DRAFTED:
            provider = self.providers[row["mailbox"]]
            return self._send(
                action_from_json(row["action"]), row["draft_id"], provider, expect=DRAFTED
            )
        if row["status"] == PLANNED:
            action = action_from_json(row["action"])
            provider = self.providers[row["mailbox"]]
            return self._draft_and_send(action, provider, now, force_send=True)
        return Outcome(row["key"], row["status"], "nothing to approve")

    def cancel(self, ident: int | str) -> Outcome:
        row = self.store.outbox_row(ident)
        if row is None:
            raise KeyError(ident)
        ok = self.store.transition(row["key"], [PLANNED, DRAFTED], CANCELLED)
        if not ok:
            return Outcome(row["key"], row["status"])
        if not row["draft_id"]:
            return Outcome(row["key"], CANCELLED)
        self._discard_withdrawn(row["mailbox"])
        after = self.store.outbox_row(row["key"]) or row
        if after["status"] == SENT:
            return Outcome(row["key"], SENT, "the rep had already sent it")
        if after["draft_id"]:
            return Outcome(row["key"], CANCELLED, "its draft is removed on the next pass")
        return Outcome(row["key"], CANCELLED, "its draft was removed from the mailbox")
