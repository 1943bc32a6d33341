import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import TokenizerError
from mlmprep.text.encoders import encoder_for
from mlmprep.text.tokenization import TokenEncoder

from .helpers import shared_corpus


@pytest.fixture(scope="module")
def encoder() -> TokenEncoder:
    return TokenEncoder("bert-base-uncased")


def test_bundled_vocab_special_ids(encoder):
    assert encoder.vocab_size == 30522
    assert encoder.layout.manifest_ids() == {
        "[PAD]": 0,
        "[UNK]": 100,
        "[CLS]": 101,
        "[SEP]": 102,
        "[MASK]": 103,
    }
    assert not np.isin(encoder.random_pool, [0, 100, 101, 102, 103]).any()
    assert len(encoder.random_pool) == 30522 - 5


def test_encoding_cuts_exactly_at_sentences(encoder):
    docs = [["Hello world.", "Unbelievable tokenization!"], ["One."]]
    ids, lengths = encoder.encode_documents(docs)
    assert lengths[0].tolist() == [3, 4]
    assert ids[0].tolist() == encoder.encode_plain(["Hello world. Unbelievable tokenization!"])[0]
    assert ids[1].tolist() == encoder.encode_plain(["One."])[0]


def test_literal_special_tokens_in_text_do_not_become_structure(encoder):
    ids, _ = encoder.encode_documents([["a [SEP] b [MASK] c"]])
    assert not np.isin(ids[0], [101, 102, 103]).any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5), max_size=6))
def test_joint_encoding_equals_sentence_by_sentence(docs):
    encoder = TokenEncoder("bert-base-uncased")
    ids, lengths = encoder.encode_documents(docs)
    for doc, doc_ids, doc_lengths in zip(docs, ids, lengths):
        expected = [encoder.encode_plain([s.replace("\ue000", " ")])[0] for s in doc]
        assert doc_lengths.tolist() == [len(e) for e in expected]
        assert doc_ids.tolist() == [
            (100 if t in (0, 101, 102, 103) else t) for e in expected for t in e
        ]


def test_vocab_without_mask_is_refused(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    with pytest.raises(
        TokenizerError,
        match=r"vocab\.txt: no token for mask .*looked for mask: \[MASK\] or <mask>.*"
        r"--special-tokens mask=TOKEN",
    ):
        TokenEncoder(str(vocab))


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer not found"):
        TokenEncoder(str(tmp_path / "nope.txt"))


def test_a_word_level_tokenizer_json_is_refused(tmp_path):
    path = tmp_path / "tokenizer.json"
    encoder = TokenEncoder("bert-base-uncased")
    data = json.loads(encoder.json)
    data["model"] = {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}
    path.write_text(json.dumps(data))
    with pytest.raises(TokenizerError, match="model type is WordLevel; mlmprep reads WordPiece"):
        TokenEncoder(str(path))


def test_tokenizer_json_round_trip(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(TokenEncoder("bert-base-uncased").json)
    loaded = TokenEncoder(str(path))
    assert loaded.encode_plain(["Hello there"]) == [[7592, 2045]]


def test_chinese_vocab_keeps_line_separator_entries():
    vocab = shared_corpus("vocab/bert-base-chinese-vocab.txt")
    encoder = TokenEncoder(str(vocab), lowercase=True)
    assert encoder.vocab_size == 21128
    assert encoder.id_to_token(343) == "\u2028"
    assert encoder.encode_plain(["中文"]) == [[704, 3152]]


@pytest.mark.parametrize("lowercase", [True, False])
def test_lowercase_flag_with_a_tokenizer_json_is_refused(tmp_path, lowercase):
    path = tmp_path / "tokenizer.json"
    path.write_text(TokenEncoder("bert-base-uncased").json)
    with pytest.raises(TokenizerError, match="brings its own normalizer, so drop the flag"):
        TokenEncoder(str(path), lowercase=lowercase)


def test_lowercase_flag_applies_to_the_bundled_vocabulary():
    cased = TokenEncoder("bert-base-uncased", lowercase=False)
    uncased = TokenEncoder("bert-base-uncased")
    assert uncased.encode_plain(["Hello"]) == [[7592]]
    assert cased.encode_plain(["Hello"]) != [[7592]]  # "Hello" is not in the uncased vocab


def test_a_changed_tokenizer_file_is_loaded_again(tmp_path):
    vocab = tmp_path / "vocab.txt"
    specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
    vocab.write_text(specials + "hello\nworld\n")
    config = BuildConfig(tokenizer=str(vocab))
    first = encoder_for(config)
    assert first.encode_plain(["hello world"]) == [[5, 6]]
    assert encoder_for(config) is first  # same content: loaded once
    vocab.write_text(specials + "world\nhello\n")
    assert encoder_for(config).encode_plain(["hello world"]) == [[6, 5]]


def test_a_sentencepiece_model_without_the_extra_says_what_to_install(tmp_path, monkeypatch):
    import sys

    model = tmp_path / "spm.model"
    model.write_bytes(b"\x00not read")
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import fails as if absent
    with pytest.raises(
        TokenizerError, match=r"spm\.model: .*pip install 'mlmprep\[sentencepiece\]'"
    ):
        TokenEncoder(str(model))


def test_a_damaged_sentencepiece_model_is_one_error(tmp_path):
    pytest.importorskip("sentencepiece", reason="mlmprep[sentencepiece] is not installed")
    model = tmp_path / "spm.model"
    model.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(TokenizerError, match=r"spm\.model: not a SentencePiece Unigram model"):
        TokenEncoder(str(model))
