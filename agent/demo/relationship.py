"""The demo's epilogue for team leads: eight weeks of history, then the report and the digests.

Before the demo's go-live point the team already worked with its clients: every week each client
asked something and the rep answered (faster or slower: Asha got quicker, Omar slower), meetings
were held and a feedback survey followed (answered in the client's language and script: "౯",
"९ – बहुत उपयोगी", "８点です", "neun von zehn", "٨ من ١٠" ...), quotes were followed up step by
step, and two clients who used to write every week fell silent in October.

That history is filed as mail in the demo's Maildir folders and .ics files, the rows the outbox
and the planners would have left are recorded (feedback and follow-up notes sent, why cadences
stopped), and then the very use cases of ``followup report --html`` and the weekly digest run:
``report.html`` and ``digest-<lead>.eml`` land in the demo's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent import config, digest, pipeline, reporting
from agent.compose import Composer
from agent.model import Action, ActionKind, Address
from agent.outbox import Outbox
from agent.providers.local import LocalMailbox
from agent.store import Store

WEEKS = 8
FIRST_WEEK = datetime.fromisoformat("2026-09-21T00:00:00+00:00")  # a Monday; 8 weeks to go-live

# (mailbox, client key, address, name, language, scale of the survey the rep sends)
CLIENTS = (
    ("asha", "priya-reddy", "priya@reddytextiles.in", "Priya Reddy", "te", "nps"),
    ("asha", "kenji-sato", "kenji.sato@sato-trading.co.jp", "佐藤 健二", "ja", "nps"),
    ("asha", "beatriz-costa", "beatriz@costaalimentos.com.br", "Beatriz Costa", "pt", "nps"),
    ("asha", "ravi-menon", "ravi@menonspices.in", "Ravi Menon", "hi", "nps"),
    ("lukas", "anna-schmidt", "a.schmidt@schmidt-maschinenbau.de", "Anna Schmidt", "de", "csat"),
    ("lukas", "carlos-ruiz", "carlos.ruiz@ruizlogistica.mx", "Carlos Ruiz", "es", "csat"),
    ("lukas", "emily-clark", "emily@clarkandco.com", "Emily Clark", "en", "csat"),
    ("lukas", "julien-moreau", "julien@moreau-logistique.fr", "Julien Moreau", "fr", "csat"),
    ("omar", "fatima-al-sayed", "fatima@alsayed-trading.sa", "فاطمة السيد", "ar", "nps"),
    ("omar", "noa-levi", "noa@levi-systems.co.il", "Noa Levi", "en", "nps"),
)
QUIET = {"ravi-menon": 4, "julien-moreau": 4}  # wrote every week until this week, then nothing
REPS = {
    "asha": ("Asha Rao", "asha@acme.example", "Asia/Kolkata"),
    "lukas": ("Lukas Becker", "lukas@acme.example", "Europe/Berlin"),
    "omar": ("Omar Haddad", "omar@acme.example", "Asia/Riyadh"),
}
# Hours from a client's question to the rep's answer, week by week: Asha got quicker, Lukas
# stayed steady, Omar slipped.
DELAYS = {
    "asha": (30, 26, 9, 7, 3, 2, 1.5, 1),
    "lukas": (2, 3, 2, 27, 2, 3, 2, 2),
    "omar": (1, 1.5, 2, 3, 9, 28, 30, 26),
}
QUESTIONS = {
    "te": ("ఆర్డర్ గురించి ఒక ప్రశ్న", "ఈ వారం డెలివరీ తేదీ చెప్పగలరా?"),
    "ja": ("ご質問", "今週の納期を教えていただけますか。"),
    "pt": ("Uma pergunta", "Pode me dizer a data de entrega desta semana?"),
    "hi": ("एक सवाल", "क्या आप इस हफ़्ते की डिलीवरी की तारीख़ बता सकते हैं?"),
    "de": ("Kurze Frage", "Können Sie mir den Liefertermin dieser Woche nennen?"),
    "es": ("Una pregunta", "¿Me puede decir la fecha de entrega de esta semana?"),
    "en": ("Quick question", "Could you tell me this week's delivery date?"),
    "fr": ("Une question", "Pouvez-vous me donner la date de livraison de cette semaine ?"),
    "ar": ("سؤال", "هل يمكنك إخباري بموعد التسليم هذا الأسبوع؟"),
}
THANKS = {
    "te": "ధన్యవాదాలు!",
    "ja": "ありがとうございました。",
    "pt": "Muito obrigada!",
    "hi": "बहुत धन्यवाद!",
    "de": "Vielen Dank!",
    "es": "¡Muchas gracias!",
    "en": "Thanks!",
    "fr": "Merci beaucoup !",
    "ar": "شكرا جزيلا",
}
# Survey answers, oldest first, per client: written as clients write them.
ANSWERS: dict[str, tuple[str, ...]] = {
    "priya-reddy": ("౭", "౮ – బాగుంది", "తొమ్మిది, ధన్యవాదాలు!", "౧౦"),
    "kenji-sato": (
        "６点です。",
        "７",
        "８点です。資料が分かりやすかったです。",
        "10点満点中9点です。",
    ),
    "beatriz-costa": ("Nota 7", "8, obrigada", "nove de dez", "Nota 10, excelente!"),
    "ravi-menon": ("९ – बहुत उपयोगी", "7 या 8", "८", "दस"),
    "anna-schmidt": ("4", "Eine 3, der Termin fing spät an.", "4 von 5", "5 – sehr hilfreich"),
    "carlos-ruiz": ("3", "4 de 5", "cuatro", "5, muy útil"),
    "emily-clark": ("4/5", "five", "3 - ran over time", "4"),
    "julien-moreau": ("4", "Je mets 5 sur 5 !", "3", "4/5"),
    "fatima-al-sayed": ("١٠", "٩ من ١٠، اجتماع مفيد", "٧", "٥"),
    "noa-levi": ("9/10", "8 out of 10", "6, the call started late", "5"),
}
SURVEY_TEXT = {
    "nps": "On a scale from 0 to 10, how useful was our meeting for you?",
    "csat": "On a scale from 1 to 5, how satisfied were you with our meeting?",
}


@dataclass
class ReportRound:
    at: datetime
    messages: int
    answers: int
    report: Path
    digests: list[Path] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)


def _msg(
    box: LocalMailbox,
    folder: str,
    sender: str,
    to: str,
    subject: str,
    date: datetime,
    body: str,
    parent: tuple[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[str, list[str]]:
    from email.message import EmailMessage
    from email.utils import format_datetime

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(date)
    mid = make_msgid("hist", "demo.example")
    msg["Message-ID"] = mid
    chain: list[str] = []
    if parent is not None:
        chain = [*parent[1], parent[0]]
        msg["In-Reply-To"] = parent[0]
        msg["References"] = " ".join(chain)
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    box.deliver(bytes(msg), folder)
    return mid, chain


def _local(zone: str, day: datetime, hour: float) -> datetime:
    """``day`` (a UTC midnight) at ``hour`` o'clock in ``zone``, as UTC."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return (local + timedelta(hours=hour)).astimezone(day.tzinfo)


