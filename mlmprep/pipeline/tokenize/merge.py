"""The last step of tokenize: the units' partial .bin/.idx files, concatenated in input
order into one indexed dataset, streaming (one partial index in memory at a time)."""

from __future__ import annotations

import hashlib

import numpy as np

from mlmprep.core import storage
from mlmprep.core.files import open_atomically
from mlmprep.formats.indexed_format import (
    BIN_SUFFIX,
    IDX_SUFFIX,
    IndexHeader,
    pointers_of,
    read_index,
)

COPY_BLOCK = 8 << 20


def merge_bins(partials: list[str], path: str) -> dict:
    """Concatenate the partial .bin files into `path`; its size and sha256."""
    digest = hashlib.sha256()
    with open_atomically(path) as out:
        for partial in partials:
            with storage.open_file(partial + BIN_SUFFIX, "rb") as handle:
                for block in iter(lambda h=handle: h.read(COPY_BLOCK), b""):
                    out.write(block)
                    digest.update(block)
        size = out.tell()
    return {"name": storage.basename(path), "bytes": size, "sha256": digest.hexdigest()}


def merge_indexes(partials: list[str], path: str, dtype: np.dtype) -> dict:
    """One .idx from the partial ones, each read in turn for each section: lengths, then
    pointers (shifted by the .bin bytes before it), then document indices (shifted by the
    sequences before it). Only one partial index is in memory at a time."""
    headers = [read_index(p + IDX_SUFFIX)[0] for p in partials]
    sequences = sum(h.sequences for h in headers)
    entries = 1 + sum(h.documents for h in headers)
    digest = hashlib.sha256()
    with open_atomically(path) as out:

        def write(data: bytes) -> None:
            out.write(data)
            digest.update(data)

        write(IndexHeader(dtype, sequences, entries).pack())
        for partial in partials:
            write(read_index(partial + IDX_SUFFIX)[1].lengths.tobytes())
        start = 0
        for partial in partials:
            lengths = read_index(partial + IDX_SUFFIX)[1].lengths
            write(pointers_of(lengths, dtype, start).tobytes())
            start += int(lengths.astype(np.int64).sum()) * dtype.itemsize
        write(np.zeros(1, np.int64).tobytes())
        offset = 0
        for partial in partials:
            ends = read_index(partial + IDX_SUFFIX)[1].document_indices
            write((ends[1:] + offset).tobytes())
            offset += int(ends[-1])
        size = out.tell()
    return {"name": storage.basename(path), "bytes": size, "sha256": digest.hexdigest()}
