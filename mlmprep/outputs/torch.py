"""PyTorch side: a collator for `BertForPreTraining` and datasets over mlmprep shards.

Needs the `torch` extra (`pip install "mlmprep[torch]"`). The collator pads a batch to its
longest row (or a multiple of 8), builds `attention_mask` and `labels` (-100 except at
masked positions) and, for `--masking dynamic` builds, masks every batch with Hugging
Face `DataCollatorForLanguageModeling` semantics from a seeded `torch.Generator`: the
rate and the [MASK] / random split are parameters, and the rate can change during
training (`set_mask_probability`). With `unpadded=True` a batch is one packed sequence
with `cu_seqlens`, `max_seqlen` and `position_ids`, as FlashAttention's varlen kernels
and ModernBERT take it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mlmprep.core import random_streams, storage
from mlmprep.core.config import SENTENCE_LABELS, TRAIN
from mlmprep.outputs.finished_build import FinishedBuild

IGNORE_INDEX = -100


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of torch.distributed, or (0, 1) when it is not in use."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def dataloader_worker() -> tuple[int, int]:
    """(DataLoader worker id, number of workers), (0, 1) in the main process."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class MlmCollator:
    """Turns a list of mlmprep rows into padded tensors for `BertForPreTraining`.

    Static builds: labels come from `masked_lm_positions` / `masked_lm_ids`.
    Dynamic builds: each non-special token is selected with probability
    `masked_lm_prob`, then `mask_replace_prob` of them become `[MASK]`,
    `random_replace_prob` a random non-special id, and the rest stay (BERT: 0.15, 0.8,
    0.1; EuroBERT: 0.3, 1.0, 0.0). The generator is seeded from (seed, epoch,
    DataLoader worker, rank): call `set_epoch` before each epoch (before the DataLoader
    iterator is created) so epochs differ and runs repeat.

    `unpadded=True`: the rows of a batch concatenated into one sequence: `input_ids`,
    `token_type_ids`, `labels` and `position_ids` of shape (total tokens,), `cu_seqlens`
    (int32, rows + 1 offsets) and `max_seqlen`; the same tokens and labels as the
    padded batch under the same generator state, without the padding.
    """

    def __init__(
        self,
        pad_id: int,
        mask_id: int,
        random_ids: np.ndarray,
        masked_lm_prob: float = 0.15,
        dynamic: bool = False,
        seed: int = 0,
        pad_to_multiple_of: int | None = None,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        unpadded: bool = False,
    ) -> None:
        _check_probability("masked_lm_prob", masked_lm_prob)
        _check_probability("mask_replace_prob", mask_replace_prob)
        _check_probability("random_replace_prob", random_replace_prob)
        if mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError("mask_replace_prob + random_replace_prob must be at most 1")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        if len(random_ids) == 0:
            raise ValueError("random_ids must not be empty")
        self.pad_id, self.mask_id = pad_id, mask_id
        self.random_ids = torch.as_tensor(np.asarray(random_ids), dtype=torch.long)
        self.masked_lm_prob, self.dynamic, self.seed = masked_lm_prob, dynamic, seed
        self.pad_to_multiple_of = pad_to_multiple_of
        self.mask_replace_prob, self.random_replace_prob = mask_replace_prob, random_replace_prob
        self.unpadded = unpadded
        self.epoch = 0
        self._generator: torch.Generator | None = None
        self._generator_key: tuple[int, int, int] | None = None

    @classmethod
    def from_build(
        cls,
        output_dir: str,
        pad_to_multiple_of: int | None = None,
        masked_lm_prob: float | None = None,
        **options: float | bool,
    ) -> MlmCollator:
        """A collator that matches a build: its special ids, masking mode, seed, and its
        probability unless `masked_lm_prob` is given; `options` are the other keyword
        arguments of MlmCollator (mask_replace_prob, random_replace_prob, unpadded)."""
        build = FinishedBuild(output_dir)
        role_ids = build.special_tokens.ids
        config = build.config
        random_ids = build.tokenizer.random_pool  # as the build drew them
        return cls(
            pad_id=role_ids["pad"],
            mask_id=role_ids["mask"],
            random_ids=random_ids,
            masked_lm_prob=config["masked_lm_prob"] if masked_lm_prob is None else masked_lm_prob,
            dynamic=config["masking"] == "dynamic",
            seed=config["seed"],
            pad_to_multiple_of=pad_to_multiple_of,
            **options,
        )

    def set_epoch(self, epoch: int) -> None:
        """Masks of epoch `epoch` (dynamic builds); call before iterating the DataLoader."""
        self.epoch = epoch

    def set_mask_probability(self, masked_lm_prob: float) -> None:
        """Mask at this rate from the next batch on (a schedule such as mmBERT's 30% ->
        15% -> 5%); the generator goes on where it was, so a run repeats exactly."""
        if not self.dynamic:
            raise ValueError("a static build's masks are fixed in its rows; build with "
                             "--masking dynamic to change the rate while training")  # fmt: skip
        _check_probability("masked_lm_prob", masked_lm_prob)
        self.masked_lm_prob = masked_lm_prob

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self._padded(rows)
        return _unpad(batch) if self.unpadded else batch

    def _padded(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = self._pad_ids([row["input_ids"] for row in rows], width)
        token_type_ids = _pad([row["token_type_ids"] for row in rows], width, 0)
        attention_mask = _pad([[1] * len(row["input_ids"]) for row in rows], width, 0)
        if self.dynamic and "word_ids" in rows[0]:
            labels = self._mask_words(input_ids, _pad([row["word_ids"] for row in rows], width, -1))
        elif self.dynamic:
            special_mask = _pad([row["special_tokens_mask"] for row in rows], width, 1).bool()
            labels = self._mask(input_ids, special_mask)
        else:
            labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
            for i, row in enumerate(rows):
                positions = torch.as_tensor(row["masked_lm_positions"], dtype=torch.long)
                labels[i, positions] = torch.as_tensor(row["masked_lm_ids"], dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
        for column in SENTENCE_LABELS:
            if column in rows[0]:
                batch[column] = torch.tensor([row[column] for row in rows], dtype=torch.long)
        return batch

    def _pad_ids(self, sequences: list[list[int]], width: int) -> torch.Tensor:
        """Token ids padded with [PAD] to `width`."""
        return _pad(sequences, width, self.pad_id)

    def _mask(self, input_ids: torch.Tensor, special_mask: torch.Tensor) -> torch.Tensor:
        """Mask `input_ids` in place; return the labels (Hugging Face semantics)."""
        generator = self._current_generator()
        labels = input_ids.clone()
        probability = torch.full(input_ids.shape, self.masked_lm_prob)
        probability.masked_fill_(special_mask, 0.0)
        selected = torch.bernoulli(probability, generator=generator).bool()
        labels[~selected] = IGNORE_INDEX
        replace = torch.full(input_ids.shape, self.mask_replace_prob)
        replaced = torch.bernoulli(replace, generator=generator).bool() & selected
        input_ids[replaced] = self.mask_id
        rest = 1.0 - self.mask_replace_prob  # of the selected tokens not [MASK]ed...
        among_rest = self.random_replace_prob / rest if rest > 0 else 0.0  # ...the random ones
        randomize = torch.full(input_ids.shape, min(among_rest, 1.0))
        randomized = torch.bernoulli(randomize, generator=generator).bool()
        randomized &= selected & ~replaced
        picks = torch.randint(len(self.random_ids), input_ids.shape, generator=generator)
        input_ids[randomized] = self.random_ids[picks[randomized]]
        return labels

    def _mask_words(self, input_ids: torch.Tensor, word_ids: torch.Tensor) -> torch.Tensor:
        """Whole-word version of `_mask`: each word is selected with probability
        `masked_lm_prob`, and one [MASK] / random / kept draw decides for all its
        sub-tokens."""
        generator = self._current_generator()
        words = int(word_ids.max().item()) + 1 if word_ids.numel() else 0
        shape = (input_ids.shape[0], max(words, 1))
        selected_word = torch.bernoulli(torch.full(shape, self.masked_lm_prob), generator=generator)
        outcome_word = torch.rand(shape, generator=generator)
        index = word_ids.clamp(min=0)
        is_word = word_ids >= 0
        selected = torch.gather(selected_word, 1, index).bool() & is_word
        outcome = torch.gather(outcome_word, 1, index)
        labels = input_ids.clone()
        labels[~selected] = IGNORE_INDEX
        masked_below = self.mask_replace_prob
        random_below = masked_below + self.random_replace_prob
        input_ids[selected & (outcome < masked_below)] = self.mask_id
        randomized = selected & (outcome >= masked_below) & (outcome < random_below)
        picks = torch.randint(len(self.random_ids), input_ids.shape, generator=generator)
        input_ids[randomized] = self.random_ids[picks[randomized]]
        return labels

    def _current_generator(self) -> torch.Generator:
        rank, _ = distributed_rank()
        worker, _ = dataloader_worker()
        key = (self.epoch, worker, rank)
        if self._generator is None or self._generator_key != key:
            state = random_streams.seed_sequence(self.seed, random_streams.DYNAMIC_MASKING, *key)
            self._generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))
            self._generator_key = key
        return self._generator


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _unpad(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | int]:
    """A padded batch as one packed sequence: the tokens under its attention mask, in row
    order, with the rows' offsets (cu_seqlens), longest row and positions within rows."""
    kept = batch["attention_mask"].bool()
    lengths = kept.sum(dim=1)
    cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu_seqlens[1:] = torch.cumsum(lengths, dim=0)
    positions = torch.arange(kept.shape[1]).expand_as(kept)
    packed = {name: batch[name][kept] for name in ("input_ids", "token_type_ids", "labels")}
    packed["position_ids"] = positions[kept]
    packed["cu_seqlens"] = cu_seqlens
    packed["max_seqlen"] = int(lengths.max()) if len(lengths) else 0
    for column in SENTENCE_LABELS:
        if column in batch:
            packed[column] = batch[column]
    return packed


