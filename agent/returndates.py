"""The day an out-of-office reply says its writer is back, read from the reply's text.

``read_return(text, sent, language, country)`` finds the dates in ``text`` that stand next to a
*return cue* and returns the first day the writer is back, with the phrase it read and why:

- Only a date next to a cue counts: "until", "back on", "bis", "ab dem", "jusqu'au", "hasta el",
  "até", "حتى", "तक", "వరకు", "まで", "至" ... (before the date or, in languages that put it
  after, after it). "Our next release is 2026-10-01" holds nothing.
- Numeric dates are read in the order of the client's locale (language and country, from CLDR
  through Babel): "10.11.2025" is 10 November in de, fr, es, pt, ar, te, hi and en-IN, and
  "11/10/2025" is 10 November in en-US. A numeric date whose order matters (both parts 12 or
  less and different) with no locale to decide is refused, not guessed. A date with a day over
  12, a year first ("2025-11-10", "2025/11/10") or a month name is read whatever the locale.
- Digits of any script (Arabic-Indic, Devanagari, Telugu, full-width ...) are read as digits;
  CJK dates ("11月3日", "十一月三日", "2026年11月3日", "11월 3일") are read.
- A cue naming the last day away ("through 18 September", "bis einschließlich 30. September",
  "until and including", "tot en met", "30 novembre inclus") and the end of a range ("from 3 to
  14 November", "November 3-14") give the day after: the caller moves it to the next business
  day of the client's calendar.
- A month without a day gives no invented day: "from October" (ab Oktober, à partir d'octobre)
  is the 1st of that month; "until October 2026" (bis Oktober) says the absence may last all of
  it, so the writer is taken to be back on the 1st of the month after. Holding a follow-up a few
  days too long is the lesser harm than one that lands while the client is away.
- A weekday alone next to a cue ("back on Monday", "wieder am Montag") is the next such weekday
  after the day the reply was sent.
- Clock times ("Hours: 5am", "ab 9:30 Uhr") are never dates.
- Of several cued dates, the latest counts. Only days after ``sent`` and within
  ``MAX_ABSENCE`` count.

Month and weekday names come from CLDR through Babel, for the template languages and the common
European ones. Pure: no I/O, no clock. Reads ``text[:MAX_CHARS]``, in time linear in it: the text
is split into words once and each cue pattern only ever sees a bounded window next to a date.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

__all__ = ["MAX_ABSENCE", "MAX_CHARS", "ReturnDate", "date_order", "read_return"]

MAX_ABSENCE = timedelta(days=120)
# The return date of an out-of-office reply is at its top.
MAX_CHARS = 20_000

# Languages whose month and weekday names are read, besides the client's own.
NAME_LANGUAGES = (
    "en", "de", "fr", "es", "pt", "it", "nl", "sv", "da", "nb", "fi", "pl", "cs", "ru",
    "ar", "hi", "te", "ja", "zh", "ko", "tr", "el",
)  # fmt: skip
# Locales whose month names differ from their language's default (Levant Arabic, Maghreb).
NAME_LOCALES = ("ar_SY", "ar_LB", "ar_JO", "ar_IQ", "ar_DZ", "ar_MA", "ar_TN", "pt_PT")


@dataclass(frozen=True)
class ReturnDate:
    """The first day the writer is back (before moving to a business day), and why.

    ``kind`` is "return" (the day named is the day back), "last day" (the day named is the last
    day away, so ``day`` is the day after it), "month" or "weekday".
    """

    day: date
    phrase: str
    kind: str

    def why(self) -> str:
        return f"{self.kind} in {self.phrase!r}"


# -- digits and CJK numerals -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _digit_table() -> dict[int, str]:
    """Every decimal digit of the Basic Multilingual Plane mapped to its ASCII digit."""
    table = {}
    for cp in range(0x80, 0x10000):
        ch = chr(cp)
        if unicodedata.category(ch) == "Nd":
            table[cp] = str(unicodedata.digit(ch))
    return table


_CJK_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CJK_DIGITS |= {"六": 6, "七": 7, "八": 8, "九": 9}
_CJK_NUMBER = re.compile(r"[〇零一二两三四五六七八九十]{1,4}(?=\s{0,2}[年月日号號])")


def _cjk_value(word: str) -> str:
    """ "十一" -> "11", "三十" -> "30", "二〇二六" -> "2026"; the word itself when unreadable."""
    if "十" not in word:
        return "".join(str(_CJK_DIGITS[c]) for c in word)
    tens, _, ones = word.partition("十")
    if len(tens) > 1 or len(ones) > 1 or "十" in ones:
        return word
    value = (_CJK_DIGITS[tens] if tens else 1) * 10 + (_CJK_DIGITS[ones] if ones else 0)
    return str(value)


def _normalise(text: str) -> str:
    """``text`` with native digits as ASCII and CJK numerals before 年/月/日 as numbers."""
    text = text.translate(_digit_table())
    if any("\u3000" <= c <= "\u9fff" for c in text[:MAX_CHARS]):
        text = _CJK_NUMBER.sub(lambda m: _cjk_value(m.group()), text)
    return text


# -- names from CLDR ---------------------------------------------------------------------------


def _strip_name(name: str) -> str:
    return name.lower().strip().rstrip(".").replace("\u200f", "").replace("\u200e", "")


def _useful(name: str) -> bool:
    return len(name) >= 3 and not any(c.isdigit() or "\u3000" <= c <= "\u9fff" for c in name)


@lru_cache(maxsize=128)
def _names(language: str, abbreviated: bool) -> tuple[dict[str, int], dict[str, int]]:
    """Month names (-> 1..12) and weekday names (-> 0..6) of ``language``, lower-case; short
    month names ("Nov.") too when ``abbreviated``."""
    from babel import Locale, UnknownLocaleError

    months: dict[str, int] = {}
    days: dict[str, int] = {}
    tags = [language] + [t for t in NAME_LOCALES if t.split("_")[0] == language]
    for tag in tags:
        try:
            loc = Locale.parse(tag)
        except (UnknownLocaleError, ValueError):
            continue
        for context in ("format", "stand-alone"):
            for width in ("wide", "abbreviated") if abbreviated else ("wide",):
                for number, name in loc.months[context][width].items():
                    if _useful(_strip_name(name)):
                        months[_strip_name(name)] = number
            for number, name in loc.days[context]["wide"].items():
                if _useful(_strip_name(name)):
                    days[_strip_name(name)] = number
    return months, days


# Common spellings CLDR does not list (Hindi writes October both ways).
_SPELLINGS = {"अक्तूबर": 10, "नवम्बर": 11, "दिसम्बर": 12, "सितम्बर": 9, "सेप्टेंबर": 9}


@lru_cache(maxsize=64)
def _all_names(language: str) -> tuple[dict[str, int], dict[str, int]]:
    """Names of every language read, the client's own winning; a name two others disagree on
    ("listopad" is November in Polish, October in Croatian) is dropped. Short month names are
    read only in English and the client's language: "out" is October in Portuguese."""
    merged: list[dict[str, int]] = [{}, {}]
    clash: list[set[str]] = [set(), set()]
    for lang in NAME_LANGUAGES:
        for k, table in enumerate(_names(lang, lang == "en")):
            for name, number in table.items():
                if merged[k].setdefault(name, number) != number:
                    clash[k].add(name)
    for k in range(2):
        for name in clash[k]:
            del merged[k][name]
    for name, number in _SPELLINGS.items():
        merged[0].setdefault(name, number)
    if language:
        own = _names(language, True)
        merged[0].update(own[0])
        merged[1].update(own[1])
    return merged[0], merged[1]


