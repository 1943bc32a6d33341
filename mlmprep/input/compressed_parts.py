"""Cut a large compressed file into parts of whole documents while decompressing it once.

A compressed stream cannot be opened in the middle, so the building process reads it
from the start and writes parts of about `unit_size` bytes to files that workers read,
a few at a time. A part ends at the first document start at or after `unit_size` bytes:
for jsonl, the next line; for text, the next non-blank line after a blank one. The cut
points depend on the content alone, never on the worker count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mlmprep.core import storage
from mlmprep.core.files import atomic_path
from mlmprep.input.discovery import Source
from mlmprep.input.readers import LINE_BYTES, READ_ERRORS, open_binary, read_error


@dataclass(frozen=True)
class Part:
    """One part of a streamed file: its source (None when it was done before)."""

    index: int
    source: Source | None


def cut_parts(
    source: Source, unit_size: int, part_path: Callable[[int], str], done: Callable[[int], bool]
) -> Iterator[Part]:
    """Decompress `source` once and yield its parts in order; a part that is `done`
    (recorded by an earlier run) is read through but not written again."""
    try:
        with open_binary(source.path) as stream:
            yield from _cut(stream, source, unit_size, part_path, done)
    except READ_ERRORS as exc:
        raise read_error(source.path, exc) from None


def _cut(
    stream: BinaryIO,
    source: Source,
    unit_size: int,
    part_path: Callable[[int], str],
    done: Callable[[int], bool],
) -> Iterator[Part]:
    index, size, first_line, line = 0, 0, 1, 1
    writer = _PartWriter(part_path(0), skip=done(0))
    blank_seen = at_line_start = True
    try:
        for piece in iter(lambda: stream.readline(LINE_BYTES), b""):
            starts_line = at_line_start
            at_line_start = piece.endswith(b"\n")
            if starts_line:
                blank = not piece.strip()
                starts_document = not blank and (source.format == "jsonl" or blank_seen)
                if size >= unit_size and starts_document:
                    yield Part(index, writer.close(source, first_line))
                    index, size, first_line = index + 1, 0, line
                    writer = _PartWriter(part_path(index), skip=done(index))
                blank_seen = blank
                line += 1
            writer.write(piece)
            size += len(piece)
    except BaseException as error:  # a read error, or the consumer stopped: no half part
        writer.discard(error)
        raise
    if size or index == 0:
        yield Part(index, writer.close(source, first_line))


class _PartWriter:
    """Writes one part under a temporary name, renamed into place when complete; a part
    left unfinished by an error is removed by `discard`."""

    def __init__(self, path: str, skip: bool) -> None:
        self.path = path
        self._open = contextlib.ExitStack()
        self._handle = None
        if not skip:  # not durable: a part is re-cut after a crash unless its unit is done
            tmp = self._open.enter_context(atomic_path(path, durable=False))
            self._handle = self._open.enter_context(storage.open_file(tmp, "wb"))

    def write(self, data: bytes) -> None:
        if self._handle is not None:
            self._handle.write(data)

    def close(self, source: Source, first_line: int) -> Source | None:
        if self._handle is None:
            return None
        self._open.close()
        return Source(self.path, source.format, origin=source.path, first_line=first_line)

    def discard(self, error: BaseException) -> None:
        self._open.__exit__(type(error), error, error.__traceback__)
