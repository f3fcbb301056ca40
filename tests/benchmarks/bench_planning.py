"""Planning throughput: one worker pass over 100,000 open threads, stage by stage.

Run from the repository root: ``python -m tests.benchmarks.bench_planning [--threads 100000]``

A synthetic team (20 reps in 20 zones, the shipped rules with their tiers) and its mail: 2,000
clients in 30 regions (own weekends and holidays), each with ``threads / clients`` threads of one
to seven messages. The mix: the client waiting for an answer, the rep waiting for the client,
thanks-only replies, out-of-office replies with and without a return date, bounces, mailing
lists, internal mail, strangers, meeting requests, and meetings that ended (thank-yous). About a
quarter of the clients have no language on record, so their notes' language is detected
(Lingua) from their mail; the detector is loaded before timing, as a worker does at start.

Each stage is timed as a worker pass runs it, with the pass's messages handed over as one tuple so
that ``pipeline.plan`` (promises), ``pipeline.plan_notes`` (follow-ups, thank-yous) and
``pipeline.plan_meetings`` (slot proposals, invitations) share one thread building. The first
pass runs on empty caches, as right after a start; the next ``--runs`` passes (median shown)
each get freshly made message objects, as every read from the store gives, and find the answers
about texts they have seen before remembered. Wall and CPU time are both shown: on a busy
machine the CPU time is the steadier figure. Peak memory is the process's maximum RSS, and the
peak of Python allocations during one pass (tracemalloc, in an extra untimed pass).

Then the passes a running worker makes: a :class:`~agent.replan.Replanner` plans everything once
(cold), and each next pass comes ``--interval`` seconds later with ``--changes`` new messages
(a client's or the rep's answer in a random thread) and plans again only the groups whose mail
changed or whose next deadline, warning or due note came. The target is these passes: under
2 s over 100,000 open threads. ``--full`` adds the passes that plan everything from scratch.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import pipeline
from agent.cadences import parse_cadences
from agent.config import parse_settings
from agent.language import warm_up
from agent.meetings import parse_meeting_rules
from agent.model import Address, Attendee, Client, Event, Message
from agent.replan import Replanner
from agent.rules import load_rules
from agent.worker import Collector

RULES = Path(__file__).resolve().parent.parent.parent / "rules"
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday
LANGUAGES = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")

# (zone, country, subdivision, weekend) of each rep.
REPS = (
    ("Asia/Kolkata", "IN", "", ("sat", "sun")),
    ("Europe/Berlin", "DE", "BE", ("sat", "sun")),
    ("Asia/Riyadh", "SA", "", ("fri", "sat")),
    ("America/New_York", "US", "NY", ("sat", "sun")),
    ("America/Sao_Paulo", "BR", "", ("sat", "sun")),
    ("Asia/Tokyo", "JP", "", ("sat", "sun")),
    ("Australia/Sydney", "AU", "NSW", ("sat", "sun")),
    ("Europe/London", "GB", "", ("sat", "sun")),
    ("Europe/Paris", "FR", "", ("sat", "sun")),
    ("America/Mexico_City", "MX", "", ("sat", "sun")),
    ("Asia/Dubai", "AE", "", ("sat", "sun")),
    ("Africa/Cairo", "EG", "", ("fri", "sat")),
    ("Asia/Kathmandu", "NP", "", ("sat",)),
    ("Pacific/Auckland", "NZ", "", ("sat", "sun")),
    ("Asia/Shanghai", "CN", "", ("sat", "sun")),
    ("Asia/Singapore", "SG", "", ("sat", "sun")),
    ("America/Los_Angeles", "US", "CA", ("sat", "sun")),
    ("Europe/Madrid", "ES", "MD", ("sat", "sun")),
    ("Africa/Lagos", "NG", "", ("sat", "sun")),
    ("America/Toronto", "CA", "ON", ("sat", "sun")),
)
# (zone, country, subdivision, language) of clients.
REGIONS = (
    *((z, c, s, "") for z, c, s, _ in REPS),
    ("Asia/Kolkata", "IN", "", "te"),
    ("Asia/Kolkata", "IN", "", "hi"),
    ("Asia/Tokyo", "JP", "", "ja"),
    ("Europe/Berlin", "DE", "BY", "de"),
    ("Europe/Vienna", "AT", "", "de"),
    ("Europe/Paris", "FR", "", "fr"),
    ("America/Bogota", "CO", "", "es"),
    ("America/Sao_Paulo", "BR", "SP", "pt"),
    ("Asia/Riyadh", "SA", "", "ar"),
    ("Asia/Shanghai", "CN", "", "zh"),
)
NAMES = (
    "Priya Reddy", "Kenji Sato", "Anna Schmidt", "Carlos Ruiz", "Fatima Al-Sayed", "Emily Clark",
    "Wei Zhang", "Lucas Martin", "Ana Souza", "Ravi Kumar", "Yuki Tanaka", "Omar Farouk",
)  # fmt: skip
BODIES = {
    "en": (
        "Hi {rep},\n\nCould you send the updated price list for order {n}? We need it by "
        "{day}.\n\nBest regards,\n{name}\n{company}\n+1 555 0100",
        "Hello,\n\nWe reviewed the proposal {n} and have a few questions about delivery times "
        "and payment terms. Can you call me?\n\nThanks,\n{name}",
        "Thanks for the quote {n}. What discount applies above 500 units?\n\n"
        "On Mon, 9 Nov 2026 at 10:00, {rep} wrote:\n> Please find the quote attached.",
    ),
    "de": (
        "Hallo {rep},\n\nkönnen Sie uns das Angebot {n} bis {day} schicken? Wir brauchen auch "
        "die Lieferzeiten.\n\nMit freundlichen Grüßen\n{name}\n{company}",
        "Guten Tag,\n\nwir haben noch Fragen zur Rechnung {n}. Bitte rufen Sie mich an.\n\n"
        "Viele Grüße\n{name}",
    ),
    "ja": (
        "{rep}様\n\nいつもお世話になっております。見積書{n}について、納期を教えていただけますか。"
        "\n\nよろしくお願いいたします。\n{name}",
        "お世話になっております。請求書{n}の件でご確認をお願いします。\n{name}",
    ),
    "es": (
        "Hola {rep},\n\n¿Podría enviarnos la cotización {n} antes del {day}? También "
        "necesitamos los plazos de entrega.\n\nSaludos cordiales,\n{name}",
    ),
    "fr": (
        "Bonjour {rep},\n\nPourriez-vous nous envoyer le devis {n} avant le {day} ? Nous avons "
        "aussi besoin des délais de livraison.\n\nCordialement,\n{name}",
    ),
    "pt": (
        "Olá {rep},\n\nPode nos enviar a proposta {n} até {day}? Precisamos também dos prazos "
        "de entrega.\n\nAtenciosamente,\n{name}",
    ),
    "ar": (
        "مرحبا {rep}،\n\nهل يمكنكم إرسال عرض السعر {n} قبل {day}؟ نحتاج أيضا إلى مواعيد "
        "التسليم.\n\nمع أطيب التحيات\n{name}",
    ),
    "hi": (
        "नमस्ते {rep},\n\nक्या आप ऑर्डर {n} की नई कीमत सूची भेज सकते हैं? हमें {day} तक चाहिए।"
        "\n\nसादर\n{name}",
    ),
    "te": ("నమస్కారం {rep},\n\nదయచేసి ఆర్డర్ {n} ధరల జాబితా పంపగలరా? మాకు {day} లోపు కావాలి.\n\nభవదీయుడు\n{name}",),
    "zh": (
        "{rep}您好，\n\n请问订单{n}的报价什么时候可以发给我们？我们需要在{day}之前收到。\n\n"
        "此致\n{name}",
    ),
}
THANKS = {
    "en": "Thanks, got it!",
    "de": "Danke, alles klar!",
    "ja": "ありがとうございます。",
    "es": "¡Muchas gracias!",
    "fr": "Merci beaucoup !",
    "pt": "Obrigado!",
    "ar": "شكراً جزيلاً",
    "hi": "धन्यवाद",
    "te": "ధన్యవాదాలు",
    "zh": "收到，谢谢",
}
MEETING = "Could we schedule a call next week to go through order {n}?\n\nBest,\n{name}"
OUT_OF_OFFICE = (
    "I am out of the office until 30 November 2026 with limited access to email.",
    "I am currently out of the office and will reply when I am back.",
)
REP_REPLY = "Hi {name},\n\nplease find the details for {n} attached. Let me know.\n\nBest,\n{rep}"
# Thread shapes: (weight, name). Each is a sequence of steps made by ``_thread``.
SHAPES = (
    (30, "awaiting"),  # the client wrote last and waits
    (24, "answered"),  # the rep answered last and waits for the client
    (10, "outreach"),  # the rep wrote, no answer yet
    (8, "long"),  # several rounds, the client last
    (7, "thanks"),  # the client's last message is only thanks
    (6, "ooo"),  # the rep wrote, an out-of-office came back
    (1, "meeting"),  # the client asks to meet
    (4, "stranger"),  # inbound from someone who is no client
    (4, "list"),  # a newsletter
    (3, "internal"),  # colleagues only
    (2, "bounce"),  # the rep's mail bounced
    (1, "noted"),  # a follow-up the outbox sent, in the thread
)


def build_team(reps: int = 20) -> pipeline.Team:
    rule_set = load_rules(RULES)
    cadences, problems = parse_cadences(rule_set.raw)
    meetings, more = parse_meeting_rules(rule_set.raw.get("meeting", []))
    assert not problems and not more, (problems, more)
    leads = [
        {"name": f"Lead {i}", "email": f"lead{i}@acme.example", "language": lang}
        for i, lang in enumerate(("en", "hi", "es", "de"))
    ]
    mailboxes = []
    for i in range(reps):
        zone, country, subdivision, weekend = REPS[i % len(REPS)]
        mailboxes.append(
            {
                "name": f"rep{i:02d}",
                "provider": "local",
                "address": f"rep{i:02d}@acme.example",
                "aliases": [f"r{i:02d}@acme.example"],
                "rep_name": f"Rep {i:02d}",
                "zone": zone,
                "country": country,
                "subdivision": subdivision,
                "weekend": list(weekend),
                "hours": "09:00-12:30,13:30-18:00" if i % 3 else "09:00-17:00",
                "language": LANGUAGES[i % 4 * 2 % len(LANGUAGES)],
                "team": ("apac", "emea", "amer", "mena")[i % 4],
                "lead": leads[i % 4]["email"],
                "path": f"mail/rep{i:02d}",
            }
        )
    settings = parse_settings(
        {
            "team": {
                "name": "Acme",
                "domains": ["acme.example"],
                "webhook_url": "https://hooks.example/x",
            },
            "leads": leads,
            "mailboxes": mailboxes,
        },
        "/nonexistent/config.toml",
    )
    return pipeline.Team(settings, rule_set, (), (), cadences, tuple(meetings))


def build_clients(count: int, reps: int, rng: random.Random) -> list[Client]:
    clients = []
    for i in range(count):
        zone, country, subdivision, language = REGIONS[i % len(REGIONS)]
        if not language:
            language = "" if rng.random() < 0.35 else rng.choice(LANGUAGES)
        domain = f"client{i:04d}.example"
        clients.append(
            Client(
                key=f"c{i:04d}",
                name=f"{NAMES[i % len(NAMES)]} {i}",
                emails=frozenset({f"contact@{domain}"}),
                domains=frozenset({domain}),
                company=f"Company {i}",
                language=language,
                zone=zone,
                country=country,
                subdivision=subdivision,
                tier=rng.choices(("gold", "silver", "bronze"), (15, 35, 50))[0],
                owner=f"rep{i % reps:02d}@acme.example",
                opted_out=rng.random() < 0.01,
            )
        )
    return clients


def build_mail(
    team: pipeline.Team, clients: list[Client], threads: int, rng: random.Random
) -> tuple[list[Message], list[Event]]:
    messages: list[Message] = []
    per_client = max(threads // len(clients), 1)
    weights = [w for w, _ in SHAPES]
    names = [n for _, n in SHAPES]
    made = 0
    for client in clients:
        mailbox = team.settings.mailboxes[int(client.key[1:]) % len(team.settings.mailboxes)]
        for _ in range(per_client):
            if made == threads:
                break
            shape = rng.choices(names, weights)[0]
            messages += _thread(shape, made, client, mailbox.name, mailbox.address, rng)
            made += 1
    events = _events(team, clients, rng)
    return messages, events


def _thread(
    shape: str, n: int, client: Client, mailbox: str, rep: str, rng: random.Random
) -> list[Message]:
    language = client.language or rng.choice(LANGUAGES)
    contact = next(iter(client.emails))
    start = NOW - timedelta(days=rng.uniform(0.2, 25))
    subject = f"Order {n}"
    out: list[Message] = []

    def add(sender: str, to: str, body: str, **headers: str) -> None:
        when = start + timedelta(hours=rng.uniform(1, 40)) * len(out)
        out.append(
            Message(
                mailbox=mailbox,
                provider_id=f"p{n}-{len(out)}",
                thread_id=f"t{n}",
                message_id=f"<m{n}.{len(out)}@mail.example>",
                sender=Address(sender),
                to=(Address(to),),
                date=when,
                subject=subject if not out else f"Re: {subject}",
                headers=headers,
                body=body,
                references=tuple(m.message_id for m in out[-3:]),
            )
        )

    fields = {"rep": "Rep", "name": client.name, "company": client.company, "n": n}

    def asks() -> str:
        day = (start + timedelta(days=rng.randint(2, 9))).strftime("%d.%m.")
        return rng.choice(BODIES[language]).format(day=day, **fields)

    def reply() -> str:
        return REP_REPLY.format(**fields)

    if shape == "awaiting":
        if rng.random() < 0.4:
            add(rep, contact, reply())
        add(contact, rep, asks())
    elif shape == "answered":
        add(contact, rep, asks())
        add(rep, contact, reply())
    elif shape == "outreach":
        add(rep, contact, reply())
    elif shape == "long":
        for _ in range(rng.randint(2, 3)):
            add(contact, rep, asks())
            add(rep, contact, reply())
        add(contact, rep, asks())
    elif shape == "thanks":
        add(contact, rep, asks())
        add(rep, contact, reply())
        add(contact, rep, THANKS[language])
    elif shape == "ooo":
        add(rep, contact, reply())
        add(
            contact,
            rep,
            rng.choice(OUT_OF_OFFICE),
            **{"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
        )
    elif shape == "meeting":
        add(rep, contact, reply())
        add(contact, rep, MEETING.format(**fields))
    elif shape == "stranger":
        add(f"someone{n}@gmail.com", rep, asks())
    elif shape == "list":
        add(f"news@list{n % 50}.example", rep, "This week's news.", **{"List-Id": "<news.x>"})
    elif shape == "internal":
        add(rep, f"colleague{n % 7}@acme.example", "Can you take this one?")
        add(f"colleague{n % 7}@acme.example", rep, "Sure.")
    elif shape == "bounce":
        add(rep, contact, reply())
        add("mailer-daemon@mail.example", rep, "Delivery failed.")
    elif shape == "noted":
        add(contact, rep, asks())
        add(rep, contact, reply())
        key = f"follow_up/{mailbox}/t{n}/{out[-1].message_id}/1"
        add(rep, contact, "Just checking in.", **{"X-Followup-Key": key})
    return out


def _events(team: pipeline.Team, clients: list[Client], rng: random.Random) -> list[Event]:
    events = []
    for i, client in enumerate(clients):
        mailbox = team.settings.mailboxes[i % len(team.settings.mailboxes)]
        start = NOW - timedelta(hours=rng.uniform(-72, 60))
        start = start.replace(minute=0, second=0, microsecond=0)
        contact = next(iter(client.emails))
        events.append(
            Event(
                mailbox=mailbox.name,
                provider_id=f"e{i}",
                summary=f"Review with {client.company}",
                start=start,
                end=start + timedelta(minutes=45),
                organizer=mailbox.address,
                attendees=(
                    Attendee(mailbox.address, partstat="ACCEPTED"),
                    Attendee(contact, client.name, "DECLINED" if i % 17 == 0 else "ACCEPTED"),
                ),
                uid=f"uid{i}@acme.example",
            )
        )
    return events


def _timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _fresh(messages: list[Message]) -> tuple[Message, ...]:
    """New message objects with new body strings, as every read from the store gives."""
    return tuple(
        dataclasses.replace(m, body=None if m.body is None else (m.body + " ")[:-1])
        for m in messages
    )


STAGES = ("threads", "promises", "follow-ups", "meetings")


def one_pass(
    team: pipeline.Team, batch: tuple[Message, ...], events: list[Event]
) -> dict[str, tuple[float, float, Any]]:
    """One worker pass, stage by stage; the planners reuse the threads of ``batch``."""
    return {
        "threads": _timed(lambda: pipeline.threads(team, batch)),
        "promises": _timed(lambda: pipeline.plan(team, batch, NOW)),
        "follow-ups": _timed(lambda: pipeline.plan_notes(team, batch, events, NOW)),
        "meetings": _timed(lambda: pipeline.plan_meetings(team, batch, events, NOW)),
    }


def incremental(
    team: pipeline.Team,
    messages: list[Message],
    events: list[Event],
    args: argparse.Namespace,
    rng: random.Random,
) -> None:
    """A worker's passes: one cold, then each ``interval`` later with ``changes`` new messages."""
    replanner = Replanner(team)
    collector = Collector(every=0)  # as the worker does, between passes
    now = NOW
    messages = list(messages)
    cold_wall, cold_cpu, result = _timed(lambda: replanner.plan(_fresh(messages), events, now))
    print()
    print(
        f"incremental passes ({args.changes:,} new messages every {args.interval} s; "
        f"{result.groups:,} groups: a client's threads, or a thread with no client)"
    )
    print(f"{'pass':<6}{'wall s':>9}{'CPU s':>8}{'groups':>9}{'threads':>9}{'actions':>9}")
    print(f"{'cold':<6}{cold_wall:>9.3f}{cold_cpu:>8.3f}{result.replanned:>9,}{result.threads:>9,}")
    walls: list[float] = []
    cpus: list[float] = []
    pauses: list[float] = []
    for i in range(1, args.passes + 1):
        now += timedelta(seconds=args.interval)
        for j in range(args.changes):
            m = rng.choice(messages)
            messages.append(
                dataclasses.replace(
                    m,
                    provider_id=f"{m.provider_id}-n{i}.{j}",
                    message_id=f"<n{i}.{j}.{m.message_id[1:]}",
                    date=now - timedelta(seconds=rng.uniform(0, args.interval)),
                    headers={},
                )
            )
        batch, when = _fresh(messages), now
        wall, cpu, result = _timed(lambda: replanner.plan(batch, events, when))  # noqa: B023
        walls.append(wall)
        cpus.append(cpu)
        collected = collector.seconds
        collector.maybe_collect(idle=True)
        pauses.append(collector.seconds - collected)
        print(
            f"{i:<6}{wall:>9.3f}{cpu:>8.3f}{result.replanned:>9,}{result.threads:>9,}"
            f"{len(result.fresh.actions):>9,}"
        )
    print(
        f"incremental pass over {len(result.planned.promises.promises):,} promises and "
        f"{len(result.planned.actions):,} planned actions: median {statistics.median(walls):.3f} s "
        f"wall ({statistics.median(cpus):.3f} s CPU), max {max(walls):.3f} s"
    )
    print(
        f"full garbage collection between passes, as the worker runs it: median "
        f"{statistics.median(pauses):.3f} s"
    )


