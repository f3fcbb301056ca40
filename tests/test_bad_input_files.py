"""Files people edit by hand (rules, config, clients) fed generated garbage: every problem comes
back as a Problem naming the file and the key, never as another exception."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cadences import Wait, parse_cadences
from agent.clients import load_clients, parse_clients
from agent.config import load as load_config
from agent.config import parse_settings
from agent.errors import ConfigError, Problem, RulesError
from agent.meetings import parse_meeting_rules
from agent.rules import load_rules, parse_duration, parse_rules

SOURCE = "rules/team.toml"

durations = st.one_of(
    st.sampled_from(
        ["4h", "1h30m", "45m", "2d", "0h", "0", "", "4", "h", "-4h", "1.5d", "4 hours", "1d4h"]
    ),
    st.sampled_from(["99999999999999d", "1e9d", "9" * 30 + "h", "9" * 5000 + "m", "NaNh"]),
    st.text(alphabet="0123456789.dhm %before", max_size=12),
)
scalars = st.one_of(
    durations,
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=10),
    st.sampled_from(["Europe/Berlin", "Mars/Olympus", "", "draft", "send", "gold", "first_reply"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["tier", "tags", "x", "domain", "team"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)

PROMISE_KEYS = [
    "name",
    "kind",
    "target",
    "clock",
    "hours_of",
    "match",
    "warn",
    "escalate_to",
    "escalate_after",
    "webhook",
    "description",
    "bogus",
]
FOLLOW_KEYS = [
    "name",
    "description",
    "match",
    "after",
    "steps",
    "template",
    "mode",
    "out_of_office_hold",
    "send_window",
    "min_gap",
    "delay",
    "feedback",
    "delay_feedback",
    "bogus",
]
MEETING_KEYS = ["name", "match", "duration", "within", "min_notice", "count", "mode", "bogus"]


def tables(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values, max_size=8)


documents = st.fixed_dictionaries(
    {},
    optional={
        "promise": st.one_of(
            st.lists(st.one_of(tables(PROMISE_KEYS), scalars), max_size=3), scalars
        ),
        "follow_up": st.one_of(
            st.lists(st.one_of(tables(FOLLOW_KEYS), scalars), max_size=3), scalars
        ),
        "thank_you": st.one_of(
            st.lists(st.one_of(tables(FOLLOW_KEYS), scalars), max_size=3), scalars
        ),
        "meeting": st.one_of(
            st.lists(st.one_of(tables(MEETING_KEYS), scalars), max_size=3), scalars
        ),
        "other": values,
    },
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        # JSON escapes are TOML escapes, once astral characters stay whole and DEL is escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(doc: dict[str, Any]) -> str:
    return "\n".join(f"{k} = {toml_value(v)}" for k, v in doc.items()) + "\n"


def assert_problems(problems: list[Problem], source: str) -> None:
    for p in problems:
        assert isinstance(p, Problem)
        assert p.file == source or source in p.file
        assert p.message.strip()


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(documents)
def test_any_rule_document_gives_problems_never_a_crash(doc: dict[str, Any]) -> None:
    text = to_toml(doc)
    assert set(tomllib.loads(text)) == set(doc)  # valid TOML: the rules see the generated shape
    ruleset, problems = parse_rules([(SOURCE, text)])
    assert_problems(problems, SOURCE)
    for p in problems:
        assert p.where, p  # each names a key, or "default" for the missing catch-all
    cadences, more = parse_cadences(ruleset.raw)
    assert_problems(more, SOURCE)
    meetings, most = parse_meeting_rules(ruleset.raw.get("meeting", []))
    assert_problems(most, SOURCE)
    named = {r.name for r in cadences.follow_ups} | {r.name for r in meetings}
    assert all(isinstance(n, str) and n for n in named)


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(max_size=200))
def test_any_text_as_a_rule_file_gives_problems(text: str) -> None:
    _, problems = parse_rules([(SOURCE, text)])
    assert_problems(problems, SOURCE)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('target = "99999999999999d"', "gold:target"),
        ('target = "4h"\nwarn = ["99999999999999d before"]', "gold:warn"),
        ('target = "4h"\nescalate_after = ["99999999999999d"]', "gold:escalate_after"),
    ],
)
def test_a_duration_too_long_for_a_clock_is_a_problem(table: str, key: str) -> None:
    text = f'[[promise]]\nname = "gold"\nkind = "first_reply"\n{table}\n'
    _, problems = parse_rules([(SOURCE, text)])
    assert key in {p.where for p in problems}


@pytest.mark.parametrize("text", ["367d", "9000h", "99999999h", "9999999999999999999999d"])
def test_a_span_longer_than_a_year_is_refused(text: str) -> None:
    # Business time would otherwise walk the calendar for centuries, or past its end.
    with pytest.raises(ValueError, match="longer than a year"):
        Wait.parse(text)
    with pytest.raises(ValueError, match="longer than a year"):
        parse_duration(text)


def test_a_year_is_still_a_span() -> None:
    assert Wait.parse("366d").days == 366
    assert timedelta(days=366) == parse_duration("366d")


def test_huge_spans_in_cadences_and_meetings_are_problems() -> None:
    raw = {
        "follow_up": [{"name": "f", "after": "99999999999999h", "_source": SOURCE}],
        "thank_you": [{"name": "t", "delay": "99999999999999d", "_source": SOURCE}],
    }
    _, problems = parse_cadences(raw)
    assert {"f:after", "t:delay"} <= {p.where for p in problems}
    _, problems = parse_meeting_rules(
        [{"name": "m", "within": "99999999999999d", "_source": SOURCE}]
    )
    assert [p.where for p in problems] == ["m:within"]


def test_a_rule_file_that_is_not_utf8_is_a_rules_error(tmp_path: Path) -> None:
    (tmp_path / "team.toml").write_bytes(b'[[promise]]\nname = "caf\xe9"\n')
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    assert "team.toml" in str(caught.value)
    assert "UTF-8" in str(caught.value)


# -- config ---------------------------------------------------------------------------------------

MAILBOX_KEYS = [
    "name",
    "provider",
    "address",
    "aliases",
    "rep_name",
    "zone",
    "hours",
    "weekend",
    "country",
    "subdivision",
    "language",
    "team",
    "lead",
    "path",
    "bogus",
]
config_docs = st.fixed_dictionaries(
    {},
    optional={
        "database": st.one_of(
            st.dictionaries(st.sampled_from(["url", "x"]), values, max_size=2), scalars
        ),
        "team": st.one_of(
            tables(["name", "domains", "default_language", "languages", "x"]), scalars
        ),
        "outbox": st.one_of(tables(["mode", "daily_cap", "min_gap_hours", "x"]), scalars),
        "service": st.one_of(tables(["listen", "log_format", "poll_seconds", "x"]), scalars),
        "paths": st.one_of(tables(["rules", "templates", "clients", "x"]), scalars),
        "leads": st.one_of(
            st.lists(st.one_of(tables(["name", "email", "zone", "x"]), scalars), max_size=2),
            scalars,
        ),
        "mailboxes": st.one_of(
            st.lists(st.one_of(tables(MAILBOX_KEYS), scalars), max_size=3),
            st.dictionaries(st.sampled_from(["0", "a"]), values, max_size=2),
            scalars,
        ),
        "bogus": values,
    },
)
good_mailbox = {
    "name": "asha",
    "provider": "local",
    "address": "asha@acme.example",
    "rep_name": "Asha",
    "zone": "Asia/Kolkata",
}
hours = st.one_of(
    st.sampled_from(
        ["09:00-17:00", "9-5", "25:00-26:00", "17:00-09:00", "", "09:00-12:00,13:00-17:00"]
    ),
    st.dictionaries(st.sampled_from(["mon", "fri", "sun", "xyz", ""]), scalars, max_size=3),
    scalars,
)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(config_docs)
def test_any_config_shape_gives_a_config_error_naming_the_key(data: dict[str, Any]) -> None:
    try:
        parse_settings(data, "config.toml")
    except ConfigError as exc:
        assert exc.problems
        assert_problems(exc.problems, "config.toml")


@settings(max_examples=150, deadline=None, database=None)
@given(
    hours=hours,
    weekend=st.one_of(
        st.lists(st.sampled_from(["sat", "sun", "fri", "xyz", ""]), max_size=3), scalars
    ),
    zone=st.one_of(
        st.sampled_from(["Europe/Berlin", "Mars/Olympus", "", "../etc", "UTC\x00"]), scalars
    ),
    country=st.one_of(st.sampled_from(["", "IN", "XX", "de"]), scalars),
    subdivision=st.one_of(st.sampled_from(["", "KA", "ZZ"]), scalars),
)
def test_a_mailbox_with_bad_hours_zone_or_holidays_is_a_config_error(
    hours: Any, weekend: Any, zone: Any, country: Any, subdivision: Any
) -> None:
    mailbox = {**good_mailbox, "hours": hours, "weekend": weekend, "zone": zone}
    mailbox |= {"country": country, "subdivision": subdivision}
    try:
        settings_ = parse_settings({"mailboxes": [mailbox]}, "config.toml")
    except ConfigError as exc:
        assert_problems(exc.problems, "config.toml")
        assert all(p.where.startswith("mailboxes[asha]") for p in exc.problems), exc.problems
        return
    # Accepted means usable: the worker builds the rep's calendar from it without surprises.
    settings_.mailboxes[0].calendar()


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[team]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "UTF-8" in str(caught.value)


# -- clients --------------------------------------------------------------------------------------

cells = st.one_of(
    st.sampled_from(
        [
            "Acme",
            "kai@client.example",
            "client.example",
            "Asia/Tokyo",
            "Mars/Base",
            "IN",
            "XX",
            "gold",
            "yes",
            "",
            "a;b,c",
            "@@",
            "\x00",
            '"',
            "\r",
            "\n",
        ]
    ),
    st.text(max_size=12),
)
columns = st.sampled_from(
    [
        "name",
        "emails",
        "domains",
        "zone",
        "time zone",
        "country",
        "tier",
        "tags",
        "opted_out",
        "language",
        "",
        "name",
        "junk",
    ]
)


@settings(max_examples=150, deadline=None, database=None)
@given(
    header=st.lists(columns, min_size=0, max_size=7),
    rows=st.lists(st.lists(cells, max_size=8), max_size=6),
    sep=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_clients_csv_gives_clients_and_line_numbered_problems(
    header: list[str], rows: list[list[str]], sep: str
) -> None:
    def line(cells: list[str]) -> str:
        return ",".join(f'"{c}"' if "," in c else c for c in cells)

    text = sep.join([line(header), *(line(r) for r in rows)])
    clients, problems = parse_clients(text, "clients.csv")
    assert_problems(problems, "clients.csv")
    assert len({c.key for c in clients}) == len(clients)
    for c in clients:
        assert c.name and (c.emails or c.domains)


def test_a_clients_file_with_a_huge_field_reports_the_line(tmp_path: Path) -> None:
    text = (
        "name,emails\nAcme,kai@client.example\n"
        + 'Big,"'
        + "x" * 200_000
        + '"\nZen,z@zen.example\n'
    )
    clients, problems = parse_clients(text, "clients.csv")
    assert [c.key for c in clients][:1] == ["acme"]
    assert [(p.file, p.where) for p in problems] == [("clients.csv", "line 3")]


def test_a_clients_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes(b"name,emails\nCaf\xe9,kai@client.example\n")
    clients, problems = load_clients(path)
    assert clients == []
    assert "UTF-8" in problems[0].message
