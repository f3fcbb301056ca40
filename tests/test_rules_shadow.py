"""First match wins: a rule that an earlier one (in this file or an earlier file) always beats is
reported, naming the winner, its file and the order the files load in."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cadences import parse_cadences
from agent.errors import RulesError
from agent.meetings import parse_meeting_rules
from agent.rules import load_rules, parse_rules


def _promise(name: str, match: str = "") -> str:
    line = f"match = {{ {match} }}\n" if match else ""
    return f'[[promise]]\nname = "{name}"\nkind = "first_reply"\ntarget = "4h"\n{line}'


DEFAULT = _promise("default")


def _problems(*files: tuple[str, str]) -> list[str]:
    return [f"{p.file}:{p.where}: {p.message}" for p in parse_rules(list(files))[1]]


def test_a_narrower_rule_after_a_wider_one_in_the_same_file_can_never_apply() -> None:
    text = _promise("ja", 'language = "ja"') + _promise(
        "ja-silver", 'language = "ja", tier = "silver"'
    )
    assert _problems(("r.toml", text + DEFAULT)) == [
        "r.toml:ja-silver:match: can never apply: the first_reply promise 'ja' (language=ja) "
        "earlier in this file matches every client this one does (language=ja, tier=silver), and "
        "the first match wins; move this rule above it, or narrow the match"
    ]


def test_two_rules_with_the_same_match_across_files_name_the_file_and_the_load_order(
    tmp_path: Path,
) -> None:
    (tmp_path / "20-team.toml").write_text(_promise("gold-b", 'tier = "gold"') + DEFAULT)
    (tmp_path / "10-vip.toml").write_text(_promise("gold-a", 'tier = "gold"'))
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    [problem] = caught.value.problems
    assert problem.file.endswith("20-team.toml") and problem.where == "gold-b:match"
    assert f"'gold-a' (tier=gold) in {tmp_path / '10-vip.toml'}" in problem.message
    assert "files load in name order (10-vip.toml, then 20-team.toml)" in problem.message


def test_rules_that_overlap_without_covering_each_other_both_stand() -> None:
    text = _promise("ja-silver", 'language = "ja", tier = "silver"') + _promise(
        "ja", 'language = "ja"'
    )
    text += _promise("gold", 'tier = ["gold"]') + _promise(
        "gold-or-silver", 'tier = ["gold", "silver"]'
    )
    text += _promise("ja-jp", 'language = "ja-jp"') + _promise("tagged", 'tags = ["a", "b"]')
    assert _problems(("r.toml", text + DEFAULT)) == [
        # 'ja' takes ja-jp clients by their base language.
        "r.toml:ja-jp:match: can never apply: the first_reply promise 'ja' (language=ja) earlier "
        "in this file matches every client this one does (language=ja-jp), and the first match "
        "wins; move this rule above it, or narrow the match"
    ]


def test_follow_up_thank_you_and_meeting_rules_are_checked_the_same_way() -> None:
    def table(name: str, **match: str) -> dict[str, object]:
        return {"name": name, "match": match, "_source": "r.toml"}

    _, problems = parse_cadences(
        {"follow_up": [table("gold", tier="gold"), table("gold-again", tier="gold")]}
    )
    assert [(p.where, p.message.split(":")[0]) for p in problems] == [
        ("gold-again:match", "can never apply")
    ]
    assert "[[follow_up]] rule 'gold' (tier=gold)" in problems[0].message
    _, problems = parse_meeting_rules(
        [table("de", language="de"), table("de-gold", language="de", tier="gold")]
    )
    assert [p.where for p in problems] == ["de-gold:match"]
    assert "[[meeting]] rule 'de' (language=de)" in problems[0].message


def test_rules_check_prints_the_order_the_files_load_in(tmp_path: Path) -> None:
    from agent.app import check_rules

    (tmp_path / "default.toml").write_text(DEFAULT)
    (tmp_path / "10-vip.toml").write_text(_promise("gold", 'tier = "gold"'))
    problems, summary = check_rules(tmp_path, tmp_path / "no-config.toml")
    assert problems == []
    assert "read in this order: 10-vip.toml, then default.toml: all good" in summary
