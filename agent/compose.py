"""Templates in the client's language -> subject, text and HTML -> a threaded ``EmailMessage``.

A template is one file, ``templates/<purpose>/<lang>.j2``, holding up to three blocks::

    {% block subject %}...{% endblock %}   required, one line
    {% block text %}...{% endblock %}      required, the plain-text body
    {% block html %}...{% endblock %}      optional; without it the message is plain text

The whole file renders once per part, so macros and ``{% set %}`` at the top serve every block.
Subject and text render without escaping; the HTML part renders in a second environment with
autoescaping and is wrapped in a document carrying ``lang`` and, for right-to-left languages,
``dir="rtl"``.

Safety: templates run in Jinja2's immutable sandbox (no attribute starting with ``_``, no
mutation of the data) with limits: a template, ``{% include %}`` or ``{% import %}`` whose real
path lies outside the templates folder (a symlink to ``/proc/self/environ``) is not found; a
render stops past ``MAX_RENDER_SECONDS`` or ``MAX_RENDER_CHARS``, and ``*``, ``**``, ``%`` and
``format`` refuse results past that size. Every missing value is an error (``StrictUndefined``)
raised as
:class:`agent.errors.TemplateError` naming file and line, before anything is sent. Optional
values are read with ``{{ value | fallback("...") }}``. The data each purpose receives is the
contract in :data:`CONTRACTS`; templates/README.md documents it for people.

Language: ``requested tag -> templates/fallbacks.toml -> base language -> team default -> en``.
Dates, times and zone names are formatted by :mod:`agent.localefmt` in the requested locale
when the template is in that language, else in the template's language.
"""

from __future__ import annotations

import email.policy
import os
import re
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Template, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.loaders import split_template_path
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from agent import localefmt
from agent.errors import Problem, TemplateError
from agent.model import Address
from agent.providers.protocol import KEY_HEADER, key_tag

BLOCKS = ("subject", "text", "html")
REQUIRED_BLOCKS = ("subject", "text")
FALLBACKS_FILE = "fallbacks.toml"
LAST_RESORT = "en"

# --- the context contract --------------------------------------------------------------------
# A field name ending in "?" is optional: templates must read it with `fallback` or `is defined`.
# A list holds one schema, the schema of its items.

_CLIENT: dict[str, Any] = {
    "name": str,
    "first_name": str,
    "last_name?": str,
    "company": str,
    "honorific?": str,
    "gender?": str,
    "email?": str,
    "zone?": str,
}
_REP: dict[str, Any] = {
    "name": str,
    "first_name?": str,
    "company?": str,
    "title?": str,
    "email?": str,
    "phone?": str,
    "signature?": str,
}
_THREAD: dict[str, Any] = {"subject": str}
_MEETING: dict[str, Any] = {
    "summary": str,
    "start": datetime,
    "end?": datetime,
    "zone": str,
    "next_steps?": [str],
}
# Reminders and escalations get what the promise planner knows (agent/promises.py).
_TEAM_CLIENT: dict[str, Any] = {"name": str, "company": str}
_TEAM_REP: dict[str, Any] = {"name": str, "email?": str}
_PROMISE: dict[str, Any] = {
    "rep": _TEAM_REP,
    "client": _TEAM_CLIENT,
    "thread": _THREAD,
    "received": datetime,
    "deadline": datetime,
    "rep_zone": str,
    "rule": str,
}

CONTRACTS: dict[str, dict[str, Any]] = {
    "thank_you": {"client": _CLIENT, "rep": _REP, "meeting": _MEETING},
    "follow_up": {
        "client": _CLIENT,
        "rep": _REP,
        "thread": _THREAD,
        "step": int,
        "steps?": int,
        "last_sent": datetime,
        "zone": str,
    },
    "feedback": {"client": _CLIENT, "rep": _REP, "meeting": _MEETING, "survey_url?": str},
    # The weekly digest (agent/digest.py): a figure's value is "" when too few items stand
    # behind it; ``name`` picks its label and ``kind`` a chart's title in the template.
    "weekly": {
        "reader": {"name": str},
        "team": str,
        "start": datetime,
        "end": datetime,
        "zone": str,
        "figures": [{"name": str, "value": str, "n": int}],
        "charts": [{"kind": str, "cid": str}],
        "breaches": [{"client": str, "rep": str, "subject": str, "deadline": datetime}],
        "quiet": [{"client": str, "rep": str, "silent_days": int, "subject": str}],
    },
    "proposal": {
        "client": _CLIENT,
        "rep": _REP,
        "slots": [{"start": datetime, "end": datetime}],
        "client_zone": str,
        "rep_zone": str,
        "duration_minutes": int,
    },
    "invitation": {
        "client": _CLIENT,
        "rep": _REP,
        "meeting": {"summary": str, "start": datetime, "end": datetime, "zone": str},
        "client_zone": str,
        "rep_zone": str,
        "duration_minutes": int,
    },
    "cancellation": {
        "client": _CLIENT,
        "rep": _REP,
        "meeting": {"summary": str, "start": datetime, "end": datetime, "zone": str},
        "client_zone": str,
        "rep_zone": str,
        "duration_minutes": int,
    },
    "reminder": {**_PROMISE, "remaining": timedelta, "warning?": str},
    "escalation": {
        **_PROMISE,
        "lead": {"name": str, "email?": str},
        "overdue": timedelta,
        "level": int,
    },
    "digest": {
        "reader": {"name": str},
        "items": [{"kind": str, "client": str, "subject": str, "deadline": datetime, "rule?": str}],
        "zone": str,
    },
    "attention": {
        "lead": {"name": str, "email?": str},
        "rep": _TEAM_REP,
        "note": {"kind": str, "to": str, "subject": str, "reason": str},
        "since": datetime,
        "waiting": timedelta,
        "rep_zone": str,
    },
}
# Purposes whose reader is on the team (rep or lead), not the client.
INTERNAL_PURPOSES = frozenset({"reminder", "escalation", "digest", "attention", "weekly"})
# Set by the composer for every template; a context may override ``locale``.
PROVIDED: dict[str, Any] = {"language": str, "locale": str, "direction": str}


