"""The bundled demo: three reps, seven clients, real threads, a fixed ``now``.

``run_demo`` builds Maildir mailboxes from scenario.toml in an output folder, then runs the very
pipeline the worker runs: local provider -> store -> matching -> planners -> outbox. Every
outgoing message is also written there as an .eml file.

History first: at each of the scenario's ``[[earlier]]`` times the meeting planner runs alone
and the reps approve its proposals and invitations (they go to the sent folders); then the
clients' answers to those notes (``answers = "<message id>"`` in scenario.toml) arrive, threaded
under them. The main pass at ``now`` reads those answers like any other mail.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from agent import config, golive, pipeline
from agent.compose import Composer
from agent.errors import ConfigError, Problem
from agent.model import Action, ActionKind
from agent.outbox import Outbox, Outcome
from agent.promises import Decision, Promise
from agent.providers.local import LocalMailbox
from agent.starter import shipped as bundled  # rules/ and templates/ as shipped
from agent.store import Store, action_from_json

HERE = Path(__file__).parent
SLOTS_EXAMPLE = HERE / "slots_request.json"  # `followup slots --example`


@dataclass
class DemoResult:
    now: datetime
    out: Path
    actions: list[Action]
    promises: list[Promise]
    decisions: list[Decision]
    outcomes: dict[str, Outcome]
    files: dict[str, Path]
    subjects: dict[str, str]
    zones: dict[str, str]
    skipped: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Ids:
    """Message-IDs of the scenario's messages, and the references chain of each."""

    ids: dict[str, str] = field(default_factory=dict)
    refs: dict[str, list[str]] = field(default_factory=dict)


def _deliver(
    item: dict[str, Any],
    settings: config.Settings,
    now: datetime,
    known: _Ids,
    parent: tuple[str, list[str]] | None = None,
) -> None:
    """File one scenario message; ``parent`` is (Message-ID, references) of what it answers."""
    mb = settings.mailbox(item["mailbox"])
    assert mb.path is not None
    box = LocalMailbox(mb.path, mailbox=mb.name, address=mb.address, clock=lambda: now)
    msg = EmailMessage()
    msg["From"] = item["from"]
    msg["To"] = item["to"]
    msg["Subject"] = item["subject"]
    msg["Date"] = format_datetime(item["date"])
    msg["Message-ID"] = known.ids.setdefault(item["id"], make_msgid(item["id"], "demo.example"))
    if parent is None and "reply_to" in item:
        parent = (known.ids[item["reply_to"]], known.refs.get(item["reply_to"], []))
    if parent is not None:
        chain = [*parent[1], parent[0]]
        known.refs[item["id"]] = chain
        msg["In-Reply-To"] = parent[0]
        msg["References"] = " ".join(chain)
    for name, value in item.get("headers", {}).items():
        msg[name] = value
    msg.set_content(item["body"])
    box.deliver(bytes(msg), item["folder"])


def _build_mailboxes(
    scenario: dict[str, Any], settings: config.Settings, now: datetime, known: _Ids
) -> None:
    for item in scenario["message"]:
        if "answers" not in item:  # answers to the agent's proposals come after the history
            _deliver(item, settings, now, known)
    for item in scenario.get("calendar", []):
        mb = settings.mailbox(item["mailbox"])
        assert mb.path is not None
        (mb.path / "calendar").mkdir(parents=True, exist_ok=True)
        (mb.path / "calendar" / item["file"]).write_text(item["ics"], encoding="utf-8")


MARK = ".followup-demo"  # in every folder the demo made, and only there


class DemoFolderError(ConfigError):
    pass


