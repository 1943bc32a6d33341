"""Pure: tokenized documents flattened into one Corpus (ids, sentence and document
offsets) that every objective cuts its rows from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Corpus:
    """Token ids of many documents, flat: ids, sentence offsets, document offsets (in sentences)."""

    ids: np.ndarray
    sentence_starts: np.ndarray
    document_starts: np.ndarray
    word_starts: np.ndarray | None = None

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1


@dataclass(frozen=True)
class EncodedDocument:
    """One tokenized document: all its ids, the token count of each sentence and, for
    segmenter-based whole words, a word-start flag per token."""

    ids: np.ndarray
    sentence_lengths: np.ndarray
    word_starts: np.ndarray | None = None


def make_corpus(documents: list[EncodedDocument], max_num_tokens: int) -> tuple[Corpus, int]:
    """Flatten documents into a Corpus.

    Empty sentences are dropped; a sentence longer than `max_num_tokens` is cut into
    pieces of that length. Returns the corpus and the number of sentences cut.
    Documents must have at least one token.
    """
    ids = np.concatenate([d.ids for d in documents]) if documents else np.zeros(0, np.int32)
    lengths = [d.sentence_lengths[d.sentence_lengths > 0] for d in documents]
    counts = np.array([len(x) for x in lengths], dtype=np.int64)
    flat = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    pieces = np.maximum(1, -(-flat // max_num_tokens))
    cut = int(np.count_nonzero(pieces > 1))
    if cut:
        owner = np.repeat(np.arange(len(flat)), pieces)
        first = np.concatenate(([0], np.cumsum(pieces)[:-1]))
        piece_index = np.arange(len(owner)) - first[owner]
        remaining = flat[owner] - piece_index * max_num_tokens
        flat = np.minimum(remaining, max_num_tokens)
        doc_of_sentence = np.repeat(np.arange(len(counts)), counts)
        counts = np.bincount(doc_of_sentence[owner], minlength=len(counts)).astype(np.int64)
    sentence_starts = np.concatenate(([0], np.cumsum(flat))).astype(np.int64)
    document_starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    word_starts = None
    if documents and documents[0].word_starts is not None:
        word_starts = np.concatenate([d.word_starts for d in documents])
    return Corpus(ids, sentence_starts, document_starts, word_starts), cut
