"""Hostile mail text: bounded, linear, and one bad item is skipped with a reason.

Each shape here froze or broke a worker before: ``<`` runs in HTML (a regex holding the GIL for
seconds), ``a: a: ...`` address groups (RecursionError on every Gmail sync), a To of tens of
thousands of addresses (the email package's header parser for minutes), a body of closing lines
(quadratic signature cutting), Chinese text without spaces (a quadratic link-stripping regex),
a yearly RRULE whose BY* lists make 535,680 events a year, a calendar file of many thousand
events, and a CSV field over the csv module's limit that dropped every later client.

The time checks give each call a budget hundreds of times what it takes now, and far below what
the shapes took before: they fail on quadratic code, not on a busy machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import calendars, mime
from agent.clients import parse_clients
from agent.language import detect
from agent.model import Interval
from agent.providers.gmail import GmailProvider, parse_metadata
from agent.textparts import own_text
from tests.fakes.gmail import GoogleEmulator, raw_message
from tests.fakes.graph import GraphEmulator
from tests.test_gmail import make_gmail
from tests.test_outlook import ADDRESS, Rig

BUDGET_S = 3.0
WINDOW = Interval(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
DATE = "Mon, 2 Mar 2026 09:00:00 +0000"


def _within_budget(call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"took {elapsed:.1f} s"
    return result


def _html(html: str) -> bytes:
    return (
        f"From: a@client.example\r\nDate: {DATE}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"{html}"
    ).encode()


# -- HTML to text -------------------------------------------------------------------------------


def test_html_is_read_by_a_parser_one_line_per_block() -> None:
    html = (
        "<html><head><title>Offer</title><style>p { color: red }</style></head><body>"
        "<div>Yes, Tuesday <b>works</b>.</div><div><br></div>"
        "<div>On Mon, 2 Mar 2026, Ada &lt;ada@us.example&gt; wrote:</div>"
        "<blockquote>Would Tuesday work?</blockquote><script>alert(1)</script></body></html>"
    )
    text = mime.body_text(_html(html))
    assert text.splitlines() == [
        "Yes, Tuesday works.",
        "On Mon, 2 Mar 2026, Ada <ada@us.example> wrote:",
        "> Would Tuesday work?",  # a blockquote is a quote, as in a plain-text reply
    ]
    assert own_text(text) == "Yes, Tuesday works."


@pytest.mark.parametrize(
    "html",
    ["<" * 200_000, "<!--" + "<!-" * 70_000, "<div>" * 100_000 + "deep", '<a b="' * 50_000],
    ids=["lt-run", "open-comments", "nested", "open-attributes"],
)
def test_hostile_html_is_converted_in_linear_time(html: str) -> None:
    text = _within_budget(lambda: mime.body_text(_html(html)))
    assert len(text) <= mime.MAX_TEXT_CHARS


_HTML_BITS = st.sampled_from(
    [
        "<",
        ">",
        "<p>",
        "</p>",
        "<br>",
        "<div>",
        "</div>",
        "<!--",
        "-->",
        "<script>",
        "</script>",
        '"',
        "'",
        "=",
        "&amp;",
        "&#",
        "&#x110000;",
        "\x00",
        "\ud800",
        "a",
        " ",
        "\n",
        "日本",
        "<a href='",
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_HTML_BITS, max_size=60).map("".join))
def test_any_html_gives_text_without_tags_or_nuls(html: str) -> None:
    text = mime.html_to_text(html)
    assert "\x00" not in text and len(text) <= len(html) + 1
    text.encode("utf-8")  # storable: no lone surrogates


_ADDRESS_BITS = st.sampled_from(
    ["a", "@", "<", ">", ",", ";", ":", '"', "\\", "(", ")", " ", "=?utf-8?b?", "?=", "x.example"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_ADDRESS_BITS, max_size=60).map("".join))
def test_any_address_header_is_read_the_same_way_by_mime_and_gmail_or_not_at_all(
    value: str,
) -> None:
    from agent.providers.gmail import _addresses as gmail_addresses

    found = mime.addresses([value])
    assert len(found) <= mime.MAX_ADDRESSES and all("@" in a.email for a in found)
    assert [a.email for a in gmail_addresses(value)] == [a.email for a in found]


def test_html_past_the_limit_is_not_converted() -> None:
    html = "<p>top</p>" + "x" * mime.MAX_HTML_CHARS + "<p>bottom</p>"
    text = mime.body_text(_html(html))
    assert text.startswith("top") and "bottom" not in text


# -- headers and addresses ----------------------------------------------------------------------


def test_a_from_of_nested_groups_is_skipped_with_a_reason_by_gmail() -> None:
    resource = {
        "id": "1",
        "payload": {
            "headers": [{"name": "From", "value": "a: " * 1000}, {"name": "Date", "value": DATE}]
        },
    }
    with pytest.raises(mime.MalformedMessage, match="no From address"):
        parse_metadata("rep", resource)


def test_one_unparseable_message_does_not_stop_the_gmail_sync() -> None:
    with GoogleEmulator(address="rep@example.com") as emu:
        emu.deliver(raw_message(1))
        bad = emu.deliver(raw_message(2, sender="a: " * 1000))
        emu.deliver(raw_message(3))
        gmail: GmailProvider = make_gmail(emu, lambda s: None)
        result = gmail.sync(None)
    assert sorted(m.sender.email for m in result.messages) == [
        "client1@customer.example",
        "client3@customer.example",
    ]
    assert [pid for pid, _ in result.skipped] == [bad]


def test_addresses_per_header_are_bounded_and_later_headers_kept() -> None:
    many = ", ".join(f"u{i}@client.example" for i in range(40_000))
    raw = f"From: Ada <a@client.example>\r\nTo: {many}\r\nDate: {DATE}\r\nSubject: Hi\r\n\r\nx".encode()
    message = _within_budget(lambda: mime.to_message(raw, mailbox="rep", provider_id="1"))
    assert len(message.to) == mime.MAX_ADDRESSES
    assert message.to[0].email == "u0@client.example"
    assert message.subject == "Hi" and message.date == datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_a_header_block_past_the_limit_loses_the_excess_not_the_message() -> None:
    raw = (
        f"From: a@client.example\r\nDate: {DATE}\r\n"
        + "".join(f"X-Junk-{i}: {'j' * 1000}\r\n" for i in range(300))
        + "Subject: kept?\r\n\r\nbody"
    ).encode()
    assert len(mime.header_block(raw)) <= mime.MAX_HEADER_BYTES
    message = mime.to_message(raw, mailbox="rep", provider_id="1")
    assert message.sender.email == "a@client.example"


def test_gmail_plain_addresses_are_read_in_linear_time() -> None:
    resource = {
        "id": "1",
        "payload": {
            "headers": [
                {"name": "From", "value": " " * 5000 + "x"},
                {"name": "Date", "value": DATE},
            ]
        },
    }
    with pytest.raises(mime.MalformedMessage):
        _within_budget(lambda: parse_metadata("rep", resource))


# -- text steps ---------------------------------------------------------------------------------


def test_a_body_of_closing_lines_is_cut_in_linear_time() -> None:
    body = "Please send the offer.\n" + "Best regards\n" * 20_000
    assert _within_budget(lambda: own_text(body)).startswith("Please send the offer.")


def test_language_of_a_long_text_without_spaces_is_found_in_linear_time() -> None:
    text = "会議の日程を調整させていただきたいと思います" * 2_000
    language, _ = _within_budget(lambda: detect(text, ("en", "ja", "zh")))
    assert language == "ja"


# -- calendars ----------------------------------------------------------------------------------


def _ics(events: str) -> bytes:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{events}END:VCALENDAR\r\n".encode()


def _event(uid: str, extra: str = "") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T090000Z\r\n"
        f"DTEND:20260310T093000Z\r\n{extra}END:VEVENT\r\n"
    )


def test_a_small_rrule_that_expands_to_a_huge_set_is_refused() -> None:
    rule = (
        "RRULE:FREQ=YEARLY;BYMONTH="
        + ",".join(map(str, range(1, 13)))
        + ";BYMONTHDAY="
        + ",".join(map(str, range(1, 32)))
        + ";BYHOUR="
        + ",".join(map(str, range(24)))
        + ";BYMINUTE="
        + ",".join(map(str, range(60)))
        + "\r\n"
    )
    data = _ics(_event("bomb@x", rule) + _event("good@x"))
    events, problems = _within_budget(lambda: calendars.read_ics(data, WINDOW, "rep"))
    assert [e.uid for e in events] == ["good@x"]
    assert [uid for uid, _ in problems] == ["bomb@x"]
    assert "repeats more than" in problems[0][1]


def test_a_calendar_file_with_too_many_events_is_refused_with_the_reason() -> None:
    data = _ics("".join(_event(f"e{i}@x") for i in range(calendars.MAX_EVENTS + 1)))
    with pytest.raises(ValueError, match="over the limit of 2000 per calendar file"):
        _within_budget(lambda: calendars.read_ics(data, WINDOW, "rep"))


# -- clients ------------------------------------------------------------------------------------


def test_a_huge_csv_field_costs_its_row_only() -> None:
    text = (
        "name,emails\nAcme,kai@client.example\n"
        + 'Big,"'
        + "x" * 131_073
        + '"\nZen,z@zen.example\nYew,y@yew.example\n'
    )
    clients, problems = parse_clients(text, "clients.csv")
    assert [c.key for c in clients] == ["acme", "zen", "yew"]
    assert [(p.where, "field larger than field limit" in p.message) for p in problems] == [
        ("line 3", True)
    ]


# -- Outlook ------------------------------------------------------------------------------------


def test_an_outlook_message_of_an_unforeseen_shape_is_skipped_and_recipients_bounded() -> None:
    with GraphEmulator() as graph:
        graph.add_mailbox(ADDRESS, "Asha Rao")
        rig = Rig(graph)
        odd = graph.add_message(ADDRESS, raw_fields={"from": "kai@client.example"})
        crowd = graph.add_message(ADDRESS, to=tuple(f"u{i}@client.example" for i in range(600)))
        result = rig.provider.sync(None)
        rig.session.close()
    assert [m.provider_id for m in result.messages] == [crowd]
    assert len(result.messages[0].to) == mime.MAX_ADDRESSES
    assert dict(result.skipped)[odd] == "unreadable message: AttributeError"


def test_an_email_field_of_many_dots_is_checked_in_linear_time() -> None:
    text = "name,emails\nAcme,a@" + "b." * 40_000 + " x\nZen,z@zen.example\n"
    clients, problems = _within_budget(lambda: parse_clients(text, "clients.csv"))
    assert [c.key for c in clients] == ["zen"]
    assert [p.where for p in problems] == ["line 2"]
