"""What a client's message asks for, from multilingual phrase lists: nothing, to stop, a meeting.

Three questions, each answered with ``(bool, reason)``:

- ``needs_no_answer(text, language)``: a short thanks or acknowledgement ("Thanks!", "Danke!",
  "ありがとうございます。", "ధన్యవాదాలు", "شكراً", "收到，谢谢") that asks nothing;
- ``asks_to_stop(text)``: unsubscribe, "please stop emailing me", "not interested", "配信停止" ...;
- ``asks_for_meeting(text)``: "can we schedule a call", "Termin vereinbaren", "打ち合わせの日程" ...

Lexicons cover en, te, hi, ja, de, fr, es, pt, ar, zh.

How matching works (so a lexicon entry does what its author expects):

- Text and phrases go through the same ``normalise``: NFKC, casefold, Latin accents dropped
  ("reunion" matches "reunión"), Arabic short vowels, tatweel and hamza-on-alef forms unified,
  the Devanagari nukta dropped, zero-width joiners removed (Telugu is written with and without
  them), curly apostrophes made straight.
- Text is cut into tokens: runs of letters, marks and digits; every Han or kana character is a
  token of its own, since Chinese and Japanese have no spaces. A phrase matches a run of
  consecutive tokens, so Latin-script matching is word-boundary aware ("stop by our booth" is not
  "stop emailing", "ok" does not match "okay"), and CJK phrases match as substrings.
- In a phrase, ``a|b`` is one token with alternatives, ``word*`` matches any token starting with
  "word", ``*word`` any token ending with it (Arabic and Telugu attach particles to words).
- Apostrophes and hyphens split tokens in text and phrases alike: write "let's" or "e-mails".

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from agent.textparts import own_text

__all__ = [
    "LANGUAGES",
    "ack_language",
    "asks_for_meeting",
    "asks_to_stop",
    "needs_no_answer",
    "normalise",
    "tokens",
]

LANGUAGES = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")

# An acknowledgement is short; past these it says something and a person should read it.
MAX_ACK_CHARS = 240
MAX_ACK_WORDS = 30
# Words left over after removing the thanks and the closing ("Thanks John, see you Tuesday").
MAX_ACK_LEFTOVER = 4.0
# A name block under a thanks line: this many lines at most, each this many words at most.
SIGNATURE_LINES = 6
SIGNATURE_WORDS = 4
# A Han or kana character is about a third of a word.
DENSE_WEIGHT = 0.35
# Answers remembered per question, keyed by the text: a worker asks about the same mail on every
# pass, and a pass over 100,000 open threads asks about some 200,000 texts.
CACHE_SIZE = 1 << 18

QUESTION_MARKS = frozenset("?？¿؟;")  # ";" is the Greek question mark after NFKC

# fmt: off
ACK: Mapping[str, tuple[str, ...]] = {
    "en": (
        "thanks", "thank you", "thank u", "thx", "ty", "tks", "many thanks", "thanks a lot",
        "cheers", "got it", "noted", "received", "well received", "sounds good", "sounds great",
        "perfect", "great", "ok", "okay", "will do", "understood", "all good", "appreciate it",
        "appreciated", "much appreciated", "see you then", "see you", "looks good",
        "works for me", "that works", "confirmed", "awesome", "excellent", "wonderful",
        "brilliant", "fantastic", "lovely", "no problem", "sure",
    ),
    "de": (
        "danke", "danke schön", "dankeschön", "vielen dank", "herzlichen dank", "besten dank",
        "tausend dank", "alles klar", "passt", "super", "perfekt", "erhalten", "verstanden",
        "notiert", "ok", "okay", "in ordnung", "geht klar", "prima", "top", "bis dann",
        "wird gemacht", "klingt gut", "bestens", "gerne",
    ),
    "fr": (
        "merci", "merci beaucoup", "mille mercis", "bien reçu", "reçu", "c'est noté", "noté",
        "parfait", "d'accord", "ok", "très bien", "super", "entendu", "ça marche", "ça me va",
        "top", "génial", "bonne réception", "impeccable", "au top", "avec plaisir",
    ),
    "es": (
        "gracias", "muchas gracias", "mil gracias", "recibido", "perfecto", "vale", "de acuerdo",
        "entendido", "genial", "ok", "listo", "anotado", "excelente", "estupendo", "queda claro",
        "nos vemos", "buenísimo", "dale",
    ),
    "pt": (
        "obrigado", "obrigada", "muito obrigado", "muito obrigada", "valeu", "recebido", "recebi",
        "perfeito", "combinado", "beleza", "ok", "certo", "entendido", "ótimo", "show", "fechado",
        "de acordo", "anotado", "tudo certo", "agradeço",
    ),
    "ja": (
        "ありがとう", "有難う", "承知しました", "承知いたしました", "承知致しました",
        "かしこまりました", "了解", "拝受", "受け取りました",
        "受領しました", "確認しました", "助かります", "感謝", "承りました", "問題ございません",
        "問題ありません",
    ),
    "zh": (
        "谢谢", "谢了", "感谢", "多谢", "收到", "好的", "没问题", "明白", "了解", "辛苦了",
        "知道了", "好滴", "谢谢您", "謝謝",
        "感謝", "好的謝謝",
    ),
    "hi": (
        "धन्यवाद", "शुक्रिया", "थैंक्स", "थैंक यू", "ठीक है", "मिल गया", "मिल गई", "समझ गया",
        "समझ गई", "बढ़िया", "ओके", "हो गया", "बहुत अच्छा", "जी",
    ),
    "te": (
        "ధన్యవాదాలు", "ధన్యవాదములు", "కృతజ్ఞతలు", "థాంక్స్", "థ్యాంక్స్", "సరే", "అందింది",
        "అర్థమైంది", "ఓకే", "చాలా బాగుంది", "తప్పకుండా", "బాగుంది", "థాంక్యూ", "థ్యాంక్యూ",
        "థాంక్ యూ", "థ్యాంక్ యూ",
    ),
    "ar": (
        "شكرا", "شكرا جزيلا", "شكرا لك", "شكرا لكم", "مشكور", "مشكورين", "تم الاستلام", "وصلني",
        "تمام", "ممتاز", "حسنا", "تم", "مفهوم", "بارك الله فيك", "جزاك الله خيرا", "اوكي",
        "ألف شكر",
    ),
}

# Closings and pleasantries that neither ask nor say anything; removed before the checks, so
# "よろしくお願いします" is not read as the request "お願い".
CLOSING: Mapping[str, tuple[str, ...]] = {
    "en": (
        "best", "regards", "best regards", "kind regards", "warm regards", "have a great day",
        "have a good day", "have a nice day", "have a great weekend", "have a good weekend",
        "have a nice weekend", "hi", "hello", "dear", "again",
    ),
    "de": (
        "viele grüße", "beste grüße", "liebe grüße", "mit freundlichen grüßen", "grüße", "lg",
        "hallo", "schönes wochenende", "schönen tag", "nochmal", "nochmals",
    ),
    "fr": ("cordialement", "bonne journée", "bon week-end", "bonne soirée", "bonjour", "encore"),
    "es": ("saludos", "un saludo", "buen día", "buen fin de semana", "hola", "de nuevo"),
    "pt": ("abraços", "abs", "att", "bom dia", "boa tarde", "bom fim de semana", "olá", "oi"),
    "ja": (
        "よろしくお願いします", "よろしくお願いいたします", "よろしくお願い致します",
        "宜しくお願いします", "宜しくお願いいたします", "宜しくお願い致します",
        "よろしくお願い申し上げます", "今後ともよろしく", "引き続き",
        "いつもお世話になっております", "お世話になっております", "お世話になります",
    ),
    "zh": ("祝好", "此致", "敬礼", "您好", "你好"),
    "hi": ("नमस्ते", "सादर", "जी"),
    "te": ("నమస్కారం", "నమస్తే", "గారు", "అండి"),
    "ar": ("مع التحية", "تحياتي", "مرحبا", "السلام عليكم", "اخي", "استاذ"),
}

# Requests and question cues. Checked in every language, whatever the message's language: a
# missed request costs a client an answer, a spurious one only a reminder.
REQUEST: Mapping[str, tuple[str, ...]] = {
    "en": (
        "please", "pls", "plz", "kindly", "can you", "could you", "would you", "can u",
        "will you", "let me know", "send me", "send us", "send over", "i need", "we need",
        "do you", "is there", "are there", "when is|are|will|do|does|can|could|would",
        "what is|are|about|time|price", "how do|does|can|much|many|long|soon",
        "where is|are|do|can", "who is|are|do|can|should", "any update|news",
        "remind me", "update me", "get back to me", "waiting for",
    ),
    "de": (
        "bitte", "könnten sie", "können sie", "würden sie", "könntest du", "kannst du",
        "schicken sie", "senden sie", "geben sie mir bescheid", "brauchen", "benötige*",
        "gibt es", "wann", "wie", "was kostet",
    ),
    "fr": (
        "pourriez-vous", "pouvez-vous", "pourrais-tu", "peux-tu", "s'il vous plaît", "svp", "stp",
        "envoyez", "envoyer", "merci de me|m|nous|bien|faire|renvoyer|confirmer",
        "merci d'envoyer", "besoin", "est-ce que", "quand", "combien",
    ),
    "es": (
        "por favor", "podrías", "podría", "podrían", "puedes", "puede", "pueden", "envíame",
        "mándame", "envíenos", "necesito", "necesitamos", "me gustaría", "avísame", "confírmame",
        "cuándo", "cuánto",
    ),
    "pt": (
        "por favor", "poderia", "poderiam", "pode", "podem", "consegue", "conseguem", "me envie",
        "me manda", "me mande", "envie", "mande", "preciso", "precisamos", "gostaria", "me avise",
        "favor", "quando", "quanto",
    ),
    "ja": (
        "ください", "下さい", "いただけますか", "いただけますでしょうか", "いただけませんか",
        "頂けますか", "頂けますでしょうか", "お願い", "教えて",
        "送って", "ご確認", "でしょうか", "ますか", "ですか", "いかが",
    ),
    "zh": (
        "请问", "请您", "请帮", "请尽快", "请提供", "请发", "请确认", "请把", "请告诉", "麻烦",
        "能否", "可否", "能不能", "可不可以",
        "可以吗", "帮忙", "需要", "吗", "什么时候", "多少", "請問", "請您", "麻煩", "嗎",
        "发我", "发给我", "给我发", "传给我", "發我", "發給我", "給我發", "傳給我", "一下",
    ),
    "hi": (
        "कृपया", "क्या", "भेज दीजिए", "भेज दें", "भेजिए", "भेजें", "भेज सकते", "बताइए", "बताएं",
        "बता दीजिए", "चाहिए", "सकते हैं", "कब", "कितना", "कितनी",
    ),
    "te": (
        "దయచేసి", "పంపండి", "చెప్పండి", "తెలియజేయండి", "*గలరా", "*గలమా", "కావాలి", "ఇవ్వండి",
        "ఉందా", "ఎప్పుడు", "ఎంత",
    ),
    "ar": (
        "من فضلك", "رجاء", "الرجاء", "يرجى", "أرجو", "هل", "ممكن", "أرسل لي", "ارسلوا", "نحتاج",
        "أحتاج", "أريد", "متى", "كم",
    ),
}

STOP: Mapping[str, tuple[str, ...]] = {
    "en": (
        "unsubscribe", "unsubscribed", "opt out", "opt me out", "stop email*|mail*|send*",
        "stop contact*|messag*|writ*|call*|spamm*", "remove me from", "take me off",
        "not interested", "no longer interested", "do not contact", "don't contact",
        "do not email", "don't email", "no more emails", "leave me alone",
        "don't want to receive", "do not want to receive", "don't send me", "do not send me",
    ),
    "de": (
        "abmelden", "abbestellen", "austragen", "keine weiteren mails|nachrichten",
        "keine weiteren e-mails", "keine e-mails mehr", "keine mails mehr", "kein interesse",
        "nicht interessiert", "nicht mehr kontaktieren", "nicht mehr anschreiben",
        "nicht mehr anrufen", "aus ihrem|dem verteiler", "von ihrer liste", "melde mich ab",
        "keine werbung",
    ),
    "fr": (
        "désabonner", "désinscri*", "désabonnement", "ne plus recevoir", "ne m'écrivez plus",
        "ne me contactez plus", "arrêtez de m'envoyer", "arrêtez de m'écrire",
        "arrêtez de me contacter", "pas intéressé*", "plus intéressé*", "retirez-moi",
        "supprimez-moi",
    ),
    "es": (
        "darme de baja", "dar de baja", "darse de baja", "baja de la lista", "no me interesa",
        "no nos interesa", "no estamos interesados", "no estoy interesad*",
        "dejen|deje|dejad de enviar*|escribir*|contactar*", "no me escriban", "no me contacten",
        "no quiero recibir", "no queremos recibir", "sacarme de la lista",
        "cancelar la suscripción",
    ),
    "pt": (
        "descadastr*", "cancelar a inscrição", "remover meu e-mail", "remova meu e-mail",
        "me tire|tirem da lista", "não tenho interesse", "não temos interesse",
        "não estou interessad*", "parem|pare de enviar|mandar", "parem|pare de me enviar|mandar",
        "não me enviem", "não quero receber", "não me contatem", "não me mandem",
    ),
    "ja": (
        "配信停止", "配信を停止", "配信解除", "登録解除", "メール不要", "ご連絡は不要",
        "ご案内は不要", "送らないで", "送信しないで", "連絡しないで",
        "興味がありません", "興味ありません", "今後のメールは不要", "送付を停止",
    ),
    "zh": (
        "退订", "取消订阅", "不要再发", "别再发", "不要再联系", "别再联系", "不再联系", "不感兴趣",
        "没有兴趣", "没兴趣", "请勿再",
        "移除我的邮箱", "退訂", "不要再發",
    ),
    "hi": (
        "अनसब्सक्राइब", "सदस्यता रद्द", "ईमेल मत भेजें", "ईमेल न भेजें", "मेल मत भेजिए",
        "ईमेल भेजना बंद", "संपर्क न करें", "संपर्क मत करें", "रुचि नहीं", "दिलचस्पी नहीं",
        "मत भेजो", "ईमेल मत भेजिए",
    ),
    "te": (
        "అన్‌సబ్‌స్క్రైబ్", "పంపవద్దు", "పంపకండి", "ఆసక్తి లేదు", "సంప్రదించవద్దు",
        "మెయిల్స్ ఆపండి", "పంపడం ఆపండి", "మెయిల్స్ ఆపేయండి",
    ),
    "ar": (
        "إلغاء الاشتراك", "لا ترسلوا", "لا ترسل", "توقفوا عن إرسال", "توقف عن إرسال", "لست مهتم*",
        "لسنا مهتمين", "غير مهتم*", "لا تتواصلوا", "لا تتصلوا", "احذفوا بريدي", "إزالة بريدي",
    ),
}

# Phrases that only decline an offer: with a "but" after them ("not interested in the basic
# plan, but ...") the client is still talking to us.
SOFT_STOP: Mapping[str, tuple[str, ...]] = {
    "en": ("not interested", "no longer interested"),
    "de": ("kein interesse", "nicht interessiert"),
    "fr": ("pas intéressé*", "plus intéressé*"),
    "es": ("no me interesa", "no nos interesa", "no estamos interesados", "no estoy interesad*"),
    "pt": ("não tenho interesse", "não temos interesse", "não estou interessad*"),
    "ja": ("興味がありません", "興味ありません"),
    "zh": ("不感兴趣", "没有兴趣", "没兴趣"),
    "hi": ("रुचि नहीं", "दिलचस्पी नहीं"),
    "te": ("ఆసక్తి లేదు",),
    "ar": ("لست مهتم*", "لسنا مهتمين", "غير مهتم*"),
}

CONTRAST: Mapping[str, tuple[str, ...]] = {
    "en": ("but", "however"),
    "de": ("aber", "jedoch", "sondern"),
    "fr": ("mais", "cependant"),
    "es": ("pero", "sino"),
    "pt": ("mas", "porém"),
    "ja": ("ですが", "けど", "でも", "ただ"),
    "zh": ("但", "不过"),
    "hi": ("लेकिन", "पर", "मगर"),
    "te": ("కానీ", "అయితే"),
    "ar": ("لكن", "ولكن", "لكنا"),
}

# Phrases that mean "not a stop request" although they contain one: newsletter footers quoted in
# a reply.
STOP_FOOTER: Mapping[str, tuple[str, ...]] = {
    "en": ("click here to unsubscribe", "to unsubscribe click", "unsubscribe link"),
}

# The footers mailing lists, groups and digests add under every post ("To subscribe or
# unsubscribe via the World Wide Web, visit ...", Google Groups' "To unsubscribe from this group
# and stop receiving emails from it ..."): the paragraph from such a phrase on is the list's,
# never the client's own words.
LIST_FOOTER: Mapping[str, tuple[str, ...]] = {
    "en": (
        "to subscribe or unsubscribe",
        "to unsubscribe from this group|list|mailing|digest|newsletter",
        "you received this message|email|digest because",
        "you are receiving this message|email|digest because",
        "you are subscribed to", "you were subscribed to", "you're receiving this because",
        "manage your subscription", "manage your email preferences", "update your preferences",
        "send a message with subject or body", "to unsubscribe send", "to unsubscribe visit",
        "to unsubscribe go to", "to unsubscribe email", "end of digest", "digest vol",
    ),
    "de": ("um sich von dieser liste abzumelden", "sie erhalten diese nachricht, weil"),
    "fr": ("pour vous désabonner de cette liste", "vous recevez ce message car"),
    "es": ("para cancelar la suscripción a este grupo", "recibiste este mensaje porque"),
}

MEETING: Mapping[str, tuple[str, ...]] = {
    "en": (
        "schedule|book|arrange|organise|organize|set|setup|plan|have a|an|the call|meeting|demo"
        "|chat|video", "set up a|an|the call|meeting|demo|chat|time",
        "hop|jump|get on a|the call", "quick call|chat|sync",
        "let's talk|meet|chat|connect|catch|speak|discuss",
        "can|could|shall we talk|meet|speak|chat|connect|catch",
        "available for a|an call|meeting|chat|demo", "are you free", "what time works",
        "when works for you", "when are you free", "find a time",
        "a time to talk|meet|chat|connect", "time slots", "few slots",
        "talk|meet|speak|call|chat tomorrow|next", "give me|us a call|ring",
        "call me tomorrow|today",
    ),
    "de": (
        "termin vereinbaren|ausmachen|finden|abstimmen|machen|verschieben|vorschlagen",
        "einen termin", "terminvorschlag*", "telefonieren", "telefonat", "videocall",
        "video call", "call vereinbaren|machen", "gespräch|treffen vereinbaren",
        "zeit für ein gespräch|telefonat", "besprechung vereinbaren|ansetzen|planen",
        "treffen wir uns", "können|könnten wir uns treffen|sprechen|austauschen",
        "lass|lassen uns sprechen|telefonieren|treffen|reden",
    ),
    "fr": (
        "prendre|fixer|caler|planifier|organiser|programmer un|une rendez|rdv|appel|réunion"
        "|call|visio|créneau|démo", "quelques créneaux", "un créneau", "nous appeler",
        "s'appeler", "se parler", "se voir",
        "pourrions|pouvons nous échanger|parler|discuter|voir|appeler|rencontrer",
        "peut-on échanger|parler|discuter|se",
        "disponible|disponibles pour un|une appel|échange|réunion|call|rendez|démo",
        "échange téléphonique", "un point téléphonique",
    ),
    "es": (
        "agendar|programar|organizar|coordinar|concertar|fijar|tener|hacer una|un llamada"
        "|reunión|cita|videollamada|call|demo",
        "podemos|podríamos hablar|reunirnos|vernos|conversar|llamarnos",
        "hablamos|reunámonos|nos reunimos la|el próxima|mañana|lunes|martes|miércoles|jueves"
        "|viernes", "horarios|horario para una|la|un llamada|reunión|demo",
        "cuándo te|le|les viene bien", "pasar|mover la llamada|reunión",
    ),
    "pt": (
        "agendar|marcar|organizar|programar|ter uma|um reunião|call|ligação|chamada|conversa"
        "|videochamada|demo|demonstração",
        "podemos|poderíamos conversar|falar|marcar|nos reunir|nos falar", "bater um papo",
        "horários|horário para uma|a|um reunião|call|conversa|demonstração",
        "passar|mudar a call|reunião|ligação",
    ),
    "ja": (
        "打ち合わせの日程", "打ち合わせをお願い", "打ち合わせを設定", "打ち合わせさせて",
        "打ち合わせできれば", "打ち合わせは可能", "打ち合わせを変更",
        "お打ち合わせを", "ミーティングを設定", "ミーティングの日程", "ミーティングをお願い",
        "面談の日程", "日程調整", "日程を調整", "ご都合のよい日",
        "ご都合の良い日", "ご都合のよろしい", "ご都合いかが", "お時間をいただけ", "お時間いただけ",
        "お電話で", "候補日", "お会いできれば", "web会議",
        "オンライン会議の設定",
    ),
    "zh": (
        "开个会", "开会", "约个时间", "约时间", "安排时间", "安排一个会议", "安排会议", "通个电话",
        "打个电话", "电话沟通", "视频会议",
        "线上会议", "见个面", "见面聊", "碰个面", "约一下", "面谈", "聊一聊", "方便的时间",
        "什么时候方便", "几个时间段", "电话会议能否",
        "開會", "通個電話",
    ),
    "hi": (
        "मीटिंग रख*|कर*|तय|फिक्स|शेड्यूल|सेट", "बैठक तय|रख*|कर*", "कॉल रख*|शेड्यूल",
        "कॉल कर सकते", "कॉल को", "बात कर सकते", "बात करते हैं", "बात कर लेते", "मिल सकते",
        "समय तय", "समय बता", "फ़ोन पर बात", "कॉल पर बात",
    ),
    "te": (
        "మీటింగ్ పెట్టు*|ఏర్పాటు*|షెడ్యూల్*|ఫిక్స్*", "మాట్లాడదా*", "మాట్లాడుకుందా*",
        "మాట్లాడగలమా", "మాట్లాడుకోవచ్చా", "కలుద్దా*", "కలవగలమా", "సమావేశం ఏర్పాటు*|పెట్టు*",
        "సమయం|సమయాలు సూచించ*", "ఫోన్‌లో మాట్లాడ*", "కాల్‌ను|కాల్ మార్చ*|పెట్టు*|చేద్దా*",
    ),
    "ar": (
        "تحديد|ترتيب|عقد|حجز|جدولة موعد|اجتماع|مكالمة|لقاء", "*نلتقي", "*نجتمع",
        "يمكننا التحدث|الحديث|الاجتماع|اللقاء", "نستطيع التحدث", "*نتحدث", "*نتكلم",
        "التحدث هاتفيا", "مكالمة سريعة|قصيرة|هاتفية", "موعد للاجتماع|لمكالمة|لعرض",
        "تأجيل مكالمة|الاجتماع|المكالمة|الاجتماع", "بعض المواعيد",
    ),
}
# fmt: on


# --- normalisation and tokens -------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'"})
_ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي"})
_DROPPED = frozenset(
    [*range(0x0300, 0x0370), *range(0x064B, 0x0660), 0x0670, 0x0640, 0x093C, 0x200C, 0x200D]
)


_DROP = dict.fromkeys(_DROPPED)


def normalise(text: str) -> str:
    """``text`` as the lexicons see it (see the module docstring for what changes)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    text = unicodedata.normalize("NFD", text).translate(_DROP)
    return unicodedata.normalize("NFC", text).translate(_ARABIC_LETTERS)