def field_names(schema: Mapping[str, Any]) -> dict[str, bool]:
    """``{name: required}`` for one level of a contract schema."""
    return {key.rstrip("?"): not key.endswith("?") for key in schema}


def field_schema(schema: Mapping[str, Any], name: str) -> Any:
    """The schema of field ``name`` (optional or not); raises ``KeyError`` when absent."""
    if name in schema:
        return schema[name]
    return schema[f"{name}?"]


# --- sample data -----------------------------------------------------------------------------


# How a client's honorific is written in each sample language (the CRM stores it that way).
_SAMPLE_HONORIFICS = {
    "en": "Ms",
    "de": "Frau",
    "fr": "Madame",
    "es": "Sra.",
    "pt": "Sra.",
    "zh": "女士",
    "ar": "السيدة",
}


def sample_context(purpose: str, *, language: str = "en", minimal: bool = False) -> dict[str, Any]:
    """Plain sample data for ``purpose``, as the planners would pass it.

    ``language`` picks the client's honorific as that language writes it (``Frau``, ``女士``);
    languages that address people without one (ja, hi, te) get none. With ``minimal`` every
    optional field is left out, which is how ``templates check`` proves that templates fall
    back gracefully. Raises ``KeyError`` for a purpose with no contract.
    """
    from datetime import UTC

    client = {
        "name": "Anjali Rao",
        "first_name": "Anjali",
        "last_name": "Rao",
        "company": "Godavari Textiles",
        "email": "anjali.rao@godavari.example",
        "zone": "Asia/Kolkata",
        "gender": "female",
    }
    honorific = _SAMPLE_HONORIFICS.get(_norm(language).split("-")[0])
    if honorific:
        client["honorific"] = honorific
    rep = {
        "name": "Daniel Becker",
        "first_name": "Daniel",
        "company": "Northwind Analytics",
        "title": "Account Executive",
        "email": "daniel.becker@northwind.example",
        "phone": "+49 30 1234567",
    }
    thread = {"subject": "Pricing for the 2025 rollout"}
    team_rep = {"name": rep["name"], "email": rep["email"]}
    team_client = {"name": client["name"], "company": client["company"]}
    meeting_start = datetime(2025, 3, 14, 4, 30, tzinfo=UTC)
    meeting = {
        "summary": "Rollout planning",
        "start": meeting_start,
        "end": meeting_start + timedelta(hours=1),
        "zone": "Asia/Kolkata",
        "next_steps": ["Send the revised quote", "Share the onboarding plan"],
    }
    data: dict[str, dict[str, Any]] = {
        "thank_you": {"client": client, "rep": rep, "meeting": meeting},
        "follow_up": {
            "client": client,
            "rep": rep,
            "thread": thread,
            "step": 1,
            "steps": 3,
            "last_sent": datetime(2025, 3, 10, 9, 15, tzinfo=UTC),
            "zone": "Asia/Kolkata",
        },
        "feedback": {
            "client": client,
            "rep": rep,
            "meeting": meeting,
            "survey_url": "https://survey.northwind.example/r/7f3a",
        },
        "proposal": {
            "client": client,
            "rep": rep,
            "slots": [
                {
                    "start": datetime(2025, 3, 18, 9, 0, tzinfo=UTC),
                    "end": datetime(2025, 3, 18, 9, 30, tzinfo=UTC),
                },
                {
                    "start": datetime(2025, 3, 19, 11, 30, tzinfo=UTC),
                    "end": datetime(2025, 3, 19, 12, 0, tzinfo=UTC),
                },
                {
                    "start": datetime(2025, 3, 20, 8, 0, tzinfo=UTC),
                    "end": datetime(2025, 3, 20, 8, 30, tzinfo=UTC),
                },
            ],
            "client_zone": "Asia/Kolkata",
            "rep_zone": "Europe/Berlin",
            "duration_minutes": 30,
        },
        "invitation": {
            "client": client,
            "rep": rep,
            "meeting": {
                "summary": "Godavari Textiles – Daniel Becker",
                "start": datetime(2025, 3, 19, 11, 30, tzinfo=UTC),
                "end": datetime(2025, 3, 19, 12, 0, tzinfo=UTC),
                "zone": "Asia/Kolkata",
            },
            "client_zone": "Asia/Kolkata",
            "rep_zone": "Europe/Berlin",
            "duration_minutes": 30,
        },
        "reminder": {
            "rep": team_rep,
            "client": team_client,
            "thread": thread,
            "received": datetime(2025, 3, 14, 6, 0, tzinfo=UTC),
            "deadline": datetime(2025, 3, 14, 14, 0, tzinfo=UTC),
            "rep_zone": "Europe/Berlin",
            "rule": "gold-4h",
            "remaining": timedelta(hours=2, minutes=30),
            "warning": "50%",
        },
        "escalation": {
            "lead": {"name": "Maria Schulz", "email": "maria.schulz@northwind.example"},
            "rep": team_rep,
            "client": team_client,
            "thread": thread,
            "received": datetime(2025, 3, 14, 6, 0, tzinfo=UTC),
            "deadline": datetime(2025, 3, 14, 14, 0, tzinfo=UTC),
            "rep_zone": "Europe/Berlin",
            "rule": "gold-4h",
            "overdue": timedelta(hours=3, minutes=15),
            "level": 1,
        },
        "attention": {
            "lead": {"name": "Maria Schulz", "email": "maria.schulz@northwind.example"},
            "rep": team_rep,
            "note": {
                "kind": "follow_up",
                "to": "kenji.sato@client.example",
                "subject": "Pricing for the Tokyo office",
                "reason": "cannot compose: ValueError: invalid address",
            },
            "since": datetime(2025, 3, 13, 9, 0, tzinfo=UTC),
            "waiting": timedelta(days=1, hours=2),
            "rep_zone": "Europe/Berlin",
        },
    }
    data["cancellation"] = data["invitation"]  # the same meeting, called off
    data["weekly"] = {
        "reader": {"name": "Maria Schulz"},
        "team": "EMEA",
        "start": datetime(2025, 3, 10, 0, 0, tzinfo=UTC),
        "end": datetime(2025, 3, 16, 23, 0, tzinfo=UTC),
        "zone": "Europe/Berlin",
        "figures": [
            {"name": "sla", "value": "92%", "n": 38},
            {"name": "first", "value": "2.5", "n": 21},
            {"name": "nps", "value": "", "n": 3},
            {"name": "csat", "value": "80%", "n": 10},
        ],
        "charts": [{"kind": "sla", "cid": "sla@followup"}, {"kind": "nps", "cid": "nps@followup"}],
        "breaches": [
            {
                "client": team_client["name"],
                "rep": team_rep["name"],
                "subject": thread["subject"],
                "deadline": datetime(2025, 3, 14, 14, 0, tzinfo=UTC),
            }
        ],
        "quiet": [
            {"client": "Kenji Sato", "rep": team_rep["name"], "silent_days": 23, "subject": "Q2"}
        ],
    }
    data["digest"] = {
        "reader": {"name": team_rep["name"]},
        "items": [
            {
                "kind": "reminder",
                "client": team_client["name"],
                "subject": thread["subject"],
                "deadline": datetime(2025, 3, 14, 14, 0, tzinfo=UTC),
                "rule": "gold",
            },
            {
                "kind": "escalation",
                "client": team_client["name"],
                "subject": thread["subject"],
                "deadline": datetime(2025, 3, 13, 9, 30, tzinfo=UTC),
            },
        ],
        "zone": "Europe/Berlin",
    }
    sample = data[purpose]
    if minimal:
        return _strip_optional(CONTRACTS[purpose], sample)
    return _copy(sample)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _strip_optional(schema: Any, value: Any) -> Any:
    if isinstance(schema, dict) and isinstance(value, dict):
        out = {}
        for key, sub in schema.items():
            name = key.rstrip("?")
            if key.endswith("?") or name not in value:
                continue
            out[name] = _strip_optional(sub, value[name])
        return out
    if isinstance(schema, list) and isinstance(value, list):
        return [_strip_optional(schema[0], item) for item in value]
    return value


