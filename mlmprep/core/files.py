"""Whole-file writes that are never seen half-done, JSON reads, checksums; for local paths
and fsspec URLs alike (through `storage`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

from mlmprep.core import storage

TEMPORARY_MARK = ".tmp-"  # a file being written is named <final name>.tmp-<pid>
_COMMIT_CHECKS: list[Callable[[], None]] = []  # run before every rename into place


@contextlib.contextmanager
def commits_checked_by(check: Callable[[], None]) -> Iterator[None]:
    """Run `check` before every file is renamed into place while the block runs (it
    raises to stop the commit: the writer lost its lease). A check already running (a
    task run in the building process) is not added twice."""
    if check in _COMMIT_CHECKS:
        yield
        return
    _COMMIT_CHECKS.append(check)
    try:
        yield
    finally:
        _COMMIT_CHECKS.remove(check)


def temporary_name(path: str) -> str:
    """Where this process writes `path` before renaming it into place."""
    return f"{path}{TEMPORARY_MARK}{os.getpid()}"


def is_temporary_of(name: str, final_name: str) -> bool:
    """True when `name` is a temporary file of `final_name` (left by any process)."""
    return name.startswith(final_name + TEMPORARY_MARK)


@contextlib.contextmanager
def atomic_path(path: str, durable: bool = True) -> Iterator[str]:
    """A temporary path to write `path` under: renamed to `path` when the block ends
    normally, removed when it raises, so `path` never holds a half-written file. When
    `durable`, the file is fsynced before the rename and its directory after it, so what
    is under its final name survives a crash of the machine too."""
    tmp = temporary_name(path)
    try:
        yield tmp
        for check in _COMMIT_CHECKS:
            check()
        if durable:
            storage.sync(tmp)
        storage.replace(tmp, path)
        if durable:
            storage.sync(storage.dirname(path) or ".")
    except BaseException:
        with contextlib.suppress(OSError):  # the error being raised says more
            if storage.exists(tmp):
                storage.remove(tmp)
        raise


@contextlib.contextmanager
def open_atomically(path: str) -> Iterator[IO[bytes]]:
    """A binary file to write `path` through: synced and renamed into place when the
    block ends normally, removed when it raises."""
    with atomic_path(path) as tmp, storage.open_file(tmp, "wb") as handle:
        yield handle


def write_text_atomically(path: str, text: str) -> None:
    """Write UTF-8 text to `path`; never half-written under `path`."""
    with open_atomically(path) as handle:
        handle.write(text.encode("utf-8"))


def write_json_atomically(path: str, data: Any) -> None:
    """Write `data` as indented JSON with sorted keys; never half-written under `path`."""
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> Any:
    with storage.open_file(path, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with storage.open_file(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
