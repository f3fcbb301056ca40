"""config.toml -> validated settings. Every problem is reported at once, with file and key.

Secrets never live in this file: provider client secrets are paths, and the key that seals
stored tokens comes from the environment (see agent/providers/tokens.py).
"""

from __future__ import annotations

import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.businesstime import BusinessCalendar, WeeklyHours
from agent.errors import ConfigError, Problem
from agent.memo import PerObject
from agent.webhooks import check_url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
        ) from exc
    return value


POSTGRES_ALIASES = ("postgres://", "postgresql://")


class Database(_Strict):
    url: str = "sqlite:///followup.db"

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        for alias in POSTGRES_ALIASES:  # what Heroku, libpq and most hosts hand out
            if value.startswith(alias):
                return "postgresql+psycopg://" + value.removeprefix(alias)
        if not value.startswith(("sqlite:///", "postgresql+psycopg://")):
            scheme = value.split(":", 1)[0] if ":" in value else value
            raise ValueError(
                f"{scheme!r} is not a database Followup uses: write sqlite:///FILE or "
                "postgresql+psycopg://USER@HOST/DB"
            )
        return value


class Team(_Strict):
    name: str = "Sales"
    domains: list[str] = Field(default_factory=list)
    default_language: str = "en"
    languages: list[str] = Field(
        default_factory=lambda: ["en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh"]
    )
    # Hosts a webhook may reach over plain http or at a loopback/private address.
    webhook_allow_hosts: list[str] = Field(default_factory=list)
    webhook_url: str = ""

    @field_validator("webhook_url")
    @classmethod
    def _webhook_policy(cls, value: str, info: ValidationInfo) -> str:
        problem = check_url(value, info.data.get("webhook_allow_hosts", [])) if value else ""
        if problem:
            raise ValueError(problem)
        return value


class Paths(_Strict):
    rules: Path = Path("rules")
    templates: Path = Path("templates")
    clients: Path = Path("clients.csv")


class Outbox(_Strict):
    # shadow: plan and record everything, send nothing; draft: notes to clients wait in the
    # rep's Drafts; send: they go out.
    mode: Literal["shadow", "draft", "send"] = "draft"
    daily_cap: int = Field(50, ge=1)
    # Reminders, escalations and webhook posts a mailbox may send a day; more are gathered
    # into a digest (one per recipient every few hours) instead of flooding the team.
    team_daily_cap: int = Field(50, ge=1)
    # Team notes due together for one reader go out as one digest (false: each on its own).
    team_digest: bool = True
    # Act only on mail and meetings from this moment on; None: each mailbox's first pass.
    go_live: datetime | None = None

    @field_validator("go_live")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} needs a zone, such as 2026-12-01T00:00Z")
        return value.astimezone(UTC) if value is not None else None


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Lead(_Strict):
    name: str
    email: str
    language: str = "en"
    zone: str = "UTC"
    # The weekly digest: false to receive none; a day or hour of one's own ("" / -1: [report]'s).
    digest: bool = True
    digest_day: Weekday | Literal[""] = ""
    digest_hour: int = Field(-1, ge=-1, le=23)

    _zone = field_validator("zone")(_check_zone)


class Mailbox(_Strict):
    name: str
    provider: Literal["local", "gmail", "outlook"]
    address: str
    aliases: list[str] = Field(default_factory=list)
    rep_name: str
    zone: str
    hours: str | dict[str, str] = "09:00-17:00"
    weekend: list[str] = Field(default_factory=lambda: ["sat", "sun"])
    country: str = ""
    subdivision: str = ""
    language: str = "en"
    team: str = ""
    lead: str = ""
    path: Path | None = None  # local provider: the folder holding inbox/, sent/, calendar/
    client_secrets: Path | None = None  # gmail: the OAuth client JSON downloaded from Google
    client_id: str = ""  # outlook: the Entra application (client) id
    tenant: str = "common"  # outlook
    endpoint: str = ""  # gmail/outlook: the API's base URL when not the vendor's (a gateway)
    enabled: bool = True  # false: the worker leaves this mailbox alone, its data is kept
    # The rep's own figures for the week, mailed to the rep with the leads' digests.
    weekly_summary: bool = False
    mode: Literal["", "shadow", "draft", "send"] = ""  # "": the [outbox] mode
    # gmail and outlook: the first sync (and a resync after an expired cursor) reads this many
    # days back from the newest message (Gmail newest first, a chunk per pass; Outlook in one
    # delta filtered on the reception time); twice the planners' 45-day look-back, so a thread
    # they plan for comes with its earlier messages.
    first_sync_days: int = Field(90, ge=1, le=3650)

    _zone = field_validator("zone")(_check_zone)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        WeeklyHours.parse(value)
        return value

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(a.lower() for a in (self.address, *self.aliases))

    @model_validator(mode="after")
    def _usable_calendar(self) -> Mailbox:
        # Weekend names and the holiday region are only checked when the calendar is built:
        # build it now, so a bad one is reported at load time and not by the running worker.
        if not any(self.calendar().hours.days):
            raise ValueError(
                "hours and weekend leave no open hours on any day, so no deadline could ever "
                "be reached: open at least one day, e.g. hours = '09:00-17:00'"
            )
        return self

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            self.zone,
            WeeklyHours.parse(self.hours, self.weekend),
            country=self.country,
            subdivision=self.subdivision,
        )


