"""process_unit: one work unit -> spill files, one per output bucket. Engines only schedule it."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .config import BuildConfig
from .instances import assemble
from .masking import mask_tokens
from .pairs import Corpus, build_pairs, make_corpus
from .planning import Unit
from .readers import Document, InputReport, iter_documents
from .schema import record_batch
from .sentences import document_sentences
from .spill import SPLITS, SpillWriter
from .tokenization import BATCH_CHARS, WordPieceEncoder

STREAM_PAIRS, STREAM_MASKING, STREAM_SCATTER, STREAM_SHUFFLE, STREAM_VALIDATION = range(5)
_ENCODERS: dict[tuple[str, bool | None], WordPieceEncoder] = {}


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """The generator for one purpose (stream) of one unit/pass or shard (DESIGN.md §3)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, *keys])))


def encoder_for(config: BuildConfig) -> WordPieceEncoder:
    """The tokenizer of this build, loaded once per process."""
    key = (config.tokenizer, config.lowercase)
    if key not in _ENCODERS:
        _ENCODERS[key] = WordPieceEncoder(config.tokenizer, config.lowercase)
    return _ENCODERS[key]


@dataclass
class UnitTask:
    """Everything a worker needs to process one unit."""

    unit: Unit
    config: BuildConfig
    work_dir: str
    buckets: dict[str, int]
    strict: bool = False


def process_unit(task: UnitTask) -> dict:
    """Read, split, tokenize, pair, mask and scatter one unit; return its counts."""
    config = task.config
    encoder = encoder_for(config)
    report = InputReport(strict=task.strict)
    splits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in SPLITS}
    counts: Counter = Counter()
    pending: list[tuple[str, Document, list[str]]] = []
    pending_chars = 0
    held_out = rng_for(config.seed, STREAM_VALIDATION, task.unit.index)

    def flush() -> None:
        nonlocal pending, pending_chars
        ids, lengths = encoder.encode_documents([sentences for _, _, sentences in pending])
        for (split, document, _), doc_ids, doc_lengths in zip(pending, ids, lengths):
            if len(doc_ids) == 0:
                report.skip_document(document.location, "no tokens")
                continue
            report.documents_read += 1
            report.documents_used += 1
            counts["sentences"] += int(np.count_nonzero(doc_lengths))
            counts["tokens"] += len(doc_ids)
            splits[split].append((doc_ids, doc_lengths))
        pending, pending_chars = [], 0

    for source in task.unit.sources:
        for document in iter_documents(
            source.path, source.format, config.text_field, report, source.start, source.end
        ):
            sentences = document_sentences(document.lines, document.presplit)
            if not sentences:
                report.skip_document(document.location, "empty")
                continue
            is_validation = (
                config.validation_fraction > 0 and held_out.random() < config.validation_fraction
            )
            pending.append(("validation" if is_validation else "train", document, sentences))
            pending_chars += sum(len(s) for s in sentences)
            if pending_chars >= BATCH_CHARS:
                flush()
    flush()

    rows: dict[str, dict[int, int]] = {}
    for split_index, split in enumerate(SPLITS):
        if not task.buckets[split]:
            continue
        corpus, cut = make_corpus(splits.pop(split), config.max_num_tokens)
        counts["sentences_cut"] += cut
        spill = SpillWriter(
            task.work_dir,
            split,
            task.unit.index,
            task.buckets[split],
            rng_for(config.seed, STREAM_SCATTER, task.unit.index, split_index),
        )
        for pass_index in range(config.dupe_factor if corpus.num_documents else 0):
            spill.write(_pass_batch(corpus, config, encoder, task.unit.index, pass_index, counts))
        rows[split] = spill.close()
    return {
        "unit": task.unit.index,
        "accounting": report.to_dict(),
        "examples": report.examples,
        "counts": dict(counts),
        "rows": rows,
        "raw_bytes": task.unit.raw_bytes,
    }


def _pass_batch(
    corpus: Corpus,
    config: BuildConfig,
    encoder: WordPieceEncoder,
    unit_index: int,
    pass_index: int,
    counts: Counter,
) -> pa.RecordBatch:
    """One pass over a unit's documents: pairs, rows and masks as one record batch."""
    pairs = build_pairs(
        corpus,
        config.max_num_tokens,
        config.short_seq_prob,
        rng_for(config.seed, STREAM_PAIRS, unit_index, pass_index),
    )
    counts.update(pairs.counts)
    instances = assemble(corpus.ids, pairs, encoder.special.cls, encoder.special.sep)
    counts["instances"] += len(instances)
    masked = None
    if config.masking == "static":
        masked = mask_tokens(
            instances.tokens,
            instances.offsets,
            instances.special,
            config.masked_lm_prob,
            config.max_predictions_per_seq,
            encoder.random_pool,
            encoder.special.mask,
            rng_for(config.seed, STREAM_MASKING, unit_index, pass_index),
        )
    return record_batch(config, instances, masked)


def worker_init() -> None:
    """Parallelism comes from processes, not from tokenizer or Arrow threads.

    Called in every pool worker and, with one worker, in the building process itself.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    pa.set_cpu_count(1)
