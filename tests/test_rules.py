from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import RulesError
from agent.model import Client
from agent.rules import lint_against, load_rules, parse_rules

DEFAULT = '[[promise]]\nname = "default"\nkind = "first_reply"\ntarget = "8h"\n'


def problems(text: str) -> list[str]:
    _, found = parse_rules([("team.toml", text)])
    return [str(p) for p in found]


def test_the_shipped_rules_load() -> None:
    rules = load_rules(Path(__file__).parent.parent / "rules")
    assert rules.promises[-1].match.empty


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\ncolour = "red"',
            "team.toml:a:colour: unknown key",
        ),
        ('kind = "first_reply"\ntarget = "4h"', "team.toml:promise[0]:name: missing"),
        (
            'name = "a"\nkind = "fast_reply"\ntarget = "4h"',
            "team.toml:a:kind: 'fast_reply' is not a kind",
        ),
        ('name = "a"\nkind = "first_reply"', "team.toml:a:target: missing"),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "soon"',
            "team.toml:a:target: 'soon' is not a duration",
        ),
        ('name = "a"\nkind = "first_reply"\ntarget = "0h"', "team.toml:a:target: is zero"),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nclock = "lunar"',
            "team.toml:a:clock: 'lunar' is not a clock",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nhours_of = "boss"',
            "team.toml:a:hours_of:",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nwarn = ["150%"]',
            "team.toml:a:warn: '150%' must lie between",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nwarn = ["5h before"]',
            "team.toml:a:warn: '5h before' falls before the clock starts",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nescalate_to = "the boss"',
            "team.toml:a:escalate_to: 'the boss' is not an email",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nescalate_after = ["4h", "1h"]',
            "team.toml:a:escalate_after: levels must grow",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nmatch = { planet = ["mars"] }',
            "team.toml:a:match.planet: unknown key",
        ),
        (
            'name = "a"\nkind = "first_reply"\ntarget = "4h"\nmatch = { tier = [] }',
            "team.toml:a:match.tier: must be a string or a non-empty list",
        ),
    ],
)
def test_each_kind_of_mistake_names_file_rule_and_key(rule: str, expected: str) -> None:
    found = problems(
        f"[[promise]]\n{rule}\nmatch = {{ tier = ['gold'] }}\n"
        if "match" not in rule
        else f"[[promise]]\n{rule}\n"
    )
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems('[[promise]]\nname = "a"\nkind = "x"\ntarget = "y"\ncolour = 1\n' + DEFAULT)
    assert len(found) == 3


def test_broken_toml_and_missing_default_and_unreachable_rules() -> None:
    assert problems("[[promise]\n")[0].startswith("team.toml: not valid TOML")
    assert any(
        "no default rule" in p
        for p in problems(
            '[[promise]]\nname = "a"\nkind = "first_reply"\ntarget = "4h"\nmatch = { tier = "gold" }\n'
        )
    )
    shadowed = (
        DEFAULT
        + '[[promise]]\nname = "gold"\nkind = "first_reply"\ntarget = "2h"\nmatch = { tier = "gold" }\n'
    )
    assert any(p.startswith("team.toml:gold:match: can never apply") for p in problems(shadowed))
    assert any("an earlier rule has this name" in p for p in problems(DEFAULT + DEFAULT))


def test_load_rules_raises_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        '[[promise]]\nname = "x"\nkind = "first_reply"\ntarget = "0h"\n'
    )
    with pytest.raises(RulesError) as err:
        load_rules(tmp_path)
    assert "x:target" in str(err.value)


def test_a_rule_for_a_tier_no_client_has_is_flagged() -> None:
    ruleset, _ = parse_rules(
        [
            (
                "team.toml",
                '[[promise]]\nname = "plat"\nkind = "first_reply"\ntarget = "2h"\nmatch = { tier = "platinum", mailbox = "nobody" }\n'
                + DEFAULT,
            )
        ]
    )
    found = [
        str(p) for p in lint_against(ruleset, [Client(key="c", name="C", tier="gold")], ["asha"])
    ]
    assert (
        "team.toml:plat:match.tier: no client has tier 'platinum', so this never fires. "
        "The tiers are: gold."
    ) in found
    assert any("plat:match.mailbox" in p for p in found)


def test_a_target_in_business_days() -> None:
    text = '[[promise]]\nname = "x"\nkind = "first_reply"\ntarget = "2bd"\nwarn = ["50%"]\n'
    ruleset, problems = parse_rules([("r.toml", text)])
    assert problems == []
    [rule] = ruleset.promises
    assert rule.target_days == 2
    wall = text.replace('target = "2bd"', 'target = "2bd"\nclock = "calendar"')
    _, problems = parse_rules([("r.toml", wall)])
    assert [f"{p.where}" for p in problems] == ["x:target"]


def test_rules_check_refuses_a_send_window_no_client_is_ever_open_in(tmp_path: Path) -> None:
    from agent.app import check_rules

    root = Path(__file__).parent.parent
    rules = tmp_path / "rules"
    rules.mkdir()
    for shipped in (root / "rules").glob("*.toml"):
        text = shipped.read_text().replace(
            'send_window = "09:30-11:30"', 'send_window = "20:00-23:00"'
        )
        (rules / shipped.name).write_text(text)
    config = tmp_path / "config.toml"
    config.write_text((root / "config.example.toml").read_text())  # clients.csv beside it
    (tmp_path / "clients.csv").write_text((root / "agent" / "demo" / "clients.csv").read_text())
    problems, _ = check_rules(rules, config)
    windows = [p for p in problems if p.where.endswith("send_window")]
    assert [(p.where, "never meets" in p.message) for p in windows] == [
        ("gold-follow-up:send_window", True)
    ]
