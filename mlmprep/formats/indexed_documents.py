"""Documents of a sentence-level indexed dataset (a `mlmprep tokenize` output), read by
document index with range reads: what a recipe's phases draw from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mlmprep.core import storage
from mlmprep.formats.indexed_format import HEADER, output_paths, read_header


@dataclass(frozen=True)
class StoredDocument:
    """One document: its token ids (int32) and the token count of each sentence."""

    ids: np.ndarray
    sentence_lengths: np.ndarray


class IndexedDocuments:
    """Range reads of an indexed dataset's documents; nothing is held but its header."""

    def __init__(self, prefix: str) -> None:
        self.paths = output_paths(prefix)
        self.header = read_header(storage.read_range(self.paths["idx"], 0, HEADER.size), prefix)

    def _read(self, offset: int, count: int, dtype: type) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        return np.frombuffer(
            storage.read_range(self.paths["idx"], offset, offset + count * size), dtype
        )

    def document_tokens(self) -> np.ndarray:
        """Tokens of every document (int64), in order."""
        header = self.header
        lengths = self._read(header.lengths_at, header.sequences, np.int32).astype(np.int64)
        ends = self._read(header.documents_at, header.document_entries, np.int64)
        running = np.concatenate(([0], np.cumsum(lengths)))
        return running[ends[1:]] - running[ends[:-1]]

    def documents(self, indices: np.ndarray) -> Iterator[StoredDocument]:
        """The documents at ascending `indices`, one range read per run of consecutive ones."""
        if not len(indices):
            return
        breaks = np.flatnonzero(np.diff(indices) != 1) + 1
        for run in np.split(indices, breaks):
            yield from self._run(int(run[0]), int(run[-1]) + 1)

    def _run(self, first: int, end: int) -> Iterator[StoredDocument]:
        header = self.header
        ends = self._read(header.documents_at + 8 * first, end - first + 1, np.int64)
        start, stop = int(ends[0]), int(ends[-1])
        lengths = self._read(header.lengths_at + 4 * start, stop - start, np.int32)
        pointer = (
            int(self._read(header.pointers_at + 8 * start, 1, np.int64)[0]) if stop > start else 0
        )
        itemsize = header.dtype.itemsize
        tokens = int(lengths.astype(np.int64).sum())
        data = storage.read_range(self.paths["bin"], pointer, pointer + tokens * itemsize)
        ids = np.frombuffer(data, header.dtype).astype(np.int32)
        bounds = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
        for a, b in zip((ends[:-1] - start).tolist(), (ends[1:] - start).tolist()):
            yield StoredDocument(ids[bounds[a] : bounds[b]], lengths[a:b].astype(np.int64))