def block_diagonal_mask(cu_seqlens: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """A (1, 1, T, T) boolean attention mask for one packed sequence of T tokens: a token
    sees the tokens of its own row (and, with `window`, only those at most `window`
    positions away). For attention kernels without varlen support (PyTorch SDPA, CPU);
    it takes T^2 bytes, so FlashAttention's `cu_seqlens` is the way on a GPU."""
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    row = torch.repeat_interleave(torch.arange(len(lengths)), lengths.long())
    mask = row[:, None] == row[None, :]
    if window is not None:
        position = torch.arange(len(row))
        mask &= (position[:, None] - position[None, :]).abs() <= window
    return mask[None, None]


def _pad(sequences: list[list[int]], width: int, value: int) -> torch.Tensor:
    """A (len(sequences), width) long tensor, each row padded with `value`."""
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        out[i, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    return out


def _shard_files(output_dir: str, split: str) -> list[tuple[str, pq.ParquetFile]]:
    """Each shard of the split, checked and opened (a damaged one is a one-line error)."""
    build = FinishedBuild(output_dir)
    return [(build.path(shard), build.parquet(shard)) for shard in build.shards(split)]


class MlmprepDataset(Dataset):
    """Map-style dataset over one split of a build; rows are dicts of lists and ints.

    Holds the split in memory as Arrow arrays (compact, no Python objects until a row is
    read); use `MlmprepIterableDataset` when the split does not fit.
    """

    def __init__(self, output_dir: str, split: str = TRAIN) -> None:
        build = FinishedBuild(output_dir)
        tables = [build.read_columns(shard) for shard in build.shards(split)]
        self.table = pa.concat_tables(tables).combine_chunks() if tables else None

    def __len__(self) -> int:
        return 0 if self.table is None else self.table.num_rows

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.table.slice(index, 1).to_pylist()[0]


class MlmprepIterableDataset(IterableDataset):
    """Streams one split row group by row group, with bounded memory.

    Row groups are dealt to readers: reader g of W (g = rank * num_workers + worker id,
    W = world size * num_workers) reads row groups g, g + W, g + 2W, ... of the list of
    all (shard, row group) pairs, so DataLoader workers and distributed ranks never
    read the same rows. With `shuffle`, that list is permuted per epoch from `seed`
    (`set_epoch`), and rows inside each row group are permuted too.

    Every reader yields the same number of items (rows, or batches with `batch_size`),
    so that distributed ranks take the same number of steps and none waits for another
    at the end of an epoch: a reader dealt fewer repeats items from the start of its own
    row groups, as `DistributedSampler` pads with repeated samples (ranks must run the
    same number of DataLoader workers).

    With `batch_size`, it yields lists of up to that many rows, all from one row group:
    for a build made with `--bin-size`, every batch then holds rows of one length bin
    (use `DataLoader(dataset, batch_size=None, collate_fn=collator)`).
    """

    def __init__(
        self,
        output_dir: str,
        split: str = TRAIN,
        shuffle: bool = True,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        groups = [
            (path, group, parquet.metadata.row_group(group).num_rows)
            for path, parquet in _shard_files(output_dir, split)
            for group in range(parquet.num_row_groups)
        ]
        self.row_groups = [(path, group) for path, group, _ in groups]
        self.group_rows = [rows for _, _, rows in groups]
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict | list[dict]]:
        rank, world = distributed_rank()
        worker, workers = dataloader_worker()
        reader, readers = rank * workers + worker, world * workers
        rng = random_streams.rng_for(self.seed, random_streams.ROW_GROUP_ORDER, self.epoch)
        count = len(self.row_groups)
        order = list(rng.permutation(count) if self.shuffle else range(count))
        if not order:
            return
        dealt = [order[r::readers] for r in range(readers)]
        target = max(sum(map(self._items, d)) for d in dealt)
        mine = dealt[reader] or [order[reader % count]]
        yielded = 0
        while yielded < target:  # a reader dealt fewer items repeats its own
            for item in self._read(mine, rng):
                yield item
                yielded += 1
                if yielded == target:
                    return

    def _items(self, index: int) -> int:
        """What row group `index` yields: its rows, or its batches."""
        rows = self.group_rows[index]
        return rows if self.batch_size is None else -(-rows // self.batch_size)

    def _read(self, groups: list[int], rng) -> Iterator[dict | list[dict]]:
        for index in groups:
            path, group = self.row_groups[index]
            table = storage.parquet_file(path).read_row_group(group)
            rows = table.to_pylist()
            if self.shuffle:
                rows = [rows[i] for i in rng.permutation(len(rows))]
            if self.batch_size is None:
                yield from rows
            else:
                for start in range(0, len(rows), self.batch_size):
                    yield rows[start : start + self.batch_size]
