"""The part of an email body its sender wrote: quoted replies and signatures removed.

``own_text(body)`` cuts at the first line that starts quoted or forwarded material, in the forms
mail clients write in many languages:

- reply attributions: "On <date>, <name> wrote:", "Am ... schrieb ...:", "Le ... a écrit :",
  "El ... escribió:", "Em ... escreveu:", "Il ... ha scritto:", "Op ... schreef ...:",
  "... 写道：", "...さんは書きました:", Gmail's Japanese "2024年3月4日(月) 10:00 Name <a@b>:",
  "... ने लिखा:", "... రాశారు:", "... كتب:", "في ... كتب ...:", "... написал(а):",
  "... 작성:" (also when the client wrapped the attribution over two lines);
- separators: "-----Original Message-----" and its translations, "---------- Forwarded message
  ---------", "Begin forwarded message:", Outlook's underscore rule;
- Outlook header blocks: a "From:" line (or "Von:", "De:", "发件人:", "差出人:", "من:" ...)
  with a "Sent:"/"Date:"/"Subject:" line (in any of those languages) close below it, or both on
  one line;

then drops any remaining ">"-quoted lines (inline replies keep their own lines), and cuts the
signature: at the "-- " delimiter, at "Sent from my iPhone"-style lines, and at a closing line
("Best regards", "Mit freundlichen Grüßen", "Cordialement", "此致" ...) that is followed only by a
few short lines (name, title, phone). Thanks-closings ("Thanks,") are kept on purpose: in a short
reply they are the message.

Pure: no I/O. The result has no leading or trailing blank lines; it may be "". Only the first
``MAX_CHARS`` of a body are read (a reply is at its top), and every step is linear in them: the
patterns are anchored with bounded repeats and each line is looked at a fixed number of times.
"""

from __future__ import annotations

import re

__all__ = ["own_text"]

_EMAIL = r"[^\s<>@]+@[^\s<>@]+"

# An attribution line ends with the verb; the line may wrap, so callers also try two lines joined.
_ATTRIBUTION = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^on\b.{0,250}\bwrote\s*:?$",
        r"^am\b.{0,250}\bschrieb\b.{0,120}:\s*$",
        r"^le\b.{0,250}\ba\s+écrit\s*:?$",
        r"^el\b.{0,250}\bescribió\s*:?$",
        r"^em\b.{0,250}\bescreveu\s*:?$",
        r"^(no|na)\b.{0,250}\bescreveu\s*:?$",
        r"^il\b.{0,250}\bha\s+scritto\s*:?$",
        r"^op\b.{0,250}\bschreef\b.{0,120}:\s*$",
        r"^.{0,250}写道\s*[:：]?$",
        r"^.{0,250}(さんは書きました|は書きました|さんが書きました)\s*[:：]?$",
        rf"^\d{{4}}年\d{{1,2}}月\d{{1,2}}日.{{0,200}}<{_EMAIL}>\s*[:：]$",
        r"^.{0,250}ने\s+लिखा\s*:?$",
        r"^.{0,250}(రాశారు|వ్రాశారు|రాసారు)\s*:?$",
        r"^.{0,250}كتب\s*:?$",
        r"^في\s.{0,250}\sكتب\s.{0,120}:\s*$",
        r"^.{0,250}написал(\(а\)|а)?\s*:?$",
        r"^.{0,250}작성\s*:?$",
        rf"^.{{0,250}}<{_EMAIL}>\s+wrote\s*:?$",
    )
]

# All of them as one pattern: one call per line instead of one per form.
_ANY_ATTRIBUTION = re.compile("|".join(f"(?:{p.pattern})" for p in _ATTRIBUTION), re.IGNORECASE)

_SEPARATOR = re.compile(
    r"^-{2,}\s*("
    r"original message|forwarded message|ursprüngliche nachricht|weitergeleitete nachricht|"
    r"message d'origine|message transféré|mensaje original|mensaje reenviado|"
    r"mensagem original|mensagem encaminhada|messaggio originale|oorspronkelijk bericht|"
    r"原始邮件|原始郵件|转发邮件|元のメッセージ|転送メッセージ|الرسالة الأصلية|исходное сообщение"
    r")\s*-{2,}\s*$"
    r"|^begin forwarded message\s*:?\s*$"
    r"|^_{10,}\s*$",
    re.IGNORECASE,
)

