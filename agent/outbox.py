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
- ``sending``: the send may have happened. A sent message carrying the key -> ``sent``.
  Otherwise it depends on ``send_requested_at``, written (on the outbox's clock, by
  ``send_draft``'s ``before_post``) just before the one request that sends:

  - not written: that request was never made, so the draft is sent (a draft found by its key;
    none -> ``needs_attention``);
  - written: the request may have been accepted. Graph accepts ``/send`` before the message
    reaches Sent Items, and until then it still looks like a draft, so a draft proves nothing:
    the outbox only looks for the sent copy, for the provider's ``sent_copy_lag`` (as long as
    Exchange may take), then hands the row to a person (``needs_attention``); it never sends
    the draft again. Where sending is synchronous and consumes the draft (Gmail: a lag of
    zero), a draft still there proves the request was never made, and it is sent.

A send is never retried blindly: a Transient error during ``send_draft`` leaves the row in
``sending`` for the next reconciliation, except ``Refused`` (turned away unmade, a 429), which
withdraws the request so that the next pass sends. Each send attempt is numbered (``attempts``)
and the request is recorded only if the attempt is still the row's, so a worker that lost its
lease while it was about to send gives way to the one that took the row over.

In ``draft`` mode notes to clients stop at ``drafted`` (the draft waits in the rep's Drafts
folder) until the rep sends it or runs ``followup outbox approve``; reminders and escalations
to the team are always sent.

An INVITE note carries its ``text/calendar; method=REQUEST`` part, added where the message is
composed. Cancelling an invitation already sent plans a ``method=CANCEL`` note under the same
UID instead (``cancel/...``), so the meeting leaves the client's calendar, and a HOLD ``remove``
for the meeting's event on the rep's calendar, if the rep has one.

