"""A client's reply to a feedback survey, read as a score. Pure: no I/O, no clock.

The survey asks either for NPS (0-10, "how likely are you to recommend / how useful was it") or
for CSAT (1-5). ``read(body, scale)`` looks only at what the client wrote (quotes and signature
are cut by ``textparts.own_text``, text in quotation marks is ignored) and finds every way of
writing a number the ten template languages use:

- digits in any script (ASCII, full-width, Devanagari, Telugu, Arabic-Indic, ...), "9/10",
  "9 von 10", "9 out of 10", "10点満点中9点", "满分10分，我给9分";
- number words: "nine", "neun", "neuf", "nueve", "nove", "नौ", "తొమ్మిది", "تسعة", "九".

A number is never read from a date, a time, a phone number, an amount or a quantity: digits
joined to other digits ("25/11", "10:30", "+91 98765 43210", "12 34 56 78"), or next to a month
name, a clock word, a unit or a currency, are not candidates. Words that double as an article
("one", "un", "una", "ein", "एक", "一") count only when they are the whole answer or say "out of".

Exactly one distinct value in range is a score. Several values, a half score ("8.5"), a range
("8-9") or a value outside the scale leaves the answer unscored and *ambiguous*, for a person to
read; no number at all leaves it unscored with status ``none``. Every step is linear in the text,
which is bounded (``MAX_CHARS``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from agent.textparts import own_text

__all__ = ["SCALES", "Reading", "csat", "nps", "read"]

SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5)}
MAX_CHARS = 2_000  # an answer to "reply with a number" is at the top of the reply
MAX_COMMENT = 500


@dataclass(frozen=True)
class Reading:
    scale: str
    score: int | None
    status: str  # "scored" | "ambiguous" | "none"
    comment: str
    why: str = ""


# --- number words, per language ---------------------------------------------------------------

_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
           "zehn"),
    "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"),
    "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve",
           "diez"),
    "pt": ("zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove", "dez"),
    "hi": ("शून्य", "एक", "दो", "तीन", "चार", "पांच", "छह", "सात", "आठ", "नौ", "दस"),
    "te": ("సున్నా", "ఒకటి", "రెండు", "మూడు", "నాలుగు", "ఐదు", "ఆరు", "ఏడు", "ఎనిమిది",
           "తొమ్మిది", "పది"),
    "ar": ("صفر", "واحد", "اثنان", "ثلاثه", "اربعه", "خمسه", "سته", "سبعه", "ثمانيه", "تسعه",
           "عشره"),
}  # fmt: skip
# Other spellings of the same numbers.
_MORE_WORDS: dict[str, int] = {
    "ein": 1, "eine": 1, "une": 1, "una": 1, "uma": 1, "zero": 0, "duas": 2, "tres": 3,
    "cinq": 5, "pāñch": 5, "पाँच": 5, "छः": 6, "छे": 6, "ఒక": 1, "اثنين": 2, "عشر": 10,
    "ثمان": 8, "ثماني": 8, "تسع": 9, "سبع": 7, "خمس": 5, "ست": 6, "اربع": 4, "ثلاث": 3,
    "ten/ten": 10,
}  # fmt: skip
_WORD_VALUE: dict[str, int] = {}
for _words in _WORDS.values():
    for _value, _word in enumerate(_words):
        _WORD_VALUE.setdefault(_word, _value)
for _word, _value in _MORE_WORDS.items():
    _WORD_VALUE.setdefault(_word, _value)
# Words that are also an article or a pronoun: a score only alone or with "out of".
_WEAK_WORDS = frozenset({"one", "un", "une", "uno", "una", "um", "uma", "ein", "eine", "एक", "ఒక"})

_HAN = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6,
        "七": 7, "八": 8, "九": 9, "十": 10}  # fmt: skip

# "out of" between a score and the scale's top: "9 out of 10", "9 von 10", "9 sur 10" ...
_OUT_OF = (
    "out of", "of", "von", "aus", "sur", "de", "en", "em", "में से", "मे से", "में", "కి",
    "కు", "లో", "من", "中", "/", "／", "分之",
)  # fmt: skip
# The same, with the scale's top first: "१० में से ८", "满分10分".
_OUT_OF_AFTER = ("में से", "मे से", "中", "من أصل")
# A scale's echo: "from 0 to 10", "0-10", "1 bis 5", "0 నుండి 10" (both ends are dropped).
_TO = ("to", "-", "–", "bis", "à", "a", "até", "al", "से", "నుండి", "నుంచి", "إلى", "الى",
       "から", "到", "至", "~", "〜", "～")  # fmt: skip
# Words around a number that make it a date, a time, an amount or a quantity.
_MONTHS = (
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december", "januar", "februar", "märz", "mai", "juni", "juli", "oktober",
    "dezember", "janvier", "février", "mars", "avril", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre", "enero", "febrero", "marzo", "abril", "mayo", "junio",
    "julio", "agosto", "septiembre", "setiembre", "octubre", "noviembre", "diciembre",
    "janeiro", "fevereiro", "março", "maio", "junho", "julho", "setembro", "outubro",
    "novembro", "dezembro", "जनवरी", "फरवरी", "मार्च", "अप्रैल", "मई", "जून", "जुलाई",
    "अगस्त", "सितंबर", "अक्टूबर", "नवंबर", "दिसंबर", "జనవరి", "ఫిబ్రవరి", "మార్చి",
    "ఏప్రిల్", "మే", "జూన్", "జూలై", "ఆగస్టు", "సెప్టెంబర్", "అక్టోబర్", "నవంబర్",
    "డిసెంబర్", "يناير", "فبراير", "مارس", "ابريل", "مايو", "يونيو", "يوليو", "اغسطس",
    "سبتمبر", "اكتوبر", "نوفمبر", "ديسمبر",
)  # fmt: skip
_NOT_SCORE_AFTER_RAW = (
        *_MONTHS,
        "am", "pm", "a.m", "p.m", "h", "hr", "hrs", "uhr", "heures", "heure", "hours", "hour",
        "horas", "hora", "minutes", "mins", "min", "minuten", "minutos", "days", "day", "tage",
        "tagen", "jours", "días", "dias", "weeks", "wochen", "semaines", "semanas", "months",
        "monate", "mois", "meses", "years", "jahre", "ans", "años", "anos", "people", "users",
        "personen", "nutzer", "personnes", "personas", "pessoas", "usuarios", "usuários",
        "meters", "metres", "meter", "mètres", "metros", "kg", "units", "stück", "pcs",
        "st", "nd", "rd", "th", "er", "ème", "e", "º", "ª", "o", "x", "%", "€", "$", "₹",
        "बजे", "दिन", "घंटे", "मिनट", "लोग", "గంటలకు", "గంటలు", "రోజులు", "మంది", "ساعة",
        "الساعة", "يوم", "ايام", "دقيقة", "دقائق", "شخص", "usd", "eur", "inr", "sar", "dollars",
        "euros", "reais", "rupees", "k", "m",
)  # fmt: skip
_NOT_SCORE_BEFORE_RAW = (
        *_MONTHS,
        "at", "um", "à", "a las", "las", "às", "as", "by", "until", "bis", "jusqu'au", "hasta",
        "até", "on", "am", "le", "el", "no", "dia", "día", "den", "#", "no.", "nr", "nr.", "n°",
        "ticket", "order", "invoice", "room", "$", "€", "₹", "r$", "usd", "eur", "inr", "sar",
        "version", "v", "step", "page", "seite", "الساعة", "يوم", "room", "floor",
)  # fmt: skip
# Latin words that may follow a score ("9 because ...", "8 stars"); any other Latin word right
# after a number makes it a quantity ("2 contracts", "3 users").
_SCORE_THEN = frozenset(
    (
        "out", "of", "from", "von", "aus", "sur", "de", "em", "en", "stars", "star", "points",
        "point", "punkte", "punkten", "sterne", "étoiles", "estrellas", "estrelas", "puntos",
        "pontos", "because", "since", "as", "weil", "da", "denn", "car", "parce", "porque",
        "pois", "and", "und", "et", "y", "e", "but", "aber", "mais", "pero", "mas", "for",
        "für", "pour", "para", "overall", "insgesamt", "au", "total", "in", "im", "no", "na",
        "is", "ist", "est", "es", "é", "was", "war", "était", "fue", "foi", "would", "from",
        "easily", "definitely", "i", "ich", "je", "yo", "eu", "it", "es", "c'est", "the", "die",
        "der", "das", "le", "la", "el", "o", "a", "thanks", "thank", "danke", "merci", "gracias",
        "obrigado", "obrigada", "very", "sehr", "très", "muy", "muito", "great", "good", "super",
        "excellent", "excelente", "toll", "gut", "bien", "bom", "boa", "really", "wirklich",
        "vraiment", "realmente", "de", "sobre", "nota", "note", "pts", "pt", "or", "oder", "ou",
        "to", "bis", "à", "até", "al", "maybe", "vielleicht", "peut-être", "quizás", "talvez",
    )
)  # fmt: skip
# CJK characters right after a number that make it a date, time or count (not 点/分: points).
_CJK_NOT_SCORE = frozenset("月日年時时号號人名件回個个台歳岁度万億亿円元％")

_QUOTED = re.compile(r"\"[^\"\n]{0,300}+\"|“[^”\n]{0,300}+”|„[^“”\n]{0,300}+[“”]|«[^»\n]{0,300}+»"
                     r"|「[^」\n]{0,300}+」|『[^』\n]{0,300}+』")  # fmt: skip
# Digits joined by separators or spaces form one cluster: "9/10", "25.11.2026", "+91 98 76".
_CLUSTER = re.compile(r"\+?+\d++(?:[ \t]*+[-:./,][ \t]*+\d++|[ \t]++\d++)*+")
_HAN_RUN = re.compile(r"[〇零一二两兩三四五六七八九十]{1,3}+")
_WORD = re.compile(r"[^\s\d.,;:!?()\[\]{}<>\"'“”«»/\\|@#*=+~`^&-]++")


def _fold(word: str) -> str:
    word = word.casefold()
    # Arabic letters that are spelled either way: alif with hamza, ta marbuta, alif maqsura.
    return word.translate(str.maketrans("أإآةى", "اااهي"))


_NOT_SCORE_AFTER = frozenset(_fold(w) for w in _NOT_SCORE_AFTER_RAW)
_NOT_SCORE_BEFORE = frozenset(_fold(w) for w in _NOT_SCORE_BEFORE_RAW)
# Words right before a Japanese or Chinese number that make it a time of day.
_CJK_TIME_BEFORE = ("上午", "下午", "中午", "晚上", "早上", "凌晨", "午前", "午後", "傍晚")


def _ascii_digits(text: str) -> str:
    """Every decimal digit, in any script, as its ASCII digit (full-width too, via NFKC)."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch.isdigit() and not ch.isascii():
            value = unicodedata.decimal(ch, None)
            out.append(ch if value is None else str(value))
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class _Found:
    value: int
    start: int
    end: int
    strong: bool = True  # not a word that is also an article
    half: bool = False  # "8.5", "8,5"
    ranged: bool = False  # "8-9"


