import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.algorithm.instances import assemble, gather_ranges
from mlmprep.algorithm.masking import BLOCK_ROWS, MaskingRule, mask_tokens, num_to_mask
from mlmprep.algorithm.pairs import RowSpans
from mlmprep.text.special_tokens import TemplatePiece, _bert_template

CLS, SEP, MASK = 101, 102, 103
BERT_PAIR = _bert_template("[CLS]", "[SEP]")[1]
POOL = np.array([i for i in range(200, 1000)], np.int32)


def test_gather_ranges_exact():
    got = gather_ranges(np.array([5, 0, 9]), np.array([2, 0, 3]))
    assert got.tolist() == [5, 6, 9, 10, 11]


def test_assemble_exact_rows():
    ids = np.array([1, 2, 3, 4, 5, 6, 7], np.int32)
    pairs = RowSpans(
        np.array([0, 4]), np.array([2, 1]), np.array([2, 0]), np.array([1, 3]), np.array([0, 1])
    )
    rows = assemble(ids, pairs, BERT_PAIR, {"[CLS]": CLS, "[SEP]": SEP})
    assert rows.offsets.tolist() == [0, 6, 13]
    assert rows.tokens.tolist() == [CLS, 1, 2, SEP, 3, SEP, CLS, 5, SEP, 1, 2, 3, SEP]
    assert rows.token_types.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    assert rows.special_mask.tolist() == [1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1]
    assert rows.labels.tolist() == [0, 1]


def test_assemble_follows_a_roberta_template():
    """<s> A </s></s> B </s>, every token type 0."""
    ids = np.array([1, 2, 3, 4], np.int32)
    pairs = RowSpans(np.array([0]), np.array([2]), np.array([2]), np.array([2]), np.array([1]))
    marks = (TemplatePiece("special", 0, "<s>"), TemplatePiece("special", 0, "</s>"))
    template = (
        marks[0],
        TemplatePiece("A", 0),
        marks[1],
        marks[1],
        TemplatePiece("B", 0),
        marks[1],
    )
    rows = assemble(ids, pairs, template, {"<s>": 0, "</s>": 2})
    assert rows.tokens.tolist() == [0, 1, 2, 2, 2, 3, 4, 2]
    assert rows.token_types.tolist() == [0] * 8
    assert rows.special_mask.tolist() == [1, 0, 0, 1, 1, 0, 0, 1]


def test_num_to_mask_rounds_half_to_even_like_python():
    lengths = np.array([30, 10, 3, 128, 500])
    expected = [min(20, max(1, round(n * 0.15))) for n in lengths.tolist()]
    assert num_to_mask(lengths, 0.15, 20).tolist() == expected
    assert num_to_mask(np.array([30]), 0.15, 20).tolist() == [4]


def make_rows(lengths: list[int], rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tokens, special_mask = [], []
    for n in lengths:
        body = rng.integers(1000, 2000, size=n - 3).tolist()
        cut = 1 + (n - 3) // 2
        row = [CLS, *body[: cut - 1], SEP, *body[cut - 1 :], SEP]
        tokens += row
        special_mask += [1] + [0] * (cut - 1) + [1] + [0] * (n - 2 - cut) + [1]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return np.array(tokens, np.int32), offsets, np.array(special_mask, np.int8)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(5, 140), min_size=1, max_size=30),
    st.floats(0.0, 1.0),
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
)
def test_mask_invariants(lengths, prob, max_predictions, seed):
    rng = np.random.default_rng(seed)
    tokens, offsets, special_mask = make_rows(lengths, rng)
    masked = mask_tokens(
        tokens, offsets, special_mask, MaskingRule(prob, max_predictions, POOL, MASK), rng
    )
    counts = np.diff(masked.offsets)
    # the reference's count, by Python's round (half to even), capped by the content tokens
    expected = [min(max_predictions, max(1, round(n * prob)), n - 3) for n in lengths]
    assert counts.tolist() == expected
    for row in range(len(lengths)):
        positions = masked.positions[masked.offsets[row] : masked.offsets[row + 1]]
        originals = masked.original_ids[masked.offsets[row] : masked.offsets[row + 1]]
        assert np.all(np.diff(positions) > 0), "sorted and unique"
        flat = offsets[row] + positions
        assert not special_mask[flat].any(), "never on [CLS]/[SEP]"
        assert originals.tolist() == tokens[flat].tolist()
    row_of = np.repeat(np.arange(len(lengths)), counts)
    unchanged = np.ones(len(tokens), bool)
    unchanged[offsets[row_of] + masked.positions] = False
    assert np.array_equal(masked.tokens[unchanged], tokens[unchanged])