# -- the locale's order ------------------------------------------------------------------------


@lru_cache(maxsize=256)
def date_order(language: str, country: str = "") -> str:
    """ "DMY", "MDY" or "YMD" for the client's locale from CLDR's short date format, or "" when
    the locale does not settle it (no language; a language whose countries disagree, such as
    English, without a country)."""
    from babel import Locale, UnknownLocaleError
    from babel.localedata import locale_identifiers

    parts = language.replace("_", "-").split("-")
    lang = parts[0].lower()
    region = next((p.upper() for p in parts[1:] if len(p) == 2 and p.isalpha()), "")
    region = region or country.strip().upper()
    if not lang.isalpha():
        return ""

    def order(tag: str) -> str:
        try:
            pattern = Locale.parse(tag).date_formats["short"].pattern
        except (UnknownLocaleError, ValueError, KeyError):
            return ""
        seen = "".join(dict.fromkeys(c for c in pattern if c in "dMy"))
        return seen.upper() if len(seen) == 3 else ""

    if region:
        found = order(f"{lang}_{region}")
        if found:
            return found
    # No country: the language's own locale, when most of its countries write dates its way.
    # English is refused: the US writes the month first, most English-speaking countries the day.
    own = order(lang)
    orders = [order(t) for t in locale_identifiers() if t == lang or t.startswith(f"{lang}_")]
    return own if own and orders.count(own) * 2 > len(orders) else ""