def _fresh_folder(out: Path) -> None:
    """Empty ``out`` for a new run, if the demo made it; never a folder it did not make."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MARK).exists()):
            raise DemoFolderError(
                [
                    Problem(
                        "--out",
                        str(out),
                        "exists and was not made by followup demo, so it is left alone: "
                        "choose a new folder, e.g. --out followup-demo-out",
                    )
                ]
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARK).write_text("made by followup demo; the next run empties this folder\n")


def write_post(path: Path, url: str, payload: dict[str, str]) -> None:
    """The demo's team webhook is a file: the JSON a Slack-compatible endpoint would get. The
    demo never posts anywhere."""
    path.write_text(
        json.dumps({"url": url, **payload}, ensure_ascii=False, indent=2), encoding="utf-8"
    )


def run_demo(out: Path) -> DemoResult:
    scenario = tomllib.loads((HERE / "scenario.toml").read_text(encoding="utf-8"))
    now: datetime = scenario["now"]
    _fresh_folder(out)
    shutil.copy(HERE / "clients.csv", out / "clients.csv")
    # The demo's config is written next to its mailboxes, so every other command can be tried
    # on the demo: followup --config followup-demo-out/config.toml rules simulate ...
    text = (
        (HERE / "config.toml")
        .read_text(encoding="utf-8")
        .replace(
            "[paths]\n",
            f"[paths]\nrules = {json.dumps(str(bundled('rules')))}\n"
            f"templates = {json.dumps(str(bundled('templates')))}\n",
        )
    )
    (out / "config.toml").write_text(text, encoding="utf-8")
    settings = config.load(out / "config.toml")
    known = _Ids()
    _build_mailboxes(scenario, settings, now, known)

    store = Store.open(settings.database.url, clock=lambda: now)
    team = pipeline.load_team(settings)
    providers = {}
    for mb in settings.mailboxes:
        assert mb.path is not None
        box = LocalMailbox(mb.path, mailbox=mb.name, address=mb.address, clock=lambda: now)
        pipeline.sync_mailbox(store, mb.name, box, box)
        providers[mb.name] = box

    def fetch_bodies() -> None:
        # Bodies are fetched only for the messages a planner reads (here: every inbound one).
        for m in store.messages():
            if "INBOX" in m.labels and m.body is None:
                body = providers[m.mailbox].fetch_body(m.provider_id)
                store.set_body(m.mailbox, m.provider_id, body)

    fetch_bodies()
    files: dict[str, Path] = {}
    subjects: dict[str, str] = {}
    emails = out / "outbox"
    emails.mkdir()

    def keep(action: Action, message: EmailMessage) -> None:
        path = emails / f"{len(files) + 1:02d}-{action.kind.value}-{action.client or 'team'}.eml"
        path.write_bytes(bytes(message))
        files[action.key] = path
        subjects[action.key] = str(message["Subject"])

    def post(url: str, payload: dict[str, str]) -> None:
        path = emails / f"{len(files) + 1:02d}-webhook.json"
        write_post(path, url, payload)
        files[f"webhook:{len(files)}"] = path

    composer = Composer(settings.paths.templates, team_default=settings.team.default_language)
    outbox = Outbox.configured(
        settings, store, providers, composer, on_message=keep, post=post, calendars=providers
    )

    def resync() -> None:
        for mb in settings.mailboxes:
            pipeline.sync_mailbox(store, mb.name, providers[mb.name], providers[mb.name])
        fetch_bodies()

    history, outcomes = _history(scenario, settings, team, store, outbox, known, resync)

    result = pipeline.plan_stored(team, store, now)
    # The demo's team went live a week before its mail: the old thread in the scenario is
    # history, planned but held back, as a worker would on its first day.
    gated = golive.gate(result.actions, settings.outbox.go_live, result.promises.promises)
    pipeline.record(store, gated)
    planned = list(gated.actions)
    store.enqueue(planned)
    outcomes.update({o.key: o for o in outbox.run(now)})
    # Team notes due together for one reader went out as one digest, made by the outbox.
    digests = [
        action_from_json(r["action"])
        for r in store.outbox()
        if r["kind"] == ActionKind.DIGEST and r["key"] in outcomes
    ]
    # Notes scheduled for later are rendered too, so the folder shows every message the
    # agent will write; they stay planned in the outbox until their time.
    for key, outcome in list(outcomes.items()):
        if "folded into digest/" in outcome.detail:
            outcomes[key] = Outcome(key, "in digest", outcome.detail)
    for action in planned:
        if outcomes.get(action.key, Outcome("", "")).status == "in digest":
            continue  # the digest is the message
        if action.key not in files and action.kind not in (ActionKind.WEBHOOK, ActionKind.HOLD):
            keep(action, outbox.compose(action, now))
    planned += digests
    return DemoResult(
        now=now,
        out=out,
        actions=sorted([*history, *planned], key=lambda a: a.due),
        promises=list(result.promises.promises),
        decisions=[
            *result.promises.decisions,
            *result.notes.decisions,
            *result.meetings.decisions,
            *gated.decisions,
        ],
        outcomes=outcomes,
        files=files,
        subjects=subjects,
        zones={m.name: m.zone for m in settings.mailboxes},
        skipped=store.skipped(),
    )


def _history(
    scenario: dict[str, Any],
    settings: config.Settings,
    team: pipeline.Team,
    store: Store,
    outbox: Outbox,
    known: _Ids,
    resync: Callable[[], None],
) -> tuple[list[Action], dict[str, Outcome]]:
    """Rounds of the meeting planner before ``now``, whose notes the reps send, and the answers.

    ``[[earlier]]`` holds the rounds in order, each with its ``now``. After each round every
    message whose ``answers`` names a message the round's proposal or invitation replied to is
    delivered, threaded under that note. Returns the notes and their outcomes.
    """
    rounds = scenario.get("earlier") or []
    if isinstance(rounds, dict):
        rounds = [rounds]
    waiting = [item for item in scenario["message"] if "answers" in item]
    notes: list[Action] = []
    outcomes: dict[str, Outcome] = {}
    for earlier in rounds:
        then: datetime = earlier["now"]
        found = pipeline.stored(store, then)
        past = pipeline.plan_meetings(
            team,
            found.messages,
            found.events,
            then,
            earlier=found.earlier,
            sent_notes=found.sent_notes,
        )
        pipeline.record(store, past)
        store.enqueue(past.actions)
        outcomes.update({o.key: o for o in outbox.run(then)})
        for action in past.actions:
            if action.kind in (ActionKind.PROPOSAL, ActionKind.INVITE):
                outcomes[action.key] = outbox.approve(action.key, then)  # the rep sends it
        notes += past.actions
        for item in list(waiting):
            asked = known.ids.get(item["answers"], "")
            note = next(
                (
                    a
                    for a in past.actions
                    if asked
                    and a.reply_to_message_id == asked
                    and a.kind in (ActionKind.PROPOSAL, ActionKind.INVITE)
                ),
                None,
            )
            if note is None:
                continue
            row = store.outbox_row(note.key)
            if row is None or not row["sent_message_id"]:
                raise ValueError(f"scenario: nothing was sent in answer to {item['answers']!r}")
            chain = [*known.refs.get(item["answers"], []), asked]
            _deliver(item, settings, then, known, (row["sent_message_id"], chain))
            waiting.remove(item)
        resync()
    if waiting:
        raise ValueError(f"scenario: no proposal was sent for {waiting[0]['answers']!r}")
    return notes, outcomes


@dataclass(frozen=True)
class ServiceRound:
    """What one round of the worker did over the demo's mailboxes, ``at`` a later time."""

    at: datetime
    moved: list[dict[str, Any]]  # outbox rows whose status the round changed
    mailboxes: list[dict[str, Any]]  # each mailbox's mail stream after the round
    threads: int = 0  # threads in the demo's mailboxes
    planned: tuple[int, int] = (0, 0)  # threads planned by the round, and by the next replanning
    after: timedelta = timedelta(0)  # how long after the round the next replanning came