def _check_listen(value: str) -> str:
    if not value:
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{value!r} is not HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9464 "
            '(or "" for no endpoint)'
        )
    if not host.strip("[]"):
        raise ValueError(f"{value!r} has no host: write 127.0.0.1:{port} (or 0.0.0.0:{port})")
    return value


class Service(_Strict):
    listen: str = "127.0.0.1:9464"
    _listen = field_validator("listen")(_check_listen)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    poll_seconds: float = Field(60, gt=0)
    lease_seconds: float = Field(120, gt=0)
    shutdown_timeout: float = Field(30, gt=0)
    concurrency: int = Field(8, ge=1, le=256)  # mailboxes worked at once by one worker
    # Whole-mailbox plans (first plan, after a reload or a calendar change) of large mailboxes
    # (2,000 messages or more) one worker makes at once: each holds its mailbox's whole history
    # in memory, so this sets the ceiling on RSS. A pass that finds every slot taken syncs and
    # executes as usual and plans at a later pass.
    whole_plans: int = Field(1, ge=1, le=64)


class Report(_Strict):
    # A figure over fewer items than this is hidden ("n=3 (too few)"), not shown as a rate.
    min_n: int = Field(5, ge=1, le=10_000)
    # How many weeks the weekly digest's trends look back (`followup report` takes --since).
    weeks: int = Field(8, ge=1, le=104)
    # The weekly digest to each lead: on this day, at this hour, in the lead's zone.
    digest: bool = True
    digest_day: Weekday = "mon"
    digest_hour: int = Field(8, ge=0, le=23)


class WebUser(_Strict):
    """Who may sign in to the console, and what they see: the mailboxes they are the rep of,
    the teams they lead, and whether they administer every mailbox."""

    email: str
    name: str = ""
    mailboxes: list[str] = Field(default_factory=list)
    lead_of: list[str] = Field(default_factory=list)  # team names (mailboxes' `team`)
    admin: bool = False
    language: str = ""  # the console's language for them ("": the browser's)
    zone: str = ""  # their zone for dates ("": their first mailbox's, else UTC)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value or value != value.strip():
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.lower()

    @field_validator("zone")
    @classmethod
    def _zone_or_empty(cls, value: str) -> str:
        return _check_zone(value) if value else value


class Web(_Strict):
    """The console (``followup web``)."""

    listen: str = "127.0.0.1:8080"
    _listen = field_validator("listen")(_check_listen)
    # The address people reach the console at, behind the TLS proxy; the sign-in redirect URIs
    # registered with Google and Microsoft are this plus /auth/google and /auth/microsoft.
    public_url: str = ""
    # Session cookies are sent over HTTPS only; false only for plain http on localhost.
    secure_cookies: bool = True
    session_hours: float = Field(12, gt=0, le=24 * 30)
    # Sign-in attempts one client address may start in a minute.
    sign_in_per_minute: int = Field(10, ge=1, le=1000)
    # Google: the OAuth client JSON (default: the first gmail mailbox's client_secrets).
    google_client_secrets: Path | None = None
    google_issuer: str = "https://accounts.google.com"
    # Microsoft: the Entra app (default: the first outlook mailbox's client_id and tenant).
    microsoft_client_id: str = ""
    microsoft_tenant: str = ""
    microsoft_authority: str = ""  # "": https://login.microsoftonline.com
    users: list[WebUser] = Field(default_factory=list)

    @field_validator("public_url", "google_issuer", "microsoft_authority")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError(f"{value!r} must be an https:// URL (plain http only on localhost)")
        return value.rstrip("/")

    @field_validator("users")
    @classmethod
    def _unique_users(cls, value: list[WebUser]) -> list[WebUser]:
        emails = [u.email for u in value]
        dupes = sorted({e for e in emails if emails.count(e) > 1})
        if dupes:
            raise ValueError(f"web.users emails must be unique; repeated: {', '.join(dupes)}")
        return value

    def user(self, email: str) -> WebUser | None:
        return next((u for u in self.users if u.email == email.lower()), None)