def _word_before(text: str, start: int) -> str:
    head = text[max(0, start - 40) : start].rstrip()
    words = head.split()
    if not words:
        return ""
    last = _fold(words[-1])
    if len(words) >= 2 and _fold(" ".join(words[-2:])) in _NOT_SCORE_BEFORE:
        return _fold(" ".join(words[-2:]))
    return last


def _word_after(text: str, end: int) -> str:
    tail = text[end : end + 40]
    if tail[:1] in ("%", "€", "$", "₹", "º", "ª"):
        return tail[:1]
    stripped = tail.lstrip()
    m = _WORD.match(stripped)
    if not m:
        return ""
    word = _fold(m.group(0))
    # "9am", "5th": letters glued to the digits are a unit only when short and Latin.
    return word


def _is_scale_echo(text: str, lo: int, hi: int, found: list[_Found]) -> set[int]:
    """Indexes of ``found`` that restate the scale ("0 to 10", "1-5")."""
    drop: set[int] = set()
    for i in range(len(found) - 1):
        a, b = found[i], found[i + 1]
        if a.value == lo and b.value == hi:
            between = _fold(text[a.end : b.start].strip())
            if between in _TO or between.strip("(") in _TO:
                drop.update((i, i + 1))
    return drop


def _candidates(text: str, lo: int, hi: int) -> list[_Found]:
    found: list[_Found] = []
    for m in _CLUSTER.finditer(text):
        raw = m.group(0)
        start, end = m.span()
        if raw.startswith("+"):
            continue  # a phone number
        groups = re.findall(r"\d++", raw)
        seps = re.findall(r"[-:./,]|[ \t]++", raw)
        glued_after = text[end : end + 1]
        glued_before = text[start - 1 : start] if start else ""
        if glued_before.isalpha() and glued_before.isascii():
            continue  # "Q3", "v2": part of a name
        if glued_after in _CJK_NOT_SCORE:
            continue
        if re.match(r"[点時时]\d", text[end : end + 3]):
            continue  # "9点30分", "9時30分": a time
        if glued_before == "第" or text[max(0, start - 2) : start] in _CJK_TIME_BEFORE:
            continue  # "第3": an ordinal; "下午3点": a time
        if glued_before in "点時时" and start >= 2 and text[start - 2].isdigit():
            continue  # the minutes of "3点30分"
        if len(groups) == 1:
            if len(raw) > 2:
                continue  # a year, an amount, an order number
            value = int(raw)
            if _word_before(text, start) in _NOT_SCORE_BEFORE:
                continue
            after = _word_after(text, end)
            if after in _NOT_SCORE_AFTER and not _glued_unit_is_score(text, end):
                continue
            if _latin_word(after) and after not in _SCORE_THEN:
                continue  # "2 contracts", "5pm": a quantity or a time
            found.append(_Found(value, start, end))
            continue
        if _word_before(text, start) in _NOT_SCORE_BEFORE:
            continue  # "on 1/10", "at 9"
        if len(groups) == 2 and len(groups[0]) <= 2 and len(groups[1]) <= 2:
            if groups[0].startswith("0") and groups[0] != "0":
                continue  # "01/10": a date
            sep = seps[0].strip() or " "
            a, b = int(groups[0]), int(groups[1])
            if sep == "/" and b == hi:
                found.append(_Found(a, start, end))  # "9/10", "4 / 5"
                continue
            if sep in (".", ",") and len(groups[1]) == 1 and a <= hi:
                if _word_after(text, end) in _NOT_SCORE_AFTER:
                    continue
                found.append(_Found(a, start, end, half=True))  # "8.5", "8,5"
                continue
            if sep == "-" and a < b <= hi and b - a <= 2:
                if (a, b) == (lo, hi):
                    continue  # "0-10": the scale itself
                found.append(_Found(a, start, end, ranged=True))  # "8-9"
                continue
        # Anything else with several digit groups is a date, a time, a phone number or a sum.
    for m in _HAN_RUN.finditer(text):
        start, end = m.span()
        han = _han_value(m.group(0))
        if han is None:
            continue
        after = text[end : end + 1]
        rest = text[end + 1 : end + 2]
        whole = not text[:start].strip(" 。、,.!！") and not text[end:].strip(" 。、,.!！点分")
        # "十分" is also "very" / "enough": a score only when it is the whole answer.
        idiom = m.group(0) == "十" and after == "分"
        if after in ("分", "点") and not (rest and _is_han(rest)) and not idiom:
            found.append(_Found(han, start, end))  # "九分", "八点です"
        elif whole or after in ("/", "／") or text[max(0, start - 2) : start] in ("给我", "打"):
            found.append(_Found(han, start, end))
    for m in _WORD.finditer(text):
        word = _fold(m.group(0))
        worded = _WORD_VALUE.get(word)
        if worded is None:
            continue
        start, end = m.span()
        found.append(_Found(worded, start, end, strong=word not in _WEAK_WORDS))
    found.sort(key=lambda f: f.start)
    return found


