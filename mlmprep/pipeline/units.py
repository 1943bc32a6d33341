"""process_unit: one work unit (or part) -> one spill file, rows grouped by bucket. Engines only
schedule it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from mlmprep.algorithm.corpus import Corpus, EncodedDocument, make_corpus
from mlmprep.algorithm.instances import Instances, assemble
from mlmprep.algorithm.masking import Masked, MaskingRule, mask_tokens
from mlmprep.algorithm.objectives import make_spans, pack_sentences
from mlmprep.algorithm.pairs import RowSpans
from mlmprep.algorithm.whole_word import (
    mask_whole_words,
    segmented_word_starts,
    word_ids,
    word_starts,
)
from mlmprep.core import storage
from mlmprep.core.config import SPLITS, TRAIN, VALIDATION, BuildConfig
from mlmprep.core.counts import SplitCounts
from mlmprep.core.lease import LeaseCheck, commits_guarded
from mlmprep.core.random_streams import MASKING, PAIRS, SCATTER, VALIDATION_HOLD_OUT, rng_for
from mlmprep.formats.schema import output_schema, record_batch
from mlmprep.input.accounting import EMPTY_DOCUMENT, InputReport
from mlmprep.input.discovery import Source
from mlmprep.input.readers import Document, iter_documents
from mlmprep.pipeline.phase_input import PhaseUnit, read_phase_windows
from mlmprep.pipeline.planning import Unit
from mlmprep.pipeline.spill import (
    BucketDealer,
    spill_path,
    spill_schema,
    staging_path,
    write_spill,
)
from mlmprep.pipeline.unit_result import SpillFile, UnitResult
from mlmprep.text.encoders import encoder_for
from mlmprep.text.segmentation import encode_with_word_starts, jieba_segmenter
from mlmprep.text.sentences import document_sentences
from mlmprep.text.tokenization import BATCH_CHARS, TokenEncoder
from mlmprep.text.tokenizer_backends import DEFAULT_BACKEND

CUT_SHORT_REASON = "cut short by corrupt data"


@dataclass
class UnitTask:
    """Everything a worker needs to process one unit."""

    unit: Unit | PhaseUnit
    config: BuildConfig
    spill_dir: str
    buckets: dict[str, int]
    window_size: int
    strict: bool = False
    part: int = 0  # of a streamed unit, whose part is read from `part_source`
    part_source: Source | None = None
    storage_options: dict = field(default_factory=dict)  # for URLs, in the worker
    tokenizer_backend: str = DEFAULT_BACKEND  # never changes the bytes
    lease: LeaseCheck | None = None  # of an object-store output, checked before commits
    group_buckets: int = 0  # two-level shuffle: record groups, not buckets (sizing.py)

    @property
    def name(self) -> str:
        """The unit's (or part's) name for its spill file and its completion record."""
        return unit_name(self.unit.index, self.part if self.unit.streamed else None)

    @property
    def sources(self) -> tuple[Source, ...]:
        return (self.part_source,) if self.part_source else self.unit.sources

    @property
    def extra_keys(self) -> tuple[int, ...]:
        """Appended to the unit's stream keys for the parts after a streamed file's first."""
        return (self.part,) if self.part else ()

    def describe(self) -> str:
        """The unit's input files, for error messages."""
        part = f" part {self.part}" if self.unit.streamed else ""
        return f"unit {self.unit.index}{part} ({self.unit.describe()})"


@dataclass
class _OpenDocument:
    """A document whose parts are still arriving."""

    split: str
    location: str
    complete: bool = False
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)


Encode = Callable[[list[list[str]]], tuple[list[np.ndarray], ...]]