def full(
    team: pipeline.Team, messages: list[Message], events: list[Event], args: argparse.Namespace
) -> None:
    """Full passes, stage by stage: the first on empty caches, then ``--runs`` more."""
    first = one_pass(team, _fresh(messages), events)
    warm = []
    for _ in range(args.runs):
        warm.append(one_pass(team, _fresh(messages), events))
    threads = first["threads"][2]
    shapes = Counter(len(t.messages) for t in threads)
    print()
    print(
        "full passes; messages per thread: "
        + ", ".join(f"{k}: {v:,}" for k, v in sorted(shapes.items()))
    )
    plan, notes, meet = (first[s][2] for s in STAGES[1:])
    output = {
        "threads": f"{len(threads):,} threads",
        "promises": f"{len(plan.promises):,} promises, {len(plan.actions):,} actions, "
        f"{len(plan.decisions):,} decisions",
        "follow-ups": f"{len(notes.actions):,} notes, {len(notes.decisions):,} decisions",
        "meetings": f"{len(meet.actions):,} actions, {len(meet.decisions):,} decisions",
    }
    print(f"{'stage':<12}{'first pass s':>14}{'next passes s':>15}{'CPU s':>8}   output")
    for stage in STAGES:
        wall = statistics.median(p[stage][0] for p in warm)
        cpu = statistics.median(p[stage][1] for p in warm)
        print(f"{stage:<12}{first[stage][0]:>14.3f}{wall:>15.3f}{cpu:>8.3f}   {output[stage]}")
    total_first = sum(first[s][0] for s in STAGES)
    total_wall = statistics.median(sum(p[s][0] for s in STAGES) for p in warm)
    total_cpu = statistics.median(sum(p[s][1] for s in STAGES) for p in warm)
    print(f"{'total':<12}{total_first:>14.3f}{total_wall:>15.3f}{total_cpu:>8.3f}")
    print(
        f"(first pass: empty caches, as after a start; next passes: median of {args.runs}, "
        "each on freshly read messages)"
    )
    kinds = Counter(a.kind.value for a in (*plan.actions, *notes.actions, *meet.actions))
    print("actions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument("--full", action="store_true", help="also time full passes, stage by stage")
    parser.add_argument("--passes", type=int, default=8, help="incremental passes")
    parser.add_argument("--changes", type=int, default=100, help="new messages per pass")
    parser.add_argument("--interval", type=int, default=60, help="seconds between passes")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    began = time.perf_counter()
    team = build_team(args.reps)
    clients = build_clients(args.clients, args.reps, rng)
    team = pipeline.Team(
        team.settings, team.rules, tuple(clients), (), team.cadences, team.meetings
    )
    messages, events = build_mail(team, clients, args.threads, rng)
    made = time.perf_counter() - began
    began = time.perf_counter()
    warm_up(team.settings.team.languages)
    loaded = time.perf_counter() - began
    undetected = sum(1 for c in clients if not c.language)

    print(
        f"{args.threads:,} threads, {len(messages):,} messages, {len(clients):,} clients, "
        f"{len(team.settings.mailboxes)} reps, {len(events):,} events (made in {made:.1f} s)"
    )
    print(
        f"language detection: on; {undetected:,} clients have no language on record "
        f"(Lingua loaded in {loaded:.1f} s, before timing)"
    )
    incremental(team, messages, events, args, rng)
    if args.full:
        full(team, messages, events, args)
    print()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process (data, Lingua models and all): {rss:,.0f} MB")
    if not args.no_memory:
        batch = _fresh(messages)
        tracemalloc.start()
        one_pass(team, batch, events)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak Python allocations during one pass (tracemalloc): {peak / 2**20:,.0f} MB")


if __name__ == "__main__":
    main()
