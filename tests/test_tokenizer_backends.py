"""kitoken gives the ids of `tokenizers`, builds are byte-identical whichever backend
encodes, and a backend that disagrees is caught by the per-unit self-check."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import TokenizerError
from mlmprep.pipeline.build import RunOptions, build
from mlmprep.text import tokenizer_backends
from mlmprep.text.tokenization import TokenEncoder, wordpiece_from_vocab
from mlmprep.text.tokenizer_backends import (
    BackendChooser,
    KitokenEncoder,
    cjk_share,
    kitoken_refusal,
)

from .helpers import SAMPLE_DIR, shard_hashes, shared_corpus

kitoken = pytest.importorskip("kitoken", reason="kitoken (mlmprep[fast]) is not installed")

VOCAB = "bert-base-uncased"
BERT_JSON = TokenEncoder(VOCAB).json


ZH_FILES = ["zh-mixed/part-00000.jsonl.gz", "zh-mixed/part-00001.jsonl.gz"]  # 2 of 5: time


def _documents(paths: list[Path]) -> list[str]:
    """Every document of shared corpus files (jsonl text fields or blank-line documents)."""
    texts = []
    for path in paths:
        data = gzip.decompress(path.read_bytes()).decode("utf-8")
        if path.name.endswith(".jsonl.gz"):
            texts += [json.loads(line)["text"] for line in data.splitlines()]
        else:
            texts += [d for d in data.split("\n\n") if d.strip()]
    return texts


def _cased_json() -> str:
    vocab = SAMPLE_DIR.parent.joinpath("bert-base-uncased-vocab.txt").read_text(encoding="utf-8")
    return wordpiece_from_vocab(vocab, lowercase=False).to_str()


def _with_added_specials(tokenizer_json: str) -> str:
    """The layout of Hugging Face's own tokenizer.json files: specials as added tokens."""
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tokenizer.to_str()


def _reference_ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


@pytest.mark.parametrize(
    ("corpus", "vocab"),
    [
        (["en-books"], VOCAB),
        (["en-tech"], VOCAB),
        (ZH_FILES, "vocab/bert-base-chinese-vocab.txt"),
    ],
)
def test_kitoken_ids_equal_tokenizers_on_the_shared_corpora(corpus, vocab):
    if vocab != VOCAB:
        vocab = str(shared_corpus(vocab))
    tokenizer_json = TokenEncoder(vocab).json
    reference, fast = Tokenizer.from_str(tokenizer_json), KitokenEncoder(tokenizer_json)
    paths = [shared_corpus(name) for name in corpus]
    texts = _documents(
        [p for path in paths for p in (sorted(path.iterdir()) if path.is_dir() else [path])]
    )
    expected = _reference_ids(reference, texts)
    got = fast.encode(texts)
    assert sum(map(len, expected)) > 100_000
    assert [i for i, (a, b) in enumerate(zip(expected, got)) if a != list(b)] == []


NASTY = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(
        [
            "\u0000",
            "\ufffd",
            "\u200b",
            "\u00ad",
            "\u0301",
            "e\u0301",
            "\u0130",
            "\u00df",
            "\ufb01",
            "👩‍👩‍👧",
            "🇫🇷",
            "中文",
            "ｆｕｌｌ",
            "שלום",
            "مرحبا",
            "\t",
            "\n",
            "\r\n",
            " ",
            "\u3000",
            "[SEP]",
            "[MASK]",
            "[unk]",
            "##ing",
            "¶",
            "a" * 99,
            "b" * 101,
            "ab" * 60,
            "Ĳ",
        ]
    ),
)


FUZZ_TOKENIZERS = [
    BERT_JSON,
    _cased_json(),
    _with_added_specials(BERT_JSON),
]


def _checked_chooser(tokenizer_json: str) -> tuple[BackendChooser, Tokenizer]:
    chooser = BackendChooser("kitoken", tokenizer_json, "fuzz")
    chooser.start_unit()
    return chooser, Tokenizer.from_str(tokenizer_json)


