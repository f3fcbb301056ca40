"""The client's language: the client record, else detection, else the team default.

``choose_language`` applies the order the team relies on:

1. a language on the client record wins, kept as written (canonical casing: "pt-BR",
   "zh-Hans", "te");
2. otherwise the client's own recent inbound text (quoted replies and signatures stripped by
   ``agent.textparts.own_text``) is detected, restricted to the languages the team supports,
   and used when the confidence reaches the threshold;
3. otherwise the team default.

Detection uses py3langid (the maintained fork of langid.py: a naive Bayes model over byte
n-grams for 97 languages, shipped in the wheel, no network, deterministic), restricted to the
supported languages plus a fixed set of *decoy* languages (Italian, Dutch, Korean, Russian,
Catalan, Marathi, Nepali ...). Decoys are never returned; they are there so that an Italian mail
spreads its confidence over Italian instead of landing on Spanish with high confidence, and so
falls below the threshold to the team default. Measured on the labelled corpus
(``python -m tests.benchmarks.bench_reading --section language``) against Lingua, the previous
detector: Lingua took about 340 MB once loaded (31 MB in its low-accuracy mode, which was less
precise), py3langid about 100 MB including numpy, at a tenth of the time per mail, with higher
precision on the same texts.

Before detection the text is what the client wrote (``own_text``: quotes, sign-offs,
disclaimers cut); when most of its letters are in one non-Latin script, lines with only Latin
letters (an English sign-off, an order number, a product name) are dropped, so that they do not
decide. A Devanagari text is Hindi only when it reads as Hindi: Marathi and Nepali share the
script and much vocabulary, so one whose function words are Marathi's or Nepali's, or that the
model finds close to them with no Hindi function word, is left to the team default.

Pure apart from the detector's model tables, which are loaded once per supported set and cached.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The model is loaded with the first detector: a worker whose clients all have a language
    # on record never loads it.
    from py3langid.langid import LanguageIdentifier

from agent import phrases
from agent.textparts import own_text

__all__ = [
    "DECOYS",
    "THRESHOLD",
    "LanguageDecision",
    "canonical_tag",
    "choose_language",
    "detect",
    "warm_up",
]

# Languages a client of a team supporting the usual set may still write in; chosen for their
# likeness to a supported one (it/ca ~ es/pt, nl/sv/da ~ de/en, ur/fa ~ ar/hi, mr/ne ~ hi,
# ko ~ ja/zh, kn/ta/bn ~ te) so their text is recognised as "not ours" rather than mislabelled.
DECOYS: frozenset[str] = frozenset(
    {"it", "nl", "ko", "ru", "ca", "pl", "tr", "sv", "da", "id", "vi", "ur", "fa", "ta", "kn",
     "bn", "mr", "ne"}
)  # fmt: skip

# The detector's confidence from which a detection is used. py3langid's probabilities are
# softmax-normalised with a temperature that grows with the text's length, so a short clear
# text scores lower than Lingua's did; this threshold is set by measurement on the corpus.
THRESHOLD = 0.6

# Languages whose short thanks words are written the same way in a decoy language: Marathi and
# Nepali thank with Hindi's "धन्यवाद", so a short Devanagari thanks says nothing of which it is.
_THANKS_SHARED_WITH_DECOYS = frozenset({"hi"})

# Fewer letters than this carry no signal ("ok", "👍"); returned as ("", 0.0). A Han, kana or
# Hangul character counts as two: "谢谢" says more than "ok".
MIN_LETTERS = 3
# Only the newest few messages count: a client who switched language is followed quickly.
MAX_TEXTS = 5
# Longer texts weigh more in the vote, up to this many letters each.
MAX_WEIGHT = 400

# The detector reads this much of a text: enough to tell a language, and it keeps a megabyte
# of hostile mail from holding a worker for minutes.
MAX_CHARS = 3_000
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class LanguageDecision:
    """Which language to write to a client in, and why.

    ``source`` is "client record", "detected" or "team default"; ``confidence`` is 1.0 for a
    record, the detector's confidence when detected, and the (below-threshold) best detection
    confidence, or 0.0, for the team default.
    """

    language: str
    source: str
    confidence: float
    reason: str


def canonical_tag(tag: str) -> str:
    """``tag`` with BCP-47 casing ("pt_br" -> "pt-BR", "zh-hans" -> "zh-Hans"); "" if not a tag."""
    tag = tag.strip().replace("_", "-")
    if not _TAG.match(tag):
        return ""
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def _base(tag: str) -> str:
    return canonical_tag(tag).split("-")[0]


def choose_language(
    *,
    record: str,
    texts: Sequence[str],
    supported: Collection[str],
    team_default: str,
    threshold: float = THRESHOLD,
) -> LanguageDecision:
    """Decide the language for a client.

    ``texts`` are the client's recent inbound bodies, newest first (only the newest
    ``MAX_TEXTS`` are read; quotes and signatures are stripped here). ``supported`` holds base
    codes ("en", "te" ...). Returns a ``LanguageDecision``; never raises for odd input: an
    unreadable record is ignored and said so in ``reason``.
    """
    note = ""
    if record.strip():
        tag = canonical_tag(record)
        if tag:
            return LanguageDecision(tag, "client record", 1.0, f"client record says {tag!r}")
        note = f"client record {record.strip()!r} is not a language tag; "

    language, confidence, used = _vote(texts, supported)
    if language and confidence >= threshold:
        return LanguageDecision(
            language,
            "detected",
            confidence,
            f"{note}detected {language!r} at {confidence:.2f} from {used} recent message(s)",
        )
    short = _short_reply_language(texts, supported)
    if short is not None:
        code, words = short
        return LanguageDecision(
            code,
            "detected",
            threshold,
            f"{note}a short reply in the {code!r} phrase list ({words}); the detector's "
            f"{confidence:.2f} is too little for so few words",
        )
    default = canonical_tag(team_default) or team_default
    if not used:
        why = "no recent text from the client to detect from"
    elif not language:
        why = "the client's text is in none of the supported languages"
    else:
        why = f"best guess {language!r} at {confidence:.2f} is under the {threshold:.2f} threshold"
    return LanguageDecision(default, "team default", confidence, f"{note}{why}; team default")


def _short_reply_language(
    texts: Sequence[str], supported: Collection[str]
) -> tuple[str, str] | None:
    """The one supported language that the client's short acknowledgements are written in, by
    the phrase lists ("Oui, merci." is French), or None when they name none or several."""
    wanted = {_base(s) for s in supported}
    found: dict[str, str] = {}
    for body in list(texts)[:MAX_TEXTS]:
        code, words = phrases.ack_language(body[: MAX_CHARS * 10])
        if code:
            found.setdefault(code, words)
    if len(found) != 1:
        return None
    code, words = next(iter(found.items()))
    return (code, words) if code in wanted and code not in _THANKS_SHARED_WITH_DECOYS else None


def _vote(texts: Sequence[str], supported: Collection[str]) -> tuple[str, float, int]:
    scores: dict[str, float] = {}
    total = 0.0
    used = 0
    for body in list(texts)[:MAX_TEXTS]:
        text = own_text(body[: MAX_CHARS * 10])[:MAX_CHARS]
        letters = _letters(text)
        if letters < MIN_LETTERS:
            continue
        used += 1
        weight = float(min(letters, MAX_WEIGHT))
        total += weight
        for code, value in _confidences(text, supported):
            scores[code] = scores.get(code, 0.0) + weight * value
    if not total:
        return "", 0.0, 0
    wanted = {_base(s) for s in supported}
    best = max(
        ((c, v) for c, v in scores.items() if c in wanted), key=lambda cv: cv[1], default=None
    )
    if best is None:
        return "", 0.0, used
    return best[0], round(best[1] / total, 4), used


def detect(text: str, supported: Collection[str]) -> tuple[str, float]:
    """The best supported language for ``text`` and the detector's confidence in it (0..1).

    ``text`` is read as given (strip quotes first with ``own_text`` if needed). Returns
    ("", 0.0) when there are fewer than ``MIN_LETTERS`` letters or no supported language is
    known to the detector. A text in an unsupported language gives a supported language with a
    low confidence, since the decoy languages take most of it. Reads ``text[:MAX_CHARS]``.
    """
    text = text[:MAX_CHARS]
    if _letters(text) < MIN_LETTERS:
        return "", 0.0
    wanted = {_base(s) for s in supported}
    for code, value in _confidences(text, supported):
        if code in wanted:
            return code, round(value, 4)
    return "", 0.0


def warm_up(supported: Collection[str]) -> None:
    """Load the detector's models for ``supported`` now rather than on the first client mail.

    Loading takes a few seconds (longer on a busy machine) and about 100 MB, which otherwise
    the first mail whose language must be detected pays; a worker whose clients all have a
    language on record never loads them. Returns nothing; never raises for unknown codes.
    """
    detector = _detector(frozenset(_base(s) for s in supported))
    if detector is not None:
        for sample in ("Thank you", "ありがとう", "شكرا", "धन्यवाद", "ధన్యవాదాలు", "Спасибо", "감사"):
            detector.rank(sample)


def _confidences(text: str, supported: Collection[str]) -> list[tuple[str, float]]:
    """(base code, confidence) for every language of the detector, best first."""
    return list(_scores(text, frozenset(_base(s) for s in supported)))


class _Scores:
    """The detector's scores per text, the most recent 65,536 kept.

    Detection is the costly step of choosing a language, and a worker asks about the same client
    mail on every pass. The key is a digest of the text, not the text, so that a worker running
    for months holds small entries rather than as many mails.
    """

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._cache: OrderedDict[tuple[bytes, frozenset[str]], tuple[tuple[str, float], ...]]
        self._cache = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str, bases: frozenset[str]) -> tuple[tuple[str, float], ...]:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        key = (digest, bases)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        detector = _detector(bases)
        if detector is None:
            return ()
        cleaned = _focus(_without_links(text))
        scores = _devanagari(cleaned, tuple(detector.rank(cleaned)))
        with self._lock:
            self._cache[key] = scores
            if len(self._cache) > self._kept:
                self._cache.popitem(last=False)
        return scores

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()


_scores = _Scores(1 << 16)


def _letters(text: str) -> int:
    return sum(
        2 if _dense(ch) else 1
        for ch in _without_links(text)
        if unicodedata.category(ch).startswith("L")
    )


def _without_links(text: str) -> str:
    """``text`` without web links and email addresses, which are in no language.

    Word by word, not by a regular expression: ``\\S+@\\S+\\.\\S+`` is quadratic on a long run
    of text without spaces, as Chinese and Japanese mail is.
    """
    words = []
    for word in text.split():
        low = word.lower()
        starts = [
            i for i in (low.find("http://"), low.find("https://"), low.find("www.")) if i >= 0
        ]
        if starts:
            word = word[: min(starts)]
        else:
            at = word.find("@", 1)
            if at > 0 and "." in word[at + 2 : -1]:
                word = ""
        words.append(word)
    return " ".join(words)


def _dense(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF
        or 0x3400 <= cp <= 0x9FFF
        or 0xAC00 <= cp <= 0xD7AF
        or 0xF900 <= cp <= 0xFAFF
        or cp >= 0x20000
    )


@lru_cache(maxsize=8)
def _detector(supported: frozenset[str]) -> LanguageIdentifier | None:
    import copy

    full = _model()
    known = set(full.nb_classes)
    if not supported & known:
        return None
    # A shallow copy shares the model's tables; restricting it keeps only its own columns.
    detector = copy.copy(full)
    detector.set_languages(sorted((supported | DECOYS) & known))
    return detector


@lru_cache(maxsize=1)
def _model() -> LanguageIdentifier:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _script(ch: str) -> str:
    """ "Latin" for Latin letters, else the first word of the character's Unicode name."""
    if ord(ch) < 0x250 or 0x1E00 <= ord(ch) <= 0x1EFF:
        return "LATIN"
    return unicodedata.name(ch, "?").split(" ", 1)[0]