def _dense(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF
        or 0x3400 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x31F0 <= cp <= 0x31FF
        or cp >= 0x20000
    )


def _wordlike(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN"


def tokens(text: str) -> list[str]:
    """Tokens of already-normalised ``text``: letter/mark/digit runs, one per Han or kana char."""
    return [text[a:b] for a, b in _spans(text)]


class _CharClasses(dict[int, str]):
    """Code point -> "d" (dense), "w" (other wordlike) or " ", filled in as characters are seen.

    ``str.translate`` through it turns a text into one class letter per character, so that
    tokens are found by a regular expression instead of a Python loop over characters.
    """

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        cls = "d" if _dense(ch) else "w" if _wordlike(ch) else " "
        self[cp] = cls
        return cls


_CLASSES = _CharClasses()
_TOKEN = re.compile(r"d|w+")


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(text.translate(_CLASSES))]


# --- phrase compilation and matching --------------------------------------------------------

# How many distinct tokens each index remembers the matching phrases of; bounds its memory
# when mails carry endless order numbers and names.
_MAX_KNOWN_TOKENS = 50_000


@dataclass(frozen=True)
class _Alt:
    text: str
    prefix: bool  # "word*"
    suffix: bool  # "*word"

    def matches(self, token: str) -> bool:
        if self.prefix and self.suffix:
            return self.text in token
        if self.prefix:
            return token.startswith(self.text)
        if self.suffix:
            return token.endswith(self.text)
        return token == self.text


