from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.clients import parse_clients
from agent.matching import Directory, build_threads, classify, kind_of
from agent.model import Address, Direction, Message, MessageKind

CSV = """Name,Emails,Domains,Company,Language,Time zone,Country,Tier,Owner
Kenji Sato,kenji@sato-trading.co.jp,sato-trading.co.jp,Sato Trading,ja,Asia/Tokyo,JP,gold,asha@acme.example
Priya Reddy,priya.reddy@gmail.com,gmail.com,Reddy Textiles,te,Asia/Kolkata,IN,silver,asha@acme.example
"""
OWN = frozenset({"asha@acme.example"})
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def directory() -> Directory:
    clients, problems = parse_clients(CSV, "clients.csv")
    assert not problems
    return Directory(clients, team_domains=frozenset({"acme.example"}), team_addresses=OWN)


def msg(sender: str, to: str = "asha@acme.example", n: int = 0, **kw: object) -> Message:
    fields: dict = dict(
        mailbox="asha",
        provider_id=f"p{n}",
        thread_id=kw.pop("thread", "<t@x>"),
        message_id=f"<m{n}@x>",
        sender=Address(sender),
        to=(Address(to),),
        date=T0 + timedelta(minutes=n),
        subject=kw.pop("subject", "Quote"),
    )
    fields.update(kw)
    return Message(**fields)


def test_exact_address_wins_then_company_domain() -> None:
    d = directory()
    assert classify(msg("kenji@sato-trading.co.jp"), OWN, d).client == "kenji-sato"
    c = classify(msg("buyer@sato-trading.co.jp"), OWN, d)
    assert (c.client, c.direction) == ("kenji-sato", Direction.INBOUND)
    assert "company domain" in c.reason


def test_free_mail_domains_are_never_matched_by_domain() -> None:
    d = directory()
    assert classify(msg("priya.reddy@gmail.com"), OWN, d).client == "priya-reddy"
    stranger = classify(msg("someone.else@gmail.com"), OWN, d)
    assert stranger.client == ""
    assert "free-mail" in stranger.reason


def test_outbound_and_internal_direction() -> None:
    d = directory()
    out = classify(msg("asha@acme.example", to="kenji@sato-trading.co.jp"), OWN, d)
    assert (out.direction, out.client) == (Direction.OUTBOUND, "kenji-sato")
    internal = classify(msg("lead@acme.example"), OWN, d)
    assert internal.direction is Direction.INTERNAL and internal.client == ""


def test_thread_continuity_gives_a_thread_its_client() -> None:
    d = directory()
    first = msg("kenji@sato-trading.co.jp", n=0)
    cc_reply = msg("assistant@partner-agency.example", n=1)
    [thread] = build_threads([cc_reply, first], {"asha": OWN}, d)
    assert [c.client for c in thread.messages] == ["kenji-sato", "kenji-sato"]
    assert thread.messages[1].reason.startswith("thread continuity")
    assert thread.client is not None and thread.client.language == "ja"


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "kenji@x.jp", "Quote", MessageKind.AUTO_REPLY),
        ({"Auto-Submitted": "no"}, "kenji@x.jp", "Quote", MessageKind.HUMAN),
        ({"X-Autoreply": "yes"}, "kenji@x.jp", "Quote", MessageKind.AUTO_REPLY),
        ({"Precedence": "bulk"}, "news@x.jp", "Newsletter", MessageKind.LIST),
        ({"List-Id": "<deals.x.jp>"}, "list@x.jp", "Deals", MessageKind.LIST),
        (
            {"Content-Type": 'multipart/report; report-type="delivery-status"'},
            "mailer-daemon@x.jp",
            "Undelivered",
            MessageKind.BOUNCE,
        ),
        ({}, "MAILER-DAEMON@x.jp", "failure", MessageKind.BOUNCE),
        ({}, "kenji@x.jp", "Automatic reply: Quote", MessageKind.AUTO_REPLY),
        ({}, "kenji@x.jp", "Re: Quote", MessageKind.HUMAN),
    ],
)
def test_kinds_of_mail(headers: dict, sender: str, subject: str, kind: MessageKind) -> None:
    assert kind_of(msg(sender, subject=subject, headers=headers))[0] is kind


def test_a_bad_client_row_is_reported_with_its_line_and_the_rest_load() -> None:
    text = (
        CSV
        + "Broken Co,not-an-email,,,,Mars/Base,ZZ,,\nGood GmbH,,good.de,Good,de,Europe/Berlin,DE,,\n"
    )
    clients, problems = parse_clients(text, "clients.csv")
    assert [c.key for c in clients] == ["kenji-sato", "priya-reddy", "good-gmbh"]
    text_problems = [str(p) for p in problems]
    assert "clients.csv:line 4: emails: 'not-an-email' is not an email address" in text_problems
    assert any("Mars/Base" in p for p in text_problems)
    assert any("'ZZ'" in p for p in text_problems)
