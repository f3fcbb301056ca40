from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.neutral import MAX_TEXT, chat, is_link, no_links

HOSTILE = st.text(alphabet=st.sampled_from(list("<>!@&|[]():/. abchnertw-wxyz")), max_size=300)


@given(text=st.one_of(st.text(max_size=300), HOSTILE))
@settings(max_examples=300, deadline=None)
def test_chat_text_has_no_markup_left(text: str) -> None:
    out = chat(text)
    assert "<" not in out and ">" not in out and "](" not in out
    lowered = out.lower()
    assert all(m not in lowered for m in ("@here", "@channel", "@everyone"))


@given(text=st.one_of(st.text(max_size=300), HOSTILE))
@settings(max_examples=300, deadline=None)
def test_no_links_leaves_no_word_a_mail_client_would_link(text: str) -> None:
    out = no_links(text)
    assert not any(is_link(word) for word in out.split(" "))
    assert len(out) <= MAX_TEXT


def test_ordinary_titles_are_kept_as_written() -> None:
    for title in ("Demo Ruiz", "Q4 review – v1.2, e.g. pricing", "Angebot für Hansa GmbH"):
        assert no_links(title) == title
    assert chat("Carlos & Co <3") == "Carlos &amp; Co &lt;3"


def test_hostile_text_costs_linear_time() -> None:
    # Bounded first: a megabyte of dots and labels is cut to MAX_TEXT before it is read.
    assert len(no_links("a." * 500_000)) <= MAX_TEXT
    assert len(chat("<" * 1_000_000)) <= MAX_TEXT * 4
