import json

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.algorithm.objectives import build_sop_pairs, pack_sentences
from mlmprep.cli.main import main
from mlmprep.outputs.stats import compute_stats
from mlmprep.outputs.validate import validate

from .helpers import SAMPLE_DIR, run_build
from .test_pairs import corpus_of, document_of_token


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=12), min_size=1, max_size=8),
    max_num_tokens=st.integers(5, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_sop_b_is_the_true_continuation_before_the_swap(docs, max_num_tokens, seed):
    corpus = corpus_of(docs, max_num_tokens)
    pairs = build_sop_pairs(corpus, max_num_tokens, 0.1, np.random.default_rng(seed))
    assert np.all(pairs.a_len >= 1) and np.all(pairs.b_len >= 1)
    assert np.all(pairs.a_len + pairs.b_len <= max_num_tokens)
    doc_a = document_of_token(corpus, pairs.a_start)
    assert np.array_equal(doc_a, document_of_token(corpus, pairs.b_start))
    in_order = pairs.label == 0
    assert np.all(pairs.b_start[in_order] >= pairs.a_start[in_order] + pairs.a_len[in_order])
    swapped = ~in_order
    assert np.all(pairs.a_start[swapped] >= pairs.b_start[swapped] + pairs.b_len[swapped])
    single = int(np.count_nonzero(np.diff(corpus.document_starts) == 1))  # after cutting
    assert pairs.counts.skipped_single_sentence_documents == single


def test_sop_exact_pair_on_a_hand_made_document():
    # one document, two sentences, target never reached: one pair, A = s0, B = s1
    corpus = corpus_of([[3, 2]])
    pairs = build_sop_pairs(corpus, 100, 0.0, np.random.default_rng(4))
    (label,) = pairs.label.tolist()
    first, second = [0, 1, 2], [100, 101]
    a = corpus.ids[pairs.a_start[0] : pairs.a_start[0] + pairs.a_len[0]].tolist()
    b = corpus.ids[pairs.b_start[0] : pairs.b_start[0] + pairs.b_len[0]].tolist()
    assert (a, b) == ((first, second) if label == 0 else (second, first))


def test_sop_label_balance_on_20000_pairs():
    rng = np.random.default_rng(5)
    docs = [rng.integers(1, 60, size=rng.integers(1, 30)).tolist() for _ in range(6000)]
    pairs = build_sop_pairs(corpus_of(docs, 125), 125, 0.1, np.random.default_rng(6))
    assert len(pairs) >= 20_000
    assert abs(pairs.label.mean() - 0.5) <= 0.01


SEPARATOR = -1


def test_full_sentences_rows_cross_documents_with_one_separator():
    # documents of sentence lengths [3, 3] and [2, 4]; a row holds 9 tokens
    corpus = corpus_of([[3, 3], [2, 4]], 9)
    packed = pack_sentences(corpus, 9, True, SEPARATOR)
    rows = [
        packed.ids[s : s + n].tolist() for s, n in zip(packed.pairs.a_start, packed.pairs.a_len)
    ]
    text = corpus.ids.tolist()
    assert rows == [[*text[0:6], SEPARATOR, *text[6:8]], text[8:12]]  # 3 + 3 + 1 + 2 = 9
    assert packed.pairs.b_len.tolist() == [0, 0]
    assert packed.separators.tolist() == [1, 0]
    assert pack_sentences(corpus, 8, True, SEPARATOR).pairs.a_len.tolist() == [6, 6]


def test_doc_sentences_rows_end_with_their_document():
    corpus = corpus_of([[3, 3], [2, 4]], 8)
    packed = pack_sentences(corpus, 8, False, SEPARATOR)
    assert packed.pairs.a_len.tolist() == [6, 6]
    assert SEPARATOR not in [
        t for s, n in zip(packed.pairs.a_start, packed.pairs.a_len) for t in packed.ids[s : s + n]
    ]


@settings(max_examples=80, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=10), min_size=1, max_size=8),
    budget=st.integers(3, 60),
    cross=st.booleans(),
)
def test_packed_rows_hold_every_token_once_in_order(docs, budget, cross):
    """No token is dropped or repeated, rows fit, and each row is whole sentences."""
    corpus = corpus_of(docs, budget)
    packed = pack_sentences(corpus, budget, cross, SEPARATOR)
    pairs = packed.pairs
    assert np.all(pairs.a_len <= budget) and np.all(pairs.a_len >= 1)
    held = np.concatenate([packed.ids[s : s + n] for s, n in zip(pairs.a_start, pairs.a_len)])
    assert held[held != SEPARATOR].tolist() == corpus.ids.tolist()
    assert packed.separators.sum() == np.count_nonzero(held == SEPARATOR)
    assert np.all(pairs.a_start[1:] >= pairs.a_start[:-1] + pairs.a_len[:-1])
    if not cross:
        assert SEPARATOR not in held.tolist()


