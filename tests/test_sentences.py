from hypothesis import given
from hypothesis import strategies as st

from mlmprep.input.long_text import MAX_SENTENCE_CHARS, cut_long
from mlmprep.text.sentences import document_sentences, split_sentences


def test_english_rules_exact():
    text = (
        'Mr. Smith paid 3.14 dollars. "Really?" she asked. J. R. R. Tolkien wrote it, '
        "e.g. this one. See No. 5 for details. Wait... What now?"
    )
    assert split_sentences(text) == [
        "Mr. Smith paid 3.14 dollars.",
        '"Really?" she asked.',
        "J. R. R. Tolkien wrote it, e.g. this one.",
        "See No. 5 for details.",
        "Wait...",
        "What now?",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert split_sentences("He left (at last.) Then 'Go!' She went.") == [
        "He left (at last.)",
        "Then 'Go!'",
        "She went.",
    ]


def test_chinese_punctuation_and_quotes():
    text = "他说：“你好。”然后走了！真的吗？是的；好。"
    assert split_sentences(text) == ["他说：“你好。”", "然后走了！", "真的吗？", "是的；", "好。"]


def test_mixed_chinese_english():
    assert split_sentences("我用Python写代码。It works. 很好！") == [
        "我用Python写代码。",
        "It works.",
        "很好！",
    ]


def test_no_split_before_lowercase_or_inside_numbers():
    assert split_sentences("Version 2.5 is out. it is not a new sentence.") == [
        "Version 2.5 is out. it is not a new sentence."
    ]


def test_presplit_documents_are_not_resplit():
    assert document_sentences(["One. Two.", "", "Three."], presplit=True) == (
        ["One. Two.", "Three."],
        0,
    )
    assert document_sentences(["One. Two.", "", "Three."], presplit=False) == (
        ["One.", "Two.", "Three."],
        0,
    )


def test_sentences_over_the_character_limit_are_cut_and_counted():
    long = " ".join(["word"] * (MAX_SENTENCE_CHARS // 5 + 10))
    sentences, cut = document_sentences(["Short one.", long, "Another " + long], presplit=True)
    assert cut == 2
    assert sentences[0] == "Short one." and len(sentences) >= 5
    assert all(len(s) <= MAX_SENTENCE_CHARS for s in sentences)
    assert " ".join(sentences).split() == ("Short one. " + long + " Another " + long).split()


def test_cut_long_bounds_pieces():
    sentence = " ".join(["word"] * 10_000)
    pieces = cut_long(sentence, limit=1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert " ".join(pieces).split() == sentence.split()


@given(st.text(alphabet=st.sampled_from(list("ab .!?。\"' XY1")), max_size=200))
def test_splitting_keeps_every_non_space_character(text):
    sentences = split_sentences(text)
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "").strip()
    assert all(s == s.strip() and s for s in sentences)
