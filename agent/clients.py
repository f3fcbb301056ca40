"""The clients file: a CSV in the shape a CRM exports, one contact or company a row.

Columns (header names are case-insensitive; unknown columns are ignored, since CRMs add many):
``name, emails, domains, company, language, zone, country, subdivision, tier, owner, tags,
opted_out`` and, optional, the contact's name in parts: ``first_name, last_name, honorific``
(as the client's language writes it: ``Frau``, ``Sra.``, ``女士``) and ``gender`` (``female``,
``male`` or empty; ``f``/``m`` too). Without the parts the display name is read
(agent/names.py). ``emails``, ``domains`` and ``tags`` hold several values separated by ``;`` or
``,``. ``time zone``/``timezone`` are accepted for ``zone``. A bad row is reported with its line
number and skipped; the other rows load.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from agent.errors import Problem
from agent.model import Client
from agent.names import GENDERS, MAX_NAME, parse_gender

ALIASES = {
    "time zone": "zone",
    "timezone": "zone",
    "time_zone": "zone",
    "email": "emails",
    "domain": "domains",
    "opt_out": "opted_out",
    "opted out": "opted_out",
    "first name": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last name": "last_name",
    "lastname": "last_name",
    "family_name": "last_name",
    "surname": "last_name",
    "salutation": "honorific",
    "sex": "gender",
}
NAME_PARTS = ("first_name", "last_name", "honorific")


def is_email(value: str) -> bool:
    """``name@domain.tld``: one ``@``, a dot inside the domain, no whitespace.

    What ``^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$`` says, read in one pass: that pattern backtracks
    over every dot, and a 64 KB CSV field of ``a@b.b.b...`` took half a minute.
    """
    local, at, domain = value.partition("@")
    return (
        bool(local and at)
        and "@" not in domain
        and "." in domain[1:-1]
        and not any(ch.isspace() for ch in value)
    )


DOMAIN = re.compile(r"^(?!-)[a-z0-9-]+(\.[a-z0-9-]+)+$")
TRUE = {"1", "true", "yes", "y", "x"}


def _split(value: str) -> list[str]:
    return [v.strip().lower() for v in re.split(r"[;,]", value or "") if v.strip()]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _name_part(column: str, value: str) -> str:
    """Why ``value`` cannot be a part of a person's name, or "" when it can."""
    if len(value) > MAX_NAME:
        return f"{column}: over {MAX_NAME} characters; put only the {column.replace('_', ' ')} here"
    if any(ch in value for ch in "@<>") or "://" in value:
        return f"{column}: {value[:40]!r} is an address, not a name; leave it empty when unknown"
    if any(not ch.isprintable() for ch in value):
        return f"{column}: {value[:40]!r} holds a control character; keep it on one line"
    return ""


def _rows(
    reader: csv.DictReader[str], source: str, problems: list[Problem]
) -> Iterator[dict[str, str]]:
    """The reader's rows; a row the csv module cannot read becomes a problem, not the end.

    Progress is read from the underlying reader: DictReader's own ``line_num`` moves only on a
    row it returns, so after a field over the csv module's 131,072-character limit it looked
    stuck and every later client was dropped.
    """
    while True:
        before = reader.reader.line_num
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = f"unreadable row: {exc}"
            if "field limit" in str(exc):
                why += " characters; look for a quote left open, the rest of the file is read"
            problems.append(Problem(source, f"line {before + 1}", why))
            if reader.reader.line_num == before:
                return  # the reader is stuck: nothing more can be read


def parse_clients(text: str, source: str) -> tuple[list[Client], list[Problem]]:
    # newline="": the csv module reads line ends itself, so old Mac exports ending lines in a
    # bare CR and quoted fields holding line breaks both work.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        return [], [Problem(source, "line 1", f"unreadable header row: {exc}")]
    if not header:
        return [], [
            Problem(source, "line 1", "empty file: expected a header row with name,emails,...")
        ]
    reader.fieldnames = [ALIASES.get(f.strip().lower(), f.strip().lower()) for f in header]
    if "name" not in reader.fieldnames:
        return [], [Problem(source, "line 1", "no 'name' column in the header row")]
    clients: list[Client] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    countries = holidays.list_supported_countries()
    for row in _rows(reader, source, problems):
        where = f"line {reader.line_num}"
        errs: list[str] = []
        name = (row.get("name") or "").strip()
        if not name:
            errs.append("name is empty")
        emails = _split(row.get("emails") or "")
        domains = [d.removeprefix("@") for d in _split(row.get("domains") or "")]
        errs += [f"emails: {e!r} is not an email address" for e in emails if not is_email(e)]
        errs += [f"domains: {d!r} is not a domain name" for d in domains if not DOMAIN.match(d)]
        if not emails and not domains:
            errs.append("no emails and no domains: nothing to match messages with")
        zone = (row.get("zone") or "").strip()
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
                errs.append(
                    f"zone: unknown time zone {zone!r}; use an IANA name such as Asia/Tokyo"
                )
        country = (row.get("country") or "").strip().upper()
        if country and country not in countries:
            errs.append(f"country: {country!r} is not an ISO 3166 code the holiday calendar knows")
        parts = {c: (row.get(c) or "").strip() for c in NAME_PARTS}
        errs += [e for c, v in parts.items() if (e := _name_part(c, v))]
        gender = parse_gender(row.get("gender") or "")
        if gender is None:
            errs.append(
                f"gender: {(row.get('gender') or '')[:40]!r} is not one of "
                f"{', '.join(GENDERS)}; leave it empty when unknown"
            )
        key = _slug(name) or f"row-{reader.line_num}"
        if key in seen:
            errs.append(f"name: {name!r} appears twice")
        if errs:
            problems.extend(Problem(source, where, e) for e in errs)
            continue
        seen.add(key)
        clients.append(
            Client(
                key=key,
                name=name,
                emails=frozenset(emails),
                domains=frozenset(domains),
                company=(row.get("company") or "").strip(),
                language=(row.get("language") or "").strip(),
                zone=zone,
                country=country,
                subdivision=(row.get("subdivision") or "").strip(),
                tier=(row.get("tier") or "").strip().lower(),
                owner=(row.get("owner") or "").strip().lower(),
                tags=frozenset(_split(row.get("tags") or "")),
                opted_out=(row.get("opted_out") or "").strip().lower() in TRUE,
                first_name=parts["first_name"],
                last_name=parts["last_name"],
                honorific=parts["honorific"],
                gender=gender or "",
            )
        )
    return clients, problems


def load_clients(path: Path) -> tuple[list[Client], list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        return [], [Problem(str(path), "", f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return [], [Problem(str(path), "", f"not UTF-8 text: {exc.reason}; save it as UTF-8")]
    return parse_clients(text, str(path))
