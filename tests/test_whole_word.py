import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.algorithm.masking import BLOCK_ROWS, MaskingRule, num_to_mask
from mlmprep.algorithm.whole_word import mask_whole_words, word_ids, word_starts
from mlmprep.outputs.stats import compute_stats

from .helpers import SAMPLE_DIR, run_build

CLS, SEP, MASK = 101, 102, 103
POOL = np.arange(200, 1000, dtype=np.int32)
CONTINUATION = np.zeros(3000, bool)
CONTINUATION[2000:3000] = True  # ids >= 2000 are "##" pieces


def test_word_starts_and_ids_exact():
    # [CLS] un ##believ ##able x [SEP] ##y z [SEP]
    tokens = np.array([CLS, 1000, 2001, 2002, 1001, SEP, 2003, 1002, SEP])
    special_mask = np.isin(tokens, [CLS, SEP]).astype(np.int8)
    starts = word_starts(tokens, special_mask, CONTINUATION)
    assert starts.tolist() == [False, True, False, False, True, False, True, True, False]
    ids = word_ids(tokens, np.array([0, 9]), starts, special_mask)
    assert ids.tolist() == [-1, 0, 0, 0, 1, -1, 2, 3, -1]


def rows_of_words(words_per_row, rng):
    tokens, special_mask = [], []
    for words in words_per_row:
        row = [CLS]
        for size in words:
            row += [int(rng.integers(1000, 2000)), *rng.integers(2000, 3000, size - 1).tolist()]
        row.append(SEP)
        tokens += row
        special_mask += [1] + [0] * (len(row) - 2) + [1]
    lengths = [sum(w) + 2 for w in words_per_row]
    return (
        np.array(tokens, np.int32),
        np.concatenate(([0], np.cumsum(lengths))),
        np.array(special_mask, np.int8),
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=40), min_size=1, max_size=20),
    st.floats(0.05, 0.5),
    st.integers(0, 2**32 - 1),
)
def test_every_masked_word_is_whole_with_one_outcome(words_per_row, prob, seed):
    rng = np.random.default_rng(seed)
    tokens, offsets, special_mask = rows_of_words(words_per_row, rng)
    starts = word_starts(tokens, special_mask, CONTINUATION)
    masked = mask_whole_words(
        tokens, offsets, special_mask, starts, MaskingRule(prob, 20, POOL, MASK), rng
    )
    for row, words in enumerate(words_per_row):
        positions = masked.positions[masked.offsets[row] : masked.offsets[row + 1]]
        flat = set((offsets[row] + positions).tolist())
        budget = num_to_mask(np.array([sum(words) + 2]), prob, 20)[0]
        assert len(flat) <= budget
        if all(size == 1 for size in words):  # single-token words fill the budget exactly
            assert len(flat) == min(budget, len(words))
        start = offsets[row] + 1
        for size in words:
            span = set(range(start, start + size))
            assert not (span & flat) or span <= flat, "a word is masked whole or not at all"
            if span <= flat:
                now, before = masked.tokens[sorted(span)], tokens[sorted(span)]
                kinds = {
                    ("mask" if n == MASK else "kept" if n == b else "random")
                    for n, b in zip(now, before)
                }
                assert len(kinds) == 1, "one outcome per word"
            start += size
    assert np.array_equal(
        masked.original_ids,
        tokens[np.repeat(offsets[:-1], np.diff(masked.offsets)) + masked.positions],
    )
    assert starts.sum() == sum(len(w) for w in words_per_row)


def test_whole_words_across_row_blocks_are_exact():
    # More rows than one block; with p = 1 every word fits the budget, so every
    # non-special token is masked, in the second block as in the first.
    rng = np.random.default_rng(13)
    words = [rng.integers(1, 4, size=rng.integers(1, 12)).tolist() for _ in range(BLOCK_ROWS + 200)]
    tokens, offsets, special_mask = rows_of_words(words, rng)
    starts = word_starts(tokens, special_mask, CONTINUATION)
    masked = mask_whole_words(
        tokens, offsets, special_mask, starts, MaskingRule(1.0, 64, POOL, MASK), rng
    )
    row = np.repeat(np.arange(len(words)), np.diff(masked.offsets))
    assert np.array_equal(offsets[row] + masked.positions, np.flatnonzero(special_mask == 0))


