"""Typed counters of what a build did: a misspelt key is an AttributeError, not a silent 0."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T", bound="Tally")


@dataclass
class Tally:
    """Integer counters that add up field by field (across passes, windows and units)."""

    def add(self, other: Tally) -> None:
        """Add every counter of `other` (the same class or a base class of this one)."""
        for field in dataclasses.fields(other):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, int]) -> T:
        """Read back `to_dict()`; an unknown key is an error."""
        return cls(**data)


@dataclass
class PairCounts(Tally):
    """What pair building did in one pass (fields of other objectives stay 0)."""

    chunks: int = 0
    single_sentence_chunks: int = 0  # NSP: chunks of one sentence, which must take a random B
    forced_random: int = 0  # NSP: random pairs forced by one-sentence chunks
    random_next: int = 0  # NSP: pairs labelled 1
    skipped_single_sentence_no_partner: int = 0  # NSP: one-sentence chunks of a lone document
    swapped: int = 0  # SOP: pairs labelled 1
    skipped_single_sentence_documents: int = 0  # SOP: documents of one sentence
    unpaired_sentences: int = 0  # SOP: sentences left at a document's end


@dataclass
class SplitCounts(PairCounts):
    """Everything counted for one split (train or validation) of a build."""

    documents: int = 0
    sentences: int = 0
    tokens: int = 0
    sentences_cut: int = 0  # longer than a row's text budget, cut into row-sized pieces
    long_sentences_cut: int = 0  # over MAX_SENTENCE_CHARS characters, cut before tokenizing
    instances: int = 0
    tokens_dropped: int = 0  # per pass: text tokens no row holds (truncated or left over)
    rows_under_min_tokens: int = 0  # per pass: rows left out by --min-row-tokens
