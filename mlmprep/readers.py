"""Input files -> documents: text, jsonl, parquet, sentence-per-line; compressed or not."""

from __future__ import annotations

import bz2
import io
import json
import lzma
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa

from .errors import InputError

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}
FORMAT_BY_SUFFIX = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
BINARY_SNIFF_BYTES = 8192
MAX_EXAMPLES = 5


@dataclass
class Document:
    """One input document: paragraphs to split, or sentences already split (`presplit`)."""

    location: str
    lines: list[str]
    presplit: bool = False


@dataclass
class InputReport:
    """Accounting of what was read: every document is either used or skipped with a reason."""

    documents_read: int = 0
    documents_used: int = 0
    documents_skipped: Counter = field(default_factory=Counter)
    files_read: int = 0
    files_skipped: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    strict: bool = False

    def skip_document(self, location: str, reason: str) -> None:
        """Count a document that is dropped; in strict mode, fail naming it."""
        self.documents_read += 1
        self.documents_skipped[reason] += 1
        self._problem(location, reason)

    def skip_file(self, path: str, reason: str) -> None:
        """Count a file that yields nothing (binary, unreadable)."""
        self.files_skipped[reason] += 1
        self._problem(path, reason)

    def repair(self, location: str, reason: str) -> None:
        """Count a document used after repairing its bytes."""
        self.repaired[reason] += 1
        self._problem(location, f"{reason} (replaced)")

    def _problem(self, location: str, reason: str) -> None:
        message = f"{location}: {reason}"
        if self.strict:
            raise InputError(f"{message} (--strict is on; drop --strict to skip and count it)")
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)

    def merge_dict(self, data: dict, examples: list[str]) -> None:
        """Add counts from another report's `to_dict()` (from another unit or process)."""
        self.documents_read += data["documents"]["read"]
        self.documents_used += data["documents"]["used"]
        self.documents_skipped.update(data["documents"]["skipped"])
        self.files_read += data["files"]["read"]
        self.files_skipped.update(data["files"]["skipped"])
        self.repaired.update(data["repaired"])
        self.examples.extend(examples[: MAX_EXAMPLES - len(self.examples)])

    def to_dict(self) -> dict:
        """The accounting section of index.json (DESIGN.md §5)."""
        return {
            "documents": {
                "read": self.documents_read,
                "used": self.documents_used,
                "skipped": dict(sorted(self.documents_skipped.items())),
            },
            "files": {"read": self.files_read, "skipped": dict(sorted(self.files_skipped.items()))},
            "repaired": dict(sorted(self.repaired.items())),
        }


def split_suffixes(path: str) -> tuple[str, str | None]:
    """Return (format suffix, compression) of a file name, e.g. ('.jsonl', 'gzip')."""
    name = path.lower()
    compression = None
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression = codec
            name = name[: -len(suffix)]
            break
    dot = name.rfind(".")
    return (name[dot:] if dot > name.rfind("/") else ""), compression


def detect_format(path: str, requested: str) -> str:
    """The input format of a file: the requested one, or guessed from its extension."""
    if requested != "auto":
        return requested
    suffix, _ = split_suffixes(path)
    return FORMAT_BY_SUFFIX.get(suffix, "text")


def open_binary(path: str) -> BinaryIO:
    """Open a file for streaming bytes, decompressing by extension."""
    _, compression = split_suffixes(path)
    if compression is None:
        return open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "bz2" and not pa.Codec.is_available("bz2"):
        return bz2.open(path, "rb")
    stream = pa.input_stream(path, compression=compression, buffer_size=1 << 20)
    return io.BufferedReader(stream, 1 << 20)


def iter_documents(
    path: str,
    fmt: str,
    text_field: str,
    report: InputReport,
    start: int = 0,
    end: int | None = None,
) -> Iterator[Document]:
    """Yield the documents of one file (or of the byte range [start, end) of an uncompressed one).

    Binary files are left out by the planner, which sniffs every input first.
    """
    try:
        if fmt == "parquet":
            yield from _parquet_documents(path, text_field, report)
            return
        with open_binary(path) as stream:
            if start:
                stream.seek(start)
            else:
                report.files_read += 1
            lines = _numbered_lines(stream, path, start, end)
            if fmt == "jsonl":
                yield from _jsonl_documents(lines, text_field, report)
            else:
                yield from _blank_line_documents(lines, report, presplit=fmt == "sentences")
    except (OSError, EOFError, pa.ArrowException, lzma.LZMAError) as exc:
        if isinstance(exc, PermissionError):
            raise InputError(
                f"{path}: cannot read ({exc.strerror}); check its permissions"
            ) from None
        if isinstance(exc, FileNotFoundError):
            raise InputError(f"{path}: file vanished during the build") from None
        raise InputError(
            f"{path}: corrupt or truncated data ({exc}); re-create the file or leave it out"
        ) from None


def _numbered_lines(
    stream: BinaryIO, path: str, start: int, end: int | None
) -> Iterator[tuple[str, bytes]]:
    """Yield (location, raw line) pairs; location is path:line, or path@byte for ranges."""
    position = start
    for number, raw in enumerate(stream, 1):
        if end is not None and position >= end:
            return
        yield (f"{path}:{number}" if start == 0 else f"{path}@{position}"), raw
        position += len(raw)


def _decode(raw: bytes, location: str, report: InputReport) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.repair(location, "invalid_utf8")
        return raw.decode("utf-8", "replace")


def _blank_line_documents(
    lines: Iterator[tuple[str, bytes]], report: InputReport, presplit: bool
) -> Iterator[Document]:
    """Documents separated by blank lines; each line a paragraph (or a sentence if presplit)."""
    current: list[str] = []
    first = ""
    for location, raw in lines:
        text = _decode(raw, location, report).strip()
        if text:
            if not current:
                first = location
            current.append(text)
        elif current:
            yield Document(first, current, presplit)
            current = []
    if current:
        yield Document(first, current, presplit)


def _jsonl_documents(
    lines: Iterator[tuple[str, bytes]], text_field: str, report: InputReport
) -> Iterator[Document]:
    for location, raw in lines:
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            report.skip_document(location, "malformed JSON line")
            continue
        text = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            report.skip_document(location, f"missing text field {text_field!r}")
            continue
        yield Document(location, text.split("\n"))


def _parquet_documents(path: str, text_field: str, report: InputReport) -> Iterator[Document]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise InputError(
            f"{path}: no column {text_field!r} (columns: "
            f"{', '.join(parquet.schema_arrow.names)}); pass --text-field"
        )
    report.files_read += 1
    row = 0
    for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
        for text in batch.column(0).to_pylist():
            row += 1
            location = f"{path}:row {row}"
            if not isinstance(text, str):
                report.skip_document(location, f"missing text field {text_field!r}")
                continue
            yield Document(location, text.split("\n"))