class _DocumentCollector:
    """Encodes document parts in bounded batches and gathers whole documents per split.

    A long document arrives in parts; its token arrays grow part by part, so no more
    than about BATCH_CHARS of text is held as Python strings at any time.
    """

    def __init__(self, encode: Encode, report: InputReport, counts: dict[str, SplitCounts]) -> None:
        self.encode, self.report, self.counts = encode, report, counts
        self.splits: dict[str, list[EncodedDocument]] = {n: [] for n in SPLITS}
        self._pending: list[tuple[int, list[str]]] = []
        self._pending_chars = 0
        self._open: dict[int, _OpenDocument] = {}
        self.text_bytes = 0  # UTF-8 bytes of the sentences taken since the window began

    def add(self, key: int, split: str, document: Document) -> None:
        """Take one part of document `key`; encode when enough text is pending."""
        state = self._open.setdefault(key, _OpenDocument(split, document.location))
        state.complete = not document.continued
        sentences, cut = document_sentences(document.lines, document.presplit)
        self.counts[split].long_sentences_cut += cut
        if sentences:
            self._pending.append((key, sentences))
            self._pending_chars += sum(map(len, sentences))
            self.text_bytes += sum(len(s) if s.isascii() else len(s.encode()) for s in sentences)
        if self._pending_chars >= BATCH_CHARS:
            self.flush()

    def flush(self) -> None:
        """Encode what is pending and close every complete document, in document order."""
        if self._pending:
            encoded = self.encode([sentences for _, sentences in self._pending])
            for (key, _), part in zip(self._pending, zip(*encoded)):
                self._open[key].parts.append(part)
            self._pending, self._pending_chars = [], 0
        for key in [k for k, state in self._open.items() if state.complete]:
            self._close(self._open.pop(key))

    def abandon(self, key: int) -> None:
        """Drop document `key`, whose file ended before it did (corrupt or truncated
        data), and count it as skipped: it is neither used cut short nor joined to the
        next file's first document."""
        state = self._open.pop(key)
        self._pending = [(k, sentences) for k, sentences in self._pending if k != key]
        self._pending_chars = sum(sum(map(len, sentences)) for _, sentences in self._pending)
        self.report.skip_document(state.location, CUT_SHORT_REASON)

    def take(self) -> dict[str, list[EncodedDocument]]:
        """Every complete document so far, by split; start a new window."""
        self.flush()
        splits = self.splits
        self.splits = {name: [] for name in SPLITS}
        self.text_bytes = 0
        return splits

    def _close(self, state: _OpenDocument) -> None:
        if not state.parts:
            self.report.skip_document(state.location, EMPTY_DOCUMENT)
            return
        document = EncodedDocument(*(np.concatenate(component) for component in zip(*state.parts)))
        if len(document.ids) == 0:
            self.report.skip_document(state.location, "no tokens")
            return
        self.report.use_document()
        counts = self.counts[state.split]
        counts.documents += 1
        counts.sentences += int(np.count_nonzero(document.sentence_lengths))
        counts.tokens += len(document.ids)
        self.splits[state.split].append(document)


def _encoder_function(config: BuildConfig, encoder: TokenEncoder) -> Encode:
    """How documents are encoded: with word starts from jieba for Chinese whole words."""
    if config.whole_word_mask and config.language == "zh":
        return functools.partial(encode_with_word_starts, encoder, segment=jieba_segmenter())
    return encoder.encode_documents


def unit_name(index: int, part: int | None = None) -> str:
    return f"unit-{index:06d}" if part is None else f"unit-{index:06d}-p{part:05d}"


def process_unit(task: UnitTask) -> UnitResult:
    """Read, split, tokenize, pair, mask and scatter one unit into its spill file; return
    its record: counts, accounting, and where each bucket's rows are in the file."""
    with commits_guarded(task.lease):
        return _process_unit(task)