# -- cues --------------------------------------------------------------------------------------

# A cue before the date, then at most a few short words ("bis zum", "back in the office on the").
_FILL = r"(?:[\s,:]+[^\s\d]{1,12}){0,3}[\s,:]*$"

_LAST_BEFORE = (
    r"through|thru|until and including|up to and including|till and including|"
    r"to and including|until the end of|till the end of|after|"
    r"bis einschließlich|bis einschl\.?|bis inklusive|bis inkl\.?|einschließlich bis|"
    r"jusqu'au inclus|tot en met|t/m|till och med|t\.o\.m\.?|til og med|"
    r"hasta el final del?|até o final de"
)
_RETURN_BEFORE = (
    r"until|till|til|untill|up to|back on|back|return\w*|"
    r"back in the office on|in the office on|from|as of|starting|beginning|"
    r"bis|ab|zurück|wieder|erreichbar|"
    r"jusqu'au|jusqu'à|jusqu’au|jusqu’à|retour|dès|à partir du|à partir de|à compter du|"
    r"hasta|regres\w*|volver\w*|vuelta|a partir del|a partir de|desde|"
    r"até|retorn\w*|volt\w*|"
    r"fino al|fino a|rientr\w*|ritorn\w*|dal|a partire dal|"
    r"tot|terug|vanaf|"
    r"till|tillbaka|åter|från|tilbage|tilbake|fra|"
    r"do|od|powrót|wracam|"
    r"حتى|لغاية|غاية|سأعود|العودة|عودتي|ابتداء من|ابتداءً من|اعتبارا من|اعتباراً من|إلى|الى|"
    r"वापस|తిరిగి|jusqu'en|jusqu’en|d'ici"
)
_LAST_AFTER = (
    r"inclusive|inclusively|inclus|inclusivement|inclusivo|incluido|incluso|inclusief|"
    r"einschließlich|compreso|incluso|włącznie|ambos inclusive|ambos incluidos|ambos inclusos|"
    r"both inclusive|beide einschließlich|"
    r"いっぱい|一杯|終日|"
    r"(?:\(inclusive\))"
)
_RETURN_AFTER = (
    r"まで|に戻|より|から|以降|"
    r"前|之前|以前|回来|回來|返回|起|后|後|"
    r"까지|부터|에 복귀|"
    r"तक|को वापस|को\s+\S{1,12}\s+(?:वापस|लौट)|से|"
    r"వరకు|న తిరిగి|నుండి|నుంచి|"
    r"asti|alkaen|wieder|zurück|de retour|de volta|de vuelta|terug"
)