def file_history(settings: config.Settings, now: datetime) -> dict[str, Any]:
    """File the weeks of mail and meetings; return what the outbox and planners recorded."""
    boxes = {}
    for mb in settings.mailboxes:
        assert mb.path is not None
        boxes[mb.name] = LocalMailbox(
            mb.path, mailbox=mb.name, address=mb.address, clock=lambda: now
        )
    feedback: list[tuple[str, str, str, str, datetime, str, str]] = []
    cadences: list[dict[str, Any]] = []
    count = 0
    for i, (mailbox, key, email, name, lang, scale) in enumerate(CLIENTS):
        rep_name, rep_addr, zone = REPS[mailbox]
        box = boxes[mailbox]
        client = f"{name} <{email}>"
        rep = f"{rep_name} <{rep_addr}>"
        answered = 0
        for week in range(WEEKS):
            if key in QUIET and week >= QUIET[key]:
                break
            monday = FIRST_WEEK + timedelta(weeks=week)
            subject, body = QUESTIONS[lang]
            asked = _local(zone, monday + timedelta(days=1), 10 + (i % 3))
            q = _msg(box, "inbox", client, rep_addr, subject, asked, body)
            answer_at = asked + timedelta(hours=DELAYS[mailbox][week] + (i % 2) * 0.5)
            a = _msg(
                box,
                "sent",
                rep,
                email,
                f"Re: {subject}",
                answer_at,
                "The delivery leaves our warehouse on Friday.",
                q,
            )
            _msg(
                box,
                "inbox",
                client,
                rep_addr,
                f"Re: {subject}",
                answer_at + timedelta(hours=20),
                THANKS[lang],
                a,
            )
            count += 3
            if (week + i) % 2 == 0 and answered < len(ANSWERS[key]):
                # A meeting on Thursday, the survey on Friday, the answer over the weekend.
                start = _local(zone, monday + timedelta(days=3), 11)
                _meeting(settings, mailbox, key, week, start, rep_name, rep_addr, name, email)
                asked_at = _local(zone, monday + timedelta(days=4), 10)
                note = _msg(
                    box,
                    "sent",
                    rep,
                    email,
                    "One quick question about our meeting",
                    asked_at,
                    SURVEY_TEXT[scale],
                )
                text = ANSWERS[key][answered]
                answered += 1
                if (week + i) % 7 != 3:  # one survey in seven goes unanswered
                    re_subject = "Re: One quick question about our meeting"
                    reply = _msg(box, "inbox", client, rep_addr, re_subject,
                                 asked_at + timedelta(hours=30), text, note)  # fmt: skip
                    _msg(box, "sent", rep, email, re_subject, asked_at + timedelta(hours=32),
                         "Thank you for your feedback!", reply)  # fmt: skip
                    count += 2
                count += 1
                feedback.append((mailbox, key, email, note[0], asked_at, scale, lang))
            if week in (1, 3, 5) and key not in QUIET:
                count += _cadence(box, rep, rep_addr, client, email, lang, week, i, zone, cadences)
    return {"messages": count, "feedback": feedback, "cadences": cadences}


