"""tokenize_unit: one work unit (or part) -> a partial `.bin` + `.idx` in the work
directory, in the indexed-dataset format; the merge concatenates them in unit order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mlmprep.algorithm.corpus import EncodedDocument
from mlmprep.core import storage
from mlmprep.core.config import TRAIN
from mlmprep.core.counts import SplitCounts, Tally
from mlmprep.core.files import open_atomically
from mlmprep.core.lease import commits_guarded
from mlmprep.formats.indexed_format import BIN_SUFFIX, IDX_SUFFIX, token_dtype, write_index
from mlmprep.input.accounting import InputReport
from mlmprep.pipeline.unit_result import UnitRecord
from mlmprep.pipeline.units import UnitTask, read_windows, unit_raw_bytes
from mlmprep.text.encoders import encoder_for

LEVELS = ("sentence", "document")
MEGATRON_LONG_SENTENCE = 512  # Megatron's BERT mapping skips documents with a longer one


@dataclass
class TokenizeCounts(Tally):
    """What a tokenize run made, and what Megatron's BERT dataset will skip of it."""

    documents: int = 0
    sequences: int = 0
    tokens: int = 0
    empty_sentences: int = 0  # sentences that encode to no token: no sequence is written
    long_sentences_cut: int = 0  # over MAX_SENTENCE_CHARS characters, cut before tokenizing
    sentences_over_512_tokens: int = 0
    documents_with_a_sentence_over_512_tokens: int = 0  # Megatron's BERT skips these
    one_sentence_documents: int = 0  # Megatron's BERT skips these when NSP is on


@dataclass(frozen=True)
class TokenizeTask:
    """A unit to tokenize: the unit task that reads it, and how sequences are cut."""

    unit_task: UnitTask
    level: str
    append_eod: bool
    work_dir: str

    @property
    def name(self) -> str:
        return self.unit_task.name

    def path(self, suffix: str) -> str:
        return storage.join(self.work_dir, self.name + suffix)

    def describe(self) -> str:
        """The unit's input files, for error messages."""
        return self.unit_task.describe()


@dataclass
class TokenizeResult(UnitRecord):
    """The record of one tokenized unit (or part), written when it arrives."""

    unit: int
    part: int
    name: str
    counts: TokenizeCounts
    accounting: dict
    examples: list[str]
    bin_bytes: int
    raw_bytes: int
    part_source: str | None
    tokenizer_backend: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "counts": self.counts.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> TokenizeResult:
        return cls(**{**data, "counts": TokenizeCounts.from_dict(data["counts"])})


def tokenize_unit(task: TokenizeTask) -> TokenizeResult:
    """Read, split and tokenize one unit; write its sequences as a partial .bin/.idx."""
    with commits_guarded(task.unit_task.lease):
        return _tokenize_unit(task)


def _tokenize_unit(task: TokenizeTask) -> TokenizeResult:
    unit_task = task.unit_task
    storage.configure(unit_task.storage_options)
    report = InputReport(strict=unit_task.strict)
    split_counts = {TRAIN: SplitCounts()}
    encoder = encoder_for(unit_task.config, unit_task.tokenizer_backend)
    backend_usage = encoder.start_unit()
    dtype = token_dtype(encoder.vocab_size)
    eod = encoder.special_ids.sep if task.append_eod else None
    counts = TokenizeCounts()
    lengths: list[np.ndarray] = []
    document_ends = [0]
    with open_atomically(task.path(BIN_SUFFIX)) as out:
        for window in read_windows(unit_task, encoder, report, split_counts):
            for document in window[TRAIN]:
                sequences = _sequences(document, task.level, eod, counts)
                for sequence in sequences:
                    out.write(sequence.astype(dtype).tobytes())
                lengths.append(np.array([len(s) for s in sequences], np.int32))
                document_ends.append(document_ends[-1] + len(sequences))
        bin_bytes = out.tell()
    counts.long_sentences_cut = split_counts[TRAIN].long_sentences_cut
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
    with open_atomically(task.path(IDX_SUFFIX)) as out:
        write_index(out, dtype, all_lengths, np.array(document_ends, np.int64))
    return TokenizeResult(
        unit=unit_task.unit.index,
        part=unit_task.part,
        name=task.name,
        counts=counts,
        accounting=report.to_dict(),
        examples=report.examples,
        bin_bytes=bin_bytes,
        raw_bytes=unit_raw_bytes(unit_task),
        part_source=unit_task.part_source.path if unit_task.part_source else None,
        tokenizer_backend=backend_usage.to_dict(),
    )


def _sequences(
    document: EncodedDocument, level: str, eod: int | None, counts: TokenizeCounts
) -> list[np.ndarray]:
    """A document's sequences: one per non-empty sentence, or the whole document (with
    `eod` appended when given); counts what Megatron's BERT dataset will skip."""
    sentence_lengths = document.sentence_lengths
    counts.documents += 1
    counts.tokens += len(document.ids) + (eod is not None)
    counts.empty_sentences += int(np.count_nonzero(sentence_lengths == 0))
    real = sentence_lengths[sentence_lengths > 0]
    over = int(np.count_nonzero(real > MEGATRON_LONG_SENTENCE))
    counts.sentences_over_512_tokens += over
    counts.documents_with_a_sentence_over_512_tokens += over > 0
    counts.one_sentence_documents += len(real) == 1
    if level == "document":
        ids = document.ids if eod is None else np.append(document.ids, eod)
        counts.sequences += 1
        return [ids]
    ends = np.cumsum(sentence_lengths)
    pieces = [
        document.ids[end - length : end]
        for end, length in zip(ends.tolist(), sentence_lengths.tolist())
        if length
    ]
    counts.sequences += len(pieces)
    return pieces
