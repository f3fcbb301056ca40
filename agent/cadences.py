"""``[[follow_up]]`` and ``[[thank_you]]`` rule tables -> validated cadences. Pure.

:func:`parse_cadences` takes ``RuleSet.raw`` (each table carries a ``_source`` key naming its
file) and returns the cadences with every problem found, each as
``Problem(file, "rule-name:key", "what is wrong and what would be right")``. As with promises,
tables keep file order and the first rule whose ``match`` accepts a client wins, so a rule with
no ``match`` belongs last; a rule after such a catch-all is reported as never applying.

How long to wait is written two ways, both counted in the *client's* calendar:

- ``"3d"``: three of the client's business days. The note goes out on the third business day
  after the clock starts, at the same local time of day (or at the next opening if that day
  closes earlier). Weekends, public holidays and closures are skipped, never counted.
- ``"48h"``, ``"1h30m"``: that much of the client's open business time, as promise targets are
  counted; ``"16h"`` is two 8-hour business days.

``propose_slots`` makes follow-up steps carry meeting times: ``true`` for every step, or a list
of step numbers (``[2]``: only the second). Those steps become proposals (see
agent/meetings.py) with times that suit the client and the rep.

``delay``, ``delay_feedback`` and ``min_gap`` are plain elapsed time (``"2h"``, ``"1d"`` = 24
hours); the planner then moves the note into the client's business hours and send window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.businesstime import BusinessCalendar, Shift, parse_shifts
from agent.durations import business_days, parse_duration, parts
from agent.errors import Problem
from agent.model import Client
from agent.rules import MATCH_KEYS, Match, match_problems, shadowed

MODES = ("draft", "send")
# Chasing a client more often than this is no longer following up; it is spam.
MAX_STEPS = 6
FOLLOW_UP_KEYS = {
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
    "propose_slots",
}
THANK_YOU_KEYS = {
    "name",
    "description",
    "match",
    "delay",
    "feedback",
    "delay_feedback",
    "template",
    "mode",
    "send_window",
}
_DAYS = re.compile(r"^\s*(\d+)\s*d\s*$")
_TEMPLATE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Wait:
    """A wait in the client's calendar: whole business days, or an amount of business time.

    Exactly one of ``days`` and ``business`` is non-zero; ``text`` is what the rule file said.
    """

    text: str
    days: int = 0
    business: timedelta = timedelta(0)

    @classmethod
    def parse(cls, text: str) -> Wait:
        """``"3d"`` or ``"3bd"`` -> 3 business days; ``"48h"``, ``"1h30m"`` -> business time.

        Raises ``ValueError`` for anything else, for a mix such as ``"1d4h"``, and for zero.
        """
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a duration; write business days ('3d') or hours")
        m = _DAYS.match(text)
        days = int(m[1]) if m else business_days(text)
        if days is not None:
            if days < 1:
                raise ValueError(f"{text!r} is no wait at all; use at least '1d'")
            if days > 366:  # counting them would walk the calendar past its end
                raise ValueError(f"{text!r} is longer than a year; use e.g. '3d'")
            return cls(text.strip(), days=days)
        span = parse_duration(text, business=True)
        if "weeks" in parts(text):
            raise ValueError(
                f"{text!r}: a wait counts business days; write them, such as '5d' for a week"
            )
        if "days" in parts(text):
            raise ValueError(
                f"{text!r}: write whole business days ('3d') or business hours ('48h'), "
                "not both and not part days"
            )
        if span <= timedelta(0):
            raise ValueError(f"{text!r} is no wait at all; use e.g. '3d' or '48h'")
        return cls(text.strip(), business=span)

    def after(self, cal: BusinessCalendar, start: datetime) -> datetime:
        """The UTC instant this wait ends when it starts at ``start``; always an open instant.

        The clock starts at the calendar's next opening. Raises ``ValueError`` like
        ``BusinessCalendar.add`` for a calendar that never opens.
        """
        begin = cal.next_open(start)
        if not self.days:
            end = cal.add(begin, self.business)
            # A wait that runs out exactly at closing time would land on a closed instant.
            return cal.next_open(end)
        return cal.add_days(begin, self.days)

    def __str__(self) -> str:
        if self.days:
            return f"{self.days} business day{'s' if self.days != 1 else ''}"
        hours = self.business.total_seconds() / 3600
        return f"{hours:g} business hour{'s' if hours != 1 else ''}"


@dataclass(frozen=True)
class FollowUpRule:
    """When to chase a client who has not answered the rep's last message."""

    name: str
    source: str
    match: Match = field(default_factory=Match)
    after: Wait = Wait("3d", days=3)
    steps: int = 3
    template: str = "follow_up"
    mode: str = ""  # "" means the outbox's configured mode
    out_of_office_hold: Wait = Wait("3d", days=3)
    send_window: tuple[Shift, ...] = ()  # () means the client's business hours
    min_gap: timedelta = timedelta(hours=24)
    description: str = ""
    propose_slots: frozenset[int] = frozenset()  # the steps whose note proposes meeting times