_BEFORE = re.compile(rf"(?:^|[^\w])(?:(?P<last>{_LAST_BEFORE})|(?P<ret>{_RETURN_BEFORE})){_FILL}")
_DIRECT = re.compile(rf"(?:^|[^\w])(?:{_LAST_BEFORE}|{_RETURN_BEFORE}|end of|mid|ende|fin)\s*$")
_BEFORE_CJK = re.compile(r"(?:至|到|直到|于|於|返回|将于|將於)\s{0,3}$")
_AFTER = re.compile(
    rf"^[\s,.、]{{0,3}}(?:日|号|號|일|న)?\s{{0,2}}(?:[(（][^)）]{{1,4}}[)）])?\s{{0,2}}"
    rf"(?:(?P<last>{_LAST_AFTER})|(?P<ret>{_RETURN_AFTER}))"
)
# The end of a range: "from 3 to", "3 -", "du 3 au", "vom 3. bis", "3 November to".
_RANGE = re.compile(
    r"\d{1,2}(?:st|nd|rd|th|er|\.)?\s{0,3}(?:[^\s\d]{3,12}\.?\s{1,3})?(?:\d{4}\s{0,3})?"
    r"(?:to|and|-|–|—|~|～|bis|au|al|a|ao|até|tot|do|حتى|إلى|至|到)\s*$",
    re.IGNORECASE,
)
# A date a request is due by ("please send invoices by 15.10."), an offer is good until, or a
# change takes effect from ("our new address from 1 November"): not the writer's return.
_DEADLINE = re.compile(
    r"\b(?:please|bitte|veuillez|merci de|por favor|favor|per favore|graag|send\w*|envoy\w*|"
    r"envi\w*|submit\w*|einreichen|deadline|frist|valid|gültig|valable|válid\w*|expir\w*|"
    r"läuft|due|fällig|address|adresse|anschrift|dirección|endereço|indirizzo|adres|prices?|"
    r"prix|preise?|precios?|preços?|prezz[oi]|rates|tarif\w*|effective|gilt|in kraft)\b"
)
# Where a sentence ends: a cue beyond it is about something else.
_STOP = re.compile(r"[\n!?。！？;।]|[^\d\s.]{2}\.\s+(?=[A-ZÄÖÜÉ])")

_WINDOW_BEFORE = 48
_WINDOW_AFTER = 24


def _before(text: str, start: int) -> str:
    window = text[max(0, start - _WINDOW_BEFORE) : start]
    cut = 0
    for m in _STOP.finditer(window):
        cut = m.end()
    return window[cut:]


def _after(text: str, end: int) -> str:
    window = text[end : end + _WINDOW_AFTER]
    m = _STOP.search(window)
    return window[: m.start() + 1] if m else window


def _cue(text: str, start: int, end: int) -> str:
    """ "last", "ret" or "" for the date at text[start:end]."""
    before = _before(text, start).lower()
    after = _after(text, end).lower()
    a = _AFTER.match(after)
    if a and a.group("last"):
        return "last"
    b = _BEFORE.search(before) or _BEFORE_CJK.search(before)
    if b and b.groupdict().get("last"):
        return "last"
    if _RANGE.search(before):
        return "last"
    if (b or a) and not _DEADLINE.search(before[-24:]):
        return "ret"
    return ""


# -- dates -------------------------------------------------------------------------------------

_ISO = re.compile(r"(?<![\d.:/-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d:])")
_NUMERIC = re.compile(
    r"(?<![\d.:/-])(\d{1,2})([./-])(\d{1,2})(?:\2(\d{4}|\d{2}))?(\.)?(?![\d:/-])(?!\.\d)"
)
_CJK = re.compile(
    r"(?:(\d{4})\s{0,2}[年년]\s{0,2})?(\d{1,2})\s{0,2}[月월]\s{0,2}(\d{1,2})\s{0,2}[日号號일]"
    r"(?:\s{0,2}[~～〜\-–至到]\s{0,2}(?:(\d{1,2})\s{0,2}[月월]\s{0,2})?(\d{1,2})\s{0,2}[日号號일])?"
)
_CJK_MONTH = re.compile(r"(\d{4})\s{0,2}[年년]\s{0,2}(\d{1,2})\s{0,2}[月월](?!\s{0,2}\d)")
_WORD = re.compile(r"[^\s\d.,;:!?()\[\]{}\"'«»“”/\\|*<>=+~_-]+\.?")
_DAY_BEFORE = re.compile(
    r"(?:(?<![\d:/.-])(\d{1,2})\.?\s{0,3}[-–]\s{0,3}|(?<![\d:/.-]))(\d{1,2})(?:st|nd|rd|th|er|e|º|°|ª|\.|న)?"
    r"\s{0,3}(?:de\s+|of\s+|del\s+|d'|-)?$",
    re.IGNORECASE,
)
_DAY_AFTER = re.compile(
    r"^\s{0,3}(?:the\s+)?(\d{1,2})(?:st|nd|rd|th|న)?(?:\s{0,3}[-–]\s{0,3}(\d{1,2})(?:st|nd|rd|th)?)?"
    r"(?![\d:])(?!\s?(?:am|pm|a\.m|p\.m|h\b|uhr|hrs|o'clock))",
    re.IGNORECASE,
)
_YEAR_AFTER = re.compile(r"^[\s,.]{0,3}(?:de\s+|del\s+)?(\d{4})(?!\d)")
_TIME_AFTER = re.compile(r"^\s?(?:am|pm|a\.m|p\.m|h\b|uhr|hrs|o'clock|:\d)", re.IGNORECASE)