@dataclass(frozen=True)
class _Phrase:
    language: str
    source: str
    slots: tuple[tuple[_Alt, ...], ...]


def _compile(lexicon: Mapping[str, Iterable[str]]) -> tuple[_Phrase, ...]:
    phrases = []
    for language, entries in lexicon.items():
        for entry in entries:
            slots: list[tuple[_Alt, ...]] = []
            for part in entry.split():
                if "|" in part or "*" in part:
                    alts = []
                    for alt in part.split("|"):
                        core = tokens(normalise(alt.strip("*")))
                        if len(core) != 1:
                            raise ValueError(f"{language}: {entry!r}: {alt!r} is not one token")
                        alts.append(_Alt(core[0], alt.endswith("*"), alt.startswith("*")))
                    slots.append(tuple(alts))
                else:
                    slots.extend((_Alt(t, False, False),) for t in tokens(normalise(part)))
            if not slots:
                raise ValueError(f"{language}: {entry!r} has no words")
            phrases.append(_Phrase(language, entry, tuple(slots)))
    return tuple(phrases)


@dataclass(frozen=True)
class _Hit:
    phrase: _Phrase
    start: int
    end: int
    words: str  # the matched stretch of the normalised text, as the reason shows it


@dataclass(frozen=True)
class _Text:
    norm: str
    toks: list[str]
    spans: list[tuple[int, int]]


