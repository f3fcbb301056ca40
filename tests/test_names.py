"""Names: display names taken apart, the clients file's name columns, greetings built on them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clients import parse_clients
from agent.names import greeting_fields, parse_name


@pytest.mark.parametrize(
    ("display", "language", "first", "last", "title", "gender"),
    [
        ("Anjali Rao", "", "Anjali", "Rao", "", ""),
        ("Rao, Anjali", "", "Anjali", "Rao", "", ""),
        ("Anjali Rao, PhD", "", "Anjali", "Rao", "", ""),
        ("K. Rao", "te", "", "Rao", "", ""),
        ('"Rao, K."', "", "", "Rao", "", ""),
        ("Dr. K. Rao", "hi", "", "Rao", "Dr.", ""),
        ("Prof. Dr. Hans Müller", "de", "Hans", "Müller", "Prof. Dr.", ""),
        ("Frau Anna Schmidt", "de", "Anna", "Schmidt", "Frau", "female"),
        ("Herr Schmidt", "de", "", "Schmidt", "Herr", "male"),
        ("Mme Claire Dubois", "fr", "Claire", "Dubois", "Mme", "female"),
        ("M. Dupont", "fr", "", "Dupont", "M.", "male"),
        ("M. Rao", "en", "", "Rao", "", ""),  # an initial outside French
        ("Sra. María López", "es", "María", "López", "Sra.", "female"),
        ("Shri Ramesh Kumar", "hi", "Ramesh", "Kumar", "Shri", "male"),
        ("Smt. Lakshmi Devi", "te", "Lakshmi", "Devi", "Smt.", "female"),
        ("السيدة فاطمة الزهراء", "ar", "فاطمة", "الزهراء", "السيدة", "female"),
        ("山田 太郎", "ja", "太郎", "山田", "", ""),
        ("山田太郎", "ja", "", "", "", ""),  # no reliable split: greeted whole
        ("王伟", "zh", "伟", "王", "", ""),
        ("欧阳娜娜", "zh", "娜娜", "欧阳", "", ""),
        ("王女士", "zh", "", "王", "", "female"),
        ("김민준", "ko", "민준", "김", "", ""),
        ("SATO Kenji", "ja", "Kenji", "SATO", "", ""),
        ("J.-P. Martin", "fr", "", "Martin", "", ""),
    ],
)
def test_display_names_are_taken_apart(
    display: str, language: str, first: str, last: str, title: str, gender: str
) -> None:
    name = parse_name(display, language)
    assert (first, last, title, gender) == (name.first, name.last, name.title, name.gender)


@pytest.mark.parametrize(
    ("display", "language", "greeted"),
    [
        ("K. Rao", "te", "K. Rao"),  # never "నమస్కారం K. గారు,"
        ("Dr. Rao", "hi", "Dr. Rao"),  # never "नमस्ते Dr. जी,"
        ("Rao,", "en", "Rao"),  # never "Hi Rao,,"
        ("Rao, Anjali", "en", "Anjali"),
        ("Dr.", "en", "Anjali"),  # a title alone: the record's name
    ],
)
def test_an_unknown_given_name_greets_with_the_whole_name(
    display: str, language: str, greeted: str
) -> None:
    fields = greeting_fields(display, language, default="Anjali Rao")
    assert greeted == fields["first_name"]


def test_parts_given_win_over_parts_read() -> None:
    fields = greeting_fields(
        "K. Rao", "te", first="Kavya", last="Rao", honorific="Smt.", gender="female"
    )
    assert fields == {
        "name": "K. Rao",
        "first_name": "Kavya",
        "last_name": "Rao",
        "honorific": "Smt.",
        "gender": "female",
    }


@given(st.text(max_size=300))
def test_any_display_name_gives_a_greeting(display: str) -> None:
    fields = greeting_fields(display, "en", default="Anjali Rao")
    assert fields["first_name"].strip()
    assert "\n" not in fields["first_name"]
    assert not fields["first_name"].endswith(",")


def test_clients_file_reads_name_parts() -> None:
    text = (
        "name,emails,first_name,last_name,honorific,gender\n"
        "Anjali Rao,anjali@godavari.example,Anjali,Rao,Smt.,f\n"
        "Hans Müller,hans@example.de,,Müller,Herr,male\n"
    )
    clients, problems = parse_clients(text, "clients.csv")
    assert problems == []
    assert [(c.first_name, c.last_name, c.honorific, c.gender) for c in clients] == [
        ("Anjali", "Rao", "Smt.", "female"),
        ("", "Müller", "Herr", "male"),
    ]


def test_clients_file_without_name_parts_still_loads() -> None:
    clients, problems = parse_clients("name,emails\nAnjali Rao,a@godavari.example\n", "c.csv")
    assert problems == []
    assert (
        clients[0].first_name,
        clients[0].last_name,
        clients[0].honorific,
        clients[0].gender,
    ) == ("", "", "", "")


def test_bad_name_parts_are_one_line_errors_naming_file_row_and_column() -> None:
    text = (
        "name,emails,first_name,gender\n"
        "Anjali Rao,a@godavari.example,Anjali,q\n"
        "Bo Li,b@li.example,b@li.example,\n"
        "Good One,g@one.example,Good,female\n"
    )
    clients, problems = parse_clients(text, "clients.csv")
    assert [c.key for c in clients] == ["good-one"]
    messages = [str(p) for p in problems]
    assert len(messages) == 2
    assert messages[0].startswith("clients.csv:line 2: gender: 'q' is not one of female, male")
    assert messages[1].startswith("clients.csv:line 3: first_name: 'b@li.example'")
    assert all("\n" not in m for m in messages)
