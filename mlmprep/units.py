"""process_unit: one work unit -> spill files, one per output bucket. Engines only schedule it."""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .accounting import InputReport
from .config import BuildConfig
from .instances import Instances, assemble
from .masking import Masked, mask_tokens
from .objectives import make_spans
from .pairs import Corpus, make_corpus
from .planning import Unit
from .readers import Document, iter_documents
from .schema import record_batch
from .segmentation import encode_with_word_starts, jieba_segmenter
from .sentences import document_sentences
from .spill import SPLITS, SpillWriter
from .tokenization import BATCH_CHARS, WordPieceEncoder
from .whole_word import mask_whole_words, segmented_word_starts, word_ids, word_starts

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

    def describe(self) -> str:
        """The unit's input files, for error messages."""
        return f"unit {self.unit.index} ({', '.join(s.path for s in self.unit.sources)})"


class _DocumentCollector:
    """Encodes document parts in bounded batches and gathers whole documents per split.

    A long document arrives in parts; its token arrays grow part by part, so no more
    than about BATCH_CHARS of text is held as Python strings at any time. A document
    is kept as (ids, sentence lengths) — plus word-start flags when `encode` gives them.
    """

    def __init__(
        self,
        encode: Callable[[list[list[str]]], tuple[list[np.ndarray], ...]],
        report: InputReport,
        counts: Counter,
    ) -> None:
        self.encode, self.report, self.counts = encode, report, counts
        self.splits: dict[str, list[tuple[np.ndarray, ...]]] = {n: [] for n in SPLITS}
        self._pending: list[tuple[int, list[str]]] = []
        self._pending_chars = 0
        self._open: dict[int, dict] = {}
        self.chars = 0

    def add(self, key: int, split: str, document: Document) -> None:
        """Take one part of document `key`; encode when enough text is pending."""
        state = self._open.setdefault(
            key, {"split": split, "location": document.location, "parts": []}
        )
        state["complete"] = not document.continued
        sentences = document_sentences(document.lines, document.presplit)
        if sentences:
            self._pending.append((key, sentences))
            chars = sum(len(s) for s in sentences)
            self._pending_chars += chars
            self.chars += chars
        if self._pending_chars >= BATCH_CHARS:
            self.flush()

    def flush(self) -> None:
        """Encode what is pending and close every complete document, in document order."""
        if self._pending:
            encoded = self.encode([sentences for _, sentences in self._pending])
            for (key, _), part in zip(self._pending, zip(*encoded)):
                self._open[key]["parts"].append(part)
            self._pending, self._pending_chars = [], 0
        for key in [k for k, state in self._open.items() if state["complete"]]:
            self._close(self._open.pop(key))

    def take(self) -> dict[str, list[tuple[np.ndarray, ...]]]:
        """Every complete document so far, by split; start a new window."""
        self.flush()
        splits = self.splits
        self.splits = {name: [] for name in SPLITS}
        self.chars = 0
        return splits

    def _close(self, state: dict) -> None:
        if not state["parts"]:
            self.report.skip_document(state["location"], "empty")
            return
        arrays = tuple(np.concatenate(component) for component in zip(*state["parts"]))
        ids, lengths = arrays[0], arrays[1]
        if len(ids) == 0:
            self.report.skip_document(state["location"], "no tokens")
            return
        self.report.use_document()
        self.counts["sentences"] += int(np.count_nonzero(lengths))
        self.counts["tokens"] += len(ids)
        self.splits[state["split"]].append(arrays)


def _encoder_function(
    config: BuildConfig, encoder: WordPieceEncoder
) -> Callable[[list[list[str]]], tuple[list[np.ndarray], ...]]:
    """How documents are encoded: with word starts from jieba for Chinese whole words."""
    if config.whole_word_mask and config.language == "zh":
        return functools.partial(encode_with_word_starts, encoder, segment=jieba_segmenter())
    return encoder.encode_documents


