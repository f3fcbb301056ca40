"""Acknowledgements, stop requests and meeting requests in every supported language."""

from __future__ import annotations

import pytest

from agent.phrases import (
    ACK,
    MEETING,
    REQUEST,
    STOP,
    asks_for_meeting,
    asks_to_stop,
    needs_no_answer,
    normalise,
    tokens,
)

SUPPORTED = ("en", "te", "hi", "ja", "de", "fr", "es", "pt", "ar", "zh")

ACKS = [
    ("en", "Thanks!"),
    ("en", "Got it, thank you"),
    ("en", "Thanks John, that's perfect. Have a great weekend!"),
    ("en", "Received, thank you.\n\nBest regards,\nTom Baker\nClient Co."),
    ("de", "Danke!"),
    ("de", "Vielen Dank, habe ich erhalten.\n\nViele Grüße\nKlaus"),
    ("fr", "Bien reçu, merci !"),
    ("fr", "Parfait, merci beaucoup."),
    ("es", "Recibido, muchas gracias."),
    ("es", "Perfecto, gracias"),
    ("pt", "Recebido, muito obrigado!"),
    ("pt", "Beleza, valeu!"),
    ("ja", "ありがとうございます。"),
    ("ja", "承知しました。よろしくお願いいたします。"),
    ("zh", "收到，谢谢"),
    ("zh", "好的，辛苦了！"),
    ("hi", "मिल गया, धन्यवाद।"),
    ("hi", "ठीक है जी, शुक्रिया"),
    ("te", "ధన్యవాదాలు"),
    ("te", "అందింది, ధన్యవాదాలు."),
    ("ar", "شكراً"),
    ("ar", "تم الاستلام، شكراً جزيلاً."),
]

NOT_ACKS = [
    ("en", "Thanks, but can you send the price?"),
    ("en", "Thanks! Please send the updated contract by Friday."),
    ("en", "Thank you. We need the signed NDA before Monday"),
    (
        "en",
        "Thanks, the pilot went well and the board approved the budget for the second phase "
        "starting in April with two more sites",
    ),
    ("en", "Thanks, but we are not interested any more."),
    ("de", "Danke, können Sie mir noch das Angebot schicken"),
    ("de", "Danke! Bitte senden Sie die Rechnung an buchhaltung@kunde.de"),
    ("fr", "Merci, pourriez-vous m'envoyer le devis ?"),
    ("fr", "Merci de me renvoyer la facture corrigée."),
    ("es", "Gracias, ¿me puedes mandar el presupuesto?"),
    ("es", "Gracias. Necesito la factura antes del viernes."),
    ("pt", "Obrigado, pode me mandar a proposta?"),
    ("pt", "Obrigado! Preciso da nota fiscal ainda hoje."),
    ("ja", "ありがとうございます。見積書をお送りください。"),
    ("ja", "承知しました。納期はいつ頃になりますでしょうか。"),
    ("zh", "收到，谢谢。请把合同发给我。"),
    ("zh", "好的，价格是多少"),
    ("hi", "धन्यवाद, कृपया कोटेशन भेज दीजिए।"),
    ("hi", "धन्यवाद, डिलीवरी कब तक होगी"),
    ("te", "ధన్యవాదాలు, దయచేసి ఇన్వాయిస్ పంపండి."),
    ("te", "ధన్యవాదాలు, ధర ఎంత"),
    ("ar", "شكراً، هل يمكنك إرسال السعر؟"),
    ("ar", "شكراً، يرجى إرسال الفاتورة."),
]

STOPS = [
    ("en", "Please unsubscribe me."),
    ("en", "Please stop emailing me."),
    ("en", "We're not interested, thanks."),
    ("en", "Remove me from your mailing list"),
    ("de", "Bitte keine weiteren E-Mails."),
    ("de", "Kein Interesse, danke."),
    ("fr", "Merci de ne plus m'envoyer de mails, je souhaite me désabonner."),
    ("fr", "Nous ne sommes pas intéressés."),
    ("es", "No me interesa, gracias."),
    ("es", "Por favor, dejen de enviarme correos."),
    ("pt", "Não tenho interesse, obrigado."),
    ("pt", "Por favor, me tirem da lista."),
    ("ja", "配信停止をお願いします。"),
    ("ja", "今後のご案内は不要です。"),
    ("zh", "请不要再发邮件给我了。"),
    ("zh", "我们不感兴趣，谢谢。"),
    ("hi", "कृपया मुझे ईमेल मत भेजें।"),
    ("hi", "हमें इसमें रुचि नहीं है।"),
    ("te", "దయచేసి నాకు మెయిల్స్ పంపవద్దు."),
    ("te", "మాకు ఆసక్తి లేదు."),
    ("ar", "أرجو إلغاء الاشتراك."),
    ("ar", "لسنا مهتمين، شكراً."),
]