@dataclass(frozen=True)
class _Found:
    start: int
    end: int
    day: date | None  # None for a month-only or weekday-only mention
    kind: str  # "date", "range end", "month", "weekday"
    month: int = 0
    year: int = 0
    weekday: int = -1


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _year_for(month: int, day: int, sent: date) -> date | None:
    for year in (sent.year, sent.year + 1):
        found = _safe_date(year, month, day)
        if found is not None and found > sent:
            return found
    return None


def _full_year(raw: str) -> int:
    return int(raw) + 2000 if len(raw) == 2 else int(raw)


def _numeric(text: str, sent: date, order: str) -> list[_Found]:
    out = []
    for m in _ISO.finditer(text):
        day = _safe_date(int(m[1]), int(m[3]), int(m[4]))
        if day:
            out.append(_Found(m.start(), m.end(), day, "date"))
    for m in _NUMERIC.finditer(text):
        first, sep, second, year, dot = m[1], m[2], m[3], m[4], m[5]
        if year is None and sep == "." and not dot:
            continue  # "9.30" is a time or a price; "10.11." is a date
        if year is None and sep == "-":
            continue  # "3-14" is a range of days or numbers
        if _TIME_AFTER.match(text, m.end()) or text[m.end() : m.end() + 1] == "%":
            continue
        a, b = int(first), int(second)
        if order == "DMY":
            day_month = (a, b)
        elif order in ("MDY", "YMD"):  # "11/3" is 3 November in ja, zh and en-US
            day_month = (b, a)
        elif a > 12 >= b or a == b:
            day_month = (a, b)
        elif b > 12 >= a:
            day_month = (b, a)
        else:
            continue  # the order matters and nothing says which it is: refused
        if sep == "." and order == "MDY" and a > 12 >= b:
            day_month = (a, b)
        d, mo = day_month
        found = _safe_date(_full_year(year), mo, d) if year else _year_for(mo, d, sent)
        if found:
            out.append(_Found(m.start(), m.end(), found, "date"))
    return out


def _cjk(text: str, sent: date) -> list[_Found]:
    out = []
    for m in _CJK.finditer(text):
        month, day = int(m[2]), int(m[3])
        kind = "date"
        if m[5]:
            month, day, kind = int(m[4] or month), int(m[5]), "range end"
        found = _safe_date(int(m[1]), month, day) if m[1] else _year_for(month, day, sent)
        if found:
            out.append(_Found(m.start(), m.end(), found, kind))
    for m in _CJK_MONTH.finditer(text):
        if 1 <= int(m[2]) <= 12:
            out.append(_Found(m.start(), m.end(), None, "month", int(m[2]), int(m[1])))
    return out


def _named(text: str, sent: date, language: str) -> list[_Found]:
    months, weekdays = _all_names(language)
    words = [(m.start(), m.end(), _strip_name(m.group())) for m in _WORD.finditer(text)]
    out = []
    i = 0
    while i < len(words):
        start, end, word = words[i]
        month = 0
        if i + 1 < len(words):
            pair = f"{word} {words[i + 1][2]}"
            if pair in months and text[end : words[i + 1][0]].strip() == "":
                month, end = months[pair], words[i + 1][1]
                i += 1
        month = month or months.get(word, 0)
        if month:
            out.extend(_around_month(text, start, end, month, sent))
        elif word in weekdays:
            out.append(_Found(start, end, None, "weekday", weekday=weekdays[word]))
        i += 1
    return out