FUZZ_CHOOSERS = [_checked_chooser(tokenizer_json) for tokenizer_json in FUZZ_TOKENIZERS]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(NASTY, max_size=40).map("".join), min_size=1, max_size=8))
def test_kitoken_with_its_character_check_equals_tokenizers_on_nasty_unicode(texts):
    """Uncased, cased, and with the specials as added tokens. The per-unit self-check
    runs on the first example only; the character check must keep every later one exact."""
    for chooser, reference in FUZZ_CHOOSERS:
        expected = _reference_ids(reference, texts)
        got = chooser.encode(texts, lambda t, reference=reference: _reference_ids(reference, t))
        assert [list(ids) for ids in got] == expected
        assert not chooser.usage.fell_back


PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(PRINTABLE, max_size=200), min_size=1, max_size=4), min_size=1))
def test_kitoken_plain_copy_equals_tokenizers_on_printable_ascii(documents):
    """Printable ASCII joined with the sentence mark skips kitoken's Unicode steps; the
    ids must not change (long words, [SEP]-like text and punctuation included)."""
    texts = ["\u00b6".join(sentences) for sentences in documents]
    for chooser, reference in FUZZ_CHOOSERS[:2]:
        expected = _reference_ids(reference, texts)
        assert [list(i) for i in chooser.fast.encode_plain(texts)] == expected
        got = chooser.encode(
            texts, lambda t, r=reference: _reference_ids(r, t), [True] * len(texts)
        )
        assert [list(ids) for ids in got] == expected


@pytest.mark.parametrize("char", ["\u0378", "\U00018cd6", "\u061d", "\u2e52"])
def test_a_character_kitoken_treats_differently_sends_its_text_to_the_reference(char):
    """Unassigned code points and newer punctuation: kitoken's own Unicode tables differ."""
    chooser, reference = _checked_chooser(BERT_JSON)
    texts = ["plain ascii text", f"caf\u00e9 x{char}y ok", "na\u00efve"]
    expected = _reference_ids(reference, texts)
    raw_differs = [list(i) for i in chooser.fast.encode(texts)] != expected
    got = chooser.encode(texts, lambda t: _reference_ids(reference, t))
    assert [list(ids) for ids in got] == expected
    assert chooser.usage.reference_texts == (1 if raw_differs else 0)
    assert (char in chooser._characters.different) == raw_differs


def _build(tmp_path, name: str, backend: str, inputs, **config) -> dict:
    out = tmp_path / name
    build(
        [str(p) for p in inputs],
        str(out),
        BuildConfig(**config),
        RunOptions(workers=1, tokenizer_backend=backend),
    )
    return json.loads((out / "index.json").read_text())


@pytest.mark.parametrize(
    ("corpus", "config"),
    [
        (["sentences/en-books.txt.gz"], {"input_format": "sentences"}),
        (["en-tech"], {}),
        (ZH_FILES, {"tokenizer": "vocab/bert-base-chinese-vocab.txt"}),
    ],
)
def test_builds_are_byte_identical_with_either_backend(tmp_path, corpus, config):
    if "tokenizer" in config:
        config["tokenizer"] = str(shared_corpus(config["tokenizer"]))
    inputs = [shared_corpus(name) for name in corpus]
    slow = _build(tmp_path, "hf", "hf", inputs, **config)
    fast = _build(tmp_path, "kitoken", "kitoken", inputs, **config)
    assert shard_hashes(tmp_path / "hf") == shard_hashes(tmp_path / "kitoken")
    assert slow["run"]["tokenizer_backend"]["batches"].keys() == {"hf"}
    assert fast["run"]["tokenizer_backend"]["batches"]["kitoken"] > 0
    assert fast["run"]["tokenizer_backend"]["fell_back"] == []
    assert {k: v for k, v in slow.items() if k != "run"} == {
        k: v for k, v in fast.items() if k != "run"
    }


def test_auto_uses_kitoken_on_english_and_tokenizers_on_chinese(tmp_path):
    english = _build(tmp_path, "en", "auto", [SAMPLE_DIR])
    assert english["run"]["tokenizer_backend"]["batches"] == {"kitoken": 1}
    chinese = tmp_path / "zh.txt"
    chinese.write_text("今天天气很好。我们去公园散步吧。\n\n他说：明天见！好的。\n" * 50)
    built = _build(tmp_path, "zh", "auto", [chinese])
    assert built["run"]["tokenizer_backend"]["batches"] == {"hf": 1}


