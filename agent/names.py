"""People's names: a display name taken apart into given name, family name, title and gender.

Pure: no I/O, no clock. A display name is whatever a sender typed (``"Dr. K. Rao"``,
``"Rao, Anjali"``, ``"山田 太郎"``, ``"SATO Kenji"``), so every part this module cannot be sure of
is left empty, and :func:`greeting_fields` then greets with the whole name: ``"Hi Dr. K. Rao,"``
rather than ``"Hi Dr.,"`` or ``"నమస్కారం K. గారు,"``.

- Titles at the front are set aside (``Dr.``, ``Prof.``, ``Mrs``, ``Herr``, ``Mme``, ``Sra.``,
  ``Shri``, ``Smt.``, ``श्रीमती``, ``السيدة`` …); a gendered one also gives the gender. Courtesy
  suffixes (``様``, ``さん``, ``先生``, ``女士``, ``जी``, ``గారు``) and degree suffixes
  (``Jr.``, ``PhD``, ``MBA``) are set aside at the end.
- An initial (``K.``, ``K``, ``A.B.``) is never a given or family name on its own.
- ``"Last, First"`` is read in that order.
- Names in Han, kana or Hangul are family name first (``山田 太郎``; ``王伟`` and ``김민준`` split
  after the surname); a Japanese name written without a space is not split. In Latin script an
  all-capitals word is the family name (``SATO Kenji``); otherwise the given name comes first.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_NAME = 200  # a display name longer than this is not a person's name

FEMALE = "female"
MALE = "male"
GENDERS = (FEMALE, MALE)
# How a CRM export may spell a gender; "" for unknown, which is also what they say.
GENDER_WORDS = {
    "f": FEMALE,
    "female": FEMALE,
    "w": FEMALE,
    "woman": FEMALE,
    "weiblich": FEMALE,
    "m": MALE,
    "male": MALE,
    "man": MALE,
    "männlich": MALE,
    "": "",
    "-": "",
    "u": "",
    "unknown": "",
    "x": "",
    "other": "",
    "diverse": "",
    "divers": "",
    "n/a": "",
}

# Titles written before a name, keyed without the final dot and lower-cased, with the gender
# they say ("" when none).
_TITLES: dict[str, str] = {
    # English
    "mr": MALE,
    "mrs": FEMALE,
    "ms": FEMALE,
    "miss": FEMALE,
    "mx": "",
    "dr": "",
    "prof": "",
    "professor": "",
    "sir": MALE,
    "dame": FEMALE,
    # German
    "herr": MALE,
    "frau": FEMALE,
    # French
    "m": MALE,
    "mme": FEMALE,
    "mlle": FEMALE,
    "monsieur": MALE,
    "madame": FEMALE,
    "pr": "",
    # Spanish, Portuguese
    "sr": MALE,
    "sra": FEMALE,
    "srta": FEMALE,
    "dra": FEMALE,
    "don": MALE,
    "doña": FEMALE,
    "dona": FEMALE,
    "señor": MALE,
    "señora": FEMALE,
    "senhor": MALE,
    "senhora": FEMALE,
    "eng": "",
    "ing": "",
    # India
    "shri": MALE,
    "sri": MALE,
    "smt": FEMALE,
    "kumari": FEMALE,
    "श्री": MALE,
    "श्रीमती": FEMALE,
    "सुश्री": FEMALE,
    "कुमारी": FEMALE,
    "डॉ": "",
    "శ్రీ": MALE,
    "శ్రీమతి": FEMALE,
    "కుమారి": FEMALE,
    "డా": "",
    "డాక్టర్": "",
    # Arabic
    "السيد": MALE,
    "السيدة": FEMALE,
    "الآنسة": FEMALE,
    "الأستاذ": MALE,
    "الأستاذة": FEMALE,
    "الدكتور": MALE,
    "الدكتورة": FEMALE,
    "د": "",
    "المهندس": MALE,
    "المهندسة": FEMALE,
    "م": "",
}
# Written after a name: courtesy suffixes (with the gender they say) and degrees.
_COURTESY_SUFFIXES: dict[str, str] = {
    "様": "",
    "さま": "",
    "さん": "",
    "殿": "",
    "先生": "",  # a teacher or doctor in Japanese, "Mr" in Chinese: no gender read from it
    "女士": FEMALE,
    "小姐": FEMALE,
    "님": "",
    "씨": "",
    "जी": "",
    "గారు": "",
}
_DEGREES = frozenset(
    {"jr", "sr", "ii", "iii", "iv", "phd", "ph.d", "md", "mba", "esq", "msc", "bsc", "dipl.-ing"}
)
# Chinese surnames of two characters; every other Han name takes one character.
_COMPOUND_SURNAMES = frozenset(
    {"欧阳", "歐陽", "司马", "司馬", "诸葛", "諸葛", "上官", "东方", "東方", "皇甫", "尉迟", "尉遲",
     "长孙", "長孫", "慕容", "夏侯", "令狐", "公孙", "公孫", "司徒", "宇文", "端木", "南宫", "南宮"}
)  # fmt: skip
_INITIAL = re.compile(r"^(?:\w\.?-?){1,3}$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Name:
    """A display name taken apart; a part this module is not sure of is ``""``."""

    name: str  # the name without titles or suffixes, given name first for Latin script
    first: str = ""
    last: str = ""
    title: str = ""  # as written: "Dr.", "Frau", "السيدة"
    gender: str = ""  # "female", "male" or ""

    @property
    def display(self) -> str:
        """The name with its title, for greeting someone whose given name is not known."""
        return f"{self.title} {self.name}".strip() if self.title else self.name


def _key(word: str) -> str:
    return word.lower().rstrip(".")


def _is_initial(word: str) -> bool:
    """``K.``, ``K``, ``A.B.``, ``J.-P.``: letters each standing for a name."""
    if not _INITIAL.match(word):
        return False
    letters = [ch for ch in word if ch.isalpha()]
    if len(letters) == 1:
        return True
    return "." in word  # "AB" could be a name; "A.B." is initials


def _script(text: str) -> str:
    """``"cjk"`` for Han/kana, ``"hangul"``, ``"kana"`` when any kana, else ``""``."""
    kind = ""
    for ch in text:
        if not ch.isalpha():
            continue
        n = unicodedata.name(ch, "")
        if n.startswith(("HIRAGANA", "KATAKANA")):
            return "kana"
        if n.startswith("HANGUL"):
            kind = "hangul"
        elif n.startswith("CJK"):
            kind = kind or "cjk"
    return kind


def clean(display: str) -> str:
    """The display name on one line, without quotes, brackets or stray punctuation."""
    text = unicodedata.normalize("NFC", display[:MAX_NAME])
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    text = _SPACES.sub(" ", text).strip()
    text = text.strip("\"'“”‘’«»<>()[]").strip()
    return text.strip(",;:/|·-– ").strip()


def _take_suffixes(words: list[str]) -> tuple[list[str], str]:
    gender = ""
    while words:
        word = words[-1]
        if _key(word) in _DEGREES and len(words) > 1:
            words = words[:-1]
            continue
        for suffix, says in _COURTESY_SUFFIXES.items():
            if word.endswith(suffix):
                rest = word[: -len(suffix)]
                gender = gender or says
                words = [*words[:-1], rest] if rest else words[:-1]
                break
        else:
            return words, gender
    return words, gender


def _take_titles(words: list[str], french: bool) -> tuple[list[str], list[str], str]:
    titles: list[str] = []
    gender = ""
    while words and _key(words[0]) in _TITLES:
        # "M." is Monsieur in French and an initial elsewhere
        if _key(words[0]) == "m" and not french:
            break
        titles.append(words[0])
        gender = gender or _TITLES[_key(words[0])]
        words = words[1:]
    return words, titles, gender


def parse_name(display: str, language: str = "") -> Name:
    """``display`` taken apart; ``language`` (a BCP 47 tag) says whether a Latin-script name of
    a Japanese, Chinese or Korean reader may be family name first (only when one word is in
    capitals: ``SATO Kenji``)."""
    text = clean(display)
    if not text or "@" in text:
        return Name(text)
    # "Rao, Anjali": family name, comma, given names (not "Anjali Rao, PhD").
    head, comma, tail = text.partition(",")
    if comma and "," not in tail:
        tail_words = tail.split()
        if tail_words and not all(_key(w) in _DEGREES for w in tail_words):
            text = f"{tail.strip()} {head.strip()}"
        else:
            text = head.strip()
    words = [w.strip(",;") for w in text.split(" ")]
    words = [w for w in words if w]
    lang = language.strip().lower().replace("_", "-").split("-")[0]
    words, suffix_gender = _take_suffixes(words)
    words, titles, title_gender = _take_titles(words, lang == "fr")
    gender = title_gender or suffix_gender
    title = " ".join(titles)
    if not words:
        return Name("", gender=gender)  # a title alone ("Dr.") names nobody
    name = " ".join(words)
    script = _script(name)
    if script:
        first, last = _east_asian(words, script, lang)
        return Name(name, first, last, title, gender)
    capitals = [w for w in words if len(w) > 1 and w.isupper() and not _is_initial(w)]
    if lang in {"ja", "zh", "ko"} and len(words) == 2 and len(capitals) == 1:
        last = capitals[0]
        first = words[1] if words[0] == last else words[0]
        return Name(name, "" if _is_initial(first) else first, last, title, gender)
    if len(words) == 1:
        only = words[0]
        if _is_initial(only):
            return Name(name, title=title, gender=gender)
        # One word after a title is a family name ("Dr. Rao", "Frau Schmidt"); alone, it is
        # how the person signs, a given name as often as not.
        return Name(name, "" if title else only, only if title else "", title, gender)
    first = "" if _is_initial(words[0]) else words[0]
    last = "" if _is_initial(words[-1]) else words[-1]
    return Name(name, first, last, title, gender)


def _east_asian(words: list[str], script: str, lang: str) -> tuple[str, str]:
    """``(given, family)`` of a name in Han, kana or Hangul: family name first."""
    if len(words) >= 2:
        return " ".join(words[1:]), words[0]
    word = words[0]
    if len(word) == 1 and script != "kana":
        return "", word  # 王 of 王女士: a surname
    if script == "hangul" and 2 <= len(word) <= 4:
        return word[1:], word[:1]
    if script == "cjk" and lang != "ja" and 2 <= len(word) <= 4:
        # Han without kana and without a space: a Chinese name. A Japanese one has no reliable
        # split (山田太郎, 佐々木健), and its reader is greeted by the whole name with 様 anyway.
        cut = 2 if word[:2] in _COMPOUND_SURNAMES and len(word) > 2 else 1
        return word[cut:], word[:cut]
    return "", ""


def parse_gender(value: str) -> str | None:
    """``"female"``, ``"male"`` or ``""`` (unknown) for a CRM's spelling; ``None`` if unreadable."""
    return GENDER_WORDS.get(value.strip().lower())


def greeting_fields(
    display: str,
    language: str = "",
    *,
    first: str = "",
    last: str = "",
    honorific: str = "",
    gender: str = "",
    default: str = "",
) -> dict[str, str]:
    """The ``name``, ``first_name`` and optional ``last_name``, ``honorific`` and ``gender`` a
    template greets with (templates/README.md). Parts given (from the clients file) win over
    parts read from ``display``; ``default`` (the client record's name) serves when ``display``
    names nobody. ``first_name`` is always set: the given name when known, else
    the name with its title (``Dr. K. Rao``), so no greeting reads ``Hi Dr.,``. The title read
    from a display name is not passed as ``honorific``: that field is written in the reader's
    language (``Frau``, ``女士``), which a sender's display name need not be.
    """
    parsed = parse_name(display, language)
    if not parsed.name and default:
        parsed = parse_name(default, language)
    name = parsed.name or clean(display) or clean(default) or display or default
    fields = {"name": name, "first_name": first or parsed.first or parsed.display or name}
    if last or parsed.last:
        fields["last_name"] = last or parsed.last
    if honorific:
        fields["honorific"] = honorific
    if gender or parsed.gender:
        fields["gender"] = gender or parsed.gender
    return fields