def _meeting(
    settings: config.Settings,
    mailbox: str,
    client: str,
    week: int,
    start: datetime,
    rep_name: str,
    rep_addr: str,
    name: str,
    email: str,
) -> None:
    mb = settings.mailbox(mailbox)
    assert mb.path is not None
    folder = mb.path / "calendar"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = "%Y%m%dT%H%M%SZ"
    end = start + timedelta(hours=1)
    (folder / f"history-{client}-{week}.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Acme//Followup demo//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:history-{client}-{week}@acme.example\r\nDTSTAMP:{start:{stamp}}\r\n"
        f"DTSTART:{start:{stamp}}\r\nDTEND:{end:{stamp}}\r\nSUMMARY:Review with {name}\r\n"
        f"ORGANIZER;CN={rep_name}:mailto:{rep_addr}\r\n"
        f"ATTENDEE;CN={rep_name};PARTSTAT=ACCEPTED:mailto:{rep_addr}\r\n"
        f"ATTENDEE;CN={name};PARTSTAT=ACCEPTED:mailto:{email}\r\n"
        "STATUS:CONFIRMED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        encoding="utf-8",
    )


def _cadence(
    box: LocalMailbox,
    rep: str,
    rep_addr: str,
    client: str,
    email: str,
    lang: str,
    week: int,
    i: int,
    zone: str,
    cadences: list[dict[str, Any]],
) -> int:
    """A quote, follow-ups until the client answers (after step 1, 2, 3, or never)."""
    monday = FIRST_WEEK + timedelta(weeks=week)
    sent_at = _local(zone, monday + timedelta(days=2), 15)
    quote = _msg(
        box,
        "sent",
        rep,
        email,
        "Your quote",
        sent_at,
        "Here is the quote you asked for. Shall we go ahead?",
    )
    replied_after = (1, 2, 0, 1, 3, 2, 0, 1, 2, 1)[(i + week) % 10]
    steps = []
    parent = quote
    count = 1
    for step in range(1, 4):
        at = sent_at + timedelta(days=3 * step)
        if replied_after and step > replied_after:
            break
        note = _msg(
            box, "sent", rep, email, "Re: Your quote", at, "Just checking in on the quote.", parent
        )
        steps.append((step, at, note[0]))
        parent = note
        count += 1
    outcome = "no reply"
    if replied_after:
        reply_at = steps[-1][1] + timedelta(hours=26)
        _msg(box, "inbox", client, rep_addr, "Re: Your quote", reply_at, THANKS[lang], parent)
        count += 1
        outcome = "meeting booked" if (i + week) % 3 == 0 else "client replied"
    elif (i + week) % 4 == 2:
        outcome = "asked to stop"
    cadences.append(
        {
            "mailbox": box.mailbox,
            "anchor": quote[0],
            "steps": steps,
            "outcome": outcome,
            "client": email,
            "end": steps[-1][1] + timedelta(days=2),
        }
    )
    return count