class _Index:
    """Phrases keyed by their first token, so a long mail is not scanned once per phrase."""

    def __init__(self, phrases: tuple[_Phrase, ...]) -> None:
        self.exact: dict[str, list[_Phrase]] = {}
        self.wild: list[_Phrase] = []
        for phrase in phrases:
            first = phrase.slots[0]
            if all(not (a.prefix or a.suffix) for a in first):
                for alt in first:
                    self.exact.setdefault(alt.text, []).append(phrase)
            else:
                self.wild.append(phrase)
        # token -> the phrases whose first slot it matches; words recur across mails
        self._starting: dict[str, tuple[_Phrase, ...]] = {}

    def starting(self, tok: str) -> tuple[_Phrase, ...]:
        """Phrases whose first slot matches ``tok``: exact ones first, then wildcards, in order."""
        found = self._starting.get(tok)
        if found is None:
            found = (
                *self.exact.get(tok, ()),
                *(p for p in self.wild if any(a.matches(tok) for a in p.slots[0])),
            )
            if len(self._starting) < _MAX_KNOWN_TOKENS:
                self._starting[tok] = found
        return found

    def find(self, text: _Text, languages: frozenset[str] = frozenset()) -> list[_Hit]:
        """Every match in text order (longest first at a position); no ``languages`` = all."""
        toks = text.toks
        count = len(toks)
        hits: list[_Hit] = []
        for i, tok in enumerate(toks):
            for phrase in self.starting(tok):
                if languages and phrase.language not in languages:
                    continue
                slots = phrase.slots
                n = len(slots)
                if i + n > count:
                    continue
                if n == 1 or all(
                    any(alt.matches(toks[i + k]) for alt in slots[k]) for k in range(1, n)
                ):
                    words = text.norm[text.spans[i][0] : text.spans[i + n - 1][1]]
                    hits.append(_Hit(phrase, i, i + n, words))
        hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
        return hits


