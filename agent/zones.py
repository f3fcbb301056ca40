"""The one place where time-zone names are normalised.

Zone names reach Followup from people (rule files, the clients file, slot requests), from Outlook
and Graph (Windows names such as ``India Standard Time``), from .ics files (Windows names, legacy
aliases, vendor-prefixed ids such as ``/freeassociation.sourceforge.net/Europe/Berlin``) and from
icalendar, which maps Windows names through CLDR but answers with legacy aliases
(``Asia/Calcutta``). Everything is turned into one canonical IANA name here, so that comparing two
zones is comparing two strings.

Canonical means: the name a current tz database lists for a location (``zone.tab``), or a zone
the database defines itself (``Etc/GMT+5``). A backward-compatibility link (``Asia/Calcutta``,
``US/Pacific``, ``Asia/Katmandu``) becomes the zone it points to. Names the database keeps as
separate locations but has merged since 1970 (``Europe/Amsterdam`` is a link to
``Europe/Brussels`` in the default build) keep their own name, because a person chose that name;
:func:`same_zone` treats them as the same zone, because their clocks agree.

Windows names are mapped with icalendar's table, generated from CLDR's ``windowsZones.xml``
(territory 001, the "golden" zone of each Windows name).
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

_SYSTEM_TZDATA = Path("/usr/share/zoneinfo")

# Names people and feeds use for UTC that are not tz database names.
_UTC_SPELLINGS = {"utc", "z", "gmt", "zulu", "etc/utc", "universal", "coordinated universal time"}


def _read_tzdata(name: str) -> str:
    """A text file of the tz database: the tzdata package first, the system's copy second."""
    try:
        return importlib.resources.files("tzdata").joinpath("zoneinfo", name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (_SYSTEM_TZDATA / name).read_text("utf-8")


@functools.cache
def _tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Return (canonical by lower-case name, link targets, Windows names by lower case).

    The first maps every known IANA spelling, lower-cased, to the name :func:`to_iana` answers;
    the second maps each link to its final target; the third maps lower-cased Windows names to
    their CLDR IANA zone, itself canonicalised.
    """
    zones: set[str] = set()
    links: dict[str, str] = {}
    for line in _read_tzdata("tzdata.zi").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "Z":
            zones.add(parts[1])
        elif len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    locations: set[str] = set()
    for line in _read_tzdata("zone.tab").splitlines():
        if line and not line.startswith("#"):
            fields = line.split("\t")
            if len(fields) >= 3:
                locations.add(fields[2])

    def target(name: str) -> str:
        seen = set()
        while name in links and name not in seen:
            seen.add(name)
            name = links[name]
        return name

    resolved = {link: target(link) for link in links}
    canonical: dict[str, str] = {}
    for name in zones | locations:
        canonical[name.lower()] = name
    for link, final in resolved.items():
        canonical.setdefault(link.lower(), link if link in locations else final)
    # People write UTC, so that is the canonical spelling of Etc/UTC and all its links.
    for key, value in canonical.items():
        if value == "Etc/UTC":
            canonical[key] = "UTC"
    for spelling in _UTC_SPELLINGS:
        canonical[spelling] = "UTC"
    resolved["UTC"] = "Etc/UTC"
    windows = {}
    for win, iana in WINDOWS_TO_OLSON.items():
        windows[win.lower()] = canonical.get(iana.lower(), iana)
    return canonical, resolved, windows


def to_iana(name: str) -> str:
    """The canonical IANA name for an IANA name, a legacy alias or a Windows zone name.

    ``to_iana("India Standard Time") == "Asia/Kolkata"``, ``to_iana("Asia/Calcutta") ==
    "Asia/Kolkata"``, ``to_iana("US/Pacific") == "America/Los_Angeles"``, ``to_iana("utc") ==
    "UTC"``. Case and surrounding spaces or slashes do not matter; an RFC 5545 "globally
    unique" id (``/vendor/path/Europe/Berlin``) is read by its longest known suffix. Raises
    ``ValueError`` naming the zone for anything unknown (including empty strings).
    """
    canonical, _, windows = _tables()
    cleaned = name.strip()
    key = cleaned.strip("/").lower()
    if key in canonical:
        return canonical[key]
    if key in windows:
        return windows[key]
    if cleaned.startswith("/"):
        parts = key.split("/")
        for start in range(1, len(parts)):
            suffix = "/".join(parts[start:])
            if suffix in canonical:
                return canonical[suffix]
    raise ValueError(
        f"unknown time zone {name!r}; use an IANA name such as Asia/Kolkata or Europe/Berlin"
    )


def same_zone(a: str, b: str) -> bool:
    """Whether two zone names (any spelling :func:`to_iana` accepts) name the same clock.

    Aliases and Windows names compare equal to their zone, and zones the tz database has merged
    (identical since 1970, such as Europe/Amsterdam and Europe/Brussels) compare equal too.
    Raises ``ValueError`` if either name is unknown.
    """
    _, resolved, _ = _tables()
    first, second = to_iana(a), to_iana(b)
    return resolved.get(first, first) == resolved.get(second, second)


@functools.cache
def zoneinfo(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for any spelling :func:`to_iana` accepts; raises ``ValueError``."""
    iana = to_iana(name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - tables out of step
        raise ValueError(f"time zone {iana!r} is not installed: {exc}") from None