@dataclass(frozen=True)
class ThankYouRule:
    """When to thank a client after a meeting, and whether to ask for feedback as well."""

    name: str
    source: str
    match: Match = field(default_factory=Match)
    delay: timedelta = timedelta(hours=2)
    feedback: bool = False
    delay_feedback: timedelta = timedelta(days=1)
    template: str = "thank_you"
    mode: str = ""
    send_window: tuple[Shift, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Cadences:
    follow_ups: tuple[FollowUpRule, ...] = ()
    thank_yous: tuple[ThankYouRule, ...] = ()

    def follow_up_for(self, client: Client, mailbox: str, team: str = "") -> FollowUpRule | None:
        """The first follow-up rule that accepts the client, or ``None``."""
        return next((r for r in self.follow_ups if r.match.accepts(client, mailbox, team)), None)

    def thank_you_for(self, client: Client, mailbox: str, team: str = "") -> ThankYouRule | None:
        """The first thank-you rule that accepts the client, or ``None``."""
        return next((r for r in self.thank_yous if r.match.accepts(client, mailbox, team)), None)


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


class _Table:
    """One raw table being checked; collects problems as ``file`` + ``name:key``."""

    def __init__(
        self, raw: dict[str, Any], section: str, index: int, known: set[str], problems: list
    ) -> None:
        self.raw = raw
        self.source = str(raw.get("_source", "rules"))
        name = raw.get("name")
        self.name = name if isinstance(name, str) and name.strip() else ""
        self.where = self.name or f"{section}[{index}]"
        self.problems: list[Problem] = problems
        self.start = len(problems)
        for key in sorted(set(raw) - known - {"_source"}):
            self.bad(key, f"unknown key; known keys are {', '.join(sorted(known))}")
        if not self.name:
            self.bad("name", f'missing: every [[{section}]] needs a name, such as name = "gentle"')

    @property
    def ok(self) -> bool:
        return len(self.problems) == self.start

    def bad(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.source, f"{self.where}:{key}", message))

    def wait(self, key: str, default: Wait) -> Wait:
        if key not in self.raw:
            return default
        try:
            return Wait.parse(self.raw[key])
        except ValueError as exc:
            self.bad(key, str(exc))
            return default

    def span(self, key: str, default: timedelta, *, allow_zero: bool = True) -> timedelta:
        if key not in self.raw:
            return default
        value = self.raw[key]
        try:
            if not isinstance(value, str):
                raise ValueError(f"{value!r} is not a duration; write it like '2h' or '1d'")
            span = (
                timedelta(0) if value.strip() in ("0", "0h", "0m", "0d") else parse_duration(value)
            )
        except ValueError as exc:
            self.bad(key, str(exc))
            return default
        if span == timedelta(0) and not allow_zero:
            self.bad(key, f"{value!r} is no time at all; use e.g. '2h'")
        return span

    def match(self) -> Match:
        m = self.raw.get("match", {})
        if not isinstance(m, dict):
            self.bad("match", 'must be a table, such as match = { tier = ["gold"] }')
            return Match()
        values: dict[str, frozenset[str]] = {}
        for key, value in m.items():
            if key not in MATCH_KEYS:
                self.bad(f"match.{key}", f"unknown key; match on {', '.join(sorted(MATCH_KEYS))}")
                continue
            items = _strings(value)
            if not items:
                self.bad(f"match.{key}", "must be a string or a non-empty list of strings")
                continue
            for problem in match_problems(key, (v.lower() for v in items)):
                self.bad(f"match.{key}", problem)
            values[key] = frozenset(v.lower() for v in items)
        return Match(**values)

    def mode(self) -> str:
        mode = self.raw.get("mode", "")
        if mode not in ("", *MODES):
            self.bad("mode", f"{mode!r} is not a mode; use one of {', '.join(MODES)}")
            return ""
        return str(mode)

    def template(self, default: str) -> str:
        value = self.raw.get("template", default)
        if not isinstance(value, str) or not _TEMPLATE.match(value):
            self.bad(
                "template",
                f"{value!r} is not a template purpose; name a folder under templates/, "
                f'such as template = "{default}"',
            )
            return default
        return value

    def window(self) -> tuple[Shift, ...]:
        if "send_window" not in self.raw:
            return ()
        value = self.raw["send_window"]
        try:
            if not isinstance(value, str):
                raise ValueError(f"{value!r} is not a time range")
            shifts = parse_shifts(value)
        except ValueError as exc:
            self.bad("send_window", f"{exc}; write client-local hours such as '09:30-16:30'")
            return ()
        if not shifts:
            self.bad("send_window", "is empty, so nothing would ever be sent; use '09:30-16:30'")
        return shifts

    def description(self) -> str:
        value = self.raw.get("description", "")
        if not isinstance(value, str):
            self.bad("description", "must be a string")
            return ""
        return value