def _latin_word(word: str) -> bool:
    return bool(word) and word.isascii() and word.isalpha()


def _glued_unit_is_score(text: str, end: int) -> bool:
    """A Japanese or Chinese "点"/"分" right after the digits is "points", not a unit."""
    return text[end : end + 1] in ("点", "分")


def _is_han(ch: str) -> bool:
    return 0x3400 <= ord(ch) <= 0x9FFF


def _han_value(run: str) -> int | None:
    if len(run) == 1:
        return _HAN[run]
    if run == "十":
        return 10
    return None  # "十一", "二十": not a score on either scale, or a date


def _out_of(text: str, found: list[_Found], hi: int) -> tuple[set[int], set[int]]:
    """Drop the scale's top where it says "out of" ("9 out of 10", "10点満点中9点")."""
    drop: set[int] = set()
    confirmed: set[int] = set()
    for i in range(len(found) - 1):
        a, b = found[i], found[i + 1]
        between = _fold(text[a.end : b.start].strip())
        if b.value == hi and between in _OUT_OF:
            drop.add(i + 1)
            confirmed.add(i)
        elif a.value == hi and between in _OUT_OF_AFTER:
            drop.add(i)  # "१० में से ८": "of 10, 8"
            confirmed.add(i + 1)
        # "10点満点中9点", "满分10分，我给9分", "sur 10, je mets 9"
        if a.value == hi and re.search(r"満点|满分|滿分", text[max(0, a.start - 3) : b.start]):
            drop.add(i)
            confirmed.add(i + 1)
    for i, f in enumerate(found):
        if f.value == hi and re.match(
            r"[点分]?満点|分?满分|段階|级|級|-point|-stufig", text[f.end : f.end + 7]
        ):
            drop.add(i)
    return drop, confirmed - drop