def service_round(out: Path, at: datetime) -> ServiceRound:
    """Run ``followup run --once`` over the demo's mailboxes as if it were ``at``."""
    from agent.worker import REPLAN_EVERY, Worker  # the worker pulls in the whole service

    config_path = out / "config.toml"
    url = config.load(config_path).database.url
    store = Store.open(url)
    try:
        before = {r["key"]: r["status"] for r in store.outbox()}
    finally:
        store.close()
    clock = [at]
    posts = out / "outbox"

    def post(url: str, payload: dict[str, str]) -> None:
        write_post(
            posts / f"worker-{len(list(posts.glob('worker-*'))) + 1:02d}-webhook.json", url, payload
        )

    worker = Worker(config_path, clock=lambda: clock[-1], post=post)

    def planned() -> int:
        return int(worker.metrics.registry.get_sample_value("followup_threads_planned_total") or 0)

    worker.run(once=True)
    first = planned()
    store = Store.open(url)
    try:
        moved = [r for r in store.outbox() if before.get(r["key"]) != r["status"]]
        streams = [r for r in store.streams() if r["kind"] == "mail"]
    finally:
        store.close()
    # The next replanning: only what changed since (the notes just sent) is planned again.
    after = REPLAN_EVERY + timedelta(minutes=1)
    clock.append(at + after)
    worker.run(once=True)
    store = Store.open(url)
    try:
        threads = len({(m.mailbox, m.thread_id) for m in store.messages()})
    finally:
        store.close()
    return ServiceRound(at, moved, streams, threads, (first, planned() - first), after)