# --- the sandbox -----------------------------------------------------------------------------


def _locale(context: Context, locale: str | None) -> str:
    return locale or str(context.get("locale") or context.get("language") or LAST_RESORT)


def _fallback(value: Any, default: Any = "") -> Any:
    """The value, or ``default`` when it is missing, ``None`` or blank."""
    if isinstance(value, Undefined) or value is None:
        return default
    if isinstance(value, str) and not value.strip():
        return default
    return value


class FilterInputError(ValueError):
    """A filter given the wrong kind of value; the message says which and what to use."""


# What a template author calls each kind of value, instead of Python's name or repr.
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true/false"),
    (datetime, "a date and time"),
    (timedelta, "a span of time"),
    (str, "text"),
    (int, "a number"),
    (float, "a number"),
    (list, "a list"),
    (tuple, "a list"),
    (dict, "a record"),
)
_TYPE_WORDS = {
    "NoneType": "an empty value",
    "Undefined": "an empty value",
    "StrictUndefined": "an empty value",
    "datetime.timedelta": "a span of time",
    "timedelta": "a span of time",
    "datetime.datetime": "a date and time",
    "datetime": "a date and time",
    "str": "text",
    "int": "a number",
    "float": "a number",
    "list": "a list",
    "tuple": "a list",
    "dict": "a record",
    "bool": "true/false",
}
_QUOTED_TYPE = re.compile(r"'(" + "|".join(re.escape(t) for t in _TYPE_WORDS) + r")'")
_TIMEDELTA_REPR = re.compile(r"datetime\.timedelta\([^()]{0,80}\)")
_DATETIME_REPR = re.compile(r"datetime\.datetime\([^()]{0,120}(?:\([^()]{0,80}\))?[^()]{0,40}\)")


def kind_of(value: Any) -> str:
    """``a span of time`` for a timedelta, ``an empty value`` for None: a value's kind in the
    words of a template author."""
    if value is None or isinstance(value, Undefined):
        return "an empty value"
    for cls, word in _KINDS:
        if isinstance(value, cls):
            return word
    return "a value of another kind"


def plain_message(message: str) -> str:
    """A Python error message in a template author's words: type names and reprs such as
    ``'NoneType'`` or ``datetime.timedelta(days=1)`` become ``an empty value``, ``a span of
    time``."""
    message = _TIMEDELTA_REPR.sub("a span of time", message)
    message = _DATETIME_REPR.sub("a date and time", message)
    message = re.sub(
        r"unsupported operand type\(s\) for ([^:]{1,3}): ", r"cannot compute \1 with ", message
    )
    message = _QUOTED_TYPE.sub(lambda m: _TYPE_WORDS[m[1]], message)
    message = re.sub(
        r"\b(an empty value|a span of time|a date and time|text|a number|a list|"
        r"a record) object\b",
        r"\1",
        message,
    )
    return re.sub(r"\bNone\b", "an empty value", message)


