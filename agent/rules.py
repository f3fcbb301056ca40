"""rules/*.toml -> a validated rule set. Every problem is reported at once as file:rule:key.

The keys are documented, with examples, in rules/README.md. Files are read in name order and
their ``[[promise]]`` tables keep that order: the first rule that matches a thread wins, so a
rule with no ``match`` (the default, required) belongs last.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from babel import Locale
from babel.languages import get_official_languages

from agent.clients import DOMAIN
from agent.durations import business_days, parse_duration
from agent.errors import Problem, RulesError
from agent.model import Client
from agent.webhooks import check_shape

KINDS = ("first_reply", "next_reply")
CLOCKS = ("business", "calendar")
HOURS_OF = ("rep", "client")
PROMISE_KEYS = {
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
}
MATCH_KEYS = {"tier", "tags", "domain", "language", "mailbox", "team"}
TOP_KEYS = {"promise", "follow_up", "thank_you", "meeting"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Match:
    tier: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    domain: frozenset[str] = frozenset()
    language: frozenset[str] = frozenset()
    mailbox: frozenset[str] = frozenset()
    team: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not any(getattr(self, k) for k in MATCH_KEYS)

    def covers(self, other: Match) -> bool:
        """Whether this match accepts every client, mailbox and team that ``other`` accepts:
        then a rule with ``other`` after a rule with this one can never apply."""
        for key in MATCH_KEYS:
            mine: frozenset[str] = getattr(self, key)
            theirs: frozenset[str] = getattr(other, key)
            if not mine:
                continue
            if not theirs:
                return False
            if key == "language":
                # A client's tag matches by itself or by its base language ("ja" takes "ja-jp").
                if not all(t in mine or t.split("-")[0] in mine for t in theirs):
                    return False
            elif not theirs <= mine:
                return False
        return True

    def describe(self) -> str:
        """``language=ja, tier=silver``; ``no match: every client`` for a catch-all."""
        if self.empty:
            return "no match: every client"
        return ", ".join(
            f"{key}={'|'.join(sorted(getattr(self, key)))}"
            for key in sorted(MATCH_KEYS)
            if getattr(self, key)
        )

    def accepts(self, client: Client, mailbox: str, team: str) -> bool:
        lang = client.language.lower()
        return (
            (not self.tier or client.tier in self.tier)
            # Match values are lower-cased when read; so is what they are compared with.
            and (not self.tags or any(t.lower() in self.tags for t in client.tags))
            and (not self.domain or bool(self.domain & client.domains))
            and (not self.language or lang in self.language or lang.split("-")[0] in self.language)
            and (not self.mailbox or mailbox.lower() in self.mailbox)
            and (not self.team or team.lower() in self.team)
        )


@dataclass(frozen=True)
class Warning:
    """When to remind the rep: a share of the target, or a time before the deadline."""

    label: str
    fraction: float | None = None
    before: timedelta | None = None

    def offset(self, target: timedelta) -> timedelta:
        """Time from the clock's start to this warning, in the rule's clock."""
        if self.fraction is not None:
            return target * self.fraction
        assert self.before is not None
        return target - self.before


@dataclass(frozen=True)
class PromiseRule:
    name: str
    kind: str
    target: timedelta
    source: str
    clock: str = "business"
    # A target in whole business days ("2bd"): the same local time that many business days on.
    # ``target`` then holds a day's worth per business day, for display only.
    target_days: int = 0
    hours_of: str = "rep"
    match: Match = field(default_factory=Match)
    warn: tuple[Warning, ...] = ()
    escalate_to: str = ""
    escalate_after: tuple[timedelta, ...] = (timedelta(0),)
    webhook: str = ""
    description: str = ""


@dataclass(frozen=True)
class RuleSet:
    promises: tuple[PromiseRule, ...]
    sources: tuple[str, ...] = ()
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def promise_for(
        self, kind: str, client: Client, mailbox: str, team: str = ""
    ) -> PromiseRule | None:
        for rule in self.promises:
            if rule.kind == kind and rule.match.accepts(client, mailbox, team):
                return rule
        return None


def _close(word: str, known: Iterable[str]) -> str:
    """`` Did you mean 'emea'?`` when a known word is close to ``word``; "" otherwise."""
    near = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f" Did you mean {near[0]!r}?" if near else ""


@lru_cache(maxsize=1)
def _cldr() -> Locale:
    return Locale("en")


def _language_problem(tag: str) -> str:
    """Why ``tag`` is not a language tag (BCP 47, as Babel's CLDR data knows them); "" if it
    is one."""
    cldr = _cldr()
    subtags = tag.replace("_", "-").split("-")
    base = subtags[0]
    if base.lower() not in cldr.languages:
        region = base.upper()
        spoken = get_official_languages(region) if region in cldr.territories else ()
        if spoken:
            return (
                f"{tag!r} is the country code of {cldr.territories[region]}, not a language; did "
                f"you mean {spoken[0]!r} ({cldr.languages.get(spoken[0], spoken[0])})?"
            )
        named = [c for c, n in cldr.languages.items() if n.lower() == tag.lower() and "_" not in c]
        if named:
            return f"{tag!r} is a language's name; write its tag, {named[0]!r}"
        return (
            f"{tag!r} is not a language tag; use a tag such as 'ja', 'de' or 'pt-br' (the "
            "language code, then a region if needed)"
        )
    for sub in subtags[1:]:
        if len(sub) == 4 and sub.isalpha() and sub.title() not in cldr.scripts:
            return f"{tag!r}: {sub!r} is not a script; write e.g. 'zh-hant'"
        if len(sub) == 2 and sub.isalpha() and sub.upper() not in cldr.territories:
            return f"{tag!r}: {sub!r} is not a region; write e.g. 'pt-br' or just {base!r}"
    return ""


def _domain_problem(domain: str) -> str:
    if domain.startswith("@") and DOMAIN.match(domain[1:]):
        return f"{domain!r}: write the domain without '@', as {domain[1:]!r}"
    if "@" in domain:
        return f"{domain!r} is an address; match on its domain, {domain.rpartition('@')[2]!r}"
    if (
        len(domain) > 253
        or not DOMAIN.match(domain)
        or any(len(label) > 63 or label.endswith("-") for label in domain.split("."))
    ):
        return f"{domain!r} is not a domain name; write one such as 'example.com'"
    return ""


def match_problems(key: str, values: Iterable[str]) -> list[str]:
    """What is wrong with a ``match`` key's values on their own: a language that is no
    language (``jp``), a domain that is no domain (``@x.in``)."""
    check = {"language": _language_problem, "domain": _domain_problem}.get(key)
    return [problem for v in values if check and (problem := check(v))]


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _parse_warning(text: Any) -> Warning:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a warning; write '50%' or '1h before'")
    t = text.strip()
    if t.endswith("%"):
        try:
            pct = float(t[:-1])
        except ValueError:
            raise ValueError(f"{t!r} is not a percentage; write it like '50%'") from None
        if not 0 < pct < 100:
            raise ValueError(f"{t!r} must lie between 0% and 100% of the target")
        return Warning(t, fraction=pct / 100)
    if t.endswith("before"):
        return Warning(t, before=parse_duration(t.removesuffix("before")))
    raise ValueError(f"{t!r} is not a warning; write '50%' or '1h before'")


def _parse_promise(
    raw: Any, source: str, index: int, problems: list[Problem]
) -> PromiseRule | None:
    if not isinstance(raw, dict):
        problems.append(Problem(source, f"promise[{index}]", "must be a table ([[promise]])"))
        return None
    name = raw.get("name")
    where = name if isinstance(name, str) and name else f"promise[{index}]"
    start = len(problems)

    def bad(key: str, message: str) -> None:
        problems.append(Problem(source, f"{where}:{key}", message))

    for key in sorted(set(raw) - PROMISE_KEYS):
        bad(key, f"unknown key; known keys are {', '.join(sorted(PROMISE_KEYS))}")
    if not isinstance(name, str) or not name:
        bad("name", 'missing: every promise needs a name, such as name = "gold-first-reply"')
    kind = raw.get("kind")
    if kind not in KINDS:
        bad("kind", f"{kind!r} is not a kind; use one of {', '.join(KINDS)}")
    target = timedelta(0)
    target_days = 0
    days: int | None = None
    try:
        days = business_days(raw.get("target", ""))
        days_ok = True
    except ValueError as exc:
        days_ok = False
        bad("target", str(exc))
    if "target" not in raw:
        bad("target", 'missing: how long the rep has to answer, such as target = "4h"')
    elif not days_ok:
        pass
    elif days is not None:
        target_days = days
        target = timedelta(days=target_days)
        if not 0 < target_days <= 366:
            bad("target", f"{raw['target']!r}: use 1 to 366 business days, such as '2bd'")
        if raw.get("clock", "business") != "business":
            bad("target", "business days ('2bd') count on the business clock; use '2d' here")
    else:
        try:
            target = parse_duration(raw["target"], business=True)
            if target <= timedelta(0):
                bad(
                    "target",
                    'is zero, so the promise is breached the moment mail arrives; use e.g. "4h"',
                )
        except ValueError as exc:
            bad("target", str(exc))
    clock = raw.get("clock", "business")
    if clock not in CLOCKS:
        bad("clock", f"{clock!r} is not a clock; use one of {', '.join(CLOCKS)}")
    hours_of = raw.get("hours_of", "rep")
    if hours_of not in HOURS_OF:
        bad("hours_of", f"{hours_of!r}: whose hours count must be one of {', '.join(HOURS_OF)}")
    match = Match()
    m = raw.get("match", {})
    if not isinstance(m, dict):
        bad("match", 'must be a table, such as match = { tier = ["gold"] }')
    else:
        values: dict[str, frozenset[str]] = {}
        for key, value in m.items():
            if key not in MATCH_KEYS:
                bad(f"match.{key}", f"unknown key; match on {', '.join(sorted(MATCH_KEYS))}")
                continue
            items = _strings(value)
            if items is None or not items:
                bad(f"match.{key}", "must be a string or a non-empty list of strings")
                continue
            for problem in match_problems(key, (v.lower() for v in items)):
                bad(f"match.{key}", problem)
            values[key] = frozenset(v.lower() for v in items)
        match = Match(**values)
    warnings: list[Warning] = []
    warn_raw = raw.get("warn", [])
    if not isinstance(warn_raw, list):
        bad("warn", 'must be a list, such as warn = ["50%", "1h before"]')
    else:
        for w in warn_raw:
            try:
                warning = _parse_warning(w)
            except ValueError as exc:
                bad("warn", str(exc))
                continue
            if warning.before is not None and target and warning.before >= target:
                bad(
                    "warn",
                    f"{warning.label!r} falls before the clock starts (target {raw.get('target')})",
                )
                continue
            warnings.append(warning)
    escalate_to = raw.get("escalate_to", "")
    if escalate_to and (not isinstance(escalate_to, str) or not EMAIL.match(escalate_to)):
        bad(
            "escalate_to",
            f'{escalate_to!r} is not an email address; name the lead, such as "lead@example.com"',
        )
    levels: list[timedelta] = []
    after_raw = raw.get("escalate_after", ["0h"])
    after_items = _strings(after_raw)
    if after_items is None:
        bad("escalate_after", 'must be a list of durations after the breach, such as ["0h", "4h"]')
    else:
        for a in after_items:
            try:
                levels.append(parse_duration(a) if a.strip() not in ("0", "") else timedelta(0))
            except ValueError as exc:
                bad("escalate_after", str(exc))
        if levels != sorted(levels):
            bad("escalate_after", "levels must grow: each later than the one before")
    hook = raw.get("webhook", "")
    if not isinstance(hook, str):
        bad("webhook", 'must be a URL such as "https://hooks.example/..."')
    elif hook and (problem := check_shape(hook)):
        # The full policy (public https hosts only) needs config.toml's allowed hosts: it is
        # checked again when the escalation is posted.
        bad("webhook", problem)
    if len(problems) > start:
        return None
    assert isinstance(name, str) and isinstance(kind, str)
    return PromiseRule(
        name=name,
        kind=kind,
        target=target,
        source=source,
        target_days=target_days,
        clock=str(clock),
        hours_of=str(hours_of),
        match=match,
        warn=tuple(sorted(warnings, key=lambda w: w.offset(target))),
        escalate_to=str(escalate_to),
        escalate_after=tuple(levels) or (timedelta(0),),
        webhook=str(raw.get("webhook", "")),
        description=str(raw.get("description", "")),
    )


class _Ruled(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def match(self) -> Match: ...


def shadowed(rules: Sequence[_Ruled], what: str) -> list[Problem]:
    """Rules that can never apply because an earlier one (in load order, across files) accepts
    every client they do: the first rule that matches wins, so the later one is dead."""
    problems = []
    for i, rule in enumerate(rules):
        winner = next((r for r in rules[:i] if r.match.covers(rule.match)), None)
        if winner is None:
            continue
        if winner.source == rule.source:
            where, fix = "earlier in this file", "move this rule above it"
        else:
            where = f"in {winner.source}"
            fix = (
                f"files load in name order ({load_order(rules)}), so move this rule into "
                f"{Path(winner.source).name} above it or rename the files"
            )
        problems.append(
            Problem(
                rule.source,
                f"{rule.name}:match",
                f"can never apply: the {what} {winner.name!r} ({winner.match.describe()}) "
                f"{where} matches every client this one does ({rule.match.describe()}), and the "
                f"first match wins; {fix}, or narrow the match",
            )
        )
    return problems


def load_order(rules: Iterable[_Ruled] | Iterable[str]) -> str:
    """``10-lang.toml, then 20-tier.toml``: the order rule files are read in, which is the order
    their rules are tried in."""
    names = [Path(r if isinstance(r, str) else r.source).name for r in rules]
    return ", then ".join(dict.fromkeys(names))


def rule_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.toml")) if path.is_dir() else [path]


def parse_rules(files: Iterable[tuple[str, str]]) -> tuple[RuleSet, list[Problem]]:
    """Parse (file name, TOML text) pairs; return the rule set and every problem found."""
    problems: list[Problem] = []
    rules: list[PromiseRule] = []
    raw_sections: dict[str, list[dict[str, Any]]] = {}
    sources = []
    for source, text in files:
        sources.append(source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            problems.append(Problem(source, "", f"not valid TOML: {exc}"))
            continue
        for key in sorted(set(data) - TOP_KEYS):
            problems.append(
                Problem(source, key, f"unknown section; use {', '.join(sorted(TOP_KEYS))}")
            )
        for section in TOP_KEYS - {"promise"}:
            items = data.get(section, [])
            if isinstance(items, list):
                raw_sections.setdefault(section, []).extend(
                    {**item, "_source": source} for item in items if isinstance(item, dict)
                )
        promises = data.get("promise", [])
        if not isinstance(promises, list):
            problems.append(Problem(source, "promise", "write each promise as [[promise]]"))
            continue
        for i, raw in enumerate(promises):
            rule = _parse_promise(raw, source, i, problems)
            if rule:
                rules.append(rule)
    names = [r.name for r in rules]
    for i, rule in enumerate(rules):
        if rule.name in names[:i]:
            problems.append(
                Problem(rule.source, f"{rule.name}:name", "an earlier rule has this name too")
            )
    first_reply = [r for r in rules if r.kind == "first_reply"]
    if not any(r.match.empty for r in first_reply) and not problems:
        problems.append(
            Problem(
                ", ".join(sources) or "rules",
                "default",
                "no default rule: add a first_reply [[promise]] with no match, "
                "so every client is covered",
            )
        )
    for kind in KINDS:
        problems += shadowed([r for r in rules if r.kind == kind], f"{kind} promise")
    return RuleSet(tuple(rules), tuple(sources), raw_sections), problems


def load_rules(path: Path) -> RuleSet:
    """Load every rule file under ``path``; raise RulesError listing every problem."""
    files = rule_files(path)
    if not files or not all(f.exists() for f in files):
        raise RulesError([Problem(str(path), "", "no rule files found (expected rules/*.toml)")])
    texts, unreadable = [], []
    for f in files:
        try:
            texts.append((str(f), f.read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            unreadable.append(Problem(str(f), "", f"not UTF-8 text: {exc.reason}"))
        except OSError as exc:
            unreadable.append(Problem(str(f), "", f"cannot read: {exc.strerror}"))
    ruleset, problems = parse_rules(texts)
    problems = unreadable + problems
    if problems:
        raise RulesError(problems)
    return ruleset


def _all_rules(ruleset: RuleSet) -> list[_Ruled]:
    """Promises, follow-up, thank-you and meeting rules: everything with a ``match``."""
    from agent.cadences import parse_cadences  # they build on this module
    from agent.meetings import parse_meeting_rules

    cadences = parse_cadences(ruleset.raw)[0]
    return [
        *ruleset.promises,
        *cadences.follow_ups,
        *cadences.thank_yous,
        *parse_meeting_rules(ruleset.raw.get("meeting", []))[0],
    ]


def name_problems(
    ruleset: RuleSet, mailboxes: Collection[str], teams: Collection[str]
) -> list[Problem]:
    """``match.mailbox`` and ``match.team`` values that no configured mailbox has: typos
    (``emia`` for ``emea``), since the config names every mailbox and team there is."""
    problems = []
    known_mailboxes = {m.lower() for m in mailboxes}
    known_teams = {t.lower() for t in teams if t}
    for r in _all_rules(ruleset):
        for mb in sorted(r.match.mailbox - known_mailboxes):
            listed = f" The mailboxes are: {_listed(known_mailboxes)}."
            problems.append(
                Problem(
                    r.source,
                    f"{r.name}:match.mailbox",
                    f"no mailbox is named {mb!r} in the config, so this never fires."
                    f"{_close(mb, known_mailboxes) or listed}",
                )
            )
        for team in sorted(r.match.team - known_teams):
            problems.append(
                Problem(
                    r.source,
                    f"{r.name}:match.team",
                    f"no mailbox in the config is in team {team!r}, so this never fires."
                    f"{_close(team, known_teams) or f' The teams are: {_listed(known_teams)}.'}",
                )
            )
    return problems


def lint_against(
    ruleset: RuleSet,
    clients: Collection[Client],
    mailboxes: Collection[str],
    teams: Collection[str] = (),
) -> list[Problem]:
    """Rules that are valid but can never fire for the clients, mailboxes and teams we have:
    a tier or tag no client has, a mailbox or team the config does not name (``emia`` for
    ``emea``), each with the near miss. Promises, follow-up, thank-you and meeting rules are
    all checked.
    """
    problems = []
    tiers = {c.tier for c in clients}
    tags = {t.lower() for c in clients for t in c.tags}
    for r in _all_rules(ruleset):
        for tier in sorted(r.match.tier - tiers):
            problems.append(
                Problem(
                    r.source,
                    f"{r.name}:match.tier",
                    f"no client has tier {tier!r}, so this never fires."
                    f"{_close(tier, tiers) or f' The tiers are: {_listed(tiers)}.'}",
                )
            )
        if r.match.tags and not r.match.tags & tags:
            for tag in sorted(r.match.tags):
                problems.append(
                    Problem(
                        r.source,
                        f"{r.name}:match.tags",
                        f"no client has tag {tag!r}.{_close(tag, tags)}",
                    )
                )
    return problems + name_problems(ruleset, mailboxes, teams)


def _listed(words: Iterable[str]) -> str:
    return ", ".join(sorted(w for w in words if w)) or "(none)"
