"""Every function that reads mail text, fed 1 MB of adversarial input: each must finish in 1 s.

Run from the repository root: ``python -m tests.benchmarks.bench_hostile_text [--size BYTES]``

The inputs are the shapes that make naive parsers and regular expressions super-linear or deep:
runs of ``<`` with no ``>``, tags nested a hundred thousand deep, one line of a megabyte, a
megabyte of closing lines, ``a: a: a: ...`` address groups, tens of thousands of addresses,
unclosed quotes and comments, a calendar of one event repeated and a CSV of one huge field.
Each case runs in a forked child so a case that hangs or runs out of memory is reported, not
waited for; the child's time is measured around the call alone. A hostile input may be refused
(a calendar file over the limits is), as long as the refusal is fast: the outcome column says
so. Prints one line per case with its time against the 1 s target and exits 1 when any case
misses it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agent import calendars, clients, language, meetings, mime, phrases, returndates, textparts
from agent.matching import Directory, classify
from agent.model import Address, Interval, Message
from agent.providers import gmail

TARGET_S = 1.0
GIVE_UP_S = 30.0
MB = 1_000_000
WINDOW = Interval(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
SENT = NOW.date()
SUPPORTED = ("en", "de", "fr", "es", "pt", "ja", "zh", "ar", "hi", "te")


def _fill(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


def _mail(headers: str, body: str = "hi", content_type: str = "text/plain") -> bytes:
    return (
        f"{headers}\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\nMessage-ID: <m@x>\r\n"
        f"Content-Type: {content_type}; charset=utf-8\r\n\r\n{body}"
    ).encode("utf-8", "surrogateescape")


def _html_mail(html: str) -> bytes:
    return _mail("From: a@client.example", html, "text/html")


def _message(subject: str = "hello", sender: str = "a@client.example") -> Message:
    return Message(
        mailbox="rep",
        provider_id="1",
        thread_id="t",
        message_id="<m@x>",
        sender=Address(sender),
        to=(Address("rep@us.example"),),
        cc=(),
        date=NOW,
        subject=subject,
    )


def _metadata(headers: dict[str, str]) -> dict[str, Any]:
    pairs = [{"name": k, "value": v} for k, v in headers.items()]
    pairs.append({"name": "Date", "value": "Mon, 2 Mar 2026 09:00:00 +0000"})
    return {"id": "1", "threadId": "t", "payload": {"headers": pairs}}


def _ics(body: str) -> bytes:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{body}END:VCALENDAR\r\n".encode()


def _event(i: int, extra: str = "") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:e{i}@x\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:20260310T090000Z\r\nDTEND:20260310T100000Z\r\n{extra}END:VEVENT\r\n"
    )


def _slots() -> list[Interval]:
    start = NOW + timedelta(days=1)
    return [
        Interval(start + timedelta(hours=i), start + timedelta(hours=i, minutes=30))
        for i in range(3)
    ]


def cases(size: int) -> list[tuple[str, Callable[[], object]]]:
    """(name, call) for every function and adversarial shape; each input is about ``size``."""
    lt = _fill("<", size)
    nested = _fill("<div>", size)
    attrs = "<a " + _fill('b="', size)
    comment = "<!--" + _fill("<!-", size)
    tags_text = _fill("<b>x</b> ", size)
    one_line = _fill("on a wrote ", size)
    closings = _fill("Best regards\n", size)
    froms = _fill("From: x\n", size)
    quotes = _fill("> quoted\n", size)
    words = _fill("thanks please unsubscribe call ", size)
    cjk = _fill("ありがとうございます。会議の日程調整をお願いします。", size)
    digits = _fill("1 December at 10:30 3pm ", size)
    groups = _fill("a: ", size)
    many = ", ".join(f"u{i}@client.example" for i in range(size // 20))
    quoted = '"' + _fill("\\a", size)
    parens = _fill("(", size)
    angles = _fill("<a@", size)
    big_from = f"From: {groups}"
    date = "Mon, 2 Mar 2026 " + _fill("9", size)
    directory = Directory([])
    nested_parts = (
        "From: a@x.example\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n"
        + "".join(
            f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
            for i in range(size // 60)
        )
    ).encode()
    headers_many = "".join(f"X-H{i}: {'v' * 20}\r\n" for i in range(size // 30))
    out: list[tuple[str, Callable[[], object]]] = [
        ("mime.body_text html: '<' run", lambda: mime.body_text(_html_mail(lt))),
        ("mime.body_text html: nested <div>", lambda: mime.body_text(_html_mail(nested))),
        ("mime.body_text html: open attribute", lambda: mime.body_text(_html_mail(attrs))),
        ("mime.body_text html: open comments", lambda: mime.body_text(_html_mail(comment))),
        ("mime.body_text html: many tags", lambda: mime.body_text(_html_mail(tags_text))),
        (
            "mime.body_text plain: one line",
            lambda: mime.body_text(_mail("From: a@x.example", one_line)),
        ),
        ("mime.body_text: nested multiparts", lambda: mime.body_text(nested_parts)),
        ("mime.html_to_text: '<' run", lambda: mime.html_to_text(lt)),
        (
            "mime.to_message: many headers",
            lambda: _skip(
                lambda: mime.to_message(
                    _mail(f"From: a@x.example\r\n{headers_many}"), mailbox="r", provider_id="1"
                )
            ),
        ),
        (
            "mime.to_message: From 'a: a: ...'",
            lambda: _skip(lambda: mime.to_message(_mail(big_from), mailbox="r", provider_id="1")),
        ),
        (
            "mime.to_message: To of many addresses",
            lambda: mime.to_message(
                _mail(f"From: a@x.example\r\nTo: {many}"), mailbox="r", provider_id="1"
            ),
        ),
        (
            "mime.to_message: From open quote",
            lambda: _skip(
                lambda: mime.to_message(_mail(f"From: {quoted}"), mailbox="r", provider_id="1")
            ),
        ),
        (
            "mime.to_message: From '(((('",
            lambda: _skip(
                lambda: mime.to_message(_mail(f"From: {parens}"), mailbox="r", provider_id="1")
            ),
        ),
        (
            "mime.to_message: To '<a@<a@...'",
            lambda: _skip(
                lambda: mime.to_message(
                    _mail(f"From: a@x.example\r\nTo: {angles}"), mailbox="r", provider_id="1"
                )
            ),
        ),
        ("mime.parse_date: long Date", lambda: _skip(lambda: mime.parse_date(date))),
        (
            "gmail.parse_metadata: From 'a: a: ...'",
            lambda: _skip(lambda: gmail.parse_metadata("r", _metadata({"From": groups}))),
        ),
        (
            "gmail.parse_metadata: To of many addresses",
            lambda: gmail.parse_metadata("r", _metadata({"From": "a@x.example", "To": many})),
        ),
        (
            "gmail.parse_metadata: From open quote",
            lambda: _skip(lambda: gmail.parse_metadata("r", _metadata({"From": quoted}))),
        ),
        (
            "gmail.parse_metadata: From '(((('",
            lambda: _skip(lambda: gmail.parse_metadata("r", _metadata({"From": parens}))),
        ),
        (
            "gmail.parse_metadata: To '<a@<a@...'",
            lambda: _skip(
                lambda: gmail.parse_metadata("r", _metadata({"From": "a@x.example", "To": angles}))
            ),
        ),
        (
            "returndates.read_return: dates and cues",
            lambda: returndates.read_return(_fill("until 10.11. bis 3. ", size), SENT, "de"),
        ),
        (
            "returndates.read_return: CJK and native digits",
            lambda: returndates.read_return(_fill("十一月三日まで ١٠/١١ ", size), SENT, "ar"),
        ),
        ("textparts.own_text: one line", lambda: textparts.own_text(one_line)),
        ("textparts.own_text: closing lines", lambda: textparts.own_text(closings)),
        ("textparts.own_text: From: lines", lambda: textparts.own_text(froms)),
        ("textparts.own_text: quoted lines", lambda: textparts.own_text(quotes)),
        ("textparts.own_text: '<' run", lambda: textparts.own_text(lt)),
        ("phrases.needs_no_answer: words", lambda: phrases.needs_no_answer(words, "en")),
        ("phrases.needs_no_answer: closing lines", lambda: phrases.needs_no_answer(closings, "en")),
        ("phrases.asks_to_stop: words", lambda: phrases.asks_to_stop(words)),
        ("phrases.asks_for_meeting: CJK", lambda: phrases.asks_for_meeting(cjk)),
        ("language.detect: words", lambda: language.detect(words, SUPPORTED)),
        ("language.detect: CJK", lambda: language.detect(cjk, SUPPORTED)),
        (
            "language.choose_language: 5 bodies",
            lambda: language.choose_language(
                record="", texts=[words] * 5, supported=SUPPORTED, team_default="en"
            ),
        ),
        (
            "meetings.chosen_slot: dates and times",
            lambda: meetings.chosen_slot(digits, _slots(), "Europe/Berlin"),
        ),
        (
            "meetings.chosen_slot: one line",
            lambda: meetings.chosen_slot(one_line, _slots(), "Europe/Berlin"),
        ),
        (
            "matching.classify: long subject",
            lambda: classify(_message(subject=one_line), frozenset({"rep@us.example"}), directory),
        ),
        (
            "calendars.read_ics: many events",
            lambda: _skip(
                lambda: calendars.read_ics(
                    _ics("".join(_event(i) for i in range(size // 150))), WINDOW, "r"
                )
            ),
        ),
        (
            "calendars.read_ics: events up to the limits",
            lambda: calendars.read_ics(
                _ics(
                    "".join(
                        _event(i, "SUMMARY:Call\r\nLOCATION:Room 1\r\nSTATUS:CONFIRMED\r\n")
                        for i in range(calendars.MAX_LINES // 10)
                    )
                ),
                WINDOW,
                "r",
            ),
        ),
        (
            "calendars.read_ics: one long SUMMARY",
            lambda: _skip(
                lambda: calendars.read_ics(
                    _ics(_event(0, f"SUMMARY:{_fill('a', size)}\r\n")), WINDOW, "r"
                )
            ),
        ),
        (
            "calendars.read_ics: many attendees",
            lambda: _skip(
                lambda: calendars.read_ics(
                    _ics(_event(0, _fill("ATTENDEE:mailto:a@x.example\r\n", size))), WINDOW, "r"
                )
            ),
        ),
        (
            "calendars.read_ics: many RRULEs",
            lambda: _skip(
                lambda: calendars.read_ics(
                    _ics(_event(0, _fill("RRULE:FREQ=MINUTELY;COUNT=500\r\n", size))), WINDOW, "r"
                )
            ),
        ),
        (
            "clients.parse_clients: one huge field",
            lambda: clients.parse_clients(
                'name,emails\n"' + _fill("a", size) + '",a@x.example\nB,b@x.example\n',
                "clients.csv",
            ),
        ),
        (
            "clients.parse_clients: email of many dots",
            lambda: clients.parse_clients(
                "name,emails\nA,a@" + _fill("b.", size // 8) + " x\n", "clients.csv"
            ),
        ),
        (
            "clients.parse_clients: many rows",
            lambda: clients.parse_clients(
                "name,emails\n" + "".join(f"C{i},c{i}@x.example\n" for i in range(size // 25)),
                "clients.csv",
            ),
        ),
    ]
    return out


def _skip(call: Callable[[], object]) -> object:
    """The call's result, or its refusal: a hostile input may be refused, as long as it is fast."""
    try:
        return call()
    except (ValueError, mime.MalformedMessage) as exc:
        return exc


