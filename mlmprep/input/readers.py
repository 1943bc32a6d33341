"""Input files -> documents: text, jsonl, parquet, sentence-per-line; compressed or not."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from mlmprep.core import storage
from mlmprep.core.errors import InputError
from mlmprep.input.accounting import InputReport
from mlmprep.input.jsonl_records import jsonl_texts
from mlmprep.input.long_text import cut_long

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
LINE_BYTES = 1 << 20  # longest piece of a line read at once; longer lines are cut at whitespace
PART_CHARS = 1 << 20  # a long document is handed on in parts of about this many characters


@dataclass
class Document:
    """A document, or one part of a long one: paragraphs to split, or sentences already
    split (`presplit`). `continued` says that more parts of the same document follow."""

    location: str
    lines: list[str]
    presplit: bool = False
    continued: bool = False


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


class _ClosingReader(io.BufferedReader):
    """A decompressing stream over a file object that closes that file too (GzipFile,
    BZ2File and LZMAFile leave a file object they were given open)."""

    def __init__(self, stream: BinaryIO, underlying: BinaryIO) -> None:
        super().__init__(stream, 1 << 20)
        self._underlying = underlying

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._underlying.close()


def open_binary(path: str) -> BinaryIO:
    """Open a file (or URL, through fsspec) for streaming bytes, decompressing by extension."""
    _, compression = split_suffixes(path)
    if storage.is_url(path):
        raw = storage.open_file(path, "rb")
        if compression == "gzip":
            return _ClosingReader(gzip.GzipFile(fileobj=raw), raw)
        if compression == "bz2":
            return _ClosingReader(bz2.BZ2File(raw), raw)
        if compression == "xz":
            return _ClosingReader(lzma.LZMAFile(raw), raw)
        if compression == "zstd":
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")
            return io.BufferedReader(stream, 1 << 20)
        return io.BufferedReader(raw, 1 << 20)
    if compression is None:
        return open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "bz2" and not pa.Codec.is_available("bz2"):
        return bz2.open(path, "rb")
    return io.BufferedReader(_UpToDamage(path, compression), 1 << 20)


class _UpToDamage(io.RawIOBase):
    """A pyarrow decompressing stream that yields a damaged file's text up to the damage.

    pyarrow fails a read that reaches damaged or truncated data as a whole, so a read of
    1 MiB would lose all of the good text before the damage, and a small file all of it.
    On the first such failure the file is opened again, read up to where the failure
    began, and read on in steps of DAMAGE_STEP bytes until the damage."""

    def __init__(self, path: str, compression: str) -> None:
        self._path, self._compression = path, compression
        self._stream = self._open()
        self._position = 0  # decompressed bytes handed on
        self._step: int | None = None  # set once the damage is near

    def _open(self) -> pa.NativeFile:
        return pa.input_stream(self._path, compression=self._compression, buffer_size=1 << 20)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        try:
            data = self._stream.read(min(len(buffer), self._step or len(buffer)))
        except READ_ERRORS as exc:
            if self._step or not is_data_error(exc):
                raise
            self._stream.close()
            self._stream = self._open()
            for start in range(0, self._position, 1 << 20):  # read before, without damage
                self._stream.read(min(1 << 20, self._position - start))
            self._step = DAMAGE_STEP
            return self.readinto(buffer)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


DAMAGE_STEP = 1024  # a damaged file loses less than this much text before the damage


def iter_documents(
    path: str,
    fmt: str,
    text_field: str,
    report: InputReport,
    start: int = 0,
    end: int | None = None,
    origin: str | None = None,
    first_line: int = 1,
) -> Iterator[Document]:
    """Yield the documents of one file (or of the byte range [start, end) of an uncompressed one).

    A part cut from a compressed `origin` file is named after it in messages, its lines
    counted from `first_line`. Binary files are left out by the planner, which sniffs
    every input first.
    """
    name = origin or path
    try:
        if fmt == "parquet":
            yield from _parquet_documents(path, text_field, report)
            return
        with open_binary(path) as stream:
            if start:
                stream.seek(start)
            elif first_line == 1:
                report.files_read += 1
            lines = _numbered_lines(
                stream, name, start, end, None if fmt == "jsonl" else LINE_BYTES, first_line
            )
            if fmt == "jsonl":
                yield from _jsonl_documents(lines, text_field, report, name)
            else:
                yield from _blank_line_documents(lines, report, presplit=fmt == "sentences")
    except READ_ERRORS as exc:
        if not is_data_error(exc):
            raise read_error(name, exc) from None
        # like other bad input: counted, and fatal only with --strict; the documents
        # before the damage are used (the same ones on every run)
        report.skip_file(name, CORRUPT_REASON)


READ_ERRORS = (OSError, EOFError, pa.ArrowException, lzma.LZMAError, zlib.error)
CORRUPT_REASON = "corrupt or truncated data"


def is_data_error(exc: BaseException) -> bool:
    """A file's bytes are bad: decompression or decoding failed. An error of the system
    or the network (one with an errno, a timeout, a lost connection) is not: the storage
    layer has retried it already (s3fs raises EIO after its retries), and it fails the
    build with its cause rather than cutting the file short."""
    if isinstance(exc, (EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile)):
        return True
    if isinstance(exc, OSError):  # pyarrow's and bz2's decompression errors have no errno
        return exc.errno is None and not isinstance(exc, (TimeoutError, ConnectionError))
    return isinstance(exc, pa.ArrowException)


def read_error(path: str, exc: BaseException) -> InputError:
    """The one-line message for a file that cannot be read (permissions, I/O, corruption)."""
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: cannot read (permission denied); check its permissions")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: file vanished during the build")
    if not is_data_error(exc):
        cause = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        return InputError(
            f"{path}: reading failed ({type(exc).__name__}: {cause or 'no detail'}); nothing "
            "of it was counted as bad data; once the storage answers, run the same command "
            "again to resume"
        )
    return InputError(
        f"{path}: {CORRUPT_REASON} ({exc}); re-create the file, or leave it out of the "
        "inputs and run again with --overwrite (the inputs then differ)"
    )


def _numbered_lines(
    stream: BinaryIO,
    path: str,
    start: int,
    end: int | None,
    piece_bytes: int | None,
    first_line: int = 1,
) -> Iterator[tuple[str, bytes]]:
    """Yield (location, raw line) pairs; location is path:line, or path@byte for ranges.

    With `piece_bytes`, a longer line comes in pieces cut at whitespace (never inside a
    UTF-8 character), so a 50 MB line without newline is never held whole.
    """
    position, number, pending = start, first_line - 1, b""
    location = path
    while True:
        at_line_start = not pending
        if at_line_start and end is not None and position >= end:
            return
        read = stream.readline(piece_bytes or -1)
        piece = pending + read
        if not piece:
            return
        if at_line_start:
            number += 1
            location = f"{path}:{number}" if start == 0 else f"{path}@{position}"
        pending = b""
        if piece_bytes and len(read) == piece_bytes and not read.endswith(b"\n"):
            cut = _piece_end(piece)
            piece, pending = piece[:cut], piece[cut:]
        position += len(piece)
        yield location, piece


def _piece_end(data: bytes) -> int:
    """Where to cut a piece of a long line: after the last blank in its second half, or
    before the last UTF-8 lead byte."""
    blank = max(data.rfind(b" "), data.rfind(b"\t"))
    if blank >= len(data) // 2:
        return blank + 1
    cut = len(data) - 1
    while cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut or len(data)


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
    part_size = 0
    started = False
    first = ""
    for location, raw in lines:
        text = _decode(raw, location, report).strip()
        if text:
            if not started:
                first, started = location, True
            current.append(text)
            part_size += len(text)
            if part_size >= PART_CHARS:
                yield Document(first, current, presplit, continued=True)
                current, part_size = [], 0
        elif started:
            yield Document(first, current, presplit)
            current, part_size, started = [], 0, False
    if started:
        yield Document(first, current, presplit)


def _parts(location: str, text: str) -> Iterator[Document]:
    """A jsonl/parquet document, in parts of about PART_CHARS when it is long."""
    if len(text) <= PART_CHARS:
        yield Document(location, text.split("\n"))
        return
    pieces = [p for paragraph in text.split("\n") for p in cut_long(paragraph, PART_CHARS)]
    part: list[str] = []
    size = 0
    for piece in pieces:
        if part and size + len(piece) > PART_CHARS:
            yield Document(location, part, continued=True)
            part, size = [], 0
        part.append(piece)
        size += len(piece)
    yield Document(location, part)


def _jsonl_documents(
    lines: Iterator[tuple[str, bytes]], text_field: str, report: InputReport, name: str
) -> Iterator[Document]:
    for location, text in jsonl_texts(lines, text_field, report, name):
        yield from _parts(location, text)


def _parquet_documents(path: str, text_field: str, report: InputReport) -> Iterator[Document]:

    parquet = storage.parquet_file(path)
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
            yield from _parts(location, text)
