"""Packed batches: greedy best-fit into a token budget, over ranks and DataLoader workers,
resumable; and a ModernBERT step on one packed sequence equal to the same rows padded."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.algorithm.batch_packing import fill, pack_batches, split_to_multiple

from .helpers import SAMPLE_DIR, run_build

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

from mlmprep.torch import (  # noqa: E402
    MlmCollator,
    MlmprepDataset,
    PackedBatchSampler,
    PackedIterableDataset,
    block_diagonal_mask,
)

BUDGET = 1024


def batches_of(packed) -> list[list[int]]:
    return [packed.batch(i).tolist() for i in range(len(packed))]


def test_best_fit_takes_the_longest_row_that_fits_worked_by_hand():
    lengths = np.array([5, 3, 4, 2])
    # all four wait: 5 then the 2 that fits what is left; then 4 and 3
    assert batches_of(pack_batches(lengths, 7, buffer_size=4)) == [[0, 3], [2, 1]]
    # one row waits at a time: 5 (3 does not fit the 2 left), 3 + 4, then 2
    assert batches_of(pack_batches(lengths, 7, buffer_size=1)) == [[0], [1, 2], [3]]
    # equal lengths: the oldest first
    assert batches_of(pack_batches(np.array([2, 2, 2]), 4, buffer_size=3)) == [[0, 1], [2]]


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 64), max_size=300),
    budget=st.integers(64, 400),
    buffer_size=st.integers(1, 500),
    ranks=st.integers(1, 8),
)
def test_every_row_is_in_one_batch_and_no_batch_is_over_budget(lengths, budget, buffer_size, ranks):
    lengths = np.array(lengths, dtype=np.int64)
    packed = pack_batches(lengths, budget, buffer_size)
    assert sorted(packed.rows.tolist()) == list(range(len(lengths)))
    sums = [int(lengths[b].sum()) for b in batches_of(packed)]
    assert all(0 < s <= budget for s in sums)
    # a batch is closed only when nothing waiting fits: with the whole stream waiting,
    # every later batch's shortest row was too long for what the batch left
    if buffer_size >= len(lengths):
        for i, batch in enumerate(batches_of(packed)[:-1]):
            rest = packed.rows[packed.offsets[i + 1] :]
            assert lengths[rest].min() > budget - lengths[batch].sum()
    if len(lengths) >= len(packed) + (-len(packed) % ranks):
        split = split_to_multiple(packed, ranks)
        assert len(split) % ranks == 0
        assert sorted(split.rows.tolist()) == list(range(len(lengths)))
        assert all(0 < int(lengths[b].sum()) <= budget for b in batches_of(split))


@pytest.fixture(scope="module")
def doc_build(tmp_path_factory):
    """Rows that end with their document (DOC-SENTENCES): lengths 2 to 256 tokens."""
    out = tmp_path_factory.mktemp("doc-sentences")
    run_build([SAMPLE_DIR], out, objective="none", cross_documents=False, max_seq_length=256)
    return out


def fewest_batches(lengths: np.ndarray, budget: int) -> int:
    """A lower bound on the batches any packing needs: the tokens over the budget, and
    for each t, the rows longer than budget / (t + 1), of which a batch holds at most t."""
    by_count = [math.ceil((lengths > budget / (t + 1)).sum() / t) for t in range(1, 64)]
    return max([math.ceil(lengths.sum() / budget), *by_count])


def test_the_fill_is_within_one_percent_of_the_lower_bound(doc_build):
    sampler = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=3)
    lengths = sampler.lengths[:200]  # a small case: about 8 rows a batch of 2,048
    packed = pack_batches(lengths, 2 * BUDGET, buffer_size=200)
    best = lengths.sum() / (fewest_batches(lengths, 2 * BUDGET) * 2 * BUDGET)
    assert fill(lengths, packed, 2 * BUDGET) >= max(0.99 * best, 0.95)
    everything = list(sampler)  # the whole split, with the default buffer
    assert len(everything) <= 1.01 * fewest_batches(sampler.lengths, BUDGET) + 1


class IndexedRows(torch.utils.data.Dataset):
    """A build's rows with their index, so a test counts rows by what it was given."""

    def __init__(self, build):
        self.rows = MlmprepDataset(str(build))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return index, self.rows[index]


def collate_ids(items):
    return [index for index, _ in items], sum(len(row["input_ids"]) for _, row in items)