_FROM = r"(from|von|de|da|van|от|发件人|寄件者|差出人|送信者|من|प्रेषक|పంపినవారు)"
_SENT = (
    r"(sent|date|subject|to|gesendet|datum|betreff|an|envoyé|date|objet|à|enviado|fecha|asunto|"
    r"para|data|assunto|inviato|oggetto|verzonden|onderwerp|aan|отправлено|тема|"
    r"发送时间|日期|主题|收件人|送信日時|件名|宛先|التاريخ|الموضوع|إلى|أرسل|"
    r"भेजा गया|विषय|పంపినది|విషయం)"
)
_HEADER_FROM = re.compile(rf"^\s*\*?{_FROM}\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_OTHER = re.compile(rf"^\s*\*?{_SENT}\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_ONE_LINE = re.compile(
    rf"^\s*{_FROM}\s*[:：].{{1,200}}\b(sent|date|gesendet|envoyé|enviado)\s*:", re.IGNORECASE
)

_DEVICE = re.compile(
    r"^(sent from|sent via|sent with|get outlook for|von meinem|gesendet von|envoyé de|"
    r"envoyé depuis|enviado desde|enviado do|enviado de|inviato da|verzonden met|"
    r"verzonden vanaf|отправлено с)\b"
    r"|^(iphoneから送信|android.{0,20}から送信|发自我的|从我的.{0,20}发送|送自我的)"
    r"|^أ?ُ?رسلت من",
    re.IGNORECASE,
)

_CLOSING = re.compile(
    r"^(best regards|kind regards|warm regards|regards|best wishes|best|cheers|sincerely|"
    r"yours sincerely|yours truly|respectfully|"
    r"mit freundlichen grüßen|mit freundlichen grüssen|freundliche grüße|viele grüße|"
    r"beste grüße|liebe grüße|herzliche grüße|gruß|grüße|lg|mfg|"
    r"cordialement|bien cordialement|bien à vous|salutations|meilleures salutations|"
    r"saludos|un saludo|saludos cordiales|atentamente|un abrazo|"
    r"atenciosamente|abraços|abs|att|cumprimentos|"
    r"cordiali saluti|distinti saluti|met vriendelijke groet|"
    r"此致|此致敬礼|祝好|顺祝商祺|顺颂商祺|敬具|"
    r"सादर|भवदीय|భవదీయుడు|భవదీయులు|మీ విధేయుడు|"
    r"مع أطيب التحيات|مع خالص التحيات|تحياتي|مع التحية)[\s,.!;:،]*$",
    re.IGNORECASE,
)

# After a closing, this many short lines are taken as the signature (name, title, company, phone).
_SIGNATURE_LINES = 6
_SIGNATURE_LINE_CHARS = 80

MAX_CHARS = 100_000


def own_text(body: str) -> str:
    """The text the sender wrote in ``body``: quotes, forwards and signature removed.

    Returns the remaining lines joined by "\\n" without surrounding blank lines ("" when nothing
    is left, e.g. a forward with no comment). Never raises. Reads ``body[:MAX_CHARS]``.
    """
    lines = body[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = lines[: _quote_start(lines)]
    lines = [line for line in lines if not line.lstrip().startswith(">")]
    lines = lines[: _signature_start(lines)]
    return "\n".join(lines).strip("\n").strip()


def _quote_start(lines: list[str]) -> int:
    for i, raw in enumerate(lines):
        line = raw.strip().lstrip("\u200f\u200e")
        if not line:
            continue
        if _SEPARATOR.match(line) or _HEADER_ONE_LINE.match(line):
            return i
        if _is_attribution(line):
            return i
        nxt = _next_nonblank(lines, i)
        if nxt is not None and not line.startswith(">"):
            joined = f"{line} {lines[nxt].strip()}"
            if len(line) < 200 and _is_attribution(joined) and not _is_attribution(lines[nxt]):
                return i
        if _HEADER_FROM.match(line) and _header_block_follows(lines, i):
            return i
    return len(lines)


def _is_attribution(line: str) -> bool:
    return _ANY_ATTRIBUTION.match(line.strip()) is not None


def _next_nonblank(lines: list[str], i: int) -> int | None:
    for j in range(i + 1, min(len(lines), i + 3)):
        if lines[j].strip():
            return j
    return None


def _header_block_follows(lines: list[str], i: int) -> bool:
    # A lone "From:" in prose is not a header; Outlook puts Sent/Date/To/Subject right below it.
    window = [line for line in lines[i + 1 : i + 6] if line.strip()]
    return sum(1 for line in window if _HEADER_OTHER.match(line)) >= 1


def _signature_start(lines: list[str]) -> int:
    for i, raw in enumerate(lines):
        if raw.rstrip() == "--" or raw == "-- ":
            return i
        if _DEVICE.match(raw.strip()):
            return i
    # From the end: how many non-blank lines follow each line, and whether any is long. One
    # pass, so a body of a thousand closing lines costs no more than one of a thousand others.
    after = [0] * (len(lines) + 1)
    long_after = [False] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        after[i] = after[i + 1] + (1 if line else 0)
        long_after[i] = long_after[i + 1] or len(line) > _SIGNATURE_LINE_CHARS
    seen_text = False
    for i, raw in enumerate(lines):
        short_tail = after[i + 1] <= _SIGNATURE_LINES and not long_after[i + 1]
        if i > 0 and seen_text and short_tail and _CLOSING.match(raw.strip()):
            return i
        seen_text = seen_text or bool(raw.strip())
    return len(lines)