def _focus(text: str) -> str:
    """``text`` without its Latin-only lines when most of its letters are of one other script."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            script = _script(ch)
            counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values())
    if not total:
        return text
    script, most = max(counts.items(), key=lambda kv: kv[1])
    if script == "LATIN" or most * 2 <= total:
        return text
    return "\n".join(
        line
        for line in text.split("\n")
        if not any(ch.isalpha() for ch in line) or any(_script(ch) == script for ch in line)
    )


# Function words that tell Hindi from Marathi and Nepali, which share its script.
_HINDI = frozenset(
    "है हैं था थे थी में नहीं की से और हम आप जी दीजिए कीजिए करें रहा रही रहे गया गई सकते हूँ".split()  # noqa: SIM905
)
_MARATHI = frozenset(
    "आहे आहेत नाही मला आम्ही आम्हाला तुम्ही तुम्हाला तुमचा तुमची आणि पण होते झाले केले करेन".split()  # noqa: SIM905
)
_NEPALI = frozenset(
    "छ छु छौं छन् हुन्छ मलाई तपाईं तपाईंको हामी हामीलाई हाम्रो अझै अर्को पनि गर्नेछु सक्छौं".split()  # noqa: SIM905
)
_DEVANAGARI_WORD = re.compile(r"[\u0900-\u0963\u0966-\u097F]+")  # not the danda


def _devanagari(text: str, scores: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """``scores`` with Hindi, Marathi and Nepali decided by their function words.

    The model tells the three apart poorly on a short mail; their function words do it well. A
    text the model takes for one of them is Hindi, at the three's combined confidence, when it
    has more Hindi function words than Marathi or Nepali ones; it is not Hindi when it has
    fewer, or none while the model finds Marathi or Nepali close.
    """
    group = ("hi", "mr", "ne")
    if not scores or scores[0][0] not in group:
        return scores
    words = _DEVANAGARI_WORD.findall(text)
    hindi = sum(w in _HINDI for w in words)
    other = sum(w in _MARATHI or w in _NEPALI or "ळ" in w or w.endswith("ुहोस्") for w in words)
    values = dict(scores)
    mass = sum(values.get(code, 0.0) for code in group)
    rest = tuple(s for s in scores if s[0] not in group)
    if hindi > other:
        return (("hi", mass), *rest, ("mr", 0.0), ("ne", 0.0))
    near = values.get("mr", 0.0) + values.get("ne", 0.0)
    if scores[0][0] == "hi" and (other > hindi or (not hindi and near >= 0.2)):
        code = "mr" if values.get("mr", 0.0) >= values.get("ne", 0.0) else "ne"
        return ((code, mass), *rest, ("hi", 0.0))
    return scores