def loader_batches(build, sampler, workers):
    loader = torch.utils.data.DataLoader(
        IndexedRows(build), batch_sampler=sampler, collate_fn=collate_ids, num_workers=workers
    )
    return list(loader)


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_ranks_and_workers_see_every_row_once_in_equal_steps(doc_build, ranks):
    runs = {}
    for workers in (0, 1, 2):
        per_rank = []
        for rank in range(ranks):
            sampler = PackedBatchSampler.from_build(
                str(doc_build), BUDGET, seed=5, rank=rank, world_size=ranks
            )
            sampler.set_epoch(2)
            per_rank.append(loader_batches(doc_build, sampler, workers))
        seen = [index for batches in per_rank for ids, _ in batches for index in ids]
        assert sorted(seen) == list(range(len(MlmprepDataset(str(doc_build)))))
        assert all(tokens <= BUDGET for batches in per_rank for _, tokens in batches)
        assert len({len(batches) for batches in per_rank}) == 1
        runs[workers] = per_rank
    assert runs[0] == runs[1] == runs[2]  # the workers never change the batches


@pytest.fixture(scope="module")
def grouped_build(tmp_path_factory):
    """DOC-SENTENCES rows in shards of 40 rows: nine row groups to stream."""
    out = tmp_path_factory.mktemp("grouped")
    run_build(
        [SAMPLE_DIR], out, objective="none", cross_documents=False, max_seq_length=256,
        shard_size=40,
    )  # fmt: skip
    return out


def streamed(build, rank, ranks, workers, epoch=1):
    dataset = PackedIterableDataset(str(build), BUDGET, seed=6, rank=rank, world_size=ranks)
    dataset.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, collate_fn=lambda rows: rows, num_workers=workers
    )
    return [[tuple(row["input_ids"]) for row in rows] for rows in loader]


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_streamed_batches_hold_every_row_once_whatever_the_workers(grouped_build, ranks):
    everything = sorted(tuple(r["input_ids"]) for r in MlmprepDataset(str(grouped_build)))
    assert len(PackedIterableDataset(str(grouped_build), BUDGET).row_groups) >= 8
    runs = {}
    for workers in (0, 1, 2):
        per_rank = [streamed(grouped_build, rank, ranks, workers) for rank in range(ranks)]
        assert sorted(row for batches in per_rank for b in batches for row in b) == everything
        assert all(sum(map(len, b)) <= BUDGET for batches in per_rank for b in batches)
        assert len({len(batches) for batches in per_rank}) == 1
        runs[workers] = per_rank
    assert runs[0] == runs[1] == runs[2]
    assert streamed(grouped_build, 0, ranks, 0, epoch=2) != runs[0][0]


def test_a_streamed_epoch_resumes_at_the_trainers_step(grouped_build):
    whole = streamed(grouped_build, 0, 1, 0)
    dataset = PackedIterableDataset(str(grouped_build), BUDGET, seed=6, rank=0, world_size=1)
    dataset.set_epoch(1)
    state = dataset.state_dict(batches_done=5)
    fresh = PackedIterableDataset(str(grouped_build), BUDGET, seed=6, rank=0, world_size=1)
    fresh.load_state_dict(state)
    loader = torch.utils.data.DataLoader(
        fresh, batch_size=None, collate_fn=lambda rows: rows, num_workers=2
    )
    assert [[tuple(r["input_ids"]) for r in rows] for rows in loader] == whole[5:]


def test_same_seed_and_epoch_repeat_and_another_epoch_differs(doc_build):
    def epoch_batches(seed, epoch):
        sampler = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch_batches(1, 0) == epoch_batches(1, 0)
    assert epoch_batches(1, 0) != epoch_batches(1, 1)
    assert epoch_batches(1, 0) != epoch_batches(2, 0)


@pytest.mark.parametrize("stop_after", [0, 1, 7])
def test_a_saved_state_resumes_at_the_next_batch(doc_build, stop_after):
    def sampler():
        made = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=4, rank=1, world_size=2)
        made.set_epoch(3)
        return made

    whole = list(sampler())
    first = sampler()
    iterator = iter(first)
    head = [next(iterator) for _ in range(stop_after)]
    state = first.state_dict()
    resumed = sampler()
    resumed.set_epoch(0)  # the state says which epoch
    resumed.load_state_dict(state)
    assert head + list(resumed) == whole
    assert len(list(resumed)) == len(whole)  # the epoch after starts from its beginning