def _follow_up(raw: dict[str, Any], index: int, problems: list[Problem]) -> FollowUpRule | None:
    t = _Table(raw, "follow_up", index, FOLLOW_UP_KEYS, problems)
    match = t.match()
    after = t.wait("after", FollowUpRule.after)
    if after.business and after.business < timedelta(hours=1):
        # 'm' is minutes; chasing a client minutes after writing is a months typo.
        t.bad(
            "after",
            f"{after.text!r} is read as {after.business.total_seconds() / 60:g} minutes ('m' is "
            "minutes, there is no unit for months); wait business days, such as '3d' or '40d'",
        )
    steps = raw.get("steps", 3)
    if isinstance(steps, bool) or not isinstance(steps, int):
        t.bad("steps", f"{steps!r} is not a whole number; write e.g. steps = 3")
        steps = 3
    elif not 1 <= steps <= MAX_STEPS:
        t.bad("steps", f"{steps} is out of range: send between 1 and {MAX_STEPS} follow-ups")
    hold = t.wait("out_of_office_hold", FollowUpRule.out_of_office_hold)
    min_gap = t.span("min_gap", FollowUpRule.min_gap)
    propose_slots = _proposing_steps(t, raw.get("propose_slots", False), steps)
    rule = FollowUpRule(
        name=t.name,
        source=t.source,
        match=match,
        after=after,
        steps=steps,
        template=t.template("follow_up"),
        mode=t.mode(),
        out_of_office_hold=hold,
        send_window=t.window(),
        min_gap=min_gap,
        description=t.description(),
        propose_slots=propose_slots,
    )
    return rule if t.ok else None


def _proposing_steps(t: _Table, value: Any, steps: int) -> frozenset[int]:
    """``propose_slots``: true (every step), false, or a list of step numbers within 1..steps."""
    if isinstance(value, bool):
        return frozenset(range(1, steps + 1)) if value else frozenset()
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        outside = [v for v in value if not 1 <= v <= steps]
        if outside:
            t.bad(
                "propose_slots",
                f"step {outside[0]} does not exist: this rule sends steps 1 to {steps}",
            )
            return frozenset()
        return frozenset(value)
    t.bad(
        "propose_slots",
        f"{value!r}: write propose_slots = true, false, or the steps that propose times, "
        "such as [2]",
    )
    return frozenset()


def _thank_you(raw: dict[str, Any], index: int, problems: list[Problem]) -> ThankYouRule | None:
    t = _Table(raw, "thank_you", index, THANK_YOU_KEYS, problems)
    match = t.match()
    delay = t.span("delay", ThankYouRule.delay)
    feedback = raw.get("feedback", False)
    if not isinstance(feedback, bool):
        t.bad("feedback", f"{feedback!r}: write feedback = true or feedback = false")
        feedback = False
    delay_feedback = t.span("delay_feedback", ThankYouRule.delay_feedback)
    if "delay_feedback" in raw and not feedback:
        t.bad("delay_feedback", "is set but feedback is off; add feedback = true or remove it")
    elif feedback and delay_feedback <= delay:
        t.bad(
            "delay_feedback",
            f"the survey would arrive before or with the thank-you ({delay_feedback} <= "
            f"{delay}); make delay_feedback longer than delay, such as '1d'",
        )
    rule = ThankYouRule(
        name=t.name,
        source=t.source,
        match=match,
        delay=delay,
        feedback=feedback,
        delay_feedback=delay_feedback,
        template=t.template("thank_you"),
        mode=t.mode(),
        send_window=t.window(),
        description=t.description(),
    )
    return rule if t.ok else None


def _order(rules: list[Any], section: str, problems: list[Problem]) -> None:
    """Duplicate names, and rules that an earlier rule hides."""
    seen: dict[str, Any] = {}
    for rule in rules:
        if rule.name in seen:
            problems.append(
                Problem(rule.source, f"{rule.name}:name", f"an earlier [[{section}]] has this name")
            )
        seen[rule.name] = rule
    problems += shadowed(rules, f"[[{section}]] rule")


def parse_cadences(raw: Mapping[str, list[dict[str, Any]]]) -> tuple[Cadences, list[Problem]]:
    """Validate ``RuleSet.raw``'s ``follow_up`` and ``thank_you`` tables.

    Returns ``(cadences, problems)``; a table with any problem is left out of the cadences, and
    every problem is listed. Never raises for bad input.
    """
    problems: list[Problem] = []
    follow_ups = []
    for i, table in enumerate(raw.get("follow_up", [])):
        rule = _follow_up(table, i, problems)
        if rule is not None:
            follow_ups.append(rule)
    thank_yous = []
    for i, table in enumerate(raw.get("thank_you", [])):
        thanks = _thank_you(table, i, problems)
        if thanks is not None:
            thank_yous.append(thanks)
    _order(follow_ups, "follow_up", problems)
    _order(thank_yous, "thank_you", problems)
    return Cadences(tuple(follow_ups), tuple(thank_yous)), problems