_HINTS = {
    "a span of time": "for a span of time use | duration",
    "a date and time": "for a date and time use | date, | datetime or | time",
    "a number": "for a number use | number, or | minutes for minutes",
}


def _expect(value: Any, cls: type | tuple[type, ...], name: str, wants: str) -> None:
    if isinstance(value, cls) and not isinstance(value, bool):
        return
    got = kind_of(value)
    hint = _HINTS.get(got, "")
    if got == "an empty value":
        hint = "the value is optional: use it inside {% if … %}, or give a default with | fallback"
    raise FilterInputError(
        f"the {name} filter takes {wants}, but was given {got}" + (f"; {hint}" if hint else "")
    )


@pass_context
def _f_datetime(
    context: Context, value: datetime, zone: str, format: str = "long", locale: str | None = None
) -> str:
    _expect(value, datetime, "datetime", "a date and time")
    return localefmt.format_datetime(value, zone, _locale(context, locale), format)


@pass_context
def _f_date(
    context: Context,
    value: datetime,
    zone: str | None = None,
    format: str = "long",
    locale: str | None = None,
) -> str:
    _expect(value, datetime, "date", "a date and time")
    return localefmt.format_date(value, zone, _locale(context, locale), format)


@pass_context
def _f_time(
    context: Context,
    value: datetime,
    zone: str,
    format: str = "short",
    locale: str | None = None,
    beside: str | None = None,
) -> str:
    _expect(value, datetime, "time", "a date and time")
    return localefmt.format_time(value, zone, _locale(context, locale), format, beside=beside)


@pass_context
def _f_weekday(context: Context, value: datetime, zone: str, locale: str | None = None) -> str:
    _expect(value, datetime, "weekday", "a date and time")
    return localefmt.format_weekday(value, zone, _locale(context, locale))


@pass_context
def _f_zone_name(
    context: Context, zone: str, at: datetime | None = None, locale: str | None = None
) -> str:
    return localefmt.zone_name(zone, _locale(context, locale), at=at)


@pass_context
def _f_duration(context: Context, value: timedelta, locale: str | None = None) -> str:
    _expect(value, timedelta, "duration", "a span of time")
    return localefmt.format_duration(value, _locale(context, locale))


@pass_context
def _f_minutes(context: Context, value: int, locale: str | None = None) -> str:
    _expect(value, int, "minutes", "a whole number of minutes")
    return localefmt.format_duration(timedelta(minutes=value), _locale(context, locale))


@pass_context
def _f_number(context: Context, value: float, locale: str | None = None) -> str:
    _expect(value, (int, float), "number", "a number")
    return localefmt.format_number(value, _locale(context, locale))


def _paragraphs(value: Any) -> Markup:
    """Plain text -> ``<p>`` per blank-line-separated paragraph, ``<br>`` per line break."""
    text = str(escape(value)).replace("\r\n", "\n").strip()
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return Markup("\n".join("<p>" + p.strip().replace("\n", "<br>\n") + "</p>" for p in paras))


def _lines(value: Any) -> Markup:
    """Plain text -> the same lines joined by ``<br>``, for use inside a paragraph."""
    text = str(escape(value)).replace("\r\n", "\n").strip()
    return Markup("<br>\n".join(line.strip() for line in text.split("\n")))


FILTERS: dict[str, Callable[..., Any]] = {
    "datetime": _f_datetime,
    "date": _f_date,
    "time": _f_time,
    "weekday": _f_weekday,
    "zone_name": _f_zone_name,
    "duration": _f_duration,
    "minutes": _f_minutes,
    "number": _f_number,
    "fallback": _fallback,
    "paragraphs": _paragraphs,
    "lines": _lines,
}


# A note is a few kilobytes; a template that writes more, or runs longer, is broken or hostile.
MAX_RENDER_CHARS = 1_000_000
MAX_RENDER_SECONDS = 2.0
_limits = threading.local()  # the deadline of the render running on this thread
_WIDE_FORMAT = re.compile(r"%[-#0 +]*(\*|\d{4})|%[-#0 +]*\d*\.(\*|\d{4})|\{[^{}]*:[^{}]*\d{4}")