def _record(
    store: Store, settings: config.Settings, found: dict[str, Any], clients: dict[str, str]
) -> None:
    """The rows the outbox and the planners left behind for that history."""
    by_mid = {m.message_id: m for m in store.messages()}
    actions: list[tuple[Action, str, datetime]] = []
    for mailbox, key, email, mid, at, scale, lang in found["feedback"]:
        sent = by_mid[mid]
        actions.append(
            (
                Action(
                    key=f"feedback/{mailbox}/{sent.thread_id}/{key}",
                    kind=ActionKind.FEEDBACK,
                    mailbox=mailbox,
                    due=at,
                    to=(Address(email),),
                    language=lang,
                    template="feedback",
                    reason="history",
                    client=key,
                    thread_id=sent.thread_id,
                    context={"scale": scale},
                ),
                mid,
                at,
            )
        )
    decisions = []
    for c in found["cadences"]:
        anchor = by_mid[c["anchor"]]
        client = clients.get(c["client"], "")
        for step, at, mid in c["steps"]:
            actions.append(
                (
                    Action(
                        key=f"follow_up/{c['mailbox']}/{anchor.thread_id}/{c['anchor']}/{step}",
                        kind=ActionKind.FOLLOW_UP,
                        mailbox=c["mailbox"],
                        due=at,
                        to=(Address(c["client"]),),
                        language="",
                        template="follow_up",
                        reason="history",
                        client=client,
                        thread_id=anchor.thread_id,
                    ),
                    mid,
                    at,
                )
            )
        if c["outcome"] != "no reply":
            decisions.append(
                (
                    c["end"],
                    (
                        c["mailbox"],
                        anchor.thread_id,
                        c["anchor"],
                        f"follow-ups stopped: {c['outcome']}",
                        "history",
                    ),
                )
            )
    store.enqueue([a for a, _, _ in actions])
    for action, mid, _ in actions:
        store.transition(action.key, ("planned",), "sent", sent_message_id=mid)
    for at, row in decisions:
        store.record_decisions([row], at=at)


def report_round(out: Path, now: datetime) -> ReportRound:
    """File the history, then write report.html and each lead's digest into ``out``."""
    config_path = out / "config.toml"
    settings = config.load(config_path)
    found = file_history(settings, now)
    store = Store.open(settings.database.url, clock=lambda: now)
    try:
        for mb in settings.mailboxes:
            assert mb.path is not None
            box = LocalMailbox(mb.path, mailbox=mb.name, address=mb.address, clock=lambda: now)
            pipeline.sync_mailbox(store, mb.name, box, box)
            for m in store.messages(mb.name):
                if "INBOX" in m.labels and m.body is None:
                    store.set_body(m.mailbox, m.provider_id, box.fetch_body(m.provider_id))
        team = pipeline.load_team(settings)
        clients = {e: c.key for c in team.clients for e in c.emails}
        _record(store, settings, found, clients)
        since = min(FIRST_WEEK, now - timedelta(weeks=settings.report.weeks))
        report = reporting.build(settings, store, since, now)
        page = out / "report.html"
        reporting.write_html(report, page)
        # The digests go through the outbox like any note; each mail is also kept as a file.
        names = {
            digest.key(r, digest.slot(r, now)): digest.file_name(r)
            for r in digest.readers(settings)
        }
        written: list[Path] = []

        def keep(action: Action, message: EmailMessage) -> None:
            if action.key in names:
                path = out / names[action.key]
                path.write_bytes(bytes(message))
                written.append(path)

        providers = {
            mb.name: LocalMailbox(mb.path, mailbox=mb.name, address=mb.address, clock=lambda: now)
            for mb in settings.mailboxes
            if mb.path is not None
        }
        composer = Composer(settings.paths.templates, team_default=settings.team.default_language)
        outbox = Outbox.configured(settings, store, providers, composer, on_message=keep)
        reporting.send_digests(settings, store, outbox, now)
    finally:
        store.close()
    return ReportRound(
        at=now,
        messages=found["messages"],
        answers=len(report.answers),
        report=page,
        digests=[p for p in written if p.name.startswith("digest-")],
        summaries=[p for p in written if p.name.startswith("summary-")],
    )
