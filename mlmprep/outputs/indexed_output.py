"""Read a `mlmprep tokenize` output (PREFIX.bin, PREFIX.idx, PREFIX.json): its statistics
and its checks, for `stats` and `validate`. The .idx and .bin are read in chunks, so a
huge output needs no more memory than a small one."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

import numpy as np

from mlmprep.core import storage
from mlmprep.core.errors import OutputError
from mlmprep.core.files import read_json
from mlmprep.formats.indexed_format import HEADER, output_paths, pointers_of, read_header

KIND = "mlmprep-tokenize"
CHUNK = 1 << 20  # index entries or tokens read at a time
LENGTH_EDGES = (1, 8, 16, 32, 64, 128, 256, 512, 1024)  # histogram bins: [edge, next edge)


def tokenize_prefix(path: str) -> str | None:
    """The prefix when `path` names a tokenize output (the prefix, its .bin, .idx or .json),
    None when it does not."""
    for suffix in (".bin", ".idx", ".json", ""):
        if path.endswith(suffix):
            prefix = path[: len(path) - len(suffix)] if suffix else path
            manifest = output_paths(prefix)["manifest"]
            if storage.isfile(manifest):
                return prefix if _kind(manifest) == KIND else None
    return None


def _kind(manifest: str) -> str | None:
    try:
        return read_json(manifest).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


class IndexedOutput:
    """A tokenize output: its manifest, and its .idx/.bin read by sections."""

    def __init__(self, prefix: str) -> None:
        self.paths = output_paths(prefix)
        self.manifest = read_json(self.paths["manifest"])
        for key in ("bin", "idx"):
            if not storage.exists(self.paths[key]):
                raise OutputError(
                    f"{self.paths[key]}: missing; run the same `mlmprep tokenize` command "
                    "again to make it anew"
                )
        self.header = read_header(storage.read_range(self.paths["idx"], 0, HEADER.size), prefix)

    def _section(self, offset: int, count: int, dtype: type) -> Iterator[np.ndarray]:
        itemsize = np.dtype(dtype).itemsize
        for start in range(0, count, CHUNK):
            n = min(CHUNK, count - start)
            at = offset + start * itemsize
            yield np.frombuffer(storage.read_range(self.paths["idx"], at, at + n * itemsize), dtype)

    def lengths(self) -> Iterator[np.ndarray]:
        return self._section(self.header.lengths_at, self.header.sequences, np.int32)

    def pointers(self) -> Iterator[np.ndarray]:
        return self._section(self.header.pointers_at, self.header.sequences, np.int64)

    def document_indices(self) -> Iterator[np.ndarray]:
        header = self.header
        return self._section(header.documents_at, header.document_entries, np.int64)

    def tokens(self) -> Iterator[np.ndarray]:
        dtype = self.header.dtype
        size = storage.size(self.paths["bin"])
        step = CHUNK * dtype.itemsize
        for at in range(0, size - size % dtype.itemsize, step):
            data = storage.read_range(self.paths["bin"], at, min(at + step, size))
            yield np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype)


def tokenize_stats(prefix: str) -> dict:
    """Counts, sequence lengths and what Megatron will skip, of a tokenize output."""
    output = IndexedOutput(prefix)
    histogram = np.zeros(len(LENGTH_EDGES), np.int64)
    tokens, longest = 0, 0
    for lengths in output.lengths():
        histogram += np.bincount(
            np.searchsorted(LENGTH_EDGES, lengths, side="right") - 1, minlength=len(LENGTH_EDGES)
        )[: len(LENGTH_EDGES)]
        tokens += int(lengths.astype(np.int64).sum())
        longest = max(longest, int(lengths.max(initial=0)))
    header, manifest = output.header, output.manifest
    labels = [f"{a}-{b - 1}" for a, b in itertools.pairwise(LENGTH_EDGES)]
    return {
        "kind": KIND,
        "level": manifest["identity"]["config"]["level"],
        "dtype": header.dtype.name,
        "documents": header.documents,
        "sequences": header.sequences,
        "tokens": tokens,
        "mean_sequence_tokens": round(tokens / max(header.sequences, 1), 3),
        "max_sequence_tokens": longest,
        "length_histogram": dict(zip([*labels, f"{LENGTH_EDGES[-1]}+"], histogram.tolist())),
        "counts": manifest["counts"],
        "accounting": manifest["accounting"],
        "files": manifest["files"],
    }


def validate_tokenize(prefix: str) -> dict:
    """{"ok", "problems", "sequences", "documents"}: the header against the file sizes,
    pointers and document indices against the lengths, checksums, ids against the
    vocabulary."""
    output = IndexedOutput(prefix)
    header, files = output.header, output.manifest["files"]
    problems = _size_problems(output)
    if not problems:
        problems += _index_problems(output)
        problems += _checksum_problems(output, files)
    if not problems:
        vocab_size = output.manifest["identity"]["tokenizer"]["vocab_size"]
        largest = max((int(t.max(initial=0)) for t in output.tokens()), default=0)
        if largest >= vocab_size:
            problems.append(f"{output.paths['bin']}: id {largest} is past the vocabulary")
    return {
        "ok": not problems,
        "problems": problems,
        "sequences": header.sequences,
        "documents": header.documents,
    }


def _size_problems(output: IndexedOutput) -> list[str]:
    header, paths = output.header, output.paths
    idx_size, bin_size = storage.size(paths["idx"]), storage.size(paths["bin"])
    if idx_size != header.size():
        return [f"{paths['idx']}: {idx_size} bytes, its header implies {header.size()}"]
    tokens = sum(int(lengths.astype(np.int64).sum()) for lengths in output.lengths())
    if bin_size != tokens * header.dtype.itemsize:
        return [
            f"{paths['bin']}: {bin_size} bytes, the index holds {tokens} tokens of "
            f"{header.dtype.name} ({tokens * header.dtype.itemsize} bytes)"
        ]
    return []


def _index_problems(output: IndexedOutput) -> list[str]:
    header, where = output.header, output.paths["idx"]
    start = 0
    for lengths, pointers in zip(output.lengths(), output.pointers()):
        if (lengths < 0).any() or not np.array_equal(
            pointers, pointers_of(lengths, header.dtype, start)
        ):
            return [f"{where}: sequence pointers do not follow the lengths"]
        start += int(lengths.astype(np.int64).sum()) * header.dtype.itemsize
    previous = None
    for chunk in output.document_indices():
        values = chunk if previous is None else np.concatenate([[previous], chunk])
        if (np.diff(values) < 0).any() or (previous is None and chunk[0] != 0):
            return [f"{where}: document indices do not rise from 0"]
        previous = int(chunk[-1])
    if previous != header.sequences:
        return [f"{where}: the last document ends at {previous}, not {header.sequences}"]
    return []


def _checksum_problems(output: IndexedOutput, files: dict) -> list[str]:
    problems = []
    for key in ("bin", "idx"):
        digest = hashlib.sha256()
        path = output.paths[key]
        size = storage.size(path)
        for at in range(0, size, 8 * CHUNK):
            digest.update(storage.read_range(path, at, min(at + 8 * CHUNK, size)))
        if digest.hexdigest() != files[key]["sha256"]:
            problems.append(f"{path}: sha256 differs from {output.paths['manifest']} (damaged)")
    return problems