NOT_STOPS = [
    ("en", "Feel free to stop by our booth at the fair."),
    ("en", "Not interested in the basic plan, but the premium one looks good."),
    ("en", "Can you stop the shipment until we confirm the address?"),
    ("de", "Kommen Sie gerne an unserem Stand vorbei."),
    ("de", "An der Basisversion haben wir kein Interesse, aber die Pro-Version klingt gut."),
    ("fr", "Passez nous voir sur notre stand."),
    ("fr", "Pas intéressés par l'offre de base, mais la version Pro nous intéresse."),
    ("es", "Pasen por nuestro stand en la feria."),
    ("es", "No me interesa el plan básico, pero el Pro sí."),
    ("pt", "Passem no nosso estande na feira."),
    ("pt", "Não temos interesse no plano básico, mas o Pro parece bom."),
    ("ja", "展示会のブースにぜひお立ち寄りください。"),
    ("ja", "配送を一時停止していただけますか。"),
    ("zh", "欢迎来我们的展位参观。"),
    ("zh", "对基础版不感兴趣，但专业版可以聊聊。"),
    ("hi", "कृपया हमारे स्टॉल पर आइए।"),
    ("hi", "बेसिक प्लान में रुचि नहीं है, लेकिन प्रो प्लान अच्छा लग रहा है।"),
    ("te", "మా స్టాల్‌కు తప్పకుండా రండి."),
    ("te", "బేసిక్ ప్లాన్‌పై ఆసక్తి లేదు, కానీ ప్రో ప్లాన్ బాగుంది."),
    ("ar", "تفضلوا بزيارة جناحنا في المعرض."),
    ("ar", "غير مهتمين بالباقة الأساسية، لكن الباقة الاحترافية تبدو جيدة."),
]

MEETINGS = [
    ("en", "Let's talk next week."),
    ("en", "Can we schedule a call to go over the pricing?"),
    ("en", "Are you free on Thursday afternoon for a quick call?"),
    ("de", "Können wir einen Termin vereinbaren?"),
    ("de", "Hätten Sie morgen Zeit für ein Telefonat?"),
    ("fr", "Pouvons-nous fixer un rendez-vous la semaine prochaine ?"),
    ("fr", "Seriez-vous disponible pour un appel jeudi ?"),
    ("es", "¿Podemos agendar una llamada?"),
    ("es", "¿Podríamos reunirnos el martes?"),
    ("pt", "Podemos marcar uma reunião na semana que vem?"),
    ("pt", "Vamos agendar uma call para quinta?"),
    ("ja", "打ち合わせの日程を調整させてください。"),
    ("ja", "来週ご都合の良い日を教えていただけますか。"),
    ("zh", "下周能否约个时间开个会？"),
    ("zh", "明天方便通个电话吗？"),
    ("hi", "क्या हम अगले हफ्ते मीटिंग रख सकते हैं?"),
    ("hi", "कल फ़ोन पर बात कर सकते हैं?"),
    ("te", "మీటింగ్ పెట్టుకుందాం."),
    ("te", "రేపు ఫోన్‌లో మాట్లాడుకుందామా?"),
    ("ar", "هل يمكننا تحديد موعد للاجتماع الأسبوع القادم؟"),
    ("ar", "هل نستطيع التحدث غداً؟"),
]

NOT_MEETINGS = [
    ("en", "Thanks for the meeting yesterday, very helpful."),
    ("en", "We talked about this on the call already. Please send the invoice."),
    ("de", "Danke für das Gespräch gestern."),
    ("de", "Wie telefonisch besprochen, anbei die Unterlagen."),
    ("fr", "Merci pour la réunion d'hier."),
    ("es", "Gracias por la reunión de ayer."),
    ("pt", "Obrigado pela reunião de ontem."),
    ("ja", "本日はお打ち合わせありがとうございました。"),
    ("zh", "今天的会议很有收获，谢谢。"),
    ("hi", "कल की मीटिंग के लिए धन्यवाद।"),
    ("te", "నిన్నటి సమావేశానికి ధన్యవాదాలు."),
    ("ar", "شكراً على الاجتماع أمس."),
]


@pytest.mark.parametrize(("language", "text"), ACKS)
def test_short_thanks_needs_no_answer(language: str, text: str) -> None:
    answer, reason = needs_no_answer(text, language)
    assert answer, reason
    assert reason.startswith("acknowledgement: '")


@pytest.mark.parametrize(("language", "text"), ACKS)
def test_acknowledgements_are_found_without_a_language(language: str, text: str) -> None:
    assert needs_no_answer(text)[0]


@pytest.mark.parametrize(("language", "text"), NOT_ACKS)
def test_questions_and_requests_always_need_an_answer(language: str, text: str) -> None:
    answer, reason = needs_no_answer(text, language)
    assert not answer, reason


def test_ack_reason_names_the_phrase() -> None:
    assert needs_no_answer("Thanks!", "en") == (True, "acknowledgement: 'thanks'")
    assert needs_no_answer("Danke!", "de") == (True, "acknowledgement: 'danke'")
    assert needs_no_answer("收到，谢谢", "zh") == (True, "acknowledgement: '收到'")


def test_question_mark_is_a_question_in_any_script() -> None:
    assert needs_no_answer("Thanks?") == (False, "asks a question")
    assert needs_no_answer("شكراً؟") == (False, "asks a question")
    assert needs_no_answer("谢谢？") == (False, "asks a question")