class _ConfinedLoader(FileSystemLoader):
    """A FileSystemLoader that finds no file whose real path is outside its folder, so that a
    symlink cannot bring ``/proc/self/environ`` or a key file into a note."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        for folder in self.searchpath:
            root = os.path.realpath(folder)
            real = os.path.realpath(os.path.join(folder, *pieces))
            if os.path.exists(real) and os.path.commonpath([root, real]) != root:
                raise TemplateNotFound(template, f"{template} leads outside the templates folder")
        return super().get_source(environment, template)


class _RenderLimit(SecurityError):
    """A render past its time or size limit."""


def _check_deadline() -> None:
    deadline = getattr(_limits, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise _RenderLimit(f"the render took more than {MAX_RENDER_SECONDS:g} s")


def _too_big(size: int) -> None:
    if size > MAX_RENDER_CHARS:
        raise _RenderLimit(f"a value of {size} characters is over the {MAX_RENDER_CHARS} limit")


def _bounded_range(*args: int) -> Iterator[int]:
    """``range`` that stops the render at its deadline: loops cost time even when they write
    nothing, and nothing else would look at the clock."""
    steps = range(*args)
    if len(steps) > 100_000:  # as Jinja's own sandbox range
        raise _RenderLimit(f"range of {len(steps)} items is over the 100000 limit")
    for i, value in enumerate(steps):
        if i % 1024 == 0:
            _check_deadline()
        yield value


def _safe_format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    if _WIDE_FORMAT.search(text):
        raise _RenderLimit("a format width or precision of four digits or more")
    result = text % (kwargs or args)
    _too_big(len(result))
    return result


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with ``*``, ``**`` and ``%`` bounded: ``"x" * 10**10`` or
    ``"%0999999999d" % 1`` would otherwise take the worker's memory."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    _too_big(len(seq) * n)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 256:
                raise _RenderLimit(f"a power of {right} is over the 256 limit")
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise _RenderLimit("a format width or precision of four digits or more")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        if _WIDE_FORMAT.search(str(value.__self__)):
            raise _RenderLimit("a format width or precision of four digits or more")
        return wrapped


def make_environment(templates_dir: Path, *, html: bool) -> ImmutableSandboxedEnvironment:
    """The sandbox templates run in; ``html`` switches autoescaping on."""
    env = _Sandbox(
        loader=_ConfinedLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    env.filters["format"] = _safe_format
    env.globals["range"] = _bounded_range
    for unused in ("lipsum", "cycler", "joiner"):
        env.globals.pop(unused, None)
    return env


# --- errors with file and line ---------------------------------------------------------------

_MISSING_ATTR = re.compile(r"has no attribute '([^']+)'|has no element '([^']+)'")
_MISSING_NAME = re.compile(r"^'([^']+)' is undefined")


def dotted(node: nodes.Node) -> str | None:
    """``client.first_name`` for a Getattr/Getitem chain on a name; ``None`` otherwise."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = dotted(node.node)
        return f"{base}.{node.attr}" if base else None
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        base = dotted(node.node)
        return f"{base}.{node.arg.value}" if base else None
    return None


def _template_frame(exc: BaseException) -> tuple[Template | None, int]:
    """The innermost template frame of ``exc``'s traceback: (template, template line)."""
    found: tuple[Template | None, int] = (None, 0)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        tmpl = frame.f_globals.get("__jinja_template__")
        if isinstance(tmpl, Template):
            found = (tmpl, tmpl.get_corresponding_lineno(lineno))
    return found


def _describe_missing(message: str, ast: nodes.Template | None, line: int) -> str:
    name_match = _MISSING_NAME.match(message)
    if name_match:
        return f"undefined variable '{name_match.group(1)}'"
    attr_match = _MISSING_ATTR.search(message)
    if attr_match and ast is not None:
        attr = attr_match.group(1) or attr_match.group(2)
        for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
            path = dotted(node)
            if node.lineno == line and path and path.rsplit(".", 1)[-1] == attr:
                return f"undefined variable '{path}'"
        return f"undefined variable '{attr}'"
    return f"undefined variable: {message}"


# --- languages -------------------------------------------------------------------------------


