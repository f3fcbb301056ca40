"""Meeting requests -> slot proposals -> the chosen time as an invitation. Pure: it takes ``now``.

When the newest human message from a client asks for a meeting ("let's talk next week",
"können wir einen Termin vereinbaren", "هل يمكننا تحديد موعد") and the rep has not answered it
yet, the planner proposes times that suit both sides (agent/slots.py, the rep's busy time from
the calendar) as a note in the client's language. ``[[meeting]]`` tables in the rule files set
the terms; without one, no proposals are made.

When the client answers a proposal the agent sent, :func:`chosen_slot` reads the answer against
the times the proposal offered ("Tuesday at 10 works", "the second option", "Option 2",
"2番目でお願いします", "الخيار الثاني"). A clear choice that is still free in the rep's calendar
becomes an INVITE note (a calendar request the client can accept in one click; after an earlier
invitation in the thread, an update of that event with the next SEQUENCE); a choice the
calendar has meanwhile taken becomes a fresh proposal, with a decision saying why; an unclear
answer is left to the rep (the promise clock is already running for it).

Proposals and invitations answer the client, so they go out when the rep would send them: at
the rep's next business hour from ``now`` (times are offered, and a chosen time checked, from
then), never at night because the client's mail was read then.

With ``hold = true`` the proposed times are also held on the rep's calendar as HOLD actions,
released once a time is chosen (or a new proposal replaces them) or ``hold_for`` after the
proposal. Held times of one client's proposal are busy for every other proposal.

Keys: ``name`` (required), ``match`` (as for promises), ``duration`` ("30m"), ``within``
(search window from now, "7d"), ``min_notice`` ("4h"), ``count`` (3), ``mode`` (draft | send),
``hold`` (false), ``hold_for`` ("2d", plain elapsed time), ``description``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import get_day_names, get_month_names

from agent import matching, phrases, zones
from agent.businesstime import BusinessCalendar
from agent.durations import parse_duration
from agent.errors import Problem
from agent.followups import SEND_SPANS, client_context, send_spans
from agent.model import (
    Action,
    ActionKind,
    Address,
    Client,
    Direction,
    Event,
    Interval,
    Message,
    Thread,
)
from agent.promises import Decision, Rep
from agent.providers.protocol import KEY_HEADER, carries_key
from agent.rules import Match, match_problems, shadowed
from agent.slots import Party, SlotRequest, propose
from agent.textparts import own_text

KEYS = {
    "name",
    "match",
    "duration",
    "within",
    "min_notice",
    "count",
    "mode",
    "description",
    "hold",
    "hold_for",
}
MATCH_KEYS = {"tier", "tags", "domain", "language", "mailbox", "team"}
# Calendar holds carry this at the end of their summary: that is how the planner tells its own
# holds from the rep's meetings on every provider (event ids and UIDs differ between them).
HOLD_MARK = "[followup hold]"
_KEY = KEY_HEADER.lower()


@dataclass(frozen=True)
class MeetingRule:
    name: str
    source: str
    match: Match = field(default_factory=Match)
    duration: timedelta = timedelta(minutes=30)
    within: timedelta = timedelta(days=7)
    min_notice: timedelta = timedelta(hours=4)
    count: int = 3
    mode: str = ""
    hold: bool = False
    hold_for: timedelta = timedelta(days=2)


def parse_meeting_rules(
    raw: Iterable[Mapping[str, Any]],
) -> tuple[list[MeetingRule], list[Problem]]:
    rules: list[MeetingRule] = []
    problems: list[Problem] = []
    for i, item in enumerate(raw):
        source = str(item.get("_source", "rules"))
        name = item.get("name")
        where = name if isinstance(name, str) and name else f"meeting[{i}]"
        start = len(problems)
        for key in sorted(set(item) - KEYS - {"_source"}):
            problems.append(
                Problem(source, f"{where}:{key}", f"unknown key; known: {', '.join(sorted(KEYS))}")
            )
        if not isinstance(name, str) or not name:
            problems.append(
                Problem(source, f"{where}:name", "missing: every meeting rule needs a name")
            )
        spans: dict[str, timedelta] = {}
        for key, default in (
            ("duration", "30m"),
            ("within", "7d"),
            ("min_notice", "4h"),
            ("hold_for", "2d"),
        ):
            try:
                spans[key] = parse_duration(str(item.get(key, default)))
            except ValueError as exc:
                problems.append(Problem(source, f"{where}:{key}", str(exc)))
        if spans.get("duration") is not None and spans["duration"] <= timedelta(0):
            problems.append(Problem(source, f"{where}:duration", "must be longer than zero"))
        count = item.get("count", 3)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10:
            problems.append(Problem(source, f"{where}:count", f"{count!r}: propose 1 to 10 times"))
        mode = item.get("mode", "")
        if mode not in ("", "draft", "send"):
            problems.append(Problem(source, f"{where}:mode", f"{mode!r}: use draft or send"))
        hold = item.get("hold", False)
        if not isinstance(hold, bool):
            problems.append(
                Problem(source, f"{where}:hold", f"{hold!r}: write hold = true or hold = false")
            )
        elif "hold_for" in item and not hold:
            problems.append(
                Problem(source, f"{where}:hold_for", "is set but hold is off; add hold = true")
            )
        if spans.get("hold_for") is not None and spans["hold_for"] <= timedelta(0):
            problems.append(Problem(source, f"{where}:hold_for", "must be longer than zero"))
        match_raw = item.get("match", {})
        values: dict[str, frozenset[str]] = {}
        if isinstance(match_raw, dict):
            for key, value in match_raw.items():
                items = [value] if isinstance(value, str) else value
                if key not in MATCH_KEYS or not isinstance(items, list) or not items:
                    problems.append(
                        Problem(source, f"{where}:match.{key}", "unknown key or empty value")
                    )
                    continue
                problems += [
                    Problem(source, f"{where}:match.{key}", problem)
                    for problem in match_problems(key, (str(v).lower() for v in items))
                ]
                values[key] = frozenset(str(v).lower() for v in items)
        else:
            problems.append(Problem(source, f"{where}:match", "must be a table"))
        if len(problems) == start:
            rules.append(
                MeetingRule(
                    name=str(name),
                    source=source,
                    match=Match(**values),
                    duration=spans["duration"],
                    within=spans["within"],
                    min_notice=spans["min_notice"],
                    count=int(count),
                    mode=str(mode),
                    hold=bool(hold),
                    hold_for=spans["hold_for"],
                )
            )
    problems += shadowed(rules, "[[meeting]] rule")
    return rules, problems


# --- reading the client's answer to a proposal ---------------------------------------------

CHOSEN = "chosen"
NONE = "none"
AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Choice:
    """What a reply says about the proposed times.

    ``status`` is ``"chosen"`` (``index`` is the 0-based slot), ``"none"`` (no time named, a
    time that was not proposed, or "none of these work") or ``"ambiguous"`` (several times fit,
    or a time is named beside a refusal); ``why`` says which words decided.
    """

    status: str
    index: int | None = None
    why: str = ""


# Lexicons, written as people write them; every entry goes through phrases.normalise, so
# accents, Arabic hamza forms and full-width digits need no variants of their own.
# fmt: off
_ORDINALS: dict[int, tuple[str, ...]] = {
    0: ("first", "1st", "erste", "ersten", "erster", "erstes", "primera", "primer", "primero",
        "premier", "premiere", "1er", "1re", "primeira", "primeiro", "الأول", "الأولى", "पहला",
        "पहली", "पहले", "మొదటి", "ఒకటవ"),
    1: ("second", "2nd", "zweite", "zweiten", "zweiter", "zweites", "segunda", "segundo",
        "deuxième", "seconde", "second", "2e", "2ème", "الثاني", "الثانية", "दूसरा", "दूसरी",
        "दूसरे", "రెండవ", "రెండో"),
    2: ("third", "3rd", "dritte", "dritten", "dritter", "drittes", "tercera", "tercer",
        "tercero", "troisième", "3e", "3ème", "terceira", "terceiro", "الثالث", "الثالثة",
        "तीसरा", "तीसरी", "तीसरे", "మూడవ", "మూడో"),
    3: ("fourth", "4th", "vierte", "vierten", "vierter", "cuarta", "cuarto", "quatrième",
        "4e", "quarta", "quarto", "الرابع", "الرابعة", "चौथा", "चौथी", "నాలుగవ",
        "నాలుగో"),
    4: ("fifth", "5th", "fünfte", "fünften", "fünfter", "quinta", "quinto", "cinquième", "5e",
        "الخامس", "الخامسة", "पाँचवा", "पांचवा", "पाँचवाँ", "पांचवी", "ఐదవ", "ఐదో"),
    -1: ("last", "letzte", "letzten", "letzter", "última", "último", "dernier", "dernière",
         "الأخير", "الأخيرة", "आखिरी", "अंतिम", "చివరి"),
}
_OPTION_NOUNS = (
    "option", "options", "one", "slot", "choice", "proposal", "suggestion", "vorschlag",
    "termin", "möglichkeit", "alternative", "variante", "opción", "fecha", "horario",
    "propuesta", "alternativa", "créneau", "proposition", "horaire", "choix", "opção",
    "horário", "data", "proposta", "sugestão", "الخيار", "خيار", "الموعد", "موعد", "الاقتراح",
    "الوقت", "विकल्प", "समय", "वाला", "वाली", "ఎంపిక", "సమయం", "ఆప్షన్",
)
# "the first time we spoke", "a primera hora": bare "time" and "hora" are not options.
# Nouns that may carry a number ("Option 2"); "time 2" is too often a clock time.
_NUMBERED_NOUNS = (
    "option", "choice", "slot", "proposal", "vorschlag", "variante", "opción", "propuesta",
    "alternativa", "alternative", "proposition", "créneau", "opção", "proposta", "الخيار",
    "خيار", "الاقتراح", "اقتراح", "विकल्प", "ఎంపిక", "ఆప్షన్", "案", "候補", "選択肢",
    "オプション", "选项", "選項", "方案", "nr", "#", "nummer", "number", "numéro", "numero",
    "número", "termin",
)
_REFUSALS = (
    "none of", "neither", "doesn't work", "does not work", "don't work", "do not work",
    "won't work", "can't make", "cannot make", "can't do", "not available", "unavailable",
    "but not", "not at", "aber nicht", "nicht um", "pero no", "no a las", "mais pas", "pas a",
    "mas não", "não às",
    "keiner der", "keine der", "keiner davon", "keine davon", "keiner dieser", "keine dieser",
    "passt nicht", "passt leider nicht", "passen nicht", "geht nicht", "geht leider nicht",
    "ninguna", "ninguno", "no me va", "no me viene", "no puedo", "no me funciona",
    "aucun", "aucune", "ne me convient", "ne convient", "ne marche pas", "je ne peux pas",
    "pas disponible", "nenhum", "nenhuma", "não posso", "não consigo", "não dá", "não funciona",
    "どれも", "都合が悪", "都合がつき", "難しい", "都不行", "都不合适", "都不方便", "不方便",
    "没空", "沒空", "لا يناسب", "لا تناسب", "لا أستطيع", "غير مناسب", "कोई नहीं",
    "कोई भी नहीं", "संभव नहीं", "नहीं हो", "नहीं चलेगा", "ఏదీ", "కుదరదు", "వీలు కాదు",
    "వీలుకాదు",
)
_PM = (
    "pm", "p.m.", "nachmittags", "abends", "de la tarde", "de la noche", "da tarde",
    "da noite", "de l'après-midi", "du soir", "午後", "下午", "晚上", "مساء", "مساءا", "ظهرا",
    "दोपहर", "शाम", "మధ్యాహ్నం", "సాయంత్రం",
)
_AM = (
    "am", "a.m.", "morgens", "vormittags", "de la mañana", "da manhã", "du matin", "午前",
    "上午", "早上", "صباحا", "सुबह", "ఉదయం",
)
# "2 horas", "2 ساعة" and "1 hr" are lengths of time, not clock times.
_TIME_UNITS = (
    "uhr", "h", "heure", "heures", "horas", "hs", "o'clock", "oclock", "बजे", "గంటలకు",
    "గంటల", "గంటకు",
)
_TIME_CUES = ("at", "um", "a las", "a la", "às", "alle", "الساعة")
# fmt: on
_RANGE = re.compile(r"^\s*(?:-|–|—|~|〜|～|to|bis|a|até|au|hasta|al|至|到|から|ー)\s*$")
_CJK_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CJK_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_JA_WEEKDAYS = {"月": 0, "火": 1, "水": 2, "木": 3, "金": 4, "土": 5, "日": 6}
_LANGS = ("en", "de", "es", "fr", "pt", "ja", "zh", "ar", "hi", "te")
# Short names that are also everyday words in one of the languages ("mar" is the sea, "sat"
# a verb) are left out; English abbreviations and Portuguese short weekdays stay.
_WEEKDAY_EXTRA = {
    0: ("segunda",),  # "mon" is French for "my"
    1: ("tue", "tues", "terça"),
    2: ("wed", "weds", "quarta"),
    3: ("thu", "thur", "thurs", "quinta"),
    4: ("fri", "sexta"),
    5: (),
    6: (),
}


def _norm(text: str) -> str:
    text = phrases.normalise(text)
    # Every script's digits as ASCII: "١٠", "१०", "౧౦" and "10" are the same hour.
    return "".join(str(int(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def _alt(words: Iterable[str], *, head: bool = True) -> str:
    """One regex alternative for ``words``, longest first; Latin words bounded as words.

    ``head=False`` drops the leading bound, for units written right after a number ("10h").
    """
    parts = []
    for word in sorted({_norm(w) for w in words}, key=len, reverse=True):
        escaped = re.escape(word)
        if all(ord(ch) < 0x250 for ch in word):
            lead = r"(?<![a-z0-9])" if head and word[0].isalnum() else ""
            tail = r"(?![a-z0-9])" if word[-1].isalnum() else ""
            escaped = f"{lead}{escaped}{tail}"
        parts.append(escaped)
    return "(?:" + "|".join(parts) + ")"


@dataclass(frozen=True)
class _Lexicon:
    ordinal_before: re.Pattern[str]
    ordinal_after: re.Pattern[str]
    numbered: re.Pattern[str]
    cjk_ordinal: re.Pattern[str]
    cjk_counted: re.Pattern[str]
    cjk_last: re.Pattern[str]
    ordinal_index: dict[str, int]
    refusal: re.Pattern[str]
    pm: re.Pattern[str]
    am: re.Pattern[str]
    time_clock: re.Pattern[str]
    time_ampm: re.Pattern[str]
    time_unit: re.Pattern[str]
    time_cue: re.Pattern[str]
    time_cjk: re.Pattern[str]
    date_cjk: re.Pattern[str]
    day_cjk: re.Pattern[str]
    date_dotted: re.Pattern[str]
    date_slashed: re.Pattern[str]
    date_day_month: re.Pattern[str]
    date_month_day: re.Pattern[str]
    months: dict[str, int]
    weekdays: re.Pattern[str]
    weekday_index: dict[str, int]


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    index = {_norm(w): i for i, words in _ORDINALS.items() for w in words}
    ordinal = _alt(index)
    nouns = _alt(_OPTION_NOUNS)
    numbered = _alt(_NUMBERED_NOUNS)
    cjk_num = "[1-9一二三四五六七八九]"
    cjk_noun = "(?:个|個|案|候補|選択肢|选项|選項|時間|时间|方案|候选|候選|日程|的时间)"
    months: dict[str, int] = {}
    weekday_index: dict[str, int] = {}
    for lang in _LANGS:
        if lang not in ("ja", "zh"):
            for number, name in get_month_names("wide", locale=lang).items():
                months[_norm(name)] = int(number)
        for number, name in get_day_names("wide", locale=lang).items():
            weekday_index[_norm(name)] = int(number)
    for number, name in get_month_names("abbreviated", locale="en").items():
        months[_norm(name).rstrip(".")] = int(number)
    for day, extra in _WEEKDAY_EXTRA.items():
        for name in extra:
            weekday_index[_norm(name)] = day
    for ch, day in _CJK_WEEKDAYS.items():
        for prefix in ("星期", "周", "週", "礼拜", "禮拜"):
            weekday_index[f"{prefix}{ch}"] = day
    for ch, day in _JA_WEEKDAYS.items():
        weekday_index[f"{ch}曜"] = day
        weekday_index[f"({ch})"] = day
    month = _alt(months)
    hour = r"(\d{1,2})"
    return _Lexicon(
        ordinal_before=re.compile(rf"({ordinal})\s+(?:\S+\s+)?{nouns}"),
        ordinal_after=re.compile(
            rf"{_alt(('الخيار', 'الموعد', 'الاقتراح', 'الوقت'))}\s+({ordinal})"
        ),
        numbered=re.compile(
            rf"{numbered}\.?\s*(?:#|no\.?|nr\.?|nº|n°|number|nummer|numero|رقم|नंबर)?\s*(\d{{1,2}})"
            r"(?![\d:/]|\.\d|\s*(?:am|pm|uhr|h\b|時|点))"
        ),
        cjk_ordinal=re.compile(rf"第\s*({cjk_num})\s*(?:の\s*)?{cjk_noun}"),
        cjk_counted=re.compile(rf"(?<!\d)({cjk_num})\s*(?:番目|つ目|個目|番(?![地線号]))"),
        cjk_last=re.compile(rf"(?:最後|最后)\s*(?:の|的)?\s*(?:一\s*)?{cjk_noun}"),
        ordinal_index=index,
        refusal=re.compile(_alt(_REFUSALS)),
        pm=re.compile(_alt(_PM)),
        am=re.compile(_alt(_AM)),
        time_clock=re.compile(
            rf"{hour}\s*(?::|h)\s*(\d{{2}})(?!\d)|{hour}\.(\d{{2}})(?=\s*(?:uhr|h|am|pm))"
        ),
        time_ampm=re.compile(rf"{hour}\s*(?=(?:am|pm|a\.m\.|p\.m\.)(?![a-z]))"),
        time_unit=re.compile(rf"{hour}\s*{_alt(_TIME_UNITS, head=False)}"),
        time_cue=re.compile(rf"{_alt(_TIME_CUES)}\s+{hour}(?![\d/]|\.\d|\s*(?:st|nd|rd|th|de)\b)"),
        time_cjk=re.compile(
            r"((?:\d{1,2})|[二三四五六七八九]|十[一二]?|(?<=午前|午後|上午|下午|晚上|早上)一)"
            r"\s*[時时点點](?![間间])(?:\s*(半|(\d{1,2})\s*分))?"
        ),
        date_cjk=re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号號]"),
        # "22日でお願いします", "22号可以": a day of the month alone (not 3日間, three days)
        day_cjk=re.compile(r"(?<![\d月])(\d{1,2})\s*[日号號](?![間间])"),
        date_dotted=re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(?!\d)"),
        date_slashed=re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/\d{2,4})?(?![\d/])"),
        date_day_month=re.compile(
            rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th|er|e|º|o|\.)?\s*(?:de\s+)?({month})"
        ),
        date_month_day=re.compile(rf"({month})\s+(\d{{1,2}})(?!\d|\s*(?::|h\b|am|pm|uhr))"),
        months=months,
        weekdays=re.compile(_alt(weekday_index)),
        weekday_index=weekday_index,
    )


def _cjk_number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text.startswith("十"):
        return 10 + (_CJK_DIGITS.get(text[1:], 0) if len(text) > 1 else 0)
    return _CJK_DIGITS[text]


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _ordinals(text: str, lex: _Lexicon, count: int) -> tuple[set[int] | None, str, list[str]]:
    found: list[tuple[int, int, int, str]] = []  # start, end, index, words

    def add(m: re.Match[str], index: int) -> None:
        found.append((m.start(), m.end(), count - 1 if index == -1 else index, m.group(0)))

    for m in lex.ordinal_before.finditer(text):
        add(m, lex.ordinal_index[m.group(1)])
    for m in lex.ordinal_after.finditer(text):
        add(m, lex.ordinal_index[m.group(1)])
    for m in lex.numbered.finditer(text):
        add(m, int(m.group(1)) - 1)
    for m in lex.cjk_ordinal.finditer(text):
        add(m, _cjk_number(m.group(1)) - 1)
    for m in lex.cjk_counted.finditer(text):
        add(m, _cjk_number(m.group(1)) - 1)
    for m in lex.cjk_last.finditer(text):
        add(m, -1)
    if not found:
        return None, text, []
    for start, end, _, _ in found:
        text = _blank(text, start, end)
    return {i for _, _, i, _ in found}, text, [w.strip() for *_, w in found]


def _hours(text: str, start: int, end: int, hour: int, lex: _Lexicon) -> set[int]:
    """The 24-hour readings of ``hour`` given the am/pm words right before or after it."""
    after, before = text[end : end + 24], text[max(0, start - 24) : start]
    pm = re.match(rf"\s*(?:{lex.pm.pattern})", after) or re.search(
        rf"(?:{lex.pm.pattern})\s*$", before
    )
    am = re.match(rf"\s*(?:{lex.am.pattern})", after) or re.search(
        rf"(?:{lex.am.pattern})\s*$", before
    )
    if hour > 23:
        return set()
    if pm and hour < 12:
        return {hour + 12}
    if am:
        return {0 if hour == 12 else hour}
    return {hour, hour + 12} if 1 <= hour <= 11 else {hour}


def _times(text: str, lex: _Lexicon) -> tuple[list[tuple[set[int], int]], str, list[str]]:
    """Clock times named in ``text``: (possible hours, minute); ranges keep their start only."""
    spans: list[tuple[int, int, set[int], int, str]] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(a: int, b: int, hours: set[int], minute: int, words: str) -> None:
        if free(a, b) and hours:
            taken.append((a, b))
            spans.append((a, b, hours, minute, words))

    for m in lex.time_clock.finditer(text):
        h, mm = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if int(mm) < 60:
            add(m.start(), m.end(), _hours(text, m.start(), m.end(), int(h), lex), int(mm), m[0])
    for m in lex.time_cjk.finditer(text):
        minute = 30 if m.group(2) == "半" else int(m.group(3) or 0)
        hours = _hours(text, m.start(), m.end(), _cjk_number(m.group(1)), lex)
        add(m.start(), m.end(), hours, minute, m[0])
    for pattern in (lex.time_ampm, lex.time_unit, lex.time_cue):
        for m in pattern.finditer(text):
            h = int(m.group(1))
            add(m.start(), m.end(), _hours(text, m.start(), m.end(), h, lex), 0, m[0])
    spans.sort()
    kept: list[tuple[set[int], int]] = []
    words: list[str] = []
    previous_end = -1
    for a, b, hours, minute, said in spans:
        if previous_end >= 0 and _RANGE.match(text[previous_end:a]):
            previous_end = b
            continue  # "10:00–10:30": the end of a range the client copied
        kept.append((hours, minute))
        words.append(said.strip())
        previous_end = b
        text = _blank(text, a, b)
    return kept, text, words


ANY_MONTH = 0  # a day named without its month: "22日"


def _dates(text: str, lex: _Lexicon) -> tuple[set[tuple[int, int]] | None, str, list[str]]:
    """(month, day) pairs named in ``text``; a slashed date may be read either way round."""
    found: set[tuple[int, int]] = set()
    words: list[str] = []

    def valid(month: int, day: int) -> bool:
        return 1 <= month <= 12 and 1 <= day <= 31

    for m in lex.date_cjk.finditer(text):
        if not valid(int(m.group(1)), int(m.group(2))):
            continue
        found.add((int(m.group(1)), int(m.group(2))))
        words.append(m[0])
        text = _blank(text, m.start(), m.end())
    for m in lex.day_cjk.finditer(text):
        if not valid(1, int(m.group(1))):
            continue
        found.add((ANY_MONTH, int(m.group(1))))
        words.append(m[0])
        text = _blank(text, m.start(), m.end())
    for m in lex.date_dotted.finditer(text):
        if not valid(int(m.group(2)), int(m.group(1))):
            continue  # "um 10.30." is a time
        found.add((int(m.group(2)), int(m.group(1))))
        words.append(m[0])
        text = _blank(text, m.start(), m.end())
    for m in lex.date_slashed.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        pairs = {p for p in ((a, b), (b, a)) if valid(*p)}
        if not pairs:
            continue
        found |= pairs
        words.append(m[0])
        text = _blank(text, m.start(), m.end())
    for m in lex.date_day_month.finditer(text):
        found.add((lex.months[m.group(2)], int(m.group(1))))
        words.append(m[0])
        text = _blank(text, m.start(), m.end())
    for m in lex.date_month_day.finditer(text):
        found.add((lex.months[m.group(1)], int(m.group(2))))
        words.append(m[0])
        text = _blank(text, m.start(), m.end())
    return (found or None), text, words


MAX_REPLY_CHARS = 4_000


def chosen_slot(text: str, slots: Sequence[Interval], zone: str) -> Choice:
    """Which of ``slots`` the reply ``text`` picks, read in the client's ``zone``.

    Quoted mail and the signature are cut first (the quoted proposal names every time). The
    reply may name an option ("the second option", "Option 2", "la segunda opción",
    "2番目", "第二个", "الخيار الثاني", "दूसरा विकल्प", "రెండవ ఎంపిక", "the last one"), a
    weekday ("Tuesday", "Dienstag", "terça", "火曜日", "周二", "الثلاثاء", "मंगलवार",
    "మంగళవారం"), a date ("1 December", "1.12.", "12月1日") and a clock time ("at 10",
    "10:30", "3pm", "15 Uhr", "10h", "午後3時", "下午3点", "10 बजे", "10 గంటలకు"), in any of
    en, de, es, fr, pt, ja, zh, ar, hi, te and in any script's digits. Every kind named must
    agree: the slots that fit all of them are the candidates. One candidate is a choice;
    several are ambiguous; none means the client named a time that was not offered. A refusal
    ("none of these work", "keiner passt", "どれも難しい") is never read as a choice.
    Pure; never raises for any text.
    """
    if not slots:
        return Choice(NONE, why="no times were proposed")
    lex = _lexicon()
    tz = zones.zoneinfo(zone)
    # A choice is made at the top of a reply; each time found is blanked out of the text, so
    # the text read is bounded to keep that step from growing with the square of a long mail.
    own = own_text(text)[:MAX_REPLY_CHARS]
    if not own.strip():
        return Choice(NONE, why="the reply has no text of its own")
    norm = _norm(own)
    refusal = lex.refusal.search(norm)
    ordinals, rest, said = _ordinals(norm, lex, len(slots))
    dates, rest, date_words = _dates(rest, lex)
    times, rest, time_words = _times(rest, lex)
    named_days = {lex.weekday_index[m[0]] for m in lex.weekdays.finditer(rest)}
    said += date_words + time_words
    said += [m[0] for m in lex.weekdays.finditer(rest)]

    local = [(s.start.astimezone(tz), s) for s in slots]
    candidates = set(range(len(slots)))
    named = False
    if ordinals is not None:
        named = True
        candidates &= {i for i in ordinals if 0 <= i < len(slots)}
    if dates is not None:
        named = True
        candidates &= {
            i
            for i, (lt, _) in enumerate(local)
            if (lt.month, lt.day) in dates or (ANY_MONTH, lt.day) in dates
        }
    if named_days:
        named = True
        candidates &= {i for i, (lt, _) in enumerate(local) if lt.weekday() in named_days}
    if times:
        named = True
        candidates &= {
            i
            for i, (lt, _) in enumerate(local)
            if any(lt.hour in hours and lt.minute == minute for hours, minute in times)
        }
    words = ", ".join(f"'{w}'" for w in said)
    if refusal:
        if named and candidates:
            return Choice(AMBIGUOUS, why=f"names {words} but also says '{refusal[0]}'")
        return Choice(NONE, why=f"declines the times: '{refusal[0]}'")
    if not named:
        return Choice(NONE, why="names no option, day or time")
    if not candidates:
        return Choice(NONE, why=f"names {words}, which fits none of the proposed times")
    if len(candidates) > 1:
        options = ", ".join(str(i + 1) for i in sorted(candidates))
        return Choice(AMBIGUOUS, why=f"names {words}, which fits options {options}")
    [index] = candidates
    return Choice(CHOSEN, index, why=f"names {words}")


# --- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingPlan:
    """PROPOSAL, INVITE and HOLD actions, and the decisions taken against acting."""

    actions: tuple[Action, ...]
    decisions: tuple[Decision, ...]


def is_hold(event: Event) -> bool:
    """Whether ``event`` is one of the agent's own tentative holds (never the rep's busy time)."""
    return event.summary.rstrip().endswith(HOLD_MARK)


def _stamp(dt: datetime) -> str:
    return dt.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%MZ")


def slots_of(action: Action) -> list[Interval]:
    """The times a PROPOSAL action offered, from its context (empty for any other action)."""
    out = []
    for item in action.context.get("slots", ()) if action.kind is ActionKind.PROPOSAL else ():
        try:
            out.append(Interval(item["start"], item["end"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def hold_key(proposal_key: str, slot: Interval) -> str:
    return f"hold/{_stamp(slot.start)}/{proposal_key}"


def release_key(proposal_key: str, slot: Interval) -> str:
    return f"release/{_stamp(slot.start)}/{proposal_key}"


def _holds(proposal: Action, client: Client, rep: Rep) -> list[Action]:
    """A HOLD create action per offered time, due with the proposal itself."""
    out = []
    company = client.company or client.name
    for slot in slots_of(proposal):
        local = slot.start.astimezone(ZoneInfo(rep.zone or "UTC"))
        out.append(
            Action(
                key=hold_key(proposal.key, slot),
                kind=ActionKind.HOLD,
                mailbox=proposal.mailbox,
                due=proposal.due,
                to=(Address(rep.address, rep.name),),
                language=rep.language,
                template="",
                reason=f"hold {local:%a %d %b %H:%M} ({rep.zone}) on {rep.name}'s calendar "
                f"while {client.name} chooses a time",
                client=proposal.client,
                thread_id=proposal.thread_id,
                rule=proposal.rule,
                context={
                    "op": "create",
                    "summary": f"Tentative: {client.name} ({company}) {HOLD_MARK}",
                    "start": slot.start,
                    "end": slot.end,
                    "zone": rep.zone or "UTC",
                    "proposal": proposal.key,
                },
            )
        )
    return out


def _releases(proposal: Action, now: datetime, why: str) -> list[Action]:
    return [
        Action(
            key=release_key(proposal.key, slot),
            kind=ActionKind.HOLD,
            mailbox=proposal.mailbox,
            due=now,
            to=proposal.to,
            language=proposal.language,
            template="",
            reason=f"release the hold at {_stamp(slot.start)}: {why}",
            client=proposal.client,
            thread_id=proposal.thread_id,
            rule=proposal.rule,
            context={
                "op": "release",
                "hold": hold_key(proposal.key, slot),
                "proposal": proposal.key,
            },
        )
        for slot in slots_of(proposal)
    ]


def freed_events(
    invite: Action, events: Iterable[Event], uid: str, *, cancelled: bool = False
) -> list[Action]:
    """HOLD ``remove`` actions for the events on the rep's calendar that carry the meeting's
    ``uid`` (the rep accepted or added it) at a time ``invite`` no longer books: the old time of
    a moved meeting, or every time of a cancelled one. Nobody is notified by the removal."""
    meeting = invite.context.get("meeting") or {}
    start = meeting.get("start")
    found = []
    for event in events:
        if event.mailbox != invite.mailbox or event.uid != uid or event.status == "cancelled":
            continue
        if not cancelled and event.start == start:
            continue
        found.append(
            Action(
                key=f"remove/{event.provider_id}/{invite.key}",
                kind=ActionKind.HOLD,
                mailbox=invite.mailbox,
                due=invite.due,
                to=(),
                language=invite.language,
                template="",
                reason=(
                    f"the meeting of {_stamp(event.start)} "
                    f"{'is cancelled' if cancelled else 'moved'}: it leaves the rep's calendar"
                ),
                client=invite.client,
                thread_id=invite.thread_id,
                rule=invite.rule,
                context={"op": "remove", "event": event.provider_id, "invite": invite.key},
            )
        )
    return found


def holds_until(action: Action) -> datetime | None:
    value = action.context.get("holds_until")
    return value if isinstance(value, datetime) else None


def _live_holds(earlier: Sequence[Action], now: datetime) -> dict[str, list[tuple[str, Interval]]]:
    """Per mailbox, (thread, time) held by proposals that no later note in their thread replaced."""
    newest: dict[tuple[str, str], datetime] = {}
    for a in earlier:
        place = (a.mailbox, a.thread_id)
        newest[place] = max(newest.get(place, a.due), a.due)
    held: dict[str, list[tuple[str, Interval]]] = {}
    for a in earlier:
        until = holds_until(a)
        if until is None or until <= now or newest[(a.mailbox, a.thread_id)] > a.due:
            continue
        held.setdefault(a.mailbox, []).extend((a.thread_id, s) for s in slots_of(a))
    return held


def _busy_for(
    mailbox: str,
    thread_id: str,
    busy: Mapping[str, list[Interval]],
    held: Mapping[str, list[tuple[str, Interval]]],
) -> list[Interval]:
    """The rep's busy time plus the times held for other threads' proposals."""
    others = [span for tid, span in held.get(mailbox, ()) if tid != thread_id]
    return sorted([*busy.get(mailbox, ()), *others])


def _conflict(slot: Interval, busy: Sequence[Interval], now: datetime, zone: str) -> str:
    """Why ``slot`` can no longer be booked, or "" when it is still free."""
    if slot.start <= now:
        return "that time has passed"
    for span in busy:
        if span.overlaps(slot):
            tz = ZoneInfo(zone or "UTC")
            return (
                f"the rep's calendar is busy {span.start.astimezone(tz):%a %d %b %H:%M}–"
                f"{span.end.astimezone(tz):%H:%M} ({zone or 'UTC'})"
            )
    return ""


def _offer(
    client: Client,
    email: str,
    rep: Rep,
    rule: MeetingRule,
    cal: BusinessCalendar,
    busy: list[Interval],
    start: datetime,
) -> tuple[dict[str, Any], str]:
    """The proposal context for times from ``start`` on, or ``({}, why there are none)``."""
    proposal = propose(
        SlotRequest(
            duration=rule.duration,
            window=Interval(start, start + rule.within),
            now=start,
            parties=(
                Party(client.name, email, cal, (), role="client"),
                Party(rep.name, rep.address, rep.calendar, tuple(busy), role="internal"),
            ),
            min_notice=rule.min_notice,
            count=rule.count,
        )
    )
    if not proposal.slots:
        reason = "; ".join(proposal.near_misses[0].reasons) if proposal.near_misses else ""
        return {}, reason or "no time suits both sides in the window"
    context: dict[str, Any] = {
        "slots": [{"start": s.start, "end": s.end} for s in proposal.slots],
        "client_zone": client.zone or "UTC",
        "rep_zone": rep.zone,
        "duration_minutes": int(rule.duration / timedelta(minutes=1)),
    }
    if rule.hold:
        context["holds_until"] = start + rule.hold_for
    return context, ""


def _sent_at(thread: Thread, key: str, notes: Mapping[str, str]) -> datetime | None:
    """When the note with outbox ``key`` shows up in the thread (it was sent), if it does."""
    for c in thread.messages:
        m = c.message
        if carries_key(m.headers.get(_KEY), key) or notes.get(m.message_id) == key:
            return m.date
    return None


def _answered(
    thread: Thread, mine: Sequence[Action], reply: Message, notes: Mapping[str, str]
) -> Action | None:
    """The proposal ``reply`` answers: the newest meeting note the thread shows as sent before
    it, when that note is a proposal (after an invitation, a reply is about the invitation)."""
    best: tuple[datetime, Action] | None = None
    for a in mine:
        sent = _sent_at(thread, a.key, notes)
        if sent is not None and sent < reply.date and (best is None or sent > best[0]):
            best = (sent, a)
    if best is None or best[1].kind is not ActionKind.PROPOSAL or not slots_of(best[1]):
        return None
    return best[1]


def plan(
    threads: Iterable[Thread],
    rules: list[MeetingRule],
    reps: Mapping[str, Rep],
    client_calendar: Callable[[Client], BusinessCalendar],
    busy: Mapping[str, list[Interval]],
    now: datetime,
    *,
    languages: Callable[[Thread], str] | None = None,
    earlier: Iterable[Action] = (),
    notes: Mapping[str, str] | None = None,
    rep_details: Mapping[str, Mapping[str, str]] | None = None,
) -> MeetingPlan:
    """Proposals for meeting requests, invitations for chosen times, holds and their release.

    ``busy`` holds each mailbox's busy intervals from its calendar, the agent's own holds left
    out (:func:`is_hold`). ``earlier`` holds the PROPOSAL and INVITE actions of earlier passes
    (the outbox's rows): a reply is read against the newest proposal the thread shows as sent
    (its ``X-Followup-Key`` header, or its Message-ID in ``notes``, which maps the Message-ID of
    each note the outbox sent to its key). Keys: ``proposal/<mailbox>/<thread>/<message>``,
    ``invite/<mailbox>/<thread>/<slot start>``, ``hold/<slot start>/<proposal key>`` and
    ``release/<slot start>/<proposal key>``, so planning twice never acts twice.
    ``rep_details`` adds, per mailbox, what the templates show of the rep (``company``,
    ``title``), as the follow-up planner's does: a Japanese note names the rep's company.
    """
    notes = notes or {}
    details = rep_details or {}
    past = [a for a in earlier if a.kind in (ActionKind.PROPOSAL, ActionKind.INVITE)]
    by_thread: dict[tuple[str, str], list[Action]] = {}
    for a in past:
        by_thread.setdefault((a.mailbox, a.thread_id), []).append(a)
    held = _live_holds(past, now)
    actions: list[Action] = []
    decisions: list[Decision] = []
    settled: dict[str, str] = {}  # proposal key -> why its holds go now
    for thread in threads:
        rep, client = reps.get(thread.mailbox), thread.client
        if rep is None or client is None or client.opted_out:
            continue
        rule = next((r for r in rules if r.match.accepts(client, thread.mailbox, rep.team)), None)
        if rule is None:
            continue
        seen = [c for c in thread.messages if c.message.date <= now and c.is_human]
        if not seen or seen[-1].direction is not Direction.INBOUND:
            continue  # the rep has answered since: the rep handles the meeting
        reply = seen[-1].message
        if not matching.matches_client(reply.sender.email, client):
            # Quoting a thread's References is enough to land in it: a stranger's mail there
            # proposes nothing, invites nobody and is not read as the client's choice.
            decisions.append(
                Decision(
                    thread.mailbox,
                    thread.thread_id,
                    reply.message_id,
                    "no meeting note: the sender is not the client",
                    f"{reply.sender.email} wrote into {client.name}'s thread but is neither "
                    f"one of its addresses nor at its domains; nothing goes to them",
                )
            )
            continue
        if reply.headers.get(_KEY):
            # Another installation's note: answering it would have it answer back, for ever.
            decisions.append(
                Decision(
                    thread.mailbox,
                    thread.thread_id,
                    reply.message_id,
                    "no meeting note: the mail was written by an agent",
                    f"{reply.sender.email}'s message carries {KEY_HEADER}; agents do not "
                    "answer agents, the rep does",
                )
            )
            continue
        mine = by_thread.get((thread.mailbox, thread.thread_id), [])

        def language_of(thread: Thread = thread, client: Client = client) -> str:
            # Asked only for a note: detection is the costly part of a thread with none.
            return languages(thread) if languages else (client.language or "en")

        zone = client.zone or "UTC"
        own_busy = _busy_for(thread.mailbox, thread.thread_id, busy, held)
        # An answer to the client goes out in the rep's business hours, as the rep would
        # send it, never at night because the client's mail was read then.
        send_at = rep.calendar.next_open(now)
        # Held by the outbox to these stretches if found due outside them (the worker was down).
        hours = {SEND_SPANS: send_spans(rep.calendar, (), send_at)}
        answered = _answered(thread, mine, reply, notes)
        why = ""
        if answered is not None:
            offered = slots_of(answered)
            choice = chosen_slot(reply.body or "", offered, zone)
            if choice.status == CHOSEN and choice.index is not None:
                slot = offered[choice.index]
                conflict = _conflict(slot, own_busy, send_at, rep.zone)
                if not conflict:
                    invite = _invite(
                        thread, client, rep, rule, reply, slot, choice, language_of(), send_at, mine
                    )
                    context = {**invite.context, **hours, "rep": _rep_context(rep, details)}
                    actions.append(dataclasses.replace(invite, context=context))
                    for p in mine:
                        settled.setdefault(p.key, f"{client.name} chose a time")
                    continue
                local = slot.start.astimezone(ZoneInfo(zone))
                why = f"{client.name} chose {local:%a %d %b %H:%M} ({zone}), but {conflict}"
                decisions.append(
                    Decision(
                        thread.mailbox,
                        thread.thread_id,
                        reply.message_id,
                        "chosen time no longer free: new proposal",
                        why,
                    )
                )
            else:
                decisions.append(
                    Decision(
                        thread.mailbox,
                        thread.thread_id,
                        reply.message_id,
                        f"reply to the proposal: {choice.status}, left to the rep",
                        choice.why,
                    )
                )
                if choice.status == AMBIGUOUS:
                    continue
        if not why:
            wants, why = phrases.asks_for_meeting(f"{reply.subject}\n{reply.body or ''}")
            if not wants:
                continue
            why = f"{client.name} asked for a meeting ({why})"
        key = f"proposal/{thread.mailbox}/{thread.thread_id}/{reply.message_id}"
        context, missing = _offer(
            client, reply.sender.email, rep, rule, client_calendar(client), own_busy, send_at
        )
        if not context:
            decisions.append(
                Decision(
                    thread.mailbox, thread.thread_id, key, "no proposal: no common time", missing
                )
            )
            continue
        proposal = _answer(
            thread,
            client,
            rule,
            reply,
            language_of(),
            send_at,
            key=key,
            kind=ActionKind.PROPOSAL,
            template="proposal",
            reason=(
                f"rule {rule.name!r}: {why}; {len(context['slots'])} times that suit "
                f"{_zones(zone, rep.zone)}"
            ),
            context={"rep": _rep_context(rep, details), **context, **hours},
        )
        actions.append(proposal)
        if rule.hold:
            actions.extend(_holds(proposal, client, rep))
            held.setdefault(thread.mailbox, []).extend(
                (thread.thread_id, s) for s in slots_of(proposal)
            )
        for p in mine:
            if p.key != key:
                settled.setdefault(p.key, "a new proposal replaces it")
    for p in past:
        until = holds_until(p)
        if until is None:
            continue
        if p.key in settled:
            actions.extend(_releases(p, now, settled[p.key]))
        elif until <= now:
            actions.extend(_releases(p, now, f"the proposal's hold ended {_stamp(until)}"))
    return MeetingPlan(tuple(actions), tuple(decisions))


def _zones(client_zone: str, rep_zone: str) -> str:
    """``Asia/Tokyo and Europe/Berlin``, or the one zone both sides are in."""
    return client_zone if client_zone == rep_zone else f"{client_zone} and {rep_zone}"


def _rep_context(rep: Rep, details: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The ``rep`` of a note: what ``rep_details`` says of the mailbox, then name and address."""
    return {**details.get(rep.mailbox, {}), "name": rep.name, "email": rep.address}


def _invite(
    thread: Thread,
    client: Client,
    rep: Rep,
    rule: MeetingRule,
    reply: Message,
    slot: Interval,
    choice: Choice,
    language: str,
    now: datetime,
    mine: Sequence[Action] = (),
) -> Action:
    zone = client.zone or "UTC"
    local = slot.start.astimezone(ZoneInfo(zone))
    company = client.company or client.name
    key = f"invite/{thread.mailbox}/{thread.thread_id}/{_stamp(slot.start)}"
    uid_key, sequence, moved = _update_of(mine, key)
    return _answer(
        thread,
        client,
        rule,
        reply,
        language,
        now,
        key=key,
        kind=ActionKind.INVITE,
        template="invitation",
        reason=(
            f"rule {rule.name!r}: {client.name} chose {local:%a %d %b %H:%M} ({zone}) "
            f"({choice.why}); still free in {rep.name}'s calendar: invitation sent{moved}"
        ),
        context={
            "rep": {"name": rep.name, "email": rep.address},
            "meeting": {
                "summary": f"{company} – {rep.name}",
                "start": slot.start,
                "end": slot.end,
                "zone": zone,
                "uid_key": uid_key,
                "sequence": sequence,
            },
            "client_zone": zone,
            "rep_zone": rep.zone,
            "duration_minutes": int((slot.end - slot.start) / timedelta(minutes=1)),
        },
    )


def _update_of(mine: Sequence[Action], key: str) -> tuple[str, int, str]:
    """``(uid_key, sequence, why)`` for the invitation ``key`` in a thread whose earlier
    meeting notes are ``mine``: after an earlier invitation (or its cancellation) for another
    time, the same event with the next SEQUENCE, so the client's calendar moves it rather than
    keeping the old time beside the new; otherwise a new event under ``key``."""
    before = [a for a in mine if a.kind is ActionKind.INVITE and a.key != key]
    if not before:
        return key, 0, ""

    def sequence(a: Action) -> int:
        try:
            return int(a.context["meeting"].get("sequence", 0))
        except (KeyError, TypeError, ValueError, AttributeError):
            return 0

    last = max(before, key=lambda a: (sequence(a), a.due, a.key))
    meeting = last.context.get("meeting") or {}
    uid_key = str(meeting.get("uid_key") or last.key)
    start = meeting.get("start")
    moved = f" of {_stamp(start)}" if isinstance(start, datetime) else ""
    return uid_key, sequence(last) + 1, f"; an update: it moves the meeting{moved}"


def _answer(
    thread: Thread,
    client: Client,
    rule: MeetingRule,
    reply: Message,
    language: str,
    now: datetime,
    *,
    key: str,
    kind: ActionKind,
    template: str,
    reason: str,
    context: dict[str, Any],
) -> Action:
    """A note answering the client's ``reply`` in its thread, due ``now`` (the time it is to
    go out: the rep's next business hour)."""
    to = Address(reply.sender.email, reply.sender.name)
    return Action(
        key=key,
        kind=kind,
        mailbox=thread.mailbox,
        due=now,
        to=(to,),
        language=language,
        template=template,
        reason=reason,
        client=client.key,
        thread_id=thread.thread_id,
        rule=rule.name,
        reply_to_message_id=reply.message_id,
        references=(*reply.references, reply.message_id),
        subject=reply.subject,
        context={"client": client_context(client, to), "answered": reply.date, **context},
        mode=rule.mode,
    )


def propose_in_follow_ups(
    actions: Sequence[Action],
    wants_slots: Callable[[Action], bool],
    rules: Sequence[MeetingRule],
    clients: Mapping[str, Client],
    reps: Mapping[str, Rep],
    client_calendar: Callable[[Client], BusinessCalendar],
    busy: Mapping[str, list[Interval]],
    now: datetime,
    *,
    earlier: Iterable[Action] = (),
) -> MeetingPlan:
    """Follow-up notes whose cadence step says ``propose_slots``, turned into proposals.

    Each such note keeps its key, due time, recipient and follow-up context and becomes a
    PROPOSAL (template ``proposal``) with times from its due time (or ``now``, if later) on,
    under the client's ``[[meeting]]`` rule (or the defaults: three 30-minute times within seven
    days); its holds follow when that rule says ``hold``. A note with no common time stays a
    plain follow-up, with a decision saying why. Returns every action of ``actions``, in
    order, plus the holds.
    """
    held = _live_holds([a for a in earlier if a.kind is ActionKind.PROPOSAL], now)
    out: list[Action] = []
    decisions: list[Decision] = []
    for action in actions:
        client, rep = clients.get(action.client), reps.get(action.mailbox)
        if client is None or rep is None or not wants_slots(action):
            out.append(action)
            continue
        rule = next(
            (r for r in rules if r.match.accepts(client, action.mailbox, rep.team)),
            MeetingRule(name="follow-up", source=""),
        )
        email = action.to[0].email if action.to else ""
        if not matching.matches_client(email, client):
            out.append(action)
            decisions.append(
                Decision(
                    action.mailbox,
                    action.thread_id,
                    action.key,
                    "follow-up without times: the recipient is not the client",
                    f"{email or 'nobody'} is neither one of {client.name}'s addresses nor at "
                    "its domains; meeting times go only to the client",
                )
            )
            continue
        context, missing = _offer(
            client,
            email,
            rep,
            rule,
            client_calendar(client),
            _busy_for(action.mailbox, action.thread_id, busy, held),
            max(action.due, now),  # an overdue step goes out now: times from now on
        )
        if not context:
            out.append(action)
            decisions.append(
                Decision(
                    action.mailbox,
                    action.thread_id,
                    action.key,
                    "follow-up without times: no common time",
                    missing,
                )
            )
            continue
        proposal = dataclasses.replace(
            action,
            kind=ActionKind.PROPOSAL,
            template="proposal",
            reason=f"{action.reason}; with {len(context['slots'])} times that suit "
            f"{_zones(context['client_zone'], rep.zone)}",
            context={**action.context, **context},
        )
        out.append(proposal)
        if rule.hold:
            out.extend(_holds(proposal, client, rep))
            held.setdefault(action.mailbox, []).extend(
                (action.thread_id, s) for s in slots_of(proposal)
            )
    return MeetingPlan(tuple(out), tuple(decisions))