_ACK = _Index(_compile(ACK))
_CLOSING = _Index(_compile(CLOSING))
_REQUEST = _Index(_compile(REQUEST))
_STOP = _Index(_compile(STOP))
_SOFT_STOP = _Index(_compile(SOFT_STOP))
_CONTRAST = _Index(_compile(CONTRAST))
_STOP_FOOTER = _Index(_compile(STOP_FOOTER))
_LIST_FOOTER = _Index(_compile(LIST_FOOTER))
_MEETING = _Index(_compile(MEETING))


def _prepare(text: str, *, own: bool = False) -> _Text:
    norm = normalise(text if own else own_text(text))
    spans = _spans(norm)
    return _Text(norm, [norm[a:b] for a, b in spans], spans)


def _without_name_block(own: str, languages: frozenset[str]) -> str:
    """``own`` minus a name/title/phone block under a thanks line ("Thanks,\nTom\nCFO").

    own_text keeps thanks-closings (they are the message), so the block under them stays too.
    Lines after the last line holding a thanks are dropped when each looks like a signature
    line: at most ``SIGNATURE_WORDS`` words, or a phone, address or link, and no question.
    """
    lines = own.split("\n")
    last = max(
        (i for i, line in enumerate(lines) if _ACK.find(_prepare(line, own=True), languages)),
        default=-1,
    )
    tail = [line for line in lines[last + 1 :] if line.strip()]
    if last < 0 or not tail or len(tail) > SIGNATURE_LINES:
        return own
    for line in tail:
        if QUESTION_MARKS & set(line):
            return own
        short = _weight(tokens(normalise(line))) <= SIGNATURE_WORDS
        if not (short or any(ch.isdigit() for ch in line) or "@" in line or "www." in line):
            return own
    return "\n".join(lines[: last + 1])