def _norm(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def language_chain(
    tag: str,
    team_default: str = LAST_RESORT,
    fallbacks: Mapping[str, str] | None = None,
    *,
    last_resort: bool = True,
) -> list[str]:
    """Languages to try for ``tag``, best first, lower-cased and without repeats.

    ``pt-BR`` -> declared fallback of ``pt-BR`` -> ``pt`` -> its declared fallback -> team
    default (and its base) -> ``en``. ``team_default=""`` and ``last_resort=False`` give the
    languages that serve ``tag`` itself, which is what ``templates check`` asks about.
    """
    declared = {_norm(k): _norm(v) for k, v in (fallbacks or {}).items()}
    chain: list[str] = []

    def add(code: str) -> None:
        seen: set[str] = set()
        while code and code not in seen:
            seen.add(code)
            if code not in chain:
                chain.append(code)
            code = declared.get(code, "")

    for start in (tag, team_default, LAST_RESORT if last_resort else ""):
        code = _norm(start or "")
        if not code:
            continue
        add(code)
        if "-" in code:
            add(code.split("-", 1)[0])
    return chain


def choose_language(
    available: Iterable[str],
    tag: str,
    team_default: str = LAST_RESORT,
    fallbacks: Mapping[str, str] | None = None,
    *,
    last_resort: bool = True,
) -> str | None:
    """The first language of :func:`language_chain` that ``available`` has, as spelled there."""
    spelled = {_norm(code): code for code in available}
    for code in language_chain(tag, team_default, fallbacks, last_resort=last_resort):
        if code in spelled:
            return spelled[code]
    return None


def read_fallbacks(templates_dir: Path) -> tuple[dict[str, str], list[Problem]]:
    """templates/fallbacks.toml as ``{tag: tag}``; a missing file is an empty mapping."""
    path = templates_dir / FALLBACKS_FILE
    if not path.is_file():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, [Problem(str(path), "", f"not valid TOML: {exc}")]
    out: dict[str, str] = {}
    problems = []
    for key, value in data.items():
        if not isinstance(value, str) or not _LANG.match(value) or not _LANG.match(key):
            problems.append(Problem(str(path), key, 'expected `tag = "tag"`, e.g. `pt-BR = "pt"`'))
            continue
        out[key] = value
    return out, problems


_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


# --- the composer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    language: str
    template_path: Path


@dataclass(frozen=True)
class _Loaded:
    path: Path
    name: str  # loader name, "thank_you/ja.j2"
    text: Template
    html: Template | None
    ast: nodes.Template


_CACHE_LOCK = threading.Lock()
_CACHED: dict[tuple[str, str], tuple[tuple[tuple[str, int, int], ...], Composer]] = {}


def _fingerprint(templates_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under ``templates_dir`` with its modification time and size."""
    found = []
    for path in sorted(templates_dir.rglob("*")):
        try:
            st = path.stat()
        except OSError:
            continue
        found.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(found)


def cached_composer(templates_dir: Path, *, team_default: str = LAST_RESORT) -> Composer:
    """A strict ``Composer`` for ``templates_dir``, made again only when a file there changed.

    Compiling every template takes a good part of a second; a command or page that renders one
    note would otherwise pay it each time. Raises ``TemplateError`` as ``Composer`` does.
    """
    key = (str(Path(templates_dir).resolve()), team_default)
    stamp = _fingerprint(Path(templates_dir))
    with _CACHE_LOCK:
        cached = _CACHED.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    composer = Composer(templates_dir, team_default=team_default)
    with _CACHE_LOCK:
        _CACHED[key] = (stamp, composer)
    return composer


class Composer:
    """Every template under ``templates_dir``, parsed and checked once at start-up.

    ``Composer(dir)`` raises :class:`TemplateError` listing every template that fails to parse
    (with file and line), lacks a required block or has an unknown one. With ``strict=False``
    the problems are kept in ``self.problems`` instead, and the good templates still load;
    ``templates check`` uses that to report everything at once.
    """

    def __init__(
        self, templates_dir: Path, *, team_default: str = LAST_RESORT, strict: bool = True
    ) -> None:
        self.templates_dir = Path(templates_dir)
        self.team_default = team_default
        self.problems: list[Problem] = []
        self.fallbacks: dict[str, str] = {}
        self._templates: dict[str, dict[str, _Loaded]] = {}
        self._text_env = make_environment(self.templates_dir, html=False)
        self._html_env = make_environment(self.templates_dir, html=True)
        if not self.templates_dir.is_dir():
            self.problems.append(Problem(str(self.templates_dir), "", "no templates folder"))
        else:
            self.fallbacks, problems = read_fallbacks(self.templates_dir)
            self.problems.extend(problems)
            self._load_all()
        if strict and self.problems:
            raise TemplateError(self.problems)

    def _load_all(self) -> None:
        for folder in sorted(self.templates_dir.iterdir()):
            if not folder.is_dir() or folder.name.startswith(("_", ".")):
                continue
            for path in sorted(folder.glob("*.j2")):
                lang = path.stem
                if not _LANG.match(lang):
                    self.problems.append(
                        Problem(str(path), "", f"'{lang}' is not a language tag (en, pt-BR)")
                    )
                    continue
                loaded = self._load(path, f"{folder.name}/{path.name}")
                if loaded is not None:
                    self._templates.setdefault(folder.name, {})[lang] = loaded

    def _load(self, path: Path, name: str) -> _Loaded | None:
        root = self.templates_dir.resolve()
        if not path.resolve().is_relative_to(root):
            self.problems.append(
                Problem(str(path), "", f"leads outside the templates folder to {path.resolve()}")
            )
            return None
        try:
            source = path.read_text(encoding="utf-8")
            ast = self._text_env.parse(source, name, str(path))
            text = self._text_env.get_template(name)
        except UnicodeDecodeError as exc:
            self.problems.append(Problem(str(path), "", f"not UTF-8: {exc}"))
            return None
        except TemplateNotFound as exc:
            self.problems.append(Problem(str(path), "", exc.message or str(exc)))
            return None
        except OSError as exc:
            self.problems.append(Problem(str(path), "", f"cannot read: {exc.strerror or exc}"))
            return None
        except (RecursionError, MemoryError) as exc:
            # A template nested past the parser's stack ({{ ((((... }}) is refused like any
            # other broken template, never a crash of the worker that reloads it.
            self.problems.append(Problem(str(path), "", f"too deeply nested: {type(exc).__name__}"))
            return None
        except TemplateSyntaxError as exc:
            where = str(exc.lineno)
            if exc.filename and Path(exc.filename) != path:  # an imported file is at fault
                self.problems.append(Problem(exc.filename, where, exc.message or str(exc)))
            else:
                self.problems.append(Problem(str(path), where, exc.message or str(exc)))
            return None
        blocks = {block.name: block.lineno for block in ast.find_all(nodes.Block)}
        bad = False
        for block_name, lineno in blocks.items():
            if block_name not in BLOCKS:
                self.problems.append(
                    Problem(
                        str(path),
                        str(lineno),
                        f"unknown block '{block_name}' (blocks are {', '.join(BLOCKS)})",
                    )
                )
                bad = True
        for block_name in REQUIRED_BLOCKS:
            if block_name not in blocks:
                self.problems.append(Problem(str(path), "", f"no {{% block {block_name} %}}"))
                bad = True
        if bad:
            return None
        html = self._html_env.get_template(name) if "html" in blocks else None
        return _Loaded(path=path, name=name, text=text, html=html, ast=ast)

    # -- queries --

    def purposes(self) -> set[str]:
        """Purposes with at least one template."""
        return set(self._templates)

    def languages(self, purpose: str) -> set[str]:
        """Languages ``purpose`` has a template for (empty for an unknown purpose)."""
        return set(self._templates.get(purpose, {}))

    def template_path(self, purpose: str, language: str) -> Path:
        """The file for exactly ``purpose``/``language``; raises ``KeyError`` when absent."""
        return self._templates[purpose][language].path

    def resolve_language(self, purpose: str, tag: str, team_default: str | None = None) -> str:
        """The template language that serves ``tag`` for ``purpose``.

        ``tag`` -> declared fallback -> base language -> team default -> ``en``. Raises
        ``TemplateError`` when the purpose has no template at all.
        """
        default = team_default or self.team_default
        found = choose_language(self.languages(purpose), tag, default, self.fallbacks)
        if found is None:
            raise TemplateError(
                [
                    Problem(
                        str(self.templates_dir / purpose),
                        "",
                        f"no template for '{tag}', '{default}' or '{LAST_RESORT}'",
                    )
                ]
            )
        return found

    # -- rendering --

    def render(self, purpose: str, language: str, context: Mapping[str, Any]) -> Rendered:
        """Render ``purpose`` for a reader of ``language`` (a BCP 47 tag such as ``pt-BR``).

        Returns subject (one line), text (ends with a newline) and HTML (a whole document, or
        ``None`` when the template has no html block). Raises ``TemplateError`` naming file and
        line for a missing value (``undefined variable 'client.first_name'``), an unsafe access
        or a value a filter cannot format (a naive datetime, an unknown zone).
        """
        lang = self.resolve_language(purpose, language)
        same_language = _norm(language).split("-")[0] == _norm(lang).split("-")[0]
        return self._render(
            self._templates[purpose][lang], lang, language if same_language else lang, context
        )

    def render_exact(self, purpose: str, language: str, context: Mapping[str, Any]) -> Rendered:
        """Render exactly ``purpose``/``language``, with no fallback; ``KeyError`` if absent."""
        return self._render(self._templates[purpose][language], language, language, context)

    def ast(self, purpose: str, language: str) -> nodes.Template:
        """The parsed template, for static checks; ``KeyError`` if absent."""
        return self._templates[purpose][language].ast

    def _render(
        self, loaded: _Loaded, lang: str, locale: str, context: Mapping[str, Any]
    ) -> Rendered:
        values = dict(context)
        values.setdefault("locale", locale)
        values["language"] = lang
        values["direction"] = "rtl" if localefmt.is_rtl(lang) else "ltr"

        parts = self._run(loaded, loaded.text, values, ("subject", "text"))
        subject = " ".join(parts["subject"].split())
        text = _tidy_text(parts["text"])
        if not subject:
            raise TemplateError([Problem(str(loaded.path), "", "the subject renders empty")])
        html = None
        if loaded.html is not None:
            fragment = self._run(loaded, loaded.html, values, ("html",))["html"]
            html = _html_document(fragment, subject, lang)
        return Rendered(subject, text, html, lang, loaded.path)

    def _run(
        self, loaded: _Loaded, template: Template, values: dict[str, Any], wanted: Sequence[str]
    ) -> dict[str, str]:
        try:
            return _render_blocks(template, values, wanted)
        except SecurityError as exc:
            raise self._error(loaded, exc, f"not allowed in a template: {exc}") from exc
        except UndefinedError as exc:
            tmpl, line = _template_frame(exc)
            ast = loaded.ast if tmpl is None or tmpl.name == loaded.name else None
            raise self._error(loaded, exc, _describe_missing(str(exc), ast, line)) from exc
        except (
            JinjaTemplateError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            ArithmeticError,  # OverflowError, ZeroDivisionError
            RecursionError,
            MemoryError,
            LookupError,
        ) as exc:
            if isinstance(exc, FilterInputError):
                raise self._error(loaded, exc, str(exc)[:300]) from exc
            # A limit hit is named by its kind; anything else in a template author's words.
            limit = isinstance(exc, (ArithmeticError, RecursionError, MemoryError))
            lead = f"{type(exc).__name__}:" if limit else "cannot render:"
            raise self._error(loaded, exc, f"{lead} {plain_message(str(exc)[:300])}") from exc

    def _error(self, loaded: _Loaded, exc: BaseException, message: str) -> TemplateError:
        tmpl, line = _template_frame(exc)
        file = tmpl.filename if tmpl is not None and tmpl.filename else str(loaded.path)
        return TemplateError([Problem(file, str(line) if line else "", message)])


def _render_blocks(
    template: Template, values: Mapping[str, Any], wanted: Sequence[str]
) -> dict[str, str]:
    """Run the whole template once and keep what each wanted block produced.

    Running the root (not just the block functions) makes top-level macros and ``{% set %}``
    visible inside the blocks, as they are in any Jinja template.
    """
    context = template.new_context(dict(values))
    captured: dict[str, str] = {}

    def bounded(chunks: Iterable[str]) -> str:
        out: list[str] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            _too_big(size)
            _check_deadline()
            out.append(chunk)
        return "".join(out)

    def capture(name: str, func: Callable[[Context], Iterator[str]]) -> Callable[..., Any]:
        def run(ctx: Context) -> Iterator[str]:
            out = bounded(func(ctx))
            captured.setdefault(name, out)
            return iter((out,))

        return run

    for name in wanted:
        stack = context.blocks.get(name)
        if stack:
            stack[0] = capture(name, stack[0])
    outer = getattr(_limits, "deadline", None)
    _limits.deadline = time.monotonic() + MAX_RENDER_SECONDS if outer is None else outer
    try:
        bounded(template.root_render_func(context))
    finally:
        _limits.deadline = outer
    return {name: captured.get(name, "") for name in wanted}


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    body = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", body) + "\n"


def _html_document(fragment: str, subject: str, language: str) -> str:
    direction = "rtl" if localefmt.is_rtl(language) else "ltr"
    lang = escape(language)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}" dir="{direction}">\n'
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(subject)}</title></head>\n"
        f'<body dir="{direction}">\n{fragment.strip()}\n</body>\n</html>\n'
    )


# --- the message -----------------------------------------------------------------------------

# Reply prefixes mail clients write in many languages; a subject that has one stays as it is.
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|antw|antwort|sv|vs|odp|r|rif|réf|ref|res|ynt|απ|σχετ|отв|ответ"
    r"|回复|回覆|答复|返信|رد|השב|תגובה|jawab|balas|trả lời)\s*(?:\[\d+\])?\s*[:：]",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_MSG_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_MANAGED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        KEY_HEADER,
        "Content-Language",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    )
)
_MAX_REFERENCES = 20


# An encoded word inside a header value is decoded again when the message is written, after
# any check on the text: CPython before 3.11.10 / 3.12.5 then writes the CR/LF it decodes to as
# a line break (gh-121650), and a client's subject encoded twice becomes a header of its own.
_MAX_DECODES = 8
# Longer than any subject or name a person writes (RFC 5322 lines stop at 998), and short enough
# that the email package's header parser, slower than linear on some hostile values, stays fast.
MAX_HEADER_TEXT = 2000
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?")


def _one_line(value: str) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())


def clean_header(value: str) -> str:
    """One header line: RFC 2047 encoded words decoded (again and again, until none is left),
    then CR, LF and other control characters become spaces and runs collapse.

    Decode, then clean: what is returned decodes to itself, so the email package, which decodes
    encoded words in a value it is given, finds nothing left to turn into a line break. Only the
    first ``MAX_HEADER_TEXT`` characters are kept.
    """
    text = _one_line(value[:MAX_HEADER_TEXT])
    for _ in range(_MAX_DECODES):
        if "=?" not in text:
            return text
        decoded = _one_line(str(email.policy.default.header_factory("subject", text)))
        if decoded == text:
            return text
        text = decoded
    # Nested deeper than any mail client writes: break up what is left rather than decode on.
    return text.replace("=?", "= ?")


def reply_subject_for(thread_subject: str) -> str:
    """``Re: <subject>`` unless the subject already carries a reply prefix in any language."""
    subject = clean_header(thread_subject)
    if _REPLY_PREFIX.match(subject):
        return subject
    return f"Re: {subject}" if subject else "Re:"


def message_id_for(key: str, domain: str) -> str:
    """The deterministic Message-ID of the message for outbox ``key``.

    ``<followup.{sha256(key)[:32]}@{domain}>``; raises ``ValueError`` for a domain that could
    not stand in a Message-ID.
    """
    domain = domain.strip().lower()
    if not domain or re.search(r"[\s<>@\x00-\x1f\x7f]", domain):
        raise ValueError(f"not a mail domain: {domain!r}")
    return f"<followup.{key_tag(key)}@{domain}>"


def _msg_id(value: str) -> str | None:
    value = value.strip()
    if value and not value.startswith("<"):
        value = f"<{value}>"
    # An id holding an encoded word came from a hostile client: the email package would decode
    # it when writing In-Reply-To or References (see clean_header). Such a parent is dropped.
    return value if _MSG_ID.match(value) and not _ENCODED_WORD.search(value) else None


def _header_address(addr: Address) -> HeaderAddress:
    if _CONTROL.search(addr.email) or re.search(r"[\s<>,;\"]", addr.email):
        raise ValueError(f"not a mail address: {addr.email!r}")
    try:
        return HeaderAddress(display_name=clean_header(addr.name), addr_spec=addr.email)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not a mail address: {addr.email!r}") from exc


def build_message(
    rendered: Rendered,
    *,
    sender: Address,
    to: Sequence[Address],
    cc: Sequence[Address] = (),
    in_reply_to: str = "",
    references: Sequence[str] = (),
    reply_subject: str = "",
    message_id: str,
    key: str,
    extra_headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The message to draft or send: headers, text part and, when there is HTML, an alternative.

    A reply (``in_reply_to`` set) gets ``In-Reply-To`` and ``References`` = the parent's
    ``references`` + the parent id, and, when ``reply_subject`` (the thread's subject) is
    given, that subject with a reply prefix instead of the rendered one so the thread holds
    together. Display names, the subject and header values lose CR/LF and control characters,
    so no value can start a header of its own. Malformed ids in ``references`` are dropped.

    No Date header is set (the provider stamps it) unless ``extra_headers`` has one. Raises
    ``ValueError`` for a malformed address, ``message_id`` or extra header name, or an extra
    header this function owns (From, Subject, References ...).
    """
    if not to:
        raise ValueError("a message needs at least one recipient")
    own_id = _msg_id(message_id)
    if own_id is None:
        raise ValueError(f"not a Message-ID: {message_id!r}")

    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = _header_address(sender)
    msg["To"] = [_header_address(a) for a in to]
    if cc:
        msg["Cc"] = [_header_address(a) for a in cc]
    if in_reply_to and reply_subject:
        subject = reply_subject_for(reply_subject)
    else:
        subject = clean_header(rendered.subject)
    msg["Subject"] = subject
    msg["Message-ID"] = own_id

    parent = _msg_id(in_reply_to) if in_reply_to else None
    if parent:
        refs = [r for r in (_msg_id(x) for x in references) if r]
        refs = [r for r in dict.fromkeys(refs) if r != parent] + [parent]
        if len(refs) > _MAX_REFERENCES:
            # RFC 5322 3.6.4: keep the thread's root and the most recent ancestors.
            refs = [refs[0], *refs[-(_MAX_REFERENCES - 1) :]]
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(refs)
    msg[KEY_HEADER] = key_tag(key)  # opaque: the key itself names mailboxes and kinds

    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"not a header name: {name!r}")
        if name.lower() in _MANAGED_HEADERS:
            raise ValueError(f"header {name} is set by build_message")
        msg[name] = clean_header(value)

    msg.set_content(rendered.text)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    # After the body: add_alternative moves every Content-* header into the first part.
    msg["Content-Language"] = clean_header(rendered.language)
    return msg