def test_replacement_split_80_10_10_and_random_ids_never_special():
    rng = np.random.default_rng(7)
    tokens, offsets, special_mask = make_rows([128] * 3000, rng)
    masked = mask_tokens(tokens, offsets, special_mask, MaskingRule(0.15, 20, POOL, MASK), rng)
    row = np.repeat(np.arange(3000), np.diff(masked.offsets))
    now = masked.tokens[offsets[row] + masked.positions]
    is_mask = now == MASK
    kept = now == masked.original_ids
    random = ~is_mask & ~kept
    total = len(now)
    assert abs(is_mask.sum() / total - 0.8) < 0.01
    assert abs(kept.sum() / total - 0.1) < 0.01
    assert abs(random.sum() / total - 0.1) < 0.01
    assert np.isin(now[random], POOL).all()


def test_a_seed_decides_the_masks_and_positions_are_uniform_over_seeds():
    tokens, offsets, special_mask = make_rows([20], np.random.default_rng(0))

    def positions(seed):
        rng = np.random.default_rng(seed)
        return mask_tokens(
            tokens, offsets, special_mask, MaskingRule(0.15, 20, POOL, MASK), rng
        ).positions

    first = positions(1)
    np.random.default_rng(99).random(1000)  # other generators' use changes nothing
    assert np.array_equal(positions(1), first)
    # 3 of the 17 content tokens a seed: over 3,400 seeds each is chosen about 600 times
    hits = np.bincount(np.concatenate([positions(s) for s in range(3_400)]), minlength=20)
    content = special_mask[:20] == 0
    assert not hits[~content].any()
    assert np.all(np.abs(hits[content] - 600) < 100)


def test_masking_across_row_blocks_is_exact():
    # More rows than one block; with p = 1 and room for every prediction, the chosen
    # positions are exactly the non-special ones, whatever block a row falls in.
    rng = np.random.default_rng(11)
    lengths = rng.integers(5, 40, size=BLOCK_ROWS + 300).tolist()
    tokens, offsets, special_mask = make_rows(lengths, rng)
    masked = mask_tokens(tokens, offsets, special_mask, MaskingRule(1.0, 64, POOL, MASK), rng)
    row = np.repeat(np.arange(len(lengths)), np.diff(masked.offsets))
    assert np.array_equal(offsets[row] + masked.positions, np.flatnonzero(special_mask == 0))
    assert np.array_equal(masked.original_ids, tokens[special_mask == 0])


def test_rows_in_the_second_block_draw_fresh_positions():
    # Identical rows in both blocks: a block reusing the first block's draws would repeat
    # its choices row for row.
    rng = np.random.default_rng(12)
    tokens, offsets, special_mask = make_rows([60] * (2 * BLOCK_ROWS), rng)
    tokens = np.tile(tokens[:60], 2 * BLOCK_ROWS)
    masked = mask_tokens(tokens, offsets, special_mask, MaskingRule(0.15, 20, POOL, MASK), rng)
    per_row = masked.positions.reshape(2 * BLOCK_ROWS, -1)
    assert not np.array_equal(per_row[:BLOCK_ROWS], per_row[BLOCK_ROWS:])
    # and every non-special position is chosen about equally often over all rows
    hits = np.bincount(per_row.ravel(), minlength=60)[special_mask[:60] == 0]
    assert hits.min() > 0.8 * hits.mean() and hits.max() < 1.2 * hits.mean()


class ConstantDraws:
    """A generator stand-in whose every draw is 0: every key ties."""

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return np.zeros(size, dtype=dtype)

    def random(self, size=None, dtype=np.float64):
        return np.zeros(size, dtype=dtype)


def test_tied_keys_are_broken_by_position_exactly():
    tokens, offsets, special_mask = make_rows([40, 9, 130], np.random.default_rng(0))
    masked = mask_tokens(
        tokens, offsets, special_mask, MaskingRule(0.15, 20, POOL, MASK), ConstantDraws()
    )
    wanted = num_to_mask(np.diff(offsets), 0.15, 20)
    for row in range(3):
        content = np.flatnonzero(special_mask[offsets[row] : offsets[row + 1]] == 0)
        got = masked.positions[masked.offsets[row] : masked.offsets[row + 1]]
        assert got.tolist() == content[: wanted[row]].tolist()