def test_a_trainer_count_resumes_a_prefetching_loader(doc_build):
    sampler = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=4)
    whole = loader_batches(doc_build, sampler, workers=0)
    loader = torch.utils.data.DataLoader(
        IndexedRows(doc_build), batch_sampler=sampler, collate_fn=collate_ids, num_workers=2
    )
    iterator = iter(loader)
    head = [next(iterator) for _ in range(3)]
    state = sampler.state_dict(batches_done=3)  # the workers have asked for more
    del iterator
    fresh = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=4)
    fresh.load_state_dict(state)
    assert head + loader_batches(doc_build, fresh, workers=0) == whole


def test_bad_options_and_states_are_one_line_errors(doc_build, tmp_path):
    longest = int(PackedBatchSampler.from_build(str(doc_build), BUDGET).lengths.max())
    with pytest.raises(ValueError, match=rf"longest row \({longest} tokens\).*at least {longest}"):
        PackedBatchSampler.from_build(str(doc_build), longest - 1)
    for size in (0, -3):
        with pytest.raises(ValueError, match="buffer_size must be a positive"):
            PackedBatchSampler.from_build(str(doc_build), BUDGET, buffer_size=size)
    state = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=1).state_dict()
    with pytest.raises(ValueError, match=r"seed=1.*seed=2"):
        PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=2).load_state_dict(state)
    other = tmp_path / "other"
    run_build([SAMPLE_DIR], other, objective="none", cross_documents=False, seed=9)
    with pytest.raises(ValueError, match="saved over other rows"):
        PackedBatchSampler.from_build(str(other), BUDGET, seed=1).load_state_dict(state)


def test_rows_all_of_one_length_warn_that_packing_buys_nothing():
    with pytest.warns(UserWarning, match=r"every row has 128 tokens.*8 rows"):
        PackedBatchSampler(np.full(50, 128), 1024)


def test_the_block_diagonal_mask_keeps_rows_apart():
    mask = block_diagonal_mask(torch.tensor([0, 2, 5], dtype=torch.int32), window=1)
    assert mask.shape == (1, 1, 5, 5)
    assert mask[0, 0].int().tolist() == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 0, 1, 1],
    ]


def tiny_modernbert(transformers, vocab_size):
    config = transformers.ModernBertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        local_attention=64,  # rows are longer than its window: the sliding mask matters
        global_attn_every_n_layers=2,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        cls_token_id=None,
        sep_token_id=None,
        attn_implementation="sdpa",
    )
    return transformers.ModernBertForMaskedLM(config)


def packed_masks(model, batch):
    """ModernBERT's two attention masks for one packed sequence."""
    window = model.config.sliding_window
    return {
        "full_attention": block_diagonal_mask(batch["cu_seqlens"]),
        "sliding_attention": block_diagonal_mask(batch["cu_seqlens"], window=window),
    }


def test_modernbert_trains_on_packed_batches_as_on_padded_ones(doc_build):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    torch.manual_seed(0)
    dataset = MlmprepDataset(str(doc_build))
    sampler = PackedBatchSampler.from_build(str(doc_build), BUDGET, seed=0)
    model = tiny_modernbert(transformers, vocab_size=30522)  # the bundled vocabulary
    packed_collator = MlmCollator.from_build(str(doc_build), unpadded=True)
    padded_collator = MlmCollator.from_build(str(doc_build))

    rows = [dataset[i] for i in next(iter(sampler))]
    packed = packed_collator([dict(r) for r in rows])
    padded = padded_collator([dict(r) for r in rows])
    model.eval()
    with torch.no_grad():
        flat = model(
            input_ids=packed["input_ids"][None],
            position_ids=packed["position_ids"][None],
            attention_mask=packed_masks(model, packed),
            labels=packed["labels"][None],
        ).loss
        rowwise = model(
            input_ids=padded["input_ids"],
            attention_mask=padded["attention_mask"],
            labels=padded["labels"],
        ).loss
    assert abs(flat.item() - rowwise.item()) < 1e-4

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(2):
        for indices in list(sampler)[:6]:
            batch = packed_collator([dataset[i] for i in indices])
            loss = model(
                input_ids=batch["input_ids"][None],
                position_ids=batch["position_ids"][None],
                attention_mask=packed_masks(model, batch),
                labels=batch["labels"][None],
            ).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.5
