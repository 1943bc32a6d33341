"""The indexed-dataset format of Megatron-LM (megatron-core's IndexedDataset) and fairseq
(MMapIndexedDataset): token sequences in `PREFIX.bin`, their index in `PREFIX.idx`.

`.idx`, little-endian:

    9-byte magic b"MMIDIDX\\x00\\x00" | uint64 version (1) | uint8 dtype code |
    uint64 sequence count S | uint64 document-index count D + 1 |
    int32 lengths[S] | int64 byte pointers[S] (into .bin) |
    int64 document indices[D + 1] (0, then the sequence count after each document)

`.bin`: every sequence's tokens, concatenated, in the dtype of the code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from mlmprep.core import storage
from mlmprep.core.errors import OutputError
from mlmprep.core.writer_lock import LOCK_SUFFIX

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {  # megatron-core's DType and fairseq's dtypes table agree on these
    "uint8": 1,
    "int8": 2,
    "int16": 3,
    "int32": 4,
    "int64": 5,
    "float64": 6,
    "float32": 7,
    "uint16": 8,
}
HEADER = struct.Struct("<9sQBQQ")
UINT16_VOCAB = 2**16  # vocabularies up to this many ids are stored as uint16, else int32
BIN_SUFFIX, IDX_SUFFIX = ".bin", ".idx"
MANIFEST_SUFFIX = ".json"  # PREFIX.json: what `mlmprep tokenize` made
WORK_SUFFIX = ".mlmprep-work"  # PREFIX.mlmprep-work/: its resume records and partials


def output_paths(prefix: str) -> dict[str, str]:
    """Where a tokenize output's files are."""
    return {
        "bin": prefix + BIN_SUFFIX,
        "idx": prefix + IDX_SUFFIX,
        "manifest": prefix + MANIFEST_SUFFIX,
        "work": prefix + WORK_SUFFIX,
        "lock": prefix + LOCK_SUFFIX,
    }


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, int32 otherwise (today's 128k-256k vocabularies)."""
    return np.dtype(np.uint16 if vocab_size <= UINT16_VOCAB else np.int32)


@dataclass(frozen=True)
class IndexHeader:
    """What the first bytes of an .idx say."""

    dtype: np.dtype
    sequences: int
    document_entries: int  # documents + 1

    @property
    def documents(self) -> int:
        return self.document_entries - 1

    @property
    def lengths_at(self) -> int:
        """Where the int32 lengths start."""
        return HEADER.size

    @property
    def pointers_at(self) -> int:
        """Where the int64 pointers start."""
        return self.lengths_at + 4 * self.sequences

    @property
    def documents_at(self) -> int:
        """Where the int64 document indices start."""
        return self.pointers_at + 8 * self.sequences

    def size(self) -> int:
        """The .idx size these counts imply."""
        return self.documents_at + 8 * self.document_entries

    def pack(self) -> bytes:
        code = DTYPE_CODES[self.dtype.name]
        return HEADER.pack(MAGIC, VERSION, code, self.sequences, self.document_entries)


def read_header(data: bytes, where: str) -> IndexHeader:
    """The header at the start of `data` (an .idx's first bytes), or a one-line error."""
    if len(data) < HEADER.size:
        raise OutputError(f"{where}: too short for an indexed-dataset header; rerun the command")
    magic, version, code, sequences, entries = HEADER.unpack_from(data)
    names = {c: n for n, c in DTYPE_CODES.items()}
    if magic != MAGIC or version != VERSION or code not in names:
        raise OutputError(f"{where}: not an MMIDIDX version 1 index; rerun the command")
    return IndexHeader(np.dtype(names[code]), sequences, entries)


@dataclass
class IndexArrays:
    """The three arrays of an .idx."""

    lengths: np.ndarray  # int32
    pointers: np.ndarray  # int64
    document_indices: np.ndarray  # int64


def read_index(path: str) -> tuple[IndexHeader, IndexArrays]:
    """A whole (partial, unit-sized) .idx in memory."""
    with storage.open_file(path, "rb") as handle:
        data = handle.read()
    header = read_header(data, path)
    if len(data) != header.size():
        raise OutputError(
            f"{path}: {len(data)} bytes but its header implies {header.size()}; rerun the command"
        )
    lengths = np.frombuffer(data, np.int32, header.sequences, header.lengths_at)
    pointers = np.frombuffer(data, np.int64, header.sequences, header.pointers_at)
    documents = np.frombuffer(data, np.int64, header.document_entries, header.documents_at)
    return header, IndexArrays(lengths, pointers, documents)


def pointers_of(lengths: np.ndarray, dtype: np.dtype, start: int = 0) -> np.ndarray:
    """Byte offsets of each sequence in .bin, the first at `start`."""
    sizes = lengths.astype(np.int64) * dtype.itemsize
    return start + np.cumsum(sizes) - sizes


def write_index(
    handle: BinaryIO, dtype: np.dtype, lengths: np.ndarray, document_indices: np.ndarray
) -> None:
    """A complete .idx for sequences of `lengths` and documents ending at `document_indices`."""
    handle.write(IndexHeader(dtype, len(lengths), len(document_indices)).pack())
    handle.write(lengths.astype(np.int32).tobytes())
    handle.write(pointers_of(lengths, dtype).tobytes())
    handle.write(document_indices.astype(np.int64).tobytes())
