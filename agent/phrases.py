"""Short multilingual lexicons: does a client message need an answer? Pure.

A message needs no answer when, with quotes and signature gone, it is short and only thanks or
acknowledges ("Thanks!", "Danke!", "ありがとうございます。", "ధన్యవాదాలు"). A question mark or a
request word always means it needs one.
"""

from __future__ import annotations

import re
import unicodedata

ACKS = (
    # en
    "thanks",
    "thank you",
    "thank you so much",
    "many thanks",
    "thx",
    "got it",
    "noted",
    "received",
    "perfect",
    "great",
    "ok",
    "okay",
    "sounds good",
    "will do",
    "cheers",
    # de, fr, es, pt
    "danke",
    "vielen dank",
    "danke schön",
    "besten dank",
    "alles klar",
    "erhalten",
    "merci",
    "merci beaucoup",
    "bien reçu",
    "parfait",
    "gracias",
    "muchas gracias",
    "recibido",
    "perfecto",
    "obrigado",
    "obrigada",
    "muito obrigado",
    "muito obrigada",
    "recebido",
    "perfeito",
    # te, hi, ja, zh, ar
    "ధన్యవాదాలు",
    "ధన్యవాదములు",
    "సరే",
    "धन्यवाद",
    "शुक्रिया",
    "ठीक है",
    "ありがとうございます",
    "ありがとうございました",
    "承知しました",
    "承知いたしました",
    "了解しました",
    "谢谢",
    "多谢",
    "收到",
    "好的",
    "收到谢谢",
    "شكرا",
    "شكراً",
    "شكرا جزيلا",
    "تم الاستلام",
    "حسنا",
)
REQUEST_WORDS = re.compile(
    r"\b(please|could|can you|would you|bitte|können sie|pourriez|pouvez|podría|puede|"
    r"poderia|pode)\b|\?|？|お願い|ください|请|能否|هل|يرجى|कृपया|దయచేసి",
    re.IGNORECASE,
)
SIGN_OFF = re.compile(
    r"\n\s*(--|best|regards|mit freundlichen|cordialement|saludos|atenciosamente)"
)
MAX_ACK_CHARS = 60


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = SIGN_OFF.split(text, maxsplit=1)[0]
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(">")]
    return " ".join(" ".join(lines).split())


def needs_no_answer(text: str, language: str = "") -> tuple[bool, str]:
    """(True, why) when the message only thanks or acknowledges; (False, why) otherwise."""
    body = _normal(text)
    if not body:
        return False, "empty body: treated as needing an answer"
    if len(body) > MAX_ACK_CHARS:
        return False, "too long to be a plain acknowledgement"
    if REQUEST_WORDS.search(body):
        return False, "asks something"
    stripped = re.sub(r"[\s!.,。！、،~:)\-]+", " ", body).strip()
    words = stripped.split()
    for ack in sorted(ACKS, key=len, reverse=True):
        if (
            stripped == ack
            or stripped.startswith(ack + " ")
            or stripped.replace(" ", "") == ack.replace(" ", "")
        ):
            rest = stripped[len(ack) :].split()
            if len(rest) <= 3:
                return True, f"acknowledgement: {ack!r}"
    if len(words) <= 4 and any(a in stripped for a in ACKS if len(a) > 3):
        return True, "acknowledgement"
    return False, "not an acknowledgement"