# --- the three questions --------------------------------------------------------------------


def needs_no_answer(text: str, language: str = "") -> tuple[bool, str]:
    """Whether ``text`` is only a short thanks or acknowledgement that needs no reply.

    Quotes and signatures are stripped first (``own_text``). ``language`` (a base code or tag,
    optional) limits the acknowledgement lexicon to that language plus English; request, stop
    and meeting phrases are always looked for in every language. Returns ``(True,
    "acknowledgement: 'thanks'")`` or ``(False, reason)``; a question mark, a request word, a
    stop or meeting request, or more than a few words beyond the thanks all give False.
    """
    return _needs_no_answer(text, language)


@lru_cache(maxsize=CACHE_SIZE)
def _needs_no_answer(text: str, language: str) -> tuple[bool, str]:
    base = language.strip().replace("_", "-").split("-")[0].casefold()
    languages = frozenset({base, "en"}) if base else frozenset()
    own = own_text(text)
    full = _prepare(own, own=True)
    if not full.toks:
        return False, "no text of the sender's own"
    if len(full.norm) > MAX_ACK_CHARS or _weight(full.toks) > MAX_ACK_WORDS:
        return False, "too long to be only an acknowledgement"
    if QUESTION_MARKS & set(full.norm):
        return False, "asks a question"
    closing = _covered(_CLOSING.find(full))
    for hit in _REQUEST.find(full):
        if not closing & set(range(hit.start, hit.end)):
            return False, f"request: '{hit.words}'"
    stop, why = _stop(full)
    if stop:
        return False, why
    meeting = _MEETING.find(full)
    if meeting:
        return False, f"meeting request: '{meeting[0].words}'"
    # The name block under "Thanks," is not something the client said.
    text_ = _prepare(_without_name_block(own, languages), own=True)
    toks = text_.toks
    closing = _covered(_CLOSING.find(text_))
    acks = _ACK.find(text_, languages)
    if not acks:
        return False, "no acknowledgement phrase"
    covered = _covered(acks) | closing
    leftover = _weight(t for i, t in enumerate(toks) if i not in covered)
    if leftover > MAX_ACK_LEFTOVER:
        return False, f"says more than an acknowledgement ('{acks[0].words}' and more)"
    return True, f"acknowledgement: '{acks[0].words}'"