def _process_unit(task: UnitTask) -> UnitResult:
    config = task.config
    storage.configure(task.storage_options)
    report = InputReport(strict=task.strict)
    counts = {split: SplitCounts() for split in SPLITS}
    encoder = encoder_for(config, task.tokenizer_backend)
    backend_usage = encoder.start_unit()
    spilled = spill_schema(output_schema(config), encoder.vocab_size)
    dealers = {
        split: BucketDealer(
            task.buckets[split],
            rng_for(config.seed, SCATTER, task.unit.index, split_index, *task.extra_keys),
            staging_path(task.spill_dir, task.name, split),
            spilled,
        )
        for split_index, split in enumerate(SPLITS)
        if task.buckets[split]
    }
    budget = encoder.layout.budget(config.max_seq_length, config.pairs)  # tokens of text per row
    path = spill_path(task.spill_dir, task.name)
    if isinstance(task.unit, PhaseUnit):
        windows = read_phase_windows(task.unit, config, task.window_size, report, counts)
        source = config.sources.index(task.unit.source)
    else:
        windows, source = read_windows(task, encoder, report, counts), 0
    try:
        for window, documents in enumerate(windows):
            for split, dealer in dealers.items():
                corpus, cut = make_corpus(documents[split], budget)
                counts[split].sentences_cut += cut
                for pass_index in range(config.dupe_factor if corpus.num_documents else 0):
                    key = PassKey(split, task.unit.index, pass_index, window, task.part)
                    batch = _pass_batch(corpus, budget, config, encoder, key, counts[split], source)
                    dealer.write(batch)
        offsets = write_spill(path, dealers, spilled)
    except BaseException:  # staging files may sit in the system's temporary directory
        for dealer in dealers.values():
            dealer.discard()
        raise
    pa.default_memory_pool().release_unused()
    return UnitResult(
        unit=task.unit.index,
        part=task.part,
        name=task.name,
        accounting=report.to_dict(),
        examples=report.examples,
        counts={split: c for split, c in counts.items() if split in dealers},
        rows={
            split: _per_group(dealer.rows, task.group_buckets) for split, dealer in dealers.items()
        },
        spill=SpillFile(path, offsets_end(offsets), _group_offsets(offsets, task.group_buckets)),
        raw_bytes=unit_raw_bytes(task),
        part_source=task.part_source.path if task.part_source else None,
        tokenizer_backend=backend_usage.to_dict(),
        storage_retries=storage.take_retries(),
        first_buckets={s: d.first_bucket for s, d in dealers.items()} if task.group_buckets else {},
    )


def _per_group(rows: np.ndarray, group_buckets: int) -> list[int]:
    """Rows per bucket, or with a two-level shuffle per group: a unit's record then holds
    a value per group, not per bucket (268,221 buckets at 8 TB)."""
    if not group_buckets:
        return rows.tolist()
    return np.add.reduceat(rows, np.arange(0, len(rows), group_buckets)).tolist()


def _group_offsets(offsets: dict[str, list[int]], group_buckets: int) -> dict[str, list[int]]:
    """Each split's bucket offsets, or with a two-level shuffle only where groups begin
    (and the last end)."""
    if not group_buckets:
        return offsets
    return {split: [*ends[:-1:group_buckets], ends[-1]] for split, ends in offsets.items()}


def unit_raw_bytes(task: UnitTask) -> int:
    """Raw input bytes of a unit, or of the part file cut from a streamed one."""
    if task.part_source is None:
        return task.unit.raw_bytes
    return storage.size(task.part_source.path)


def offsets_end(offsets: dict[str, list[int]]) -> int:
    """The size of a spill file from its bucket offsets (its last batch's end)."""
    return max((o[-1] for o in offsets.values()), default=0)


def read_windows(
    task: UnitTask,
    encoder: TokenEncoder,
    report: InputReport,
    counts: dict[str, SplitCounts],
) -> Iterator[dict[str, list[EncodedDocument]]]:
    """Token ids and sentence lengths of the unit's documents, by split, in windows of
    about `window_size` bytes of text (UTF-8) of whole documents: a window closes before
    the first document that starts at or past that size. Windows keep memory bounded
    however large the unit is. Whole documents are held out for validation, drawn from the unit's
    own stream.
    """
    config = task.config
    collector = _DocumentCollector(_encoder_function(config, encoder), report, counts)
    held_out = rng_for(config.seed, VALIDATION_HOLD_OUT, task.unit.index, *task.extra_keys)
    key, split, starts_document = 0, TRAIN, True
    for source in task.sources:
        for document in iter_documents(
            source.path,
            source.format,
            config.text_field,
            report,
            source.start,
            source.end,
            source.origin,
            source.first_line,
        ):
            if starts_document:
                if collector.text_bytes >= task.window_size:
                    yield collector.take()
                validation = config.validation_fraction > 0 and (
                    held_out.random() < config.validation_fraction
                )
                split = VALIDATION if validation else TRAIN
            collector.add(key, split, document)
            starts_document = not document.continued
            key += starts_document
        if not starts_document:  # the file ended inside a document: damage cut it short
            collector.abandon(key)
            key, starts_document = key + 1, True
    yield collector.take()


