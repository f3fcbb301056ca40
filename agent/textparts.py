"""The part of an email body its sender wrote: quoted replies and signatures removed.

``own_text(body)`` cuts at the first line that starts quoted or forwarded material, in the forms
mail clients write in many languages. When the quote comes first (a bottom-posted or inline
reply), the sender's lines below it are kept instead, up to the next quote. An attribution is
recognised by how it ends (the verb, or the sender's address and a colon) and how it starts
("On", "Am", "Le", a date, a weekday and a date), over up to four wrapped lines; a reply sharing
the attribution's line ("reply On ... wrote:") keeps its words. The forms include:

- reply attributions: "On <date>, <name> wrote:", "Am ... schrieb ...:", "Le ... a écrit :",
  "El ... escribió:", "Em ... escreveu:", "Il ... ha scritto:", "Op ... schreef ...:",
  "... 写道：", "...さんは書きました:", Gmail's Japanese "2024年3月4日(月) 10:00 Name <a@b>:",
  "... ने लिखा:", "... రాశారు:", "... كتب:", "في ... كتب ...:", "... написал(а):",
  "... 작성:" (also when the client wrapped the attribution over two lines);
- separators: "-----Original Message-----", "-----Antwort Nachricht-----" and their
  translations, "---------- Forwarded message ---------", "Begin forwarded message:", "---- John
  wrote ----", Outlook's underscore and dash rules;
- Outlook header blocks: a "From:" line (or "Von:", "De:", "发件人:", "差出人:", "من:" ...)
  with a "Sent:"/"Date:"/"Subject:" line (in any of those languages) close below it, or both on
  one line;

then drops any remaining ">"-quoted lines (inline replies keep their own lines; HTML blockquotes
arrive as such lines from ``agent.mime.html_to_text``), and cuts the signature: at the "-- "
delimiter, at "Sent from my iPhone"-style lines (not a sentence that starts so), at a legal
disclaimer or list footer, at a last "-Name" line, and at a closing line ("Best regards",
"Thanks & Regards", "Mit freundlichen Grüßen", "Cordialement", "Med venlig hilsen", "此致" ...)
that is followed only by a few short lines (name, title, phone). Thanks-closings ("Thanks,") are
kept on purpose: in a short reply they are the message.

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
    r"original message|forwarded message|reply message|ursprüngliche nachricht|"
    r"weitergeleitete nachricht|antwort nachricht|originalnachricht|"
    r"message d'origine|message transféré|message original|mensaje original|mensaje reenviado|"
    r"mensagem original|mensagem encaminhada|messaggio originale|messaggio inoltrato|"
    r"oorspronkelijk bericht|doorgestuurd bericht|oprindelig meddelelse|videresendt meddelelse|"
    r"ursprungligt meddelande|vidarebefordrat meddelande|opprinnelig melding|"
    r"wiadomość oryginalna|oryginalna wiadomość|původní zpráva|alkuperäinen viesti|"
    r"original|原始邮件|原始郵件|转发邮件|轉寄郵件|元のメッセージ|転送メッセージ|الرسالة الأصلية|"
    r"رسالة معاد توجيهها|исходное сообщение|пересланное сообщение|मूल संदेश|అసలు సందేశం"
    r")\s*-{2,}\s*$"
    r"|^begin forwarded message\s*:?\s*$"
    r"|^_{10,}\s*$|^-{10,}\s*$|^—{5,}\s*$",
    re.IGNORECASE,
)

_FROM = (
    r"(from|von|de|da|van|от|fra|från|od|lähettäjä|feladó|kimden|"
    r"发件人|寄件者|寄件人|差出人|送信者|من|प्रेषक|పంపినవారు|నుండి)"
)
_SENT = (
    r"(sent|date|subject|to|cc|gesendet|datum|betreff|an|envoyé|date|objet|à|enviado|"
    r"enviado el|fecha|asunto|para|data|assunto|inviato|oggetto|verzonden|onderwerp|aan|"
    r"sendt|til|emne|skickat|till|ämne|wysłano|temat|do|dato|lähetetty|aihe|"
    r"отправлено|тема|кому|"
    r"发送时间|日期|主题|收件人|寄件日期|主旨|送信日時|件名|宛先|التاريخ|تاريخ الإرسال|"
    r"الموضوع|إلى|أرسل|भेजा गया|विषय|प्रति|పంపినది|విషయం|కు)"
)
_HEADER_FROM = re.compile(rf"^\s*\*?{_FROM}\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_DATE = re.compile(r"^\s*\*?(date|sent|datum|fecha|data|日期|发送时间)\s*\*?\s*[:：]", re.I)
_HEADER_OTHER = re.compile(rf"^\s*\*?{_SENT}\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_ONE_LINE = re.compile(
    rf"^\s*{_FROM}\s*[:：].{{1,200}}\b(sent|date|gesendet|envoyé|enviado)\s*:", re.IGNORECASE
)

# The end of an attribution in any of the languages read, wherever its first part starts: the
# verb ("wrote", "schrieb ...:", "a écrit", "写道", "ने लिखा" ...), or the sender's address
# followed by a colon after a date (Gmail's Japanese and numeric forms). The text tested is at
# most a few short lines, so the bounded repeats cost little.
_VERB_END = re.compile(
    r"(?:\bwrote|\bsent|\bschrieb\b[^:\n]{0,120}|\ba\s+écrit|\bescribió|\bescreveu|\bskrev|"
    r"\bskriver|\bnapisał(?:\(a\)|a)?|het volgende geschreven|\bschreef\b[^:\n]{0,120}|"
    r"\bha scritto|đã viết|\bнаписал(?:\(а\)|а)?|写道|寫道|のメール|さんは書きました|は書きました|"
    r"ने लिखा|రాశారు|వ్రాశారు|రాసారు|كتب)\s*[:：]?\s*-*\s*$",
    re.IGNORECASE,
)
_ADDRESS_END = re.compile(r"<?[^\s<>@]{1,64}@[^\s<>@]{1,255}>{0,2}\s*[:：]\s*$")
_ATTRIBUTION_END = re.compile(f"{_VERB_END.pattern}|{_ADDRESS_END.pattern}", re.IGNORECASE)
# Every attribution has one of these: a cheap test before the costly patterns.
_HINT = re.compile(
    r"wrote|sent|schrieb|écrit|escribió|escreveu|skrev|skriver|napisa|geschreven|schreef|"
    r"scritto|viết|написал|写道|寫道|のメール|書きました|लिखा|రాశారు|వ్రాశారు|రాసారు|كتب|작성|@",
    re.IGNORECASE,
)
# Attribution shapes with no verb: "2011/4/7 Name <a@b>" (Gmail's older numeric form).
_DATED_ADDRESS = re.compile(r"^\d{4}/\d{1,2}/\d{1,2}\b.{0,120}<[^\s<>@]{1,64}@[^\s<>@]{1,255}>$")
# How an attribution starts: "On", "Am", "Le" ..., a date, a weekday before a date, dashes.
_OPENER = re.compile(
    r"^(on|am|le|el|em|no|na|op|il|den|på|w dniu|dnia|vào|في|-{2,}|\d{1,4}(?:[./年-]\d|\s+\S)|"
    r"\S{1,6}[.,]?\s+\d)",
    re.IGNORECASE,
)
# Where a reply shares its line with the attribution: "reply On Wed, ... wrote:".
_INLINE_ON = re.compile(r"(?:\s|-{2,})(?:On|Am|Le|El|Em|Op|Il)\s")

# Lines a legal disclaimer or list footer starts with.
_DISCLAIMER = re.compile(
    r"^(disclaimer\b|confidentiality notice|this (e-?mail|message|communication)\b.{0,60}"
    r"\b(confidential|intended|privileged)|the information (contained )?in this (e-?mail|"
    r"message|communication)|if you (are not|have received) |diese e-?mail (enthält|ist)|"
    r"ce (message|courriel) (et|est)|este (mensaje|correo)\b.{0,40}\b(confidencial|"
    r"destinado)|esta mensagem\b.{0,40}\b(confidencial|destinada)|"
    r"本邮件|本郵件|このメールは|هذه الرسالة|यह ई-?मेल|"
    r"to (subscribe|unsubscribe)|you are receiving this because|reply to this email directly)",
    re.IGNORECASE,
)
# A signature line of a name after a dash or slash: "-Abhishek Kona", "/John".
_DASH_NAME = re.compile(r"^[-/–—][^\W\d_a-z][\w.'’-]{0,30}(\s[^\W\d_][\w.'’-]{0,30}){0,3}$")

# Enough lines joined to read an attribution wrapped over several.
_DEVICE = re.compile(
    r"^(sent from|sent via|sent with|sent using|get outlook for|obtenir outlook|outlook für|"
    r"obtener outlook|baixe o outlook|scarica outlook|download outlook|"
    r"von meinem|gesendet von|envoyé de|"
    r"envoyé depuis|enviado desde|enviado do|enviado de|inviato da|verzonden met|"
    r"verzonden vanaf|отправлено с)\b"
    r"|^(iphoneから送信|android.{0,20}から送信|发自我的|从我的.{0,20}发送|送自我的)"
    r"|^أ?ُ?رسلت من",
    re.IGNORECASE,
)

_CLOSING = re.compile(
    r"^(best regards|kind regards|warm regards|regards|best wishes|best|cheers|sincerely|"
    r"yours sincerely|yours truly|respectfully|thanks (&|and) regards|thanks (&|and) rgds|"
    r"with (warm|kind|best|warmest) regards|warmest regards|many thanks and (best |kind )?regards|"
    r"(best|kind|warm) regards, [^\W\d_][\w.'-]{0,30}( [^\W\d_][\w.'-]{0,30})?|"
    r"regards, [^\W\d_][\w.'-]{0,30}( [^\W\d_][\w.'-]{0,30})?|"
    r"med venlig hilsen|venlig hilsen|hilsen|kh|mvh|med vänlig hälsning|vänliga hälsningar|"
    r"hälsningar|med vennlig hilsen|pozdrawiam|z poważaniem|z powazaniem|pozdrowienia|"
    r"met vriendelijke groeten|vriendelijke groet|hartelijke groet|groeten|"
    r"un cordiale saluto|ystävällisin terveisin|terveisin|s pozdravem|"
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

_ATTRIBUTION_LINES = 4
_ATTRIBUTION_CHARS = 400


def own_text(body: str) -> str:
    """The text the sender wrote in ``body``: quotes, forwards and signature removed.

    Returns the remaining lines joined by "\\n" without surrounding blank lines ("" when nothing
    is left, e.g. a forward with no comment). Never raises. Reads ``body[:MAX_CHARS]``.
    """
    text = body[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    cut = _cut(text)
    if cut == text.strip("\n").strip():
        return cut
    # Each pass only ever removes lines; a few passes reach what a further one leaves alone.
    for _ in range(3):
        again = _cut(cut)
        if again == cut:
            break
        cut = again
    return cut


def _cut(text: str) -> str:
    lines = text.split("\n")
    start, end, cut_line = _quote_start(lines, 0)
    if cut_line is not None:
        lines = [*lines[:start], cut_line]
    elif not any(line.strip() for line in lines[:start]) and start < len(lines):
        # The quote comes first: the reply is below it (bottom-posted) or between its lines
        # (inline). Read on after the attribution or header block to the next one.
        after = end
        nxt, _, _ = _quote_start(lines, after)
        lines = lines[after:nxt]
    else:
        lines = lines[:start]
    kept = [line for line in lines if not line.lstrip().startswith(">")]
    if len(kept) < len(lines):  # the blank lines around an inline quote close up
        kept = [ln for i, ln in enumerate(kept) if ln.strip() or i == 0 or kept[i - 1].strip()]
    lines = kept[: _signature_start(kept)]
    return "\n".join(lines).strip("\n").strip()


def _quote_start(lines: list[str], first: int) -> tuple[int, int, str | None]:
    """(first line of quoted material, first line after its attribution or header block, the
    sender's words sharing the attribution's line or None), or (len, len, None)."""
    for i in range(first, len(lines)):
        line = _plain(lines[i])
        if not line or len(line) > _ATTRIBUTION_CHARS:
            continue
        if line.startswith(">") and i > first and _quoted_before(lines, i):
            continue
        if _SEPARATOR.match(line) or _HEADER_ONE_LINE.match(line):
            return i, _block_end(lines, i), None
        hinted = _HINT.search(line) is not None
        known = hinted and _is_attribution(line)
        if known or (hinted and _ends_attribution(lines, i, line)):
            start = _attribution_start(lines, i, first)
            if start is None and known:
                start = i
            if start is not None:
                return start, i + 1, _shared(line) if start == i else None
        if (_HEADER_FROM.match(line) or _HEADER_DATE.match(line)) and _header_block_follows(
            lines, i
        ):
            return i, _block_end(lines, i), None
    return len(lines), len(lines), None


def _ends_attribution(lines: list[str], i: int, line: str) -> bool:
    if _ATTRIBUTION_END.search(line[-200:]) or _DATED_ADDRESS.match(line):
        return True
    # The verb itself wrapped: "... Sam Lee <sam@acme.example> a\nécrit :".
    above = lines[i - 1].strip() if i > 0 else ""
    return bool(above) and _ATTRIBUTION_END.search(f"{above[-100:]} {line}") is not None


def _plain(line: str) -> str:
    """``line`` without surrounding space, direction marks and "&nbsp;" left by HTML."""
    return line.replace("&nbsp;", " ").strip().strip("\u200f\u200e\ufeff").strip()


def _quoted_before(lines: list[str], i: int) -> bool:
    for j in range(i - 1, max(-1, i - 3), -1):
        if lines[j].strip():
            return lines[j].lstrip().startswith(">")
    return False


def _attribution_start(lines: list[str], end: int, first: int) -> int | None:
    """The first line of the attribution ending on line ``end``: the line itself, or up to
    three lines above it when the attribution was wrapped ("On ... Name <\n a@b> wrote:")."""
    last = lines[end].strip()
    if _OPENER.match(last) and _looks_like_attribution(last, last.startswith("--")):
        return end
    parts = [last]
    j = end
    while j > first and len(parts) < _ATTRIBUTION_LINES and end - j < _ATTRIBUTION_LINES + 2:
        j -= 1
        part = lines[j].strip()
        if not part:
            continue
        if part.startswith(">") or len(part) > _ATTRIBUTION_CHARS // 2:
            break
        parts.insert(0, part)
        if _OPENER.match(part):
            joined = " ".join(parts)
            if _looks_like_attribution(joined, part.startswith("--")):
                return j
            break
    # Without an opening above it, only a verb says it is an attribution: "Please send the
    # invoice to accounts@client.example:" is the sender's own line.
    verb = _VERB_END.search(last.strip("-").strip()[-200:]) is not None
    return end if verb and _looks_like_attribution(last, last.startswith("--")) else None


def _looks_like_attribution(text: str, dashed: bool) -> bool:
    text = text.strip("-").strip()
    if _DATED_ADDRESS.match(text):
        return True
    if _VERB_END.search(text[-200:]) is None:
        # "2014-10-17 11:28 GMT+03:00 Postmaster <a@b>:": an address ends it after a date.
        return _ADDRESS_END.search(text[-200:]) is not None and any(c.isdigit() for c in text)
    # A real attribution names a date or an address; "---- John Smith wrote ----" is dashed.
    return dashed or any(c.isdigit() for c in text) or "@" in text


def _shared(line: str) -> str | None:
    """The sender's words before an attribution on the same line ("reply On ... wrote:")."""
    m = None if _OPENER.match(line) else _INLINE_ON.search(line)
    if m is None or m.start() == 0:
        return None
    before = line[: m.start()].rstrip("- ")
    return before or None


def _block_end(lines: list[str], i: int) -> int:
    """The first line after the separator or header block at ``i``: after its blank line."""
    j = i + 1
    while j < len(lines) and j < i + 12 and lines[j].strip():
        j += 1
    return j


def _is_attribution(line: str) -> bool:
    return _ANY_ATTRIBUTION.match(line.strip()) is not None


def _header_block_follows(lines: list[str], i: int) -> bool:
    # A lone "From:" in prose is not a header; Outlook puts Sent/Date/To/Subject right below it.
    window = [_plain(line) for line in lines[i + 1 : i + 6] if line.strip()]
    return sum(1 for line in window if _HEADER_OTHER.match(line)) >= 1


def _signature_start(lines: list[str]) -> int:
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, raw in enumerate(lines):
        line = raw.strip()
        if raw.rstrip() == "--" or raw == "-- ":
            return i
        # "Sent from my iPhone", not "Sent from my desk, is much easier than my phone."
        if _DEVICE.match(line) and len(line) <= 70 and not line.endswith("."):
            return i
        if i > 0 and _DISCLAIMER.match(line):
            return i
        if i == last and i > 0 and _DASH_NAME.match(line):
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