def ack_language(text: str) -> tuple[str, str]:
    """The language of a short acknowledgement, from the phrase lists: ("fr", "'merci'") for
    "Oui, merci.", ("", "") when the text is long, asks something, or its phrases are shared by
    several languages ("ok", "super") or belong to none.

    A two-word reply is too short for a statistical detector; its thanks word still says which
    language it is in. Only a phrase that one language alone lists decides, and only when every
    such phrase in the text is of that language.
    """
    return _ack_language(text)


@lru_cache(maxsize=CACHE_SIZE)
def _ack_language(text: str) -> tuple[str, str]:
    full = _prepare(text)
    if not full.toks or len(full.norm) > MAX_ACK_CHARS or _weight(full.toks) > MAX_ACK_WORDS:
        return "", ""
    if QUESTION_MARKS & set(full.norm):
        return "", ""
    hits = (*_ACK.find(full), *_CLOSING.find(full))
    covered = _covered(hits)
    if _weight(t for i, t in enumerate(full.toks) if i not in covered) > MAX_ACK_LEFTOVER:
        return "", ""  # says more than thanks: the detector reads that, or nobody
    by_words: dict[str, set[str]] = {}
    for hit in hits:
        by_words.setdefault(hit.words, set()).add(hit.phrase.language)
    exclusive = {w: next(iter(langs)) for w, langs in by_words.items() if len(langs) == 1}
    languages = set(exclusive.values())
    if len(languages) != 1:
        return "", ""
    words = next(iter(exclusive))
    return languages.pop(), f"'{words}'"


