"""A ``match`` value that names nothing (team ``emia``, language ``jp``, domain ``@x.in``) is
reported with the fix, at load time or against the config's mailboxes and clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cadences import parse_cadences
from agent.errors import RulesError
from agent.meetings import parse_meeting_rules
from agent.model import Client
from agent.rules import lint_against, parse_rules

DEFAULT = '[[promise]]\nname = "default"\nkind = "first_reply"\ntarget = "8h"\n'


def _rules(match: str, section: str = "promise") -> str:
    extra = 'kind = "first_reply"\ntarget = "4h"\n' if section == "promise" else ""
    return f'[[{section}]]\nname = "r"\n{extra}match = {{ {match} }}\n' + DEFAULT


def _messages(text: str) -> list[str]:
    return [f"{p.where}: {p.message}" for p in parse_rules([("r.toml", text)])[1]]


@pytest.mark.parametrize(
    ("match", "message"),
    [
        (
            'language = "jp"',
            "r:match.language: 'jp' is the country code of Japan, not a language; did you mean "
            "'ja' (Japanese)?",
        ),
        (
            'language = "japanese"',
            "r:match.language: 'japanese' is a language's name; write its tag, 'ja'",
        ),
        (
            'language = "pt-xx"',
            "r:match.language: 'pt-xx': 'xx' is not a region; write e.g. 'pt-br' or just 'pt'",
        ),
        ('domain = "@x.in"', "r:match.domain: '@x.in': write the domain without '@', as 'x.in'"),
        (
            'domain = "kenji@sato.co.jp"',
            "r:match.domain: 'kenji@sato.co.jp' is an address; match on its domain, 'sato.co.jp'",
        ),
    ],
)
def test_a_language_or_domain_that_names_nothing_is_refused_at_load_time(
    match: str, message: str
) -> None:
    assert _messages(_rules(match)) == [message]


def test_real_tags_and_domains_load() -> None:
    assert _messages(_rules('language = ["ja", "pt-br", "zh-hant-tw"], domain = "x.in"')) == []


def test_follow_up_and_meeting_matches_are_checked_too() -> None:
    raw = {"follow_up": [{"name": "f", "match": {"language": "jp"}, "_source": "r.toml"}]}
    assert [p.where for p in parse_cadences(raw)[1]] == ["f:match.language"]
    _, problems = parse_meeting_rules([{"name": "m", "match": {"domain": "@x.in"}, "_source": "r"}])
    assert [p.where for p in problems] == ["m:match.domain"]


def test_a_team_tier_or_mailbox_no_one_has_gets_the_near_miss() -> None:
    text = _rules('team = "emia"') + (
        '[[follow_up]]\nname = "nudge"\nmatch = { tier = "glod" }\n'
        '[[meeting]]\nname = "meet"\nmatch = { mailbox = "ahsa" }\n'
        '[[thank_you]]\nname = "thanks"\nmatch = { team = "zzz" }\n'
    )
    ruleset, problems = parse_rules([("r.toml", text)])
    assert problems == []
    clients = [Client(key="c", name="C", tier="gold")]
    found = lint_against(ruleset, clients, ["asha", "lukas"], teams=["apac", "emea"])
    assert [f"{p.where}: {p.message}" for p in found] == [
        "nudge:match.tier: no client has tier 'glod', so this never fires. Did you mean 'gold'?",
        "r:match.team: no mailbox in the config is in team 'emia', so this never fires. "
        "Did you mean 'emea'?",
        "thanks:match.team: no mailbox in the config is in team 'zzz', so this never fires. "
        "The teams are: apac, emea.",
        "meet:match.mailbox: no mailbox is named 'ahsa' in the config, so this never fires. "
        "Did you mean 'asha'?",
    ]


def test_a_team_mailbox_or_tag_spelled_in_capitals_in_the_config_still_matches() -> None:
    ruleset, problems = parse_rules(
        [("r.toml", _rules('team = "EMEA", mailbox = "Asha", tags = "Textiles"'))]
    )
    assert problems == []
    client = Client(key="c", name="C", tier="gold", tags=frozenset({"TEXTILES"}))
    assert ruleset.promise_for("first_reply", client, "ASHA", "Emea") == ruleset.promises[0]
    assert lint_against(ruleset, [client], ["Asha"], teams=["EMEA"]) == []


def test_status_and_the_worker_refuse_a_team_no_mailbox_is_in(tmp_path: Path) -> None:
    from agent import config
    from agent.pipeline import load_team

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.toml").write_text(_rules('team = "emia"'), encoding="utf-8")
    (tmp_path / "clients.csv").write_text("name,emails\nC,c@example.com\n", encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        '[paths]\nrules = "rules"\nclients = "clients.csv"\n'
        '[[mailboxes]]\nname = "asha"\nprovider = "local"\naddress = "asha@acme.example"\n'
        'rep_name = "Asha"\nzone = "Asia/Kolkata"\npath = "mail"\nteam = "emea"\n',
        encoding="utf-8",
    )
    with pytest.raises(RulesError) as caught:
        load_team(config.load(tmp_path / "config.toml"))
    assert [f"{p.where}: {p.message}" for p in caught.value.problems] == [
        "r:match.team: no mailbox in the config is in team 'emia', so this never fires. "
        "Did you mean 'emea'?"
    ]
