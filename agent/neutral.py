"""Text from outside, made inert where the agent places it. Pure.

Subjects, meeting titles and names come from whoever wrote the mail or sent the invitation. Put
into a team chat they could ping the whole channel (``<!channel>``, ``@here``) or dress a link
as something else (``<https://evil.example|Invoice>``, ``[Invoice](https://evil.example)``);
quoted in a note to a client they become a link the rep appears to vouch for. :func:`chat`
escapes chat markup as Slack documents it (``&``, ``<``, ``>`` as entities) and breaks mentions
and Markdown links; :func:`no_links` drops what a mail client would turn into a link.

Both bound their input first and use no regular expression, so hostile text costs linear time.
"""

from __future__ import annotations

MAX_TEXT = 500
_ZWSP = "\u200b"  # a zero-width space: shown as nothing, yet no mention or link survives it
_MENTIONS = ("@here", "@channel", "@everyone", "@all")
_SCHEMES = ("http:", "https:", "ftp:", "mailto:", "javascript:", "data:", "file:", "tel:")
_PUNCT = "()[]{}<>\"'.,;:!?«»“”‘’"
_DANGLING = _PUNCT + "-–—|/"


def _bounded(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def chat(text: str) -> str:
    """``text`` safe inside a Slack- or Teams-compatible webhook message: shown as written,
    acting as nothing."""
    text = _bounded(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lowered = text.lower()
    for mention in _MENTIONS:
        start = lowered.find(mention)
        while start != -1:
            text = text[: start + 1] + _ZWSP + text[start + 1 :]
            lowered = lowered[: start + 1] + _ZWSP + lowered[start + 1 :]
            start = lowered.find(mention, start + len(mention) + 1)
    return text.replace("](", "]" + _ZWSP + "(")


def _is_domain(word: str) -> bool:
    labels = word.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    tld = labels[-1]
    return (
        2 <= len(tld) <= 24
        and tld.isascii()
        and tld.isalpha()
        and all(label.replace("-", "").isalnum() for label in labels)
    )


def is_link(word: str) -> bool:
    """Whether a mail client would make ``word`` a link: a URL, ``www.``, or a domain name
    (with or without a path)."""
    word = word.strip(_PUNCT).lower()
    if not word:
        return False
    if "://" in word or word.startswith(("www.", *_SCHEMES)):
        return True
    host = word.partition("/")[0].rpartition("@")[2]
    return _is_domain(host)


def no_links(text: str, fallback: str = "") -> str:
    """``text`` without anything a mail client would turn into a link; ``fallback`` when
    nothing else is left."""
    kept = [word for word in _bounded(text).split(" ") if not is_link(word)]
    while kept and not kept[-1].strip(_DANGLING):  # "Demo – https://..." loses its dash too
        kept.pop()
    while kept and not kept[0].strip(_DANGLING):
        kept.pop(0)
    return " ".join(kept) or fallback