def _around_month(text: str, start: int, end: int, month: int, sent: date) -> list[_Found]:
    year_m = None
    before = _DAY_BEFORE.search(text[max(0, start - 14) : start])
    after = _DAY_AFTER.match(text[end : end + 14])
    if before:
        first, day = before[1], int(before[2])
        d_start, d_end = start - (len(text[max(0, start - 14) : start]) - before.start()), end
        year_m = _YEAR_AFTER.match(text[end : end + 12])
        if year_m:
            d_end = end + year_m.end()
        kind = "range end" if first else "date"
    elif after:
        first, day = (after[1], int(after[2])) if after[2] else (None, int(after[1]))
        d_start, d_end = start, end + after.end()
        year_m = _YEAR_AFTER.match(text[d_end : d_end + 12])
        if year_m:
            d_end += year_m.end()
        kind = "range end" if first else "date"
    else:
        year_m = _YEAR_AFTER.match(text[end : end + 12])
        year = int(year_m[1]) if year_m else 0
        d_end = end + (year_m.end() if year_m else 0)
        return [_Found(start, d_end, None, "month", month, year)]
    found = _safe_date(int(year_m[1]), month, day) if year_m else _year_for(month, day, sent)
    return [_Found(d_start, d_end, found, kind)] if found else []


# -- reading -----------------------------------------------------------------------------------


def read_return(text: str, sent: date, language: str = "", country: str = "") -> ReturnDate | None:
    """The first day the writer of out-of-office ``text`` (sent on local day ``sent``) is back.

    ``language`` and ``country`` are the client's (a BCP-47 tag such as "en-IN" carries its
    country). Returns ``None`` when no date stands next to a return cue. Never raises.
    """
    raw = text[:MAX_CHARS]
    norm = _normalise(raw)
    base = language.replace("_", "-").split("-")[0].lower()
    order = date_order(language, country) if language else ""
    found = _numeric(norm, sent, order) + _cjk(norm, sent) + _named(norm, sent, base)
    found.sort(key=lambda f: f.start)
    best: ReturnDate | None = None
    for i, f in enumerate(found):
        if any(
            o is not f and o.start <= f.start and f.end <= o.end
            for o in found[max(0, i - 2) : i + 3]
        ):
            continue  # "11" inside "11月3日", "October" inside "1 October"
        # A range of dates in an out-of-office reply is the absence, cue or not.
        cue = "last" if f.kind == "range end" else _cue(norm, f.start, f.end)
        if not cue:
            continue
        candidate = _candidate(f, cue, sent, found[i + 1 : i + 2], norm)
        if candidate is None:
            continue
        day, kind = candidate
        if not sent < day <= sent + MAX_ABSENCE + timedelta(days=1):
            continue
        if best is None or day > best.day:
            phrase = " ".join(raw[max(0, f.start - 24) : f.end + 8].split())
            best = ReturnDate(day, phrase, kind)
    return best


def _candidate(
    f: _Found, cue: str, sent: date, following: list[_Found], text: str
) -> tuple[date, str] | None:
    if f.kind == "weekday":
        if following and following[0].start - f.end < 6:
            return None  # "Monday, 30 November": the date says it
        ahead = (f.weekday - sent.weekday()) % 7 or 7
        return sent + timedelta(days=ahead), "weekday"
    if f.kind == "month":
        if not f.year and not _DIRECT.search(_before(text, f.start).lower()):
            return None  # "until you may ...": a bare month name needs its cue right before it
        year = f.year or (sent.year if f.month > sent.month else sent.year + 1)
        if f.year == 0 and f.month == sent.month:
            year = sent.year
        first = date(year, f.month, 1)
        starts = _FROM.search(_before(text, f.start).lower()) and cue != "last"
        if starts:
            return first, "month"
        nxt = date(year + (f.month == 12), f.month % 12 + 1, 1)
        return nxt, "month"
    assert f.day is not None
    if cue == "last" or f.kind == "range end":
        return f.day + timedelta(days=1), "last day"
    return f.day, "return"


# A month named after these is the month the writer is back in, not the end of the absence.
_FROM = re.compile(
    r"(?:from|as of|starting|back in|back|ab|ab dem|ab anfang|anfang|wieder|à partir d|dès|"
    r"début|retour en|a partir de|desde|principios de|início de|vanaf|från|fra|od|"
    r"ابتداء|اعتبارا)[^\d]{0,12}$"
)