def process_unit(task: UnitTask) -> dict:
    """Read, split, tokenize, pair, mask and scatter one unit; return its counts."""
    config = task.config
    report = InputReport(strict=task.strict)
    counts: Counter = Counter()
    encoder = encoder_for(config)
    spills = {
        split: SpillWriter(
            task.work_dir,
            split,
            task.unit.index,
            task.buckets[split],
            rng_for(config.seed, STREAM_SCATTER, task.unit.index, split_index),
        )
        for split_index, split in enumerate(SPLITS)
        if task.buckets[split]
    }
    for window, documents in enumerate(_read_windows(task, encoder, report, counts)):
        for split, spill in spills.items():
            corpus, cut = make_corpus(documents[split], config.max_num_tokens)
            counts["sentences_cut"] += cut
            keys = (task.unit.index,) if window == 0 else (task.unit.index, window)
            for pass_index in range(config.dupe_factor if corpus.num_documents else 0):
                spill.write(_pass_batch(corpus, config, encoder, keys, pass_index, counts))
    rows = {split: spill.close() for split, spill in spills.items()}
    pa.default_memory_pool().release_unused()
    return {
        "unit": task.unit.index,
        "accounting": report.to_dict(),
        "examples": report.examples,
        "counts": dict(counts),
        "rows": rows,
        "raw_bytes": task.unit.raw_bytes,
    }


def _read_windows(
    task: UnitTask, encoder: WordPieceEncoder, report: InputReport, counts: Counter
) -> Iterator[dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """Token ids and sentence lengths of the unit's documents, by split, in windows of
    about `unit_size` characters of whole documents.

    A unit is one window unless it is a compressed file larger than `unit_size` (it
    cannot be split by byte range); windows keep its memory bounded all the same. Whole
    documents are held out for validation, drawn from the unit's own stream.
    """
    config = task.config
    collector = _DocumentCollector(_encoder_function(config, encoder), report, counts)
    held_out = rng_for(config.seed, STREAM_VALIDATION, task.unit.index)
    key, split, starts_document = 0, "train", True
    for source in task.unit.sources:
        for document in iter_documents(
            source.path, source.format, config.text_field, report, source.start, source.end
        ):
            if starts_document:
                if collector.chars >= config.unit_size:
                    yield collector.take()
                validation = config.validation_fraction > 0 and (
                    held_out.random() < config.validation_fraction
                )
                split = "validation" if validation else "train"
            collector.add(key, split, document)
            starts_document = not document.continued
            key += starts_document
    yield collector.take()


def _pass_batch(
    corpus: Corpus,
    config: BuildConfig,
    encoder: WordPieceEncoder,
    keys: tuple[int, ...],
    pass_index: int,
    counts: Counter,
) -> pa.RecordBatch:
    """One pass over a window's documents: pairs, rows and masks as one record batch.

    `keys` is (unit,) or (unit, window): RNG streams are [seed, stream, unit, pass(, window)].
    """
    pairs = make_spans(
        config.objective,
        corpus,
        config.max_num_tokens,
        config.short_seq_prob,
        rng_for(config.seed, STREAM_PAIRS, keys[0], pass_index, *keys[1:]),
    )
    counts.update(pairs.counts)
    instances = assemble(
        corpus.ids,
        pairs,
        encoder.special.cls,
        encoder.special.sep,
        pair=config.pairs,
        word_starts=corpus.word_starts,
    )
    counts["instances"] += len(instances)
    rng = rng_for(config.seed, STREAM_MASKING, keys[0], pass_index, *keys[1:])
    if config.masking == "static":
        return record_batch(config, instances, _static_masks(instances, config, encoder, rng))
    words = None
    if config.whole_word_mask:
        starts = _word_starts(instances, encoder)
        words = word_ids(instances.tokens, instances.offsets, starts, instances.special)
    return record_batch(config, instances, None, words)


def _word_starts(instances: Instances, encoder: WordPieceEncoder) -> np.ndarray:
    """First token of each word: from the segmenter when there is one, else '##' pieces."""
    if instances.word_starts is not None:
        return segmented_word_starts(instances.word_starts, instances.special)
    return word_starts(instances.tokens, instances.special, encoder.continuation)


def _static_masks(
    instances: Instances, config: BuildConfig, encoder: WordPieceEncoder, rng: np.random.Generator
) -> Masked:
    common = {
        "masked_lm_prob": config.masked_lm_prob,
        "max_predictions": config.max_predictions_per_seq,
        "random_pool": encoder.random_pool,
        "mask_id": encoder.special.mask,
        "rng": rng,
    }
    rows = (instances.tokens, instances.offsets, instances.special)
    if config.whole_word_mask:
        return mask_whole_words(*rows, _word_starts(instances, encoder), **common)
    return mask_tokens(*rows, **common)


def worker_init() -> None:
    """Parallelism comes from processes, not from tokenizer or Arrow threads.

    Called in every pool worker and, with one worker, in the building process itself.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    pa.set_cpu_count(1)