def test_outcome_split_is_per_word():
    rng = np.random.default_rng(3)
    tokens, offsets, special_mask = rows_of_words([[3] * 40] * 2000, rng)
    starts = word_starts(tokens, special_mask, CONTINUATION)
    masked = mask_whole_words(
        tokens, offsets, special_mask, starts, MaskingRule(0.15, 20, POOL, MASK), rng
    )
    row = np.repeat(np.arange(2000), np.diff(masked.offsets))
    flat = offsets[row] + masked.positions
    first_of_word = (flat - 1) % 3 == 0
    now = masked.tokens[flat][first_of_word]
    before = tokens[flat][first_of_word]
    assert abs((now == MASK).mean() - 0.8) < 0.015
    assert abs((now == before).mean() - 0.1) < 0.015


def test_whole_word_build_reports_fraction_one(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "wwm", whole_word_mask=True)
    run_build([SAMPLE_DIR], tmp_path / "plain")
    assert compute_stats(str(tmp_path / "wwm"))["whole_word_fraction"] == 1.0
    assert compute_stats(str(tmp_path / "plain"))["whole_word_fraction"] < 0.95


def test_dynamic_whole_word_masking_in_the_collator(tmp_path):
    torch = pytest.importorskip("torch", reason="the torch extra is not installed")
    from mlmprep.torch import MlmCollator, MlmprepDataset

    run_build([SAMPLE_DIR], tmp_path / "out", masking="dynamic", whole_word_mask=True)
    dataset = MlmprepDataset(str(tmp_path / "out"))
    rows = [dataset[i] for i in range(200)]
    assert "word_ids" in rows[0]
    batch = MlmCollator.from_build(str(tmp_path / "out"))([dict(r) for r in rows])
    chosen = batch["labels"] != -100
    for i, row in enumerate(rows):
        words = torch.tensor(row["word_ids"])
        picked = chosen[i, : len(words)]
        for word in words[picked].unique().tolist():
            assert picked[words == word].all(), "all pieces of a selected word are labelled"
    share = chosen.sum().item() / sum(sum(1 for w in r["word_ids"] if w >= 0) for r in rows)
    assert 0.11 < share < 0.19


SENTENCE = "我们在北京大学学习自然语言处理。"


def test_chinese_whole_words_come_from_jieba(tmp_path):
    jieba = pytest.importorskip("jieba", reason="the zh extra is not installed")
    words = jieba.lcut(SENTENCE)
    assert len(words) > 4 and any(len(w) > 1 for w in words)
    word_of_char = [i for i, word in enumerate(words) for _ in word]
    docs = "\n\n".join(SENTENCE * 3 for _ in range(200))
    (tmp_path / "zh.txt").write_text(docs + "\n")
    run_build(
        [tmp_path / "zh.txt"],
        tmp_path / "out",
        whole_word_mask=True,
        language="zh",
        short_seq_prob=0.0,
    )
    from mlmprep.outputs.finished_build import FinishedBuild
    from mlmprep.outputs.show import iter_rows

    rows = list(iter_rows(FinishedBuild(str(tmp_path / "out"))))
    assert len(rows) > 100
    multi_char_words_masked = 0
    for row in rows:
        original = list(row["input_ids"])
        for position, token in zip(row["masked_lm_positions"], row["masked_lm_ids"]):
            original[position] = token
        masked = set(row["masked_lm_positions"])
        content = [i for i, t in enumerate(original) if t not in (101, 102)]
        assert len(content) % len(SENTENCE) == 0, "whole sentences, no truncation"
        spans: dict[tuple[int, int], list[int]] = {}
        for n, position in enumerate(content):
            spans.setdefault((n // len(SENTENCE), word_of_char[n % len(SENTENCE)]), []).append(
                position
            )
        for positions in spans.values():
            hit = [p in masked for p in positions]
            assert all(hit) or not any(hit), "a jieba word is masked whole or not at all"
            multi_char_words_masked += all(hit) and len(positions) > 1
    assert multi_char_words_masked > 50