def read(body: str, scale: str = "nps") -> Reading:
    """The score in a reply ``body`` to a survey on ``scale`` ("nps" 0-10 or "csat" 1-5)."""
    if scale not in SCALES:
        raise ValueError(f"unknown survey scale {scale!r}: use one of {', '.join(SCALES)}")
    lo, hi = SCALES[scale]
    own = own_text(body[: MAX_CHARS * 4])[:MAX_CHARS]
    text = _ascii_digits(_QUOTED.sub(" ", own))
    comment = own.strip()[:MAX_COMMENT]
    found = _candidates(text, lo, hi)
    dropped, confirmed = _out_of(text, found, hi)
    dropped |= _is_scale_echo(text, lo, hi, found)
    kept = [(i, f) for i, f in enumerate(found) if i not in dropped]
    alone = len(kept) == 1 and not _other_words(text, kept[0][1])
    kept = [(i, f) for i, f in kept if f.strong or i in confirmed or alone]
    if not kept:
        return Reading(scale, None, "none", comment, "no number in the answer")
    if any(f.half for _, f in kept):
        return Reading(scale, None, "ambiguous", comment, "a fraction of a point")
    if any(f.ranged for _, f in kept):
        return Reading(scale, None, "ambiguous", comment, "a range, not one score")
    values = sorted({f.value for _, f in kept})
    if len(values) > 1:
        shown = ", ".join(str(v) for v in values)
        return Reading(scale, None, "ambiguous", comment, f"several numbers: {shown}")
    value = values[0]
    if not lo <= value <= hi:
        return Reading(scale, None, "ambiguous", comment, f"{value} is outside {lo}-{hi}")
    first = kept[0][1]
    rest = (text[: first.start] + text[first.end :]).strip(" \t\n.,;:!?。、！-–/")
    # The comment is the answer as written, unless the answer is the score alone.
    return Reading(scale, value, "scored", comment if rest else "")


def _other_words(text: str, found: _Found) -> bool:
    rest = (text[: found.start] + text[found.end :]).strip(" \t\n.,;:!?。、！")
    return bool(rest) and not re.fullmatch(r"/\s*\d+", rest)


def nps(scores: list[int]) -> float | None:
    """Net Promoter Score: % promoters (9-10) minus % detractors (0-6), or None without scores."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 1)


def csat(scores: list[int]) -> float | None:
    """CSAT: % of answers that are 4 or 5 on the 1-5 scale, or None without scores."""
    if not scores:
        return None
    return round(100 * sum(1 for s in scores if s >= 4) / len(scores), 1)