def _child(call: Callable[[], object], conn: Any) -> None:
    start = time.perf_counter()
    try:
        result = call()
        outcome = f"refused ({type(result).__name__})" if isinstance(result, Exception) else "ok"
    except BaseException as exc:  # reported, never hidden: a crash is a failure like a hang
        outcome = f"raised {type(exc).__name__}"
    conn.send((time.perf_counter() - start, outcome))


def run_case(call: Callable[[], object], give_up: float = GIVE_UP_S) -> tuple[float | None, str]:
    """(seconds, outcome) of ``call`` in a forked child; ``(None, why)`` when it did not finish."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(call, child))
    proc.start()
    child.close()
    if parent.poll(give_up):
        seconds, outcome = parent.recv()
        proc.join()
        return seconds, outcome
    proc.kill()
    proc.join()
    return None, f"still running after {give_up:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=MB, help="bytes per input (default 1 MB)")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)
    language.warm_up(SUPPORTED)  # the models load once per worker, not per message
    returndates.read_return("until 3 November", SENT, "de")  # so do the month and day names
    failed = 0
    print(f"{'case':<48} {'time':>9}  target {TARGET_S:.0f} s")
    for name, call in cases(args.size):
        if args.only and args.only not in name:
            continue
        seconds, outcome = run_case(call)
        ok = seconds is not None and seconds < TARGET_S and not outcome.startswith("raised")
        failed += not ok
        shown = f"{seconds:8.3f}s" if seconds is not None else "     n/a "
        print(f"{name:<48} {shown}  {'ok  ' if ok else 'SLOW'} {outcome}", flush=True)
    print(f"{failed} over target" if failed else "every case under target")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
