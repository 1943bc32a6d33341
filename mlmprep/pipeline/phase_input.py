"""The input of a recipe phase: units of documents drawn from the sources' indexed
datasets (tokenized once, by `tokenize`), read in windows like a build's text units."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from mlmprep.algorithm.corpus import EncodedDocument
from mlmprep.core import storage
from mlmprep.core.config import SPLITS, TRAIN, VALIDATION, BuildConfig
from mlmprep.core.counts import SplitCounts
from mlmprep.core.random_streams import MIXTURE_HOLD_OUT, name_key, rng_for
from mlmprep.formats.indexed_documents import IndexedDocuments
from mlmprep.input.accounting import InputReport
from mlmprep.pipeline.planning import Unit

HOLD_OUT_BLOCK = 4096  # documents per hold-out stream block


@dataclass(frozen=True)
class PhaseUnit:
    """A run of one source's documents for one pass of a phase: positions [start, end)
    of the document indices in `selection` (a .npy of sampled ones), or of all the
    source's documents when `selection` is None."""

    index: int
    source: str
    store: str  # the prefix of the source's indexed dataset
    selection: str | None
    start: int
    end: int
    raw_bytes: int  # the source text these documents came from, estimated
    bytes_per_token: float  # of the source's text, for windows of a build's size

    streamed = False  # a phase unit is never cut into parts

    def describe(self) -> str:
        return f"source {self.source} ({self.store}, documents {self.start}-{self.end})"

    def to_dict(self) -> dict:
        return {"kind": "phase", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> PhaseUnit:
        return cls(**{k: v for k, v in data.items() if k != "kind"})

    def document_indices(self) -> np.ndarray:
        if self.selection is None:
            return np.arange(self.start, self.end, dtype=np.int64)
        with storage.open_file(self.selection, "rb") as handle:
            return np.load(handle)[self.start : self.end]


def unit_from_dict(data: dict) -> Unit | PhaseUnit:
    """A plan's unit: a build's (text files) or a recipe phase's (drawn documents)."""
    return PhaseUnit.from_dict(data) if data.get("kind") == "phase" else Unit.from_dict(data)


@dataclass(frozen=True)
class SourceDraw:
    """What one source gives a phase: `passes` over all its documents, then the
    `sampled` ones listed in `selection` (a .npy of ascending document indices)."""

    source: str
    store: str
    documents: int  # in the source
    tokens: int  # text tokens drawn in all
    passes: int
    sampled: int
    selection: str | None
    bytes_per_token: float

    @property
    def raw_bytes(self) -> int:
        return round(self.tokens * self.bytes_per_token)

    def units(self, first_index: int, unit_size: int) -> list[PhaseUnit]:
        """Units of about `unit_size` bytes of source text, each within one pass."""
        per_document = self.raw_bytes / max(self.passes * self.documents + self.sampled, 1)
        step = max(1, int(unit_size // max(per_document, 1.0)))
        runs = [(None, self.documents)] * self.passes
        if self.sampled:
            runs.append((self.selection, self.sampled))
        units = []
        for selection, count in runs:
            for start in range(0, count, step):
                end = min(start + step, count)
                units.append(
                    PhaseUnit(
                        first_index + len(units),
                        self.source,
                        self.store,
                        selection,
                        start,
                        end,
                        round((end - start) * per_document),
                        self.bytes_per_token,
                    )
                )
        return units


@dataclass(frozen=True)
class PhaseInput:
    """What a phase build reads instead of text files: the draws of its sources."""

    draws: tuple[SourceDraw, ...]
    fingerprint: dict  # the mixture and the stores it draws from: part of the identity

    @property
    def raw_bytes(self) -> int:
        return sum(d.raw_bytes for d in self.draws)

    def units(self, unit_size: int) -> list[PhaseUnit]:
        units: list[PhaseUnit] = []
        for draw in self.draws:
            units += draw.units(len(units), unit_size)
        return units


def hold_out_draws(seed: int, source: str, documents: np.ndarray) -> np.ndarray:
    """One uniform per document, decided by the document alone: the same in every pass,
    unit and phase, so a held-out document never trains."""
    draws = np.empty(len(documents))
    blocks = documents // HOLD_OUT_BLOCK
    for block in np.unique(blocks).tolist():
        where = blocks == block
        uniforms = rng_for(seed, MIXTURE_HOLD_OUT, name_key(source), block).random(HOLD_OUT_BLOCK)
        draws[where] = uniforms[documents[where] % HOLD_OUT_BLOCK]
    return draws


def read_phase_windows(
    unit: PhaseUnit,
    config: BuildConfig,
    window_size: int,
    report: InputReport,
    counts: dict[str, SplitCounts],
) -> Iterator[dict[str, list[EncodedDocument]]]:
    """The unit's documents by split, in windows of about `window_size` bytes of source
    text: the same shape `units.read_windows` gives for text."""
    indices = unit.document_indices()
    held_out = hold_out_draws(config.seed, unit.source, indices) < config.validation_fraction
    window: dict[str, list[EncodedDocument]] = {split: [] for split in SPLITS}
    window_tokens = max(1, int(window_size / unit.bytes_per_token))
    tokens = 0
    for document, validation in zip(IndexedDocuments(unit.store).documents(indices), held_out):
        if tokens >= window_tokens:
            yield window
            window, tokens = {split: [] for split in SPLITS}, 0
        split = VALIDATION if validation else TRAIN
        report.use_document()
        counts[split].documents += 1
        counts[split].sentences += len(document.sentence_lengths)
        counts[split].tokens += len(document.ids)
        tokens += len(document.ids)
        window[split].append(EncodedDocument(document.ids, document.sentence_lengths))
    yield window