class Settings(_Strict):
    database: Database = Database()
    team: Team = Team()
    paths: Paths = Paths()
    outbox: Outbox = Outbox()
    service: Service = Service()
    report: Report = Report()
    web: Web = Web()
    leads: list[Lead] = Field(default_factory=list)
    mailboxes: list[Mailbox] = Field(default_factory=list)

    @field_validator("mailboxes")
    @classmethod
    def _unique(cls, value: list[Mailbox]) -> list[Mailbox]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique; repeated: {', '.join(dupes)}")
        return value

    def mailbox(self, name: str) -> Mailbox:
        found = _mailboxes_by_name(self).get(name)
        if found is not None:
            return found
        known = ", ".join(m.name for m in self.mailboxes) or "none configured"
        raise ConfigError([Problem("config", "mailboxes", f"no mailbox {name!r} (known: {known})")])

    def lead(self, email: str) -> Lead | None:
        return next((lead for lead in self.leads if lead.email.lower() == email.lower()), None)


def _where(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """Turn pydantic's location into the TOML key a person sees: mailboxes[asha].zone."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = (entry.get("name") or entry.get("email")) if isinstance(entry, dict) else None
            parts[-1] += f"[{name}]" if name else f"[{item}]"
        else:
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


# Keys that used to be here, and where they live now.
MOVED: dict[tuple[int | str, ...], str] = {
    ("outbox", "min_gap_hours"): 'the gap between notes is set per rule: min_gap = "24h" in '
    "rules/*.toml (see rules/README.md)",
}


def parse_settings(data: dict[str, Any], source: str) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = MOVED.get(
                    tuple(err["loc"]),
                    "unknown key (check the spelling against config.example.toml)",
                )
            problems.append(Problem(source, _where(err["loc"], data), msg))
        raise ConfigError(problems) from exc
    return _resolve(settings, Path(source).parent)


def _resolve(settings: Settings, base: Path) -> Settings:
    """Relative paths in the file are relative to the file, not to wherever `followup` runs."""

    def rel(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    paths = settings.paths.model_copy(
        update={k: rel(getattr(settings.paths, k)) for k in ("rules", "templates", "clients")}
    )
    mailboxes = [
        m.model_copy(update={"path": rel(m.path), "client_secrets": rel(m.client_secrets)})
        for m in settings.mailboxes
    ]
    web = settings.web.model_copy(
        update={"google_client_secrets": rel(settings.web.google_client_secrets)}
    )
    url = settings.database.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        url = f"sqlite:///{base / url.removeprefix('sqlite:///')}"
    return settings.model_copy(
        update={
            "paths": paths,
            "mailboxes": mailboxes,
            "database": Database(url=url),
            "web": web,
        }
    )


def load(path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), "", f"not UTF-8 text: {exc.reason}")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(str(path), "", f"not valid TOML: {exc}")]) from exc
    url, origin = _secret_from_environment("FOLLOWUP_DATABASE_URL")
    if url:
        # A secret kept out of the file: its password must not sit in config.toml.
        try:
            Database(url=url)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ConfigError([Problem(origin, "", message)]) from exc
        data = {**data, "database": {**data.get("database", {}), "url": url}}
    hook, _ = _secret_from_environment("FOLLOWUP_WEBHOOK_URL")
    if hook:  # the team's webhook URL is a credential too: its path lets anyone post
        data = {**data, "team": {**data.get("team", {}), "webhook_url": hook}}
    return parse_settings(data, str(path))


def _secret_from_environment(name: str) -> tuple[str, str]:
    """A secret kept out of config.toml: the variable ``name``, or the file ``name``_FILE names
    (a systemd credential, a container secret); ("", "") when neither is set."""
    named = os.environ.get(f"{name}_FILE", "")
    if named:
        try:
            return Path(named).read_text(encoding="utf-8").strip(), named
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem(f"{name}_FILE", "", f"cannot read {named}: {exc}")]) from exc
    return os.environ.get(name, "").strip(), name


def _by_name(settings: Settings) -> dict[str, Mailbox]:
    found: dict[str, Mailbox] = {}
    for m in settings.mailboxes:
        found.setdefault(m.name, m)
    return found


# Asked for on every pass: a team of thousands of mailboxes is not walked each time.
_mailboxes_by_name: PerObject[Settings, dict[str, Mailbox]] = PerObject(_by_name)