def test_auto_loads_kitoken_only_once_a_batch_wants_it(monkeypatch):
    loads = []
    real = tokenizer_backends.KitokenEncoder
    monkeypatch.setattr(tokenizer_backends, "KitokenEncoder", lambda j: loads.append(j) or real(j))
    encoder = TokenEncoder(VOCAB, backend="auto")
    usage = encoder.start_unit()
    encoder.encode_documents([["今天天气很好。", "我们去公园散步吧。"]])
    assert loads == [] and usage.batches == {"hf": 1}
    encoder.encode_documents([["Some English words.", "And more of them."]])
    assert len(loads) == 1 and usage.batches == {"hf": 1, "kitoken": 1}


def test_cjk_share_counts_ideographs_hangul_and_kana_only():
    assert cjk_share(["a" * 160]) == 0.0
    assert cjk_share(["中" * 160]) == 1.0
    mixed = ["中文" * 8 + "x" * 144]  # 16 of 160 characters
    assert cjk_share(mixed) == pytest.approx(0.1)
    assert cjk_share(["한국어" * 16 + "カタカナ" * 12]) == 1.0
    assert cjk_share([]) == 0.0


class _Wrong:
    """A fast backend that gets the last id of texts over 10 characters wrong: the
    character check, which tries single characters, cannot see it; the self-check must."""

    def encode(self, texts):
        return [
            [*ids[:-1], 0] if len(text) > 10 else ids
            for text, ids in zip(texts, KitokenEncoder(BERT_JSON).encode(texts))
        ]

    encode_plain = encode


def test_a_backend_that_disagrees_falls_back_for_the_rest_of_the_unit():
    encoder = TokenEncoder(VOCAB, backend="kitoken")
    encoder.backend.fast = _Wrong()
    documents = [["Some words here.", "And more words."], ["Another document."]]
    usage = encoder.start_unit()
    ids, _ = encoder.encode_documents(documents)
    reference = TokenEncoder(VOCAB).encode_documents(documents)
    assert [list(a) for a in ids] == [list(a) for a in reference[0]]
    assert usage.fell_back and usage.batches == {"hf": 1}
    encoder.encode_documents(documents)
    assert usage.batches == {"hf": 2}  # the unit stays on the reference
    fresh = encoder.start_unit()
    assert not fresh.fell_back


def test_a_fallback_is_a_warning_and_the_output_is_unchanged(tmp_path, monkeypatch):
    reference = _build(tmp_path, "hf", "hf", [SAMPLE_DIR])
    wrong = _Wrong()
    monkeypatch.setattr(tokenizer_backends, "KitokenEncoder", lambda tokenizer_json: wrong)
    from mlmprep.text import encoders

    monkeypatch.setattr(encoders, "_ENCODERS", {})
    fallen = _build(tmp_path, "fallen", "kitoken", [SAMPLE_DIR])
    assert shard_hashes(tmp_path / "hf") == shard_hashes(tmp_path / "fallen")
    assert fallen["run"]["tokenizer_backend"]["fell_back"] == ["unit-000000"]
    assert any("kitoken gave other ids" in w for w in fallen["warnings"])
    assert not any("kitoken" in w for w in reference["warnings"])


def test_kitoken_refuses_what_it_cannot_stand_in_for():
    bert = BERT_JSON
    assert kitoken_refusal(bert) is None
    assert kitoken_refusal(_with_added_specials(bert)) is None
    spec = json.loads(bert)
    spec["normalizer"] = {"type": "NFC"}
    assert "normalizer is NFC" in kitoken_refusal(json.dumps(spec))
    tokenizer = Tokenizer.from_str(bert)
    tokenizer.add_tokens(["newword"])
    assert "'newword' is not a plain special token" in kitoken_refusal(tokenizer.to_str())
    with pytest.raises(TokenizerError, match="cannot encode this tokenizer"):
        BackendChooser("kitoken", json.dumps(spec), "custom.json")
    assert BackendChooser("auto", json.dumps(spec), "custom.json").fast is None


def test_kitoken_requested_but_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setattr(tokenizer_backends, "kitoken_version", lambda: None)
    with pytest.raises(TokenizerError, match=r"pip install 'mlmprep\[fast\]'"):
        BackendChooser("kitoken", BERT_JSON, VOCAB)
    assert BackendChooser("auto", BERT_JSON, VOCAB).fast is None
