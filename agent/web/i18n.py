"""The console's own words in the viewer's language (gettext catalogs under locale/), and
dates and times in the viewer's zone and locale (Babel)."""

from __future__ import annotations

import gettext
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).parent / "locale"
LANGUAGES = ("en", "hi", "te")  # the console's: English, and the catalogs under locale/


def N_(text: str) -> str:
    """Mark ``text`` for the catalogs (``pybabel extract -k N_``); it is translated when shown."""
    return text


# A promise's state, shown translated on the pages.
STATES = (N_("active"), N_("warned"), N_("breached"), N_("met"))


def choose(preferred: str, accept_language: str) -> str:
    """The viewer's configured language, else the browser's first one we have, else English."""
    wanted = [preferred] if preferred else []
    for part in accept_language.split(",")[:20]:
        tag = part.split(";")[0].strip()
        if tag:
            wanted.append(tag)
    for tag in wanted:
        base = tag.replace("_", "-").split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return "en"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog for ``lang``, compiled from its .po file when first asked for."""
    po = LOCALES / lang / "LC_MESSAGES" / "console.po"
    if lang == "en" or not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def when(dt: datetime | None, zone: str, lang: str) -> str:
    """A moment as the viewer reads it: their zone, their locale's medium format."""
    if dt is None:
        return ""
    try:
        locale = Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse("en")
    return format_datetime(dt, "medium", tzinfo=ZoneInfo(zone), locale=locale)