def test_quoted_request_does_not_count_only_the_own_text_does() -> None:
    body = (
        "Thanks, got it!\n\n"
        "On Mon, 4 Mar 2024 at 10:00, Anna Lee <anna@vendor.example> wrote:\n"
        "> Could you please confirm the delivery address?\n"
    )
    assert needs_no_answer(body, "en")[0]


def test_empty_or_quote_only_needs_an_answer() -> None:
    assert needs_no_answer("") == (False, "no text of the sender's own")
    assert needs_no_answer("> Thanks!")[0] is False


def test_language_limits_the_ack_lexicon_to_it_and_english() -> None:
    # "Obrigado" is Portuguese: with language "de" only German and English thanks count.
    assert needs_no_answer("Obrigado!", "de") == (False, "no acknowledgement phrase")
    assert needs_no_answer("Thanks!", "de")[0]
    assert needs_no_answer("Obrigado!", "pt-BR")[0]


@pytest.mark.parametrize(("language", "text"), STOPS)
def test_stop_requests(language: str, text: str) -> None:
    stop, reason = asks_to_stop(text)
    assert stop, reason
    assert reason.startswith("stop request: '")


@pytest.mark.parametrize(("language", "text"), NOT_STOPS)
def test_not_stop_requests(language: str, text: str) -> None:
    stop, reason = asks_to_stop(text)
    assert not stop, reason


def test_a_stop_request_is_not_an_acknowledgement() -> None:
    assert needs_no_answer("Not interested, thanks.", "en") == (
        False,
        "stop request: 'not interested'",
    )


def test_newsletter_footer_is_not_a_stop_request() -> None:
    assert not asks_to_stop("Looks great, thanks.\nClick here to unsubscribe.")[0]


@pytest.mark.parametrize(("language", "text"), MEETINGS)
def test_meeting_requests(language: str, text: str) -> None:
    meeting, reason = asks_for_meeting(text)
    assert meeting, reason
    assert reason.startswith("meeting request: '")


@pytest.mark.parametrize(("language", "text"), NOT_MEETINGS)
def test_not_meeting_requests(language: str, text: str) -> None:
    meeting, reason = asks_for_meeting(text)
    assert not meeting, reason


def test_every_supported_language_is_tested_for_every_question() -> None:
    for cases in (ACKS, NOT_ACKS, STOPS, NOT_STOPS, MEETINGS, NOT_MEETINGS):
        assert set(SUPPORTED) == {language for language, _ in cases}
    for lexicon in (ACK, REQUEST, STOP, MEETING):
        assert set(SUPPORTED) <= lexicon.keys()


def test_normalise_folds_case_width_accents_and_arabic_marks() -> None:
    assert normalise("Reunión") == normalise("REUNION") == "reunion"
    assert normalise("ｶﾞｲﾄﾞ") == "ガイド"
    assert normalise("شكراً") == "شكرا"
    assert normalise("إلغاء") == "الغاء"
    assert normalise("It’s") == "it's"


def test_tokens_split_words_and_each_han_or_kana_character() -> None:
    assert tokens(normalise("Let's meet, OK?")) == ["let", "s", "meet", "ok"]
    assert tokens("收到谢谢") == ["收", "到", "谢", "谢"]
    assert tokens(normalise("కాల్‌ను మార్చగలమా")) == ["కాల్ను", "మార్చగలమా"]


@pytest.mark.parametrize(
    "text",
    [
        "Thanks!\nTom Baker\nHead of Procurement\nClient Co.\n+1 555 0100\nwww.client.example",
        "Danke!\nKlaus Weber\nEinkauf | Kunde GmbH\nTel. +49 30 1234567",
        "ありがとうございます。\n田中太郎\n株式会社サンプル\n03-1234-5678",
    ],
)
def test_name_block_under_a_thanks_is_not_more_to_read(text: str) -> None:
    assert needs_no_answer(text)[0]


@pytest.mark.parametrize(
    "text",
    [
        "Thanks!\nTom\nCan you call me",
        "Thanks!\nThe contract is wrong, the price is too high for us",
        "Thanks!\nTom\nWhen is delivery",
    ],
)
def test_lines_under_a_thanks_that_say_something_still_count(text: str) -> None:
    assert not needs_no_answer(text)[0]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("谢谢，合同也发我一下", "zh"),  # thanks, then a request: send me the contract too
        ("谢谢，合同也发我一下", ""),
        ("謝謝，合約也發給我", "zh-TW"),
    ],
)
def test_a_request_after_a_chinese_thanks_needs_an_answer(text: str, language: str) -> None:
    answer, why = needs_no_answer(text, language)
    assert not answer and why.startswith("request"), why


@pytest.mark.parametrize("text", ["థాంక్యూ అండి", "థ్యాంక్యూ అండి", "ధన్యవాదాలు అండి"])
def test_a_colloquial_telugu_thanks_needs_no_answer(text: str) -> None:
    assert needs_no_answer(text, "te")[0]