HOLD actions send no mail: given the mailbox's calendar (``calendars``), a ``create``
puts a tentative hold on the rep's calendar (``create_event`` is idempotent on the key, so an
unknown outcome is simply tried again) and a ``release`` deletes it with ``delete_event``
(deleting an event already gone is not an error, so that too is simply tried again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from agent.compose import Composer, build_message, message_id_for
from agent.config import Settings
from agent.errors import (
    AccessDenied,
    AuthRevoked,
    Permanent,
    Problem,
    ProviderError,
    Refused,
    SendLimitReached,
    TemplateError,
    Transient,
    WebhookRefused,
)
from agent.followups import SEND_SPANS
from agent.invites import attach_invite, build_invite, hold_for, invite_for, invite_uid
from agent.matching import unsubscribe_subject
from agent.meetings import freed_events
from agent.memo import PerObject
from agent.model import Action, ActionKind, Address, SentRef
from agent.providers.protocol import CalendarProvider, MailProvider, key_tag
from agent.store import (
    CANCELLED,
    DRAFTED,
    DRAFTING,
    FAILED,
    NEEDS_ATTENTION,
    PLANNED,
    SENDING,
    SENT,
    SHADOWED,
    Store,
    action_from_json,
)
from agent.webhooks import describe, post_json

log = logging.getLogger("followup.outbox")
# Never held back by the mode or counted against the daily cap of notes to clients.
INTERNAL_KINDS = frozenset(
    {
        ActionKind.REMINDER,
        ActionKind.ESCALATION,
        ActionKind.WEBHOOK,
        ActionKind.HOLD,
        ActionKind.DIGEST,
        ActionKind.WEEKLY,
    }
)
# Team-side notes, counted against the team's own daily cap; past it they are gathered into a
# digest per recipient (and one per webhook) every DIGEST_EVERY, due at the end of that span.
TEAM_KINDS = frozenset({ActionKind.REMINDER, ActionKind.ESCALATION, ActionKind.WEBHOOK})
DIGEST_EVERY = timedelta(hours=4)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_POSTS = 5
# Mail the agent writes to the team on its own (RFC 3834 ``auto-generated``): no responder, and
# no other installation reading the mailbox, answers it. Exchange honours its own header.
AUTO_SUBMITTED_KINDS = frozenset(
    {ActionKind.REMINDER, ActionKind.ESCALATION, ActionKind.DIGEST, ActionKind.WEEKLY}
)
AUTO_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
# The notes of a follow-up sequence: the ones a client may ask to stop with one click.
SEQUENCE_KINDS = frozenset({ActionKind.FOLLOW_UP})


def unsubscribe_headers(action: Action, sender: Address) -> dict[str, str]:
    """RFC 2369 ``List-Unsubscribe`` for a sequence note: a mailto to the rep whose subject
    carries an opaque token for the client, read back on sync (agent.steering). No
    ``List-Unsubscribe-Post``: RFC 8058 one-click needs an HTTPS address, which the agent
    does not serve."""
    if action.kind not in SEQUENCE_KINDS or not action.to:
        return {}
    target = action.client or action.to[0].email
    subject = quote(unsubscribe_subject(target))
    return {"List-Unsubscribe": f"<mailto:{sender.email}?subject={subject}>"}


HOUR = timedelta(hours=1)


def _reader(action: Action) -> str:
    """Who a team note is for: the address it goes to, or its webhook (by an opaque tag, never
    the URL, whose path is a secret)."""
    if action.to:
        return action.to[0].email.lower()
    return f"webhook-{key_tag(str(action.context.get('url', '')))[:12]}"


class _Superseded(Exception):
    """Another worker took the send over: this one must not make the request."""


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str
    detail: str = ""


def _senders_and_modes(settings: Settings) -> tuple[Mapping[str, Address], Mapping[str, str]]:
    return (
        MappingProxyType({m.name: Address(m.address, m.rep_name) for m in settings.mailboxes}),
        MappingProxyType({m.name: m.mode for m in settings.mailboxes if m.mode}),
    )


# An outbox is made for every pass: a team of thousands of mailboxes is not walked each time.
_per_mailbox: PerObject[Settings, tuple[Mapping[str, Address], Mapping[str, str]]] = PerObject(
    _senders_and_modes
)


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
        team_daily_cap: int = 50,
        domain: str = "followup.invalid",
        on_message: Callable[[Action, Any], None] | None = None,
        post: Callable[[str, dict[str, str]], None] | None = None,
        calendars: Mapping[str, CalendarProvider] | None = None,
        mailbox_modes: Mapping[str, str] | None = None,
        team_digest: bool = True,
        webhook_allow: Collection[str] = (),
    ) -> None:
        self.store = store
        self.mailbox_modes: Mapping[str, str] = mailbox_modes or {}
        self.team_digest = team_digest
        self.providers = providers
        self.composer = composer
        self.senders = senders
        self.mode = mode
        self.daily_cap = daily_cap
        self.team_daily_cap = team_daily_cap
        self.domain = domain
        self.on_message = on_message
        # Webhooks go to public https hosts only, bar the hosts allowed (agent/webhooks.py).
        self.post = post or partial(post_json, allow=tuple(webhook_allow))
        self.calendars = calendars or {}

    @classmethod
    def configured(
        cls,
        settings: Settings,
        store: Store,
        providers: Mapping[str, MailProvider],
        composer: Composer,
        **extra: Any,
    ) -> Outbox:
        """The outbox as ``settings`` configure it (modes, caps, digests, webhook policy), for
        the worker and for a command alike; ``extra`` adds calendars, a post function..."""
        senders, modes = _per_mailbox(settings)
        return cls(
            store,
            providers,
            composer,
            senders,
            mode=settings.outbox.mode,
            mailbox_modes=modes,
            daily_cap=settings.outbox.daily_cap,
            team_daily_cap=settings.outbox.team_daily_cap,
            team_digest=settings.outbox.team_digest,
            domain=settings.team.domains[0] if settings.team.domains else "followup.invalid",
            webhook_allow=settings.team.webhook_allow_hosts,
            **extra,
        )

    # -- the one entry point ----------------------------------------------------------------
    def run(
        self,
        now: datetime,
        *,
        mailbox: str | None = None,
        kinds: frozenset[ActionKind] | None = None,
        due: list[dict[str, Any]] | None = None,
        withdrawn: list[dict[str, Any]] | None = None,
    ) -> list[Outcome]:
        """Discard the drafts of cancelled notes, reconcile unfinished sends, then execute what
        is due (only rows of ``kinds``, when given; ``due`` and ``withdrawn``: the rows of
        ``store.due_outbox`` and ``store.withdrawn_drafts``, when the caller read them already;
        discarding drafts changes none of the due ones). Returns one outcome per row executed."""
        self._discard_withdrawn(mailbox, withdrawn)
        outcomes = []
        rows = self.store.due_outbox(now, mailbox=mailbox) if due is None else due
        if kinds is not None:
            rows = [r for r in rows if r["kind"] in kinds]
        rows, folded = self._fold_storms(rows, now)
        outcomes += folded
        for row in rows:
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
        return self.store.cancel_many(keys, [PLANNED, DRAFTED], CANCELLED)

    def _discard_withdrawn(
        self, mailbox: str | None, rows: list[dict[str, Any]] | None = None
    ) -> None:
        for row in self.store.withdrawn_drafts(mailbox) if rows is None else rows:
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
        if status == PLANNED and self.mode_of(action) == "shadow":
            return self._shadow(action, now)
        if status == PLANNED and action.kind in TEAM_KINDS and self._over_team_cap(action, now):
            return self._fold(action, now)
        if action.kind is ActionKind.DIGEST and (
            status == PLANNED or (status == SENDING and not action.to)
        ):
            gathered = self._gathered(action)
            if gathered is None:
                self.store.transition(key, [PLANNED, SENDING], CANCELLED)
                return Outcome(key, CANCELLED, "nothing was gathered into it")
            action = gathered
            if action.to:
                return self._draft_and_send(action, provider, now)
        if action.kind in (ActionKind.WEBHOOK, ActionKind.DIGEST) and not action.to:
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
            return self._reconcile_sending(action, row, provider, now)
        if status == DRAFTED:
            if self._sends(action):
                return self._send(
                    action,
                    row["draft_id"],
                    provider,
                    expect=DRAFTED,
                    attempts=row["attempts"],
                    now=now,
                )
            found = provider.find_sent(key)  # the rep may have sent the draft by hand
            if found:
                self._mark_sent(key, DRAFTED, found)
                return Outcome(key, SENT, "sent by the rep")
            return Outcome(key, DRAFTED, "waiting for the rep to send or approve")
        if status == PLANNED:
            held = self._outside_hours(action, row, now)
            if held is not None:
                return held
            if self._over_cap(action, now):
                return Outcome(key, PLANNED, f"daily cap of {self.daily_cap} reached")
            return self._draft_and_send(action, provider, now)
        return Outcome(key, status)

    def _shadow(self, action: Action, now: datetime) -> Outcome:
        """Shadow mode: render the note as it would go out (so a template fault shows now, not
        on the day the team switches to sending) and record it as what would have been sent;
        nothing reaches a mailbox, a calendar or a webhook."""
        key = action.key
        if action.kind not in (ActionKind.WEBHOOK, ActionKind.HOLD, ActionKind.DIGEST):
            try:
                self.compose(action, now)
            except TemplateError as exc:
                self.store.transition(key, [PLANNED], NEEDS_ATTENTION, last_error=str(exc))
                return Outcome(key, NEEDS_ATTENTION, str(exc))
        if not self.store.transition(key, [PLANNED], SHADOWED):
            return Outcome(key, "taken", "another worker took it")
        return Outcome(key, SHADOWED, "shadow mode: would have gone out now")

    def _outside_hours(self, action: Action, row: dict[str, Any], now: datetime) -> Outcome | None:
        """Hold a note found due outside the stretches it may go out in (``send_spans``: the
        client's hours and send window, or the rep's for an answer), as when the worker was down
        at its time: it waits for the next stretch instead of going out at night. A note past
        its last stretch goes now, as before."""
        spans = action.context.get(SEND_SPANS)
        if not spans or action.kind in INTERNAL_KINDS:
            return None
        try:
            bounds = [(s["start"], s["end"]) for s in spans]
            if any(start <= now < end for start, end in bounds):
                return None
            later = min((start for start, _ in bounds if start > now), default=None)
        except (KeyError, TypeError):
            return None
        if later is None:
            return None
        if not self.store.transition(action.key, [PLANNED], PLANNED, due=later):
            return Outcome(action.key, "taken", "another worker took it")
        return Outcome(
            action.key,
            PLANNED,
            f"outside the hours it may go out in: waits until {later:%Y-%m-%d %H:%M} UTC",
        )

    def _post(self, action: Action, row: dict[str, Any]) -> Outcome:
        """A team webhook: no mailbox involved. A repeated post after a crash at worst repeats
        a chat line, so an unknown outcome is posted again, up to MAX_POSTS attempts."""
        key = action.key
        if not self.store.transition(
            key, [PLANNED, SENDING], SENDING, attempts=row["attempts"] + 1
        ):
            return Outcome(key, "taken", "another worker took it")
        url = str(action.context["url"])
        try:
            self.post(url, {"text": str(action.context["text"])})
        except Exception as exc:  # any transport or HTTP error: retried on the next pass
            # The URL is a credential: the error names its host only.
            reason = describe(exc, url)
            failed = isinstance(exc, WebhookRefused) or row["attempts"] + 1 >= MAX_POSTS
            self.store.transition(key, [SENDING], FAILED if failed else PLANNED, last_error=reason)
            return Outcome(key, FAILED if failed else PLANNED, f"webhook failed: {reason}")
        self.store.transition(key, [SENDING], SENT)
        return Outcome(key, SENT, "posted to the team's webhook")

    def _hold(self, action: Action, row: dict[str, Any]) -> Outcome:
        """Create or release a tentative hold on the rep's calendar; no mail is involved."""
        key = action.key
        calendar = self.calendars.get(action.mailbox)
        if calendar is None:
            return Outcome(key, row["status"], "no calendar to hold the time on")
        if action.context.get("op") != "release" and row["status"] == PLANNED:
            # A hold keeps time for a proposal the client has been offered: none while the
            # daily cap holds the proposal back, none once it is cancelled or has failed.
            proposal = self.store.outbox_row(str(action.context.get("proposal", "")))
            if proposal is not None and proposal["status"] in (PLANNED, DRAFTING):
                return Outcome(key, PLANNED, "waits until its proposal goes out")
            if proposal is not None and proposal["status"] in (CANCELLED, FAILED, NEEDS_ATTENTION):
                self.store.transition(key, [PLANNED], CANCELLED)
                return Outcome(key, CANCELLED, f"its proposal is {proposal['status']}")
        if not self.store.transition(
            key, [PLANNED, SENDING], SENDING, attempts=row["attempts"] + 1
        ):
            return Outcome(key, "taken", "another worker took it")
        if action.context.get("op") == "release":
            return self._release(action, calendar)
        if action.context.get("op") == "remove":
            try:
                # As for a release: deleting an event already gone is not an error.
                calendar.delete_event(str(action.context["event"]))
            except Permanent as exc:
                self.store.transition(key, [SENDING], FAILED, last_error=f"remove: {exc}")
                return Outcome(key, FAILED, str(exc))
            self.store.transition(key, [SENDING], SENT)
            return Outcome(key, SENT, "the old meeting left the rep's calendar")
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

    # -- the team's own cap --------------------------------------------------------------
    def _over_team_cap(self, action: Action, now: datetime) -> bool:
        sent = self.store.sent_since(action.mailbox, now - timedelta(days=1))
        return len([r for r in sent if r["kind"] in TEAM_KINDS]) >= self.team_daily_cap

    def _fold_storms(
        self, rows: list[dict[str, Any]], now: datetime
    ) -> tuple[list[dict[str, Any]], list[Outcome]]:
        """Team notes never storm: two or more due in one pass for the same reader (a rep, a
        lead, a webhook) go out as one digest, now; one due within an hour of the last note
        that reader got waits for that hour's digest. Returns the rows left to run (the
        digests among them) and the outcomes of the notes folded."""
        if not self.team_digest:
            return rows, []
        groups: dict[str, list[Action]] = {}
        for row in rows:
            if row["status"] != PLANNED or row["kind"] not in TEAM_KINDS:
                continue
            action = action_from_json(row["action"])
            if self.mode_of(action) == "shadow":
                continue
            groups.setdefault(f"{action.mailbox}/{_reader(action)}", []).append(action)
        outcomes: list[Outcome] = []
        folded: set[str] = set()
        digests: list[dict[str, Any]] = []
        for group in groups.values():
            if len(group) >= 2:
                # The set of notes names the digest: a pass run again after a crash makes the
                # same one, and a later storm another.
                tag = key_tag(" ".join(sorted(a.key for a in group)))[:16]
                key = f"digest/{group[0].mailbox}/{_reader(group[0])}/{tag}"
                for action in group:
                    outcomes.append(
                        self._fold(
                            action, now, key=key, due=now, why="one pass's team notes, gathered"
                        )
                    )
                    folded.add(action.key)
                digest = self.store.outbox_row(key)
                if digest is not None and digest["status"] == PLANNED:
                    digests.append(digest)
            elif self._told_within(group[0], now, HOUR):
                outcomes.append(self._fold(group[0], now, span=HOUR, why="within the hour"))
                folded.add(group[0].key)
        kept = [r for r in rows if r["key"] not in folded]
        return [*digests, *kept], outcomes

    def _told_within(self, action: Action, now: datetime, span: timedelta) -> bool:
        """Whether the reader of ``action`` got a team note from its mailbox within ``span``."""
        reader, since = _reader(action), now - span
        return any(
            r["kind"] in (*TEAM_KINDS, ActionKind.DIGEST)
            and r["updated_at"] > since  # a note exactly an hour ago no longer counts
            and _reader(action_from_json(r["action"])) == reader
            for r in self.store.sent_since(action.mailbox, since)
        )

    def _fold(
        self,
        action: Action,
        now: datetime,
        *,
        key: str | None = None,
        due: datetime | None = None,
        span: timedelta = DIGEST_EVERY,
        why: str = "",
    ) -> Outcome:
        """Gather a team note into its reader's digest: the one named ``key`` due ``due``, or by
        default the one for the ``span`` of time ``now`` falls in, due at its end (past the
        team's daily cap, the span is DIGEST_EVERY)."""
        start = _EPOCH + ((now - _EPOCH) // span) * span
        webhook = action.kind is ActionKind.WEBHOOK
        reader = action.to[0] if action.to else None
        url = str(action.context.get("url", ""))
        # One digest per reader, and per webhook (a rule may post to its own channel).
        key = key or f"digest/{action.mailbox}/{_reader(action)}/{start:%Y%m%dT%H%MZ}"
        why = why or f"team notes past the daily cap of {self.team_daily_cap}, gathered"
        context: dict[str, Any] = (
            {"url": url}
            if webhook or reader is None
            else {
                "reader": {"name": reader.name or reader.email},
                "zone": str(action.context.get("rep_zone") or "UTC"),
            }
        )
        self.store.enqueue(
            [
                Action(
                    key=key,
                    kind=ActionKind.DIGEST,
                    mailbox=action.mailbox,
                    due=due or start + span,
                    to=() if webhook else action.to,
                    language=action.language,
                    template="" if webhook else "digest",
                    reason=why,
                    context=context,
                )
            ]
        )
        self.store.transition(action.key, [PLANNED], CANCELLED, last_error=f"folded into {key}")
        return Outcome(action.key, CANCELLED, f"{why}: folded into {key}")

    def _gathered(self, digest: Action) -> Action | None:
        """``digest`` with the notes folded into it, or ``None`` when there are none."""
        mark = f"folded into {digest.key}"
        folded = [
            action_from_json(r["action"])
            for r in self.store.outbox(statuses=(CANCELLED,), mailbox=digest.mailbox)
            if r["last_error"] == mark
        ]
        if not folded:
            return None
        if not digest.to:
            lines = [str(a.context.get("text", "")) for a in folded]
            text = f"{len(folded)} team notes, gathered:\n" + "\n".join(
                f"• {line}" for line in lines
            )
            return replace(digest, context={**digest.context, "text": text})
        items = []
        for a in folded:
            client, thread = a.context.get("client", {}), a.context.get("thread", {})
            items.append(
                {
                    "kind": a.kind.value,
                    "client": str(client.get("name", a.client)),
                    "subject": str(thread.get("subject", a.subject)),
                    "deadline": a.context.get("deadline", a.due),
                    "rule": a.rule or str(a.context.get("rule", "")),
                }
            )
        return replace(digest, context={**digest.context, "items": items})

    def mode_of(self, action: Action) -> str:
        """shadow, draft or send: the mailbox's own mode, else the configured one; shadow wins
        over a rule's mode, which wins over the rest."""
        configured = self.mailbox_modes.get(action.mailbox) or self.mode
        if configured == "shadow":
            return "shadow"
        return action.mode or configured

    def _sends(self, action: Action) -> bool:
        return action.kind in INTERNAL_KINDS or self.mode_of(action) == "send"

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
            extra_headers=(
                AUTO_HEADERS
                if action.kind in AUTO_SUBMITTED_KINDS
                else unsubscribe_headers(action, sender)
            ),
        )
        if msg["Date"] is None:
            msg["Date"] = format_datetime(now)
        if action.kind is ActionKind.WEEKLY:
            from agent.digest import attach_charts

            attach_charts(msg, action)
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
        if not self.store.transition(key, [DRAFTING], DRAFTED, draft_id=draft_id):
            # This worker lost its lease while drafting and another took the row over: that
            # one adopted this draft (then it is the row's) or made its own (this one goes).
            row = self.store.outbox_row(key)
            if row is not None and row["draft_id"] != draft_id:
                try:
                    provider.discard_draft(draft_id)
                except Transient as exc:
                    log.warning("outbox %s: a second draft is left behind: %s", key, exc)
            return Outcome(key, "taken", "another worker took it over")
        if self.on_message:
            self.on_message(action, message)
        if not (force_send or self._sends(action)):
            return Outcome(key, DRAFTED, "draft waiting for the rep")
        return self._send(action, draft_id, provider, expect=DRAFTED, attempts=1, now=now)

    def _send(
        self,
        action: Action,
        draft_id: str,
        provider: MailProvider,
        *,
        expect: str,
        attempts: int,
        now: datetime,
        requested: bool = False,
    ) -> Outcome:
        key = action.key
        if not self.store.claim_send(key, [expect], attempts, requested=requested):
            return Outcome(key, "taken", "another worker took it")
        attempt = attempts + 1

        def before_post() -> None:
            if not self.store.request_send(key, attempt, now):
                raise _Superseded

        try:
            sent = provider.send_draft(draft_id, before_post=before_post)
        except _Superseded:
            return Outcome(key, "taken", "another worker took the send over")
        except Permanent as exc:
            # The draft may be gone because another worker, that took the row over while this
            # one was stalled, sent it: then it is sent, not a problem.
            found = self._sent_copy(provider, key)
            if found is not None:
                self._mark_sent(key, SENDING, found)
                return Outcome(key, SENT, "reconciled: found in sent mail")
            if not self.store.transition(
                key, [SENDING], NEEDS_ATTENTION, attempt=attempt, last_error=str(exc)
            ):
                return Outcome(key, "taken", "another worker took the send over")
            return Outcome(key, NEEDS_ATTENTION, str(exc))
        except (Refused, SendLimitReached, AccessDenied):
            # Turned away before it was acted on: nothing was sent, the next pass sends.
            self.store.withdraw_send_request(key, attempt)
            raise
        # Other Transient errors and AuthRevoked propagate with the row in ``sending`` and the
        # request recorded: the outcome is unknown, and reconciliation only looks for the copy.
        self._mark_sent(key, SENDING, sent)
        # The worker logs each outcome once, with its context; this line is for debugging.
        log.debug("sent %s %s via %s", action.kind.value, key, action.mailbox)
        return Outcome(key, SENT)

    @staticmethod
    def _sent_copy(provider: MailProvider, key: str) -> SentRef | None:
        try:
            return provider.find_sent(key)
        except AuthRevoked:
            raise
        except ProviderError:
            return None

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
        self, action: Action, row: dict[str, Any], provider: MailProvider, now: datetime
    ) -> Outcome:
        key = action.key
        sent = provider.find_sent(key)
        if sent:
            self._mark_sent(key, SENDING, sent)
            return Outcome(key, SENT, "reconciled: found in sent mail")
        requested = row.get("send_requested_at")
        if requested is None:
            # The request that sends was never made: the draft may be sent.
            draft_id = provider.find_draft(key)
            if draft_id:
                return self._send(
                    action, draft_id, provider, expect=SENDING, attempts=row["attempts"], now=now
                )
            if not self.store.transition(
                key,
                [SENDING],
                NEEDS_ATTENTION,
                attempt=row["attempts"],
                unrequested=True,
                last_error="neither a sent message nor a draft carries the key",
            ):
                return Outcome(key, "taken", "another worker is sending it")
            return Outcome(key, NEEDS_ATTENTION, "a person must check whether it was sent")
        lag = provider.sent_copy_lag
        if now - requested < lag:
            return Outcome(key, SENDING, "send requested: waiting for the sent copy")
        if not lag:
            # A synchronous send consumes the draft: one still there was never sent.
            draft_id = provider.find_draft(key)
            if draft_id:
                return self._send(
                    action,
                    draft_id,
                    provider,
                    expect=SENDING,
                    attempts=row["attempts"],
                    now=now,
                    requested=True,
                )
        minutes = int(lag.total_seconds() // 60)
        error = (
            f"the send was requested at {requested.isoformat()} but no sent message carries the "
            f"key {minutes} minutes later; it is never sent twice by itself: check Sent Items "
            "and send the draft by hand if it did not go"
            if lag
            else "the send was requested but neither a sent message nor a draft carries the key"
        )
        self.store.transition(key, [SENDING], NEEDS_ATTENTION, last_error=error)
        return Outcome(key, NEEDS_ATTENTION, "a person must check whether it was sent")

    # -- the rep's draft workflow ---------------------------------------------------------------
    def approve(self, ident: int | str, now: datetime) -> Outcome:
        row = self.store.outbox_row(ident)
        if row is None:
            raise KeyError(ident)
        if row["status"] == DRAFTED:
            provider = self.providers[row["mailbox"]]
            return self._send(
                action_from_json(row["action"]),
                row["draft_id"],
                provider,
                expect=DRAFTED,
                attempts=row["attempts"],
                now=now,
            )
        if row["status"] == PLANNED:
            action = action_from_json(row["action"])
            if self.mode_of(action) == "shadow":
                return Outcome(
                    row["key"],
                    PLANNED,
                    f"{row['mailbox']} is in shadow mode, which sends nothing: set its mode "
                    '(or [outbox] mode) to "draft" or "send" first',
                )
            provider = self.providers[row["mailbox"]]
            return self._draft_and_send(action, provider, now, force_send=True)
        return Outcome(row["key"], row["status"], "nothing to approve")

    def cancel(self, ident: int | str, now: datetime | None = None) -> Outcome:
        """Cancel a planned note or a draft; for an invitation already sent (given ``now``),
        plan its cancellation to the client instead."""
        row = self.store.outbox_row(ident)
        if row is None:
            raise KeyError(ident)
        if row["status"] == SENT and row["kind"] == ActionKind.INVITE.value and now is not None:
            return self._cancel_meeting(action_from_json(row["action"]), now)
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

    def _cancel_meeting(self, invite: Action, now: datetime) -> Outcome:
        """A ``METHOD:CANCEL`` under the sent invitation's UID, with a SEQUENCE above every
        invitation of that event, sent to the client on the next run (template
        ``cancellation``): the client's calendar then removes the meeting."""
        meeting = dict(invite.context.get("meeting") or {})
        if meeting.get("cancelled"):
            return Outcome(invite.key, SENT, "this is a cancellation already")
        uid_key = str(meeting.get("uid_key") or invite.key)
        latest: tuple[int, bool, str, str] = (-1, False, "", "")
        for row in self.store.outbox(mailbox=invite.mailbox):
            if row["kind"] != ActionKind.INVITE.value or row["thread_id"] != invite.thread_id:
                continue
            other = dict(action_from_json(row["action"]).context.get("meeting") or {})
            if str(other.get("uid_key") or row["key"]) == uid_key:
                seen = (int(other.get("sequence", 0)), bool(other.get("cancelled")))
                latest = max(latest, (*seen, str(row["key"]), str(row["status"])))
        sequence, cancelled, key, status = latest
        if cancelled:
            return Outcome(key, status, "the meeting is cancelled already")
        cancel = replace(
            invite,
            key=f"cancel/{uid_key}/{sequence + 1}",
            due=now,
            template="cancellation",
            reason=f"the rep cancelled the meeting of {invite.key}",
            context={
                **invite.context,
                "meeting": {
                    **meeting,
                    "uid_key": uid_key,
                    "sequence": sequence + 1,
                    "cancelled": True,
                },
            },
            mode="send",  # the rep asked for it: no draft to approve
        )
        sender = self.senders[invite.mailbox]
        uid = invite_uid(invite_for(cancel, sender))
        events = self.store.events(invite.mailbox)
        self.store.enqueue([cancel, *freed_events(cancel, events, uid, cancelled=True)])
        return Outcome(cancel.key, PLANNED, "the cancellation goes to the client on the next run")