def test_sop_and_none_builds_have_their_own_columns(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "sop", objective="sop")
    run_build([SAMPLE_DIR], tmp_path / "none", objective="none")
    sop = pq.read_table(next((tmp_path / "sop").glob("train-*.parquet")))
    none = pq.read_table(next((tmp_path / "none").glob("train-*.parquet")))
    assert "sentence_order_label" in sop.schema.names
    assert "next_sentence_label" not in sop.schema.names
    assert not {"sentence_order_label", "next_sentence_label"} & set(none.schema.names)
    for row in none.to_pylist():
        assert row["input_ids"][0] == 101 and row["input_ids"].count(102) >= 1
        assert row["input_ids"][-1] == 102 and set(row["token_type_ids"]) == {0}
        assert len(row["input_ids"]) <= 128
    assert validate(str(tmp_path / "sop"))["ok"] and validate(str(tmp_path / "none"))["ok"]
    stats = compute_stats(str(tmp_path / "sop"))
    assert stats["objective"] == "sop" and 0.4 < stats["sop_swapped_fraction"] < 0.6
    index = json.loads((tmp_path / "none" / "index.json").read_text())
    assert index["config"]["objective"] == "none"


def test_one_document_corpus_counts_the_one_sentence_chunks_it_drops(tmp_path):
    # A 125-token first sentence reaches the target alone: with no other document to
    # draw B from, that chunk is dropped (and counted); the rest makes one true pair.
    long_sentence = " ".join(["alpha"] * 124) + "."
    path = tmp_path / "one.txt"
    path.write_text(f"{long_sentence} Then a short one. And another.\n")
    run_build([path], tmp_path / "out", short_seq_prob=0.0)
    stats = compute_stats(str(tmp_path / "out"))
    assert stats["skipped_single_sentence_chunks"] == 1
    assert stats["instances"] == 1
    assert stats["nsp_random_fraction"] == 0.0
    text = CliRunner().invoke(main, ["stats", str(tmp_path / "out")]).stdout
    assert "1 dropped, no other document" in text


def test_min_row_tokens_leaves_out_short_rows_and_counts_them(tmp_path):
    options = dict(objective="none", cross_documents=False, max_seq_length=256, masking="dynamic")
    run_build([SAMPLE_DIR], tmp_path / "all", **options)
    run_build([SAMPLE_DIR], tmp_path / "long", min_row_tokens=150, **options)

    def rows(name):
        table = pq.read_table(sorted((tmp_path / name).glob("train-*.parquet")))
        return sorted(map(tuple, table.column("input_ids").to_pylist()))

    everything, kept = rows("all"), rows("long")
    text_tokens = {row: len(row) - 2 for row in everything}  # [CLS] text [SEP]
    short = [row for row in everything if text_tokens[row] < 150]
    assert short and kept == [row for row in everything if text_tokens[row] >= 150]
    before = compute_stats(str(tmp_path / "all"))
    after = compute_stats(str(tmp_path / "long"))
    assert after["rows_under_min_tokens"] == len(short) and before["rows_under_min_tokens"] == 0
    assert after["tokens_dropped"] - before["tokens_dropped"] == sum(map(text_tokens.get, short))
    assert validate(str(tmp_path / "long"))["ok"]


def test_min_row_tokens_above_a_rows_text_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(
        main, ["build", str(SAMPLE_DIR), str(tmp_path / "o"), "--min-row-tokens", "200",
               "--max-seq-length", "128"]
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--min-row-tokens must be 0 (off) or at most the 125 text tokens" in result.output
    assert not (tmp_path / "o").exists()