def asks_to_stop(text: str) -> tuple[bool, str]:
    """Whether ``text`` asks us to stop writing (unsubscribe, "not interested", "配信停止" ...).

    Quotes and signatures are stripped first. Returns ``(True, "stop request: '<phrase>'")`` or
    ``(False, reason)``. "Not interested" followed by a "but" is a narrowed offer, not a stop.
    """
    return _asks_to_stop(text)


@lru_cache(maxsize=CACHE_SIZE)
def _asks_to_stop(text: str) -> tuple[bool, str]:
    return _stop(_prepare(text))


def asks_for_meeting(text: str) -> tuple[bool, str]:
    """Whether ``text`` asks for a call or meeting ("can we schedule a call", "日程調整" ...).

    Quotes and signatures are stripped first. Returns ``(True, "meeting request: '<phrase>'")``
    or ``(False, "no meeting phrase")``.
    """
    return _asks_for_meeting(text)


@lru_cache(maxsize=CACHE_SIZE)
def _asks_for_meeting(text: str) -> tuple[bool, str]:
    hits = _MEETING.find(_prepare(text))
    if hits:
        return True, f"meeting request: '{hits[0].words}'"
    return False, "no meeting phrase"


def _stop(text: _Text) -> tuple[bool, str]:
    footer = _covered(_STOP_FOOTER.find(text)) | _list_footer(text)
    hits = [h for h in _STOP.find(text) if not footer & set(range(h.start, h.end))]
    if not hits:
        return False, "no stop phrase"
    soft = {(h.start, h.end) for h in _SOFT_STOP.find(text)}
    contrast = [h.start for h in _CONTRAST.find(text)]
    for hit in hits:
        if (hit.start, hit.end) in soft and any(c >= hit.end for c in contrast):
            continue
        return True, f"stop request: '{hit.words}'"
    return False, f"declines one offer but goes on ('{hits[0].words}' ... but)"


def _list_footer(text: _Text) -> set[int]:
    """The tokens of each paragraph of ``text`` from a list footer's phrase on."""
    covered: set[int] = set()
    i = end = 0  # hits come in text order: each token is covered once, however many footers
    for hit in _LIST_FOOTER.find(text):
        start = text.spans[hit.start][0]
        if start >= end:
            end = text.norm.find("\n\n", start)
            end = len(text.norm) if end < 0 else end
        i = max(i, hit.start)
        while i < len(text.spans) and text.spans[i][0] < end:
            covered.add(i)
            i += 1
    return covered


def _covered(hits: Iterable[_Hit]) -> set[int]:
    return {i for h in hits for i in range(h.start, h.end)}


def _weight(toks: Iterable[str]) -> float:
    return sum(DENSE_WEIGHT if _dense(t[0]) else 1.0 for t in toks)
