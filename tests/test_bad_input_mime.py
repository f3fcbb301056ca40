"""Malformed mail: every message is either read into a valid Message or skipped with a reason.

The generated messages mix well-formed headers with the damage real mailboxes hold: missing and
repeated headers, broken encoded-words, unknown charsets, dates without a zone or out of range,
raw 8-bit bytes, truncated multiparts and header lines longer than any RFC allows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import mime
from agent.model import Message
from agent.providers.gmail import parse_metadata

GOOD_DATE = "Mon, 02 Mar 2026 10:00:00 +0100"

dates = st.one_of(
    st.just(GOOD_DATE),
    st.just("Mon, 02 Mar 2026 10:00:00"),  # no zone
    st.just("Mon, 02 Mar 2026 10:00:00 -0000"),  # RFC 5322: UTC, local zone unknown
    st.just("2 Mar 26 10:00 EST"),
    st.just("Fri, 31 Dec 9999 23:59:59 -1200"),  # past the end of datetime once in UTC
    st.just("Mon, 01 Jan 0001 00:00:00 +1400"),  # before the start of datetime in UTC
    st.just("Mon, 02 Mar 99999 10:00:00 +0000"),
    st.just("Mon, 02 Mar 2026 25:61:61 +0000"),
    st.just("Mon, 31 Feb 2026 10:00:00 +0000"),
    st.just("Mon, 02 Mar 2026 10:00:00 +9999"),
    st.just("yesterday"),
    st.just(""),
    st.builds(
        "{}, {} {} {} {:02d}:{:02d}:{:02d} {}".format,
        st.sampled_from(["Mon", "Xyz", ""]),
        st.integers(-5, 40),
        st.sampled_from(["Jan", "Feb", "Mar", "Foo", "13"]),
        st.integers(-10, 100_000),
        st.integers(-1, 30),
        st.integers(0, 70),
        st.integers(0, 70),
        st.sampled_from(["+0000", "-0000", "", "GMT", "PDT", "+2400", "-1359", "Z", "+05"]),
    ),
    st.text(max_size=40),
)

encoded_words = st.one_of(
    st.just("=?utf-8?q?Caf=C3=A9?="),
    st.just("=?utf-8?q?broken=ZZ?="),
    st.just("=?utf-8?b?not base64!!?="),
    st.just("=?x-unknown-charset?q?hello?="),
    st.just("=?utf-8?x?wrong-encoding?="),
    st.just("=?utf-8?q?unterminated"),
    st.just("=?iso-2022-jp?b?GyRCJUYlOSVIGyhC?="),
    st.just("=??q??="),
    st.builds(
        "=?{}?{}?{}?=".format,
        st.sampled_from(["utf-8", "latin-1", "bogus", "", "utf-7", "*"]),
        st.sampled_from(["q", "b", "Q", "B", "", "z"]),
        st.text(alphabet="=?ABCabc0129+/_ \t", max_size=20),
    ),
)

addresses = st.one_of(
    st.just("Kai Tanaka <kai@client.example>"),
    st.just("kai@client.example"),
    st.just("<>"),
    st.just("undisclosed-recipients:;"),
    st.just('"unbalanced <kai@client.example'),
    st.just("Kai (comment <kai@client.example>"),
    st.just("=?utf-8?q?Kai?= <kai@client.example>"),
    st.just("@@@"),
    st.just("a@b, , ,c@d"),
    st.builds("{} <{}>".format, encoded_words, st.text(max_size=15)),
    st.text(max_size=30),
)

message_ids = st.one_of(
    st.just("<abc@client.example>"),
    st.just("<>"),
    st.just("no angle brackets"),
    st.just("<unterminated@"),
    st.just(" "),
    st.text(max_size=20),
)

content_types = st.one_of(
    st.just("text/plain; charset=utf-8"),
    st.just("text/plain; charset=x-no-such-charset"),
    st.just("text/plain; charset="),
    st.just("text/html; charset=utf-8"),
    st.just('multipart/mixed; boundary="XX"'),
    st.just("multipart/alternative"),  # no boundary
    st.just("multipart/mixed; boundary="),
    st.just("text/"),
    st.just(";;;"),
    st.text(max_size=30),
)

HEADER_VALUES = {
    "From": addresses,
    "To": addresses,
    "Cc": addresses,
    "Date": dates,
    "Subject": st.one_of(encoded_words, st.text(max_size=30)),
    "Message-ID": message_ids,
    "References": st.one_of(message_ids, st.lists(message_ids, max_size=3).map(" ".join)),
    "In-Reply-To": message_ids,
    "Content-Type": content_types,
    "Content-Transfer-Encoding": st.sampled_from(["base64", "quoted-printable", "8bit", "x-y"]),
    "Auto-Submitted": st.sampled_from(["auto-replied", "no", "=?bogus?q?x?="]),
    "List-Id": st.text(max_size=20),
}


@st.composite
def header_line(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from([*HEADER_VALUES, "X-Junk", "", "Bad Name", "Da\x00te"]))
    value = draw(HEADER_VALUES.get(name, st.text(max_size=20)))
    line = f"{name}: {value}".encode("utf-8", "surrogateescape")
    damage = draw(st.sampled_from(["none", "none", "none", "latin1", "binary", "huge", "fold"]))
    if damage == "latin1":
        line = f"{name}: {value} caf\xe9".encode("latin-1", "replace")
    elif damage == "binary":
        line += draw(st.binary(max_size=20))
    elif damage == "huge":
        line += b"x" * draw(st.sampled_from([1000, 20_000, 200_000]))
    elif damage == "fold":
        line += b"\r\n \r\n\t=?utf-8?q?"
    return line


bodies = st.one_of(
    st.just(b"Hello, can we meet next week?\r\n"),
    st.just(b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--XX\r\nContent-Type: text/h"),
    st.just(b"--XX\r\nContent-Type: text/plain; charset=bogus\r\n\r\n\xff\xfe\r\n--XX--\r\n"),
    st.just(b"--XX\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n--XX--\r\n"),
    st.just(b"--XX\r\n--XX\r\n--XX\r\n"),
    st.binary(max_size=200),
)

GOOD_HEADERS = [
    b"From: Kai Tanaka <kai@client.example>",
    b"To: asha@acme.example",
    b"Date: " + GOOD_DATE.encode(),
    b"Message-ID: <good@client.example>",
]


@st.composite
def raw_messages(draw: st.DrawFn) -> bytes:
    keep = draw(st.lists(st.sampled_from(GOOD_HEADERS), max_size=4))
    lines = keep + draw(st.lists(header_line(), max_size=10))
    lines = draw(st.permutations(lines))
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    raw = sep.join(lines) + sep + sep + draw(bodies)
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    return raw if cut is None else raw[:cut]


def assert_storable(text: str) -> None:
    """PostgreSQL refuses NULs in text, and neither database stores lone surrogates."""
    assert "\x00" not in text
    text.encode("utf-8")


def assert_valid(message: Message) -> None:
    assert message.date.tzinfo is UTC
    assert message.message_id.strip()
    assert message.thread_id
    assert "@" in message.sender.email
    for text in (
        message.subject,
        message.message_id,
        message.thread_id,
        message.in_reply_to,
        *message.references,
        *message.headers.values(),
        *(a.email for a in (message.sender, *message.recipients)),
        *(a.name for a in (message.sender, *message.recipients)),
    ):
        assert_storable(text)


def check_one(raw: bytes) -> Message | None:
    """The contract: a valid Message, or MalformedMessage with a readable reason."""
    try:
        message = mime.to_message(raw, mailbox="asha", provider_id="inbox/1")
    except mime.MalformedMessage as exc:
        reason = str(exc)
        assert reason.strip()
        assert reason.isprintable(), reason
        assert len(reason) < 400
        return None
    assert_valid(message)
    return message


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(raw_messages())
def test_any_message_is_parsed_or_skipped_with_a_reason(raw: bytes) -> None:
    check_one(raw)
    # The body is read later for language and meeting detection; that must not fail either.
    assert_storable(mime.body_text(raw))


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=500))
def test_binary_junk_is_parsed_or_skipped(raw: bytes) -> None:
    check_one(raw)
    assert_storable(mime.body_text(raw))


@settings(max_examples=200, deadline=None, database=None)
@given(dates)
def test_any_date_header_is_read_or_skipped_the_same_by_mime_and_gmail(value: str) -> None:
    """Both readers of a Date header agree: same instant, or both skip."""
    raw = (
        "From: Kai <kai@client.example>\r\nTo: asha@acme.example\r\n"
        f"Date: {value}\r\nMessage-ID: <m1@client.example>\r\n\r\nhi\r\n"
    ).encode("utf-8", "surrogateescape")
    local = check_one(raw)
    resource = {
        "id": "m1",
        "threadId": "t1",
        "payload": {
            "headers": [
                {"name": "From", "value": "Kai <kai@client.example>"},
                {"name": "Date", "value": value},
                {"name": "Message-ID", "value": "<m1@client.example>"},
            ]
        },
    }
    try:
        gmail: Message | None = parse_metadata("asha", resource)
    except mime.MalformedMessage as exc:
        assert str(exc).strip()
        gmail = None
    if gmail is not None:
        assert_valid(gmail)
    assert (local and local.date) == (gmail and gmail.date)


@pytest.mark.parametrize(
    "value", ["Mon, 02 Mar 2026 10:00:00", "Mon, 02 Mar 2026 10:00:00 -0000", "2 Mar 2026 10:00"]
)
def test_a_date_without_a_zone_is_read_as_utc_and_the_message_is_kept(value: str) -> None:
    raw = f"From: kai@client.example\r\nDate: {value}\r\n\r\nhi\r\n".encode()
    message = mime.to_message(raw, mailbox="asha", provider_id="inbox/1")
    assert datetime(2026, 3, 2, 10, 0, tzinfo=UTC) == message.date
    resource = {
        "id": "m1",
        "payload": {
            "headers": [
                {"name": "From", "value": "kai@client.example"},
                {"name": "Date", "value": value},
            ]
        },
    }
    assert message.date == parse_metadata("asha", resource).date


def test_a_date_with_a_zone_keeps_its_offset() -> None:
    raw = f"From: kai@client.example\r\nDate: {GOOD_DATE}\r\n\r\nhi\r\n".encode()
    message = mime.to_message(raw, mailbox="asha", provider_id="inbox/1")
    assert datetime(2026, 3, 2, 9, 0, tzinfo=UTC) == message.date


@pytest.mark.parametrize(
    ("date", "reason"),
    [
        ("Fri, 31 Dec 9999 23:59:59 -1200", "Date header"),
        ("Mon, 01 Jan 1000 00:00:00 +1400", "outside 1970-2199"),
        ("Mon, 02 Mar 2026 10:00:00 +9999", "impossible zone offset"),
        ("yesterday", "unreadable Date header"),
    ],
)
def test_a_date_out_of_range_is_skipped_with_a_reason(date: str, reason: str) -> None:
    raw = f"From: kai@client.example\r\nDate: {date}\r\n\r\nhi\r\n".encode()
    with pytest.raises(mime.MalformedMessage, match=reason):
        mime.to_message(raw, mailbox="asha", provider_id="inbox/1")


def test_a_message_without_message_id_gets_a_stable_one() -> None:
    raw = f"From: kai@client.example\r\nDate: {GOOD_DATE}\r\n\r\nhi\r\n".encode()
    first = mime.to_message(raw, mailbox="asha", provider_id="inbox/1")
    again = mime.to_message(raw, mailbox="asha", provider_id="inbox/1")
    assert first.message_id == again.message_id
    assert first.message_id.startswith("<")


def test_body_in_an_unknown_charset_is_still_read() -> None:
    raw = (
        b"From: kai@client.example\r\nDate: " + GOOD_DATE.encode() + b"\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nLet's meet on Tuesday\r\n"
    )
    assert "meet on Tuesday" in mime.body_text(raw)