@dataclass(frozen=True)
class ControlsRound:
    """The demo's epilogue: the rep steers by hand, a mailbox goes to shadow mode, and the
    worker's next round honours both."""

    at: datetime
    acts: list[str]  # what was done, as the CLI reports it
    held: list[dict[str, Any]]  # decisions: actions held back, and why
    shadowed: list[dict[str, Any]]  # outbox rows shadow mode recorded instead of sending


def controls_round(out: Path, at: datetime) -> ControlsRound:
    """Snooze Emily's follow-ups, opt Carlos out, put Omar's mailbox in shadow mode, then run
    the worker at ``at`` (as ``followup thread snooze``, ``client optout`` and ``run`` would)."""
    from agent import app  # the use cases the CLI calls
    from agent.worker import Worker

    config_path = out / "config.toml"
    url = config.load(config_path).database.url
    store = Store.open(url)
    try:
        emily = next(
            r["thread_id"]
            for r in store.outbox(statuses=("planned",))
            if r["client"] == "emily-clark" and r["kind"] == ActionKind.FOLLOW_UP
        )
        carlos = next(
            r["action"]["to"][0][0]
            for r in store.outbox()
            if r["client"] == "carlos-ruiz" and r["action"]["to"]
        )
    finally:
        store.close()
    who = "Lukas Becker (demo)"
    snoozed = app.thread_control(
        config_path,
        emily,
        "snooze",
        who=who,
        until=(at + timedelta(days=7)).date().isoformat(),
        note="Emily is on holiday",
        now=at,
    )
    optout = app.client_optout(config_path, carlos, who=who, note="asked to hear no more", now=at)
    acts = [
        f"followup thread snooze (Emily Clark's thread): {snoozed.summary}; "
        f"{snoozed.withdrawn} planned follow-ups moved",
        f"followup client optout {carlos}: {optout.summary}; "
        f"{optout.withdrawn} planned notes withdrawn",
    ]
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(
        text.replace('name = "omar"\n', 'name = "omar"\nmode = "shadow"\n', 1), encoding="utf-8"
    )
    acts.append("omar's mailbox switched to shadow mode: plans and records, sends nothing")
    Worker(config_path, clock=lambda: at, post=lambda url, payload: None).run(once=True)
    store = Store.open(url)
    try:
        held = [d for d in store.decisions() if d["decision"] == "not sent: by hand"]
        shadowed = store.outbox(statuses=("shadowed",))
    finally:
        store.close()
    return ControlsRound(at, acts, held, shadowed)
