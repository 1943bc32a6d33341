"""Statistics of a build, computed by streaming over its shards (bounded memory)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlmprep.algorithm.whole_word import word_starts
from mlmprep.core import storage
from mlmprep.core.config import NSP_LABEL, SENTENCE_LABELS, SOP_LABEL, SOURCE_COLUMN, TRAIN
from mlmprep.core.counts import SplitCounts
from mlmprep.core.files import read_json
from mlmprep.formats.manifest import INDEX, RECIPE_SUMMARY
from mlmprep.formats.schema import list_values
from mlmprep.outputs.finished_build import FinishedBuild

HISTOGRAM_BIN = 16


class _Totals:
    def __init__(self, max_len: int) -> None:
        self.length_counts = np.zeros(max_len + 1, np.int64)
        self.labels = {label: np.zeros(2, np.int64) for label in SENTENCE_LABELS}
        self.masked = 0
        self.split = np.zeros(3, np.int64)  # mask, random, kept
        self.unk = 0
        self.content_tokens = 0
        self.rows_per_shard: list[int] = []
        self.masked_words = 0
        self.masked_whole = 0
        self.rows_by_source = np.zeros(0, np.int64)  # a recipe phase's rows, by source index

    def add(
        self, batch: pa.RecordBatch, role_ids: dict[str, int], continuation: np.ndarray
    ) -> None:
        lengths = batch.column("num_tokens").to_numpy().astype(np.int64)
        if SOURCE_COLUMN in batch.schema.names:
            found = np.bincount(batch.column(SOURCE_COLUMN).to_numpy())
            grown = np.zeros(max(len(found), len(self.rows_by_source)), np.int64)
            grown[: len(found)] += found
            grown[: len(self.rows_by_source)] += self.rows_by_source
            self.rows_by_source = grown
        clipped = np.minimum(lengths, len(self.length_counts) - 1)
        self.length_counts += np.bincount(clipped, minlength=len(self.length_counts))
        for name, counts in self.labels.items():
            if name in batch.schema.names:
                counts += np.bincount(batch.column(name).to_numpy(), minlength=2)[:2]
        ids, offsets = list_values(batch.column("input_ids"))
        is_content = ~np.isin(ids, [role_ids["cls"], role_ids["sep"]])
        unk = ids == role_ids["unk"]
        if "masked_lm_positions" in batch.schema.names:
            positions, pos_offsets = list_values(batch.column("masked_lm_positions"))
            originals, _ = list_values(batch.column("masked_lm_ids"))
            row = np.repeat(np.arange(len(pos_offsets) - 1), np.diff(pos_offsets))
            flat_positions = offsets[row] + positions
            replaced = ids[flat_positions]
            is_mask = replaced == role_ids["mask"]
            kept = (replaced == originals) & ~is_mask
            self.masked += len(positions)
            self.split += [int(is_mask.sum()), int((~is_mask & ~kept).sum()), int(kept.sum())]
            unk[flat_positions] = originals == role_ids["unk"]
            self._count_whole_words(ids, flat_positions, originals, role_ids, continuation)
        self.unk += int((unk & is_content).sum())
        self.content_tokens += int(is_content.sum())

    def _count_whole_words(
        self,
        ids: np.ndarray,
        positions: np.ndarray,
        originals: np.ndarray,
        role_ids: dict[str, int],
        continuation: np.ndarray,
    ) -> None:
        """Masked words (a word-start token and its continuations, by the tokenizer
        family's rule) and how many were masked whole."""
        original = ids.copy()
        original[positions] = originals
        is_special = np.isin(original, [role_ids["cls"], role_ids["sep"]])
        starts = word_starts(original, is_special, continuation)
        word = np.cumsum(starts) - 1
        content = ~is_special
        is_masked = np.zeros(len(ids), bool)
        is_masked[positions] = True
        size = np.bincount(word[content], minlength=int(starts.sum()))
        hit = np.bincount(word[content], weights=is_masked[content], minlength=len(size))
        self.masked_words += int((hit > 0).sum())
        self.masked_whole += int(((hit > 0) & (hit == size)).sum())


def recipe_summary(output_dir: str) -> dict | None:
    """The recipe.json of a recipe's output (`build --recipe`), None for anything else."""
    path = storage.join(output_dir, RECIPE_SUMMARY)
    if storage.exists(storage.join(output_dir, INDEX)) or not storage.exists(path):
        return None
    return read_json(path)


def compute_stats(output_dir: str, split: str = TRAIN) -> dict:
    """Statistics of one split of the build in `output_dir` (see `split_stats`)."""
    return split_stats(FinishedBuild(output_dir), split)


def split_stats(build: FinishedBuild, split: str = TRAIN) -> dict:
    """Statistics of one split of a build (keys listed in docs/guide.md).

    The accounting keys (`documents`, `files`, `repaired`) are the whole build's, since
    documents are read before they are assigned to a split; `split_documents` counts the
    documents used in this split.
    """
    index, config = build.index, build.config
    role_ids = build.special_tokens.ids
    max_len = config["max_seq_length"]
    totals = _Totals(max_len)
    continuation = build.tokenizer.continuation
    shards = build.split_shards(split)
    for shard in shards:
        rows = 0
        for batch in build.batches(shard):
            rows += batch.num_rows
            totals.add(batch, role_ids, continuation)
        totals.rows_per_shard.append(rows)
    counts = totals.length_counts
    instances = int(counts.sum())
    tokens = int((counts * np.arange(len(counts))).sum())
    cumulative = np.cumsum(counts)
    nsp = totals.labels[NSP_LABEL]
    sop = totals.labels[SOP_LABEL]
    counts_of_split = SplitCounts.from_dict(
        {k: v for k, v in index["counts"].get(split, {}).items() if k != "rows"}
    )
    chunks = counts_of_split.chunks
    return {
        "split": split,
        "instances": instances,
        "shards": len(shards),
        "tokens": tokens,
        "mean_tokens": round(tokens / instances, 3) if instances else 0.0,
        "median_tokens": _quantile(cumulative, 0.5),
        "p95_tokens": _quantile(cumulative, 0.95),
        "frac_shorter_than_max": round(float(counts[:max_len].sum()) / instances, 4)
        if instances
        else 0.0,
        "length_histogram": _histogram(counts),
        "objective": config.get("objective", "nsp"),
        "nsp_random_fraction": round(float(nsp[1]) / instances, 4) if nsp.sum() else 0.0,
        "sop_swapped_fraction": round(float(sop[1]) / instances, 4) if sop.sum() else 0.0,
        "skipped_single_sentence_documents": counts_of_split.skipped_single_sentence_documents,
        "forced_random_fraction": round(counts_of_split.forced_random / chunks, 4)
        if chunks
        else 0.0,
        "single_sentence_chunks": counts_of_split.single_sentence_chunks,
        "skipped_single_sentence_chunks": counts_of_split.skipped_single_sentence_no_partner,
        "unpaired_sentences": counts_of_split.unpaired_sentences,
        "sentences_cut": counts_of_split.sentences_cut,
        "long_sentences_cut": counts_of_split.long_sentences_cut,
        "tokens_dropped": counts_of_split.tokens_dropped,
        "rows_under_min_tokens": counts_of_split.rows_under_min_tokens,
        "min_row_tokens": config.get("min_row_tokens", 0),
        "tokens_dropped_fraction": round(
            counts_of_split.tokens_dropped / (counts_of_split.tokens * config["dupe_factor"]), 5
        )
        if counts_of_split.tokens
        else 0.0,
        "split_documents": counts_of_split.documents,
        "mean_masked": round(totals.masked / instances, 3) if instances else 0.0,
        "masked_per_token": round(totals.masked / tokens, 4) if tokens else 0.0,
        "mask_split": _split(totals.split),
        "whole_word_fraction": round(totals.masked_whole / totals.masked_words, 4)
        if totals.masked_words
        else 0.0,
        "unk_rate": round(totals.unk / totals.content_tokens, 5) if totals.content_tokens else 0.0,
        "rows_per_shard": {
            "min": min(totals.rows_per_shard, default=0),
            "max": max(totals.rows_per_shard, default=0),
        },
        **index["accounting"],
        "warnings": index["warnings"],
        **_mixture(config, totals.rows_by_source),
    }


def _mixture(config: dict, rows_by_source: np.ndarray) -> dict:
    """A recipe phase's mixture (asked against achieved, per source) and its rows by
    source in this split; nothing for a plain build."""
    if "mixture" not in config:
        return {}
    names = config["sources"]
    rows = np.zeros(len(names), np.int64)
    rows[: len(rows_by_source)] = rows_by_source
    return {"mixture": config["mixture"], "rows_by_source": dict(zip(names, rows.tolist()))}


def _quantile(cumulative: np.ndarray, q: float) -> int:
    if not len(cumulative) or cumulative[-1] == 0:
        return 0
    return int(np.searchsorted(cumulative, q * cumulative[-1]))


def _histogram(counts: np.ndarray) -> dict[str, int]:
    histogram = {}
    for start in range(0, len(counts), HISTOGRAM_BIN):
        n = int(counts[start : start + HISTOGRAM_BIN].sum())
        if n:
            end = min(start + HISTOGRAM_BIN, len(counts)) - 1
            histogram[f"{start}-{end}"] = n
    return histogram


def _split(split: np.ndarray) -> dict[str, float]:
    total = int(split.sum())
    names = ("mask", "random", "kept")
    return {name: round(float(n) / total, 4) if total else 0.0 for name, n in zip(names, split)}
