"""Templates -> email messages, in the recipient's language, formatted by Babel.

A template is ``templates/<purpose>/<lang>.j2`` with three blocks: ``subject``, ``text`` and
optionally ``html``. Team leads edit these files, so they run in Jinja2's sandbox with
``StrictUndefined``: a template cannot run code, and a missing value fails before sending
instead of mailing "Dear ,". ``{{ value | fallback("...") }}`` declares a default for an
optional field. Languages fall back ``pt-BR`` -> ``pt`` -> the team default -> ``en``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    format_time,
    format_timedelta,
    get_timezone_name,
)
from babel.numbers import format_decimal
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from agent.errors import Problem, TemplateError
from agent.model import Address

RTL = frozenset({"ar", "he", "fa", "ur"})
REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|r|rif|回复|回覆|答复|返信)\s*[:：]", re.IGNORECASE)


def _locale(ctx: Context) -> str:
    tag = str(ctx.get("locale") or "en").replace("-", "_")
    try:
        Locale.parse(tag)
    except (UnknownLocaleError, ValueError):
        return tag.split("_")[0]
    return tag


def _undefined(value: Any) -> bool:
    return isinstance(value, StrictUndefined) or value is None or value == ""


@pass_context
def _fallback(ctx: Context, value: Any, default: Any) -> Any:
    return default if _undefined(value) else value


@pass_context
def _datetime(ctx: Context, value: datetime, zone: str = "UTC", fmt: str = "long") -> str:
    return format_datetime(value, fmt, tzinfo=ZoneInfo(zone), locale=_locale(ctx))


@pass_context
def _date(ctx: Context, value: datetime, zone: str = "UTC", fmt: str = "full") -> str:
    return format_date(value.astimezone(ZoneInfo(zone)).date(), fmt, locale=_locale(ctx))


@pass_context
def _time(ctx: Context, value: datetime, zone: str = "UTC", fmt: str = "short") -> str:
    return format_time(value, fmt, tzinfo=ZoneInfo(zone), locale=_locale(ctx))


@pass_context
def _zone_name(ctx: Context, zone: str) -> str:
    return get_timezone_name(ZoneInfo(zone), locale=_locale(ctx))


@pass_context
def _duration(ctx: Context, value: timedelta) -> str:
    return format_timedelta(value, threshold=1.5, locale=_locale(ctx))


@pass_context
def _number(ctx: Context, value: float) -> str:
    return format_decimal(value, locale=_locale(ctx))


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    language: str
    template_path: Path


class Composer:
    def __init__(self, templates_dir: Path, *, team_default: str = "en") -> None:
        self.root = Path(templates_dir)
        self.team_default = team_default
        self.env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self.env.filters.update(
            fallback=_fallback,
            datetime=_datetime,
            date=_date,
            time=_time,
            zone_name=_zone_name,
            duration=_duration,
            number=_number,
        )
        self._cache: dict[Path, Any] = {}
        problems = []
        for path in sorted(self.root.glob("*/*.j2")):
            try:
                self._load(path)
            except TemplateError as exc:
                problems += exc.problems
        if problems:
            raise TemplateError(problems)

    def _load(self, path: Path) -> Any:
        if path not in self._cache:
            try:
                self._cache[path] = self.env.from_string(path.read_text(encoding="utf-8"))
            except TemplateSyntaxError as exc:
                raise TemplateError(
                    [Problem(str(path), f"line {exc.lineno}", exc.message or "syntax error")]
                ) from exc
        return self._cache[path]

    def purposes(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()

    def languages(self, purpose: str) -> set[str]:
        return {p.stem for p in (self.root / purpose).glob("*.j2")}

    def resolve_language(self, purpose: str, tag: str) -> str:
        available = self.languages(purpose)
        for candidate in (tag, tag.split("-")[0], self.team_default, "en"):
            if candidate in available:
                return candidate
        raise TemplateError(
            [Problem(str(self.root / purpose), "", f"no template for {tag!r} nor any fallback")]
        )

    def render(self, purpose: str, language: str, context: Mapping[str, Any]) -> Rendered:
        lang = self.resolve_language(purpose, language or self.team_default)
        path = self.root / purpose / f"{lang}.j2"
        template = self._load(path)
        values = {"locale": language or lang, **context}
        parts: dict[str, str | None] = {}
        try:
            for block in ("subject", "text", "html"):
                if block not in template.blocks:
                    parts[block] = None
                    continue
                ctx = template.new_context(values)
                parts[block] = "".join(template.blocks[block](ctx)).strip()
        except (UndefinedError, SecurityError) as exc:
            raise TemplateError([Problem(str(path), _line(exc), str(exc))]) from exc
        if not parts["subject"] or not parts["text"]:
            raise TemplateError([Problem(str(path), "", "needs a subject block and a text block")])
        html = parts["html"]
        if html and lang.split("-")[0] in RTL:
            html = f'<div dir="rtl" lang="{lang}">{html}</div>'
        return Rendered(
            " ".join(str(parts["subject"]).split()), str(parts["text"]), html, lang, path
        )


def _line(exc: Exception) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = f"line {tb.tb_lineno}"
        tb = tb.tb_next
    return line


def _clean(value: str) -> str:
    """No header injection: a name or subject never carries a line break into a header."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def message_id_for(key: str, domain: str) -> str:
    return f"<followup.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def reply_subject(subject: str) -> str:
    return subject if REPLY_PREFIX.match(subject) else f"Re: {subject}"


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
    from email.headerregistry import Address as HeaderAddress

    def addr(a: Address) -> HeaderAddress:
        user, _, domain = a.email.partition("@")
        return HeaderAddress(_clean(a.name), user, domain)

    msg = EmailMessage()
    msg["From"] = addr(sender)
    msg["To"] = [addr(a) for a in to]
    if cc:
        msg["Cc"] = [addr(a) for a in cc]
    subject = _reply(reply_subject) if in_reply_to and reply_subject else rendered.subject
    msg["Subject"] = _clean(subject)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join(
            [*references, in_reply_to] if in_reply_to not in references else references
        )
    msg["X-Followup-Key"] = _clean(key)
    msg["Content-Language"] = rendered.language
    for name, value in (extra_headers or {}).items():
        msg[name] = _clean(value)
    msg.set_content(rendered.text)
    if rendered.html:
        msg.add_alternative(rendered.html, subtype="html")
    return msg


_reply = reply_subject