@dataclass(frozen=True)
class PassKey:
    """Which pass this is: its random streams are keyed by split, unit, pass, window and
    (for streamed files) part."""

    split: str
    unit: int
    pass_index: int
    window: int
    part: int = 0

    def rng(self, seed: int, streams: dict[str, int]) -> np.random.Generator:
        """[seed, stream, unit, pass] for a unit's first window, with the window appended
        for later ones, and [.., pass, part, window] for a streamed file's later parts;
        the stream number says the purpose and the split."""
        if self.part:
            extra: tuple[int, ...] = (self.part, self.window)
        else:
            extra = (self.window,) if self.window else ()
        return rng_for(seed, streams[self.split], self.unit, self.pass_index, *extra)


def _pass_batch(
    corpus: Corpus,
    budget: int,
    config: BuildConfig,
    encoder: TokenEncoder,
    key: PassKey,
    counts: SplitCounts,
    source: int,
) -> pa.RecordBatch:
    """One pass over a window's documents: pairs (or packed rows), rows and masks as one
    record batch; a row holds at most `budget` tokens of text (of one source, `source`)."""
    if config.objective == "none":
        packed = pack_sentences(corpus, budget, config.cross_documents, encoder.special_ids.sep)
        ids, word_starts, pairs = packed.ids, packed.word_starts, packed.pairs
        separators = packed.separators
    else:
        ids, word_starts = corpus.ids, corpus.word_starts
        rng = key.rng(config.seed, PAIRS)
        pairs = make_spans(config.objective, corpus, budget, config.short_seq_prob, rng)
        separators = np.zeros(len(pairs), np.int64)
    counts.add(pairs.counts)
    if config.min_row_tokens:
        keep = pairs.a_len + pairs.b_len - separators >= config.min_row_tokens
        counts.rows_under_min_tokens += len(pairs) - int(keep.sum())
        pairs, separators = pairs.select(keep), separators[keep]
    held = _own_tokens(pairs, config.objective) - int(separators.sum())
    counts.tokens_dropped += len(corpus.ids) - held
    template = encoder.layout.template(config.pairs)
    instances = assemble(ids, pairs, template, encoder.layout.tokens_to_ids, word_starts)
    if config.objective == "none":  # separators between packed documents are structure
        instances.special_mask |= (instances.tokens == encoder.special_ids.sep).astype(np.int8)
    counts.instances += len(instances)
    rng = key.rng(config.seed, MASKING)
    if config.masking == "static":
        masks = _static_masks(instances, config, encoder, rng)
        return record_batch(config, instances, masks, source=source)
    words = None
    if config.whole_word_mask:
        starts = _word_starts(instances, encoder)
        words = word_ids(instances.tokens, instances.offsets, starts, instances.special_mask)
    return record_batch(config, instances, None, words, source)


def _own_tokens(pairs: RowSpans, objective: str) -> int:
    """Tokens of the pass's own text that its rows hold, separators included: an NSP
    random B is borrowed from another document, so it does not count."""
    own_b = pairs.b_len[pairs.label == 0] if objective == "nsp" else pairs.b_len
    return int(pairs.a_len.sum() + own_b.sum())


def _word_starts(instances: Instances, encoder: TokenEncoder) -> np.ndarray:
    """First token of each word: from the segmenter when there is one, else the
    tokenizer family's rule ('##' pieces continue a word; 'Ġ' and '▁' start one)."""
    if instances.word_starts is not None:
        return segmented_word_starts(instances.word_starts, instances.special_mask)
    return word_starts(instances.tokens, instances.special_mask, encoder.continuation)


def _static_masks(
    instances: Instances, config: BuildConfig, encoder: TokenEncoder, rng: np.random.Generator
) -> Masked:
    rule = MaskingRule(
        config.masked_lm_prob,
        config.max_predictions_per_seq,
        encoder.random_pool,
        encoder.special_ids.mask,
    )
    rows = (instances.tokens, instances.offsets, instances.special_mask)
    if config.whole_word_mask:
        return mask_whole_words(*rows, _word_starts(instances, encoder), rule, rng)
    return mask_tokens(*rows, rule, rng)


def worker_init() -> None:
    """Parallelism comes from processes, not from tokenizer or Arrow threads.

    Called in every pool worker and, with one worker, in the building process itself.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    pa.set_cpu_count(1)
