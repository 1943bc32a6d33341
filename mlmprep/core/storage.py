"""Where files live: local paths through `os` (the fast path, no fsspec import), and
URLs (`file://`, `memory://`, `s3://`, `gs://`, ...) through fsspec.

On object stores a rename is a copy: there, the completion records under the output's
work directory decide what is finished, not the presence of a file.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

_OPTIONS: dict[str, Any] = {}
# S3 calls retry with botocore's "standard" mode (exponential backoff with full jitter,
# on throttling such as 503 SlowDown, on 5xx and on connection errors) and time out;
# s3fs retries the whole call (a read cut mid-body included) a few times on top. The two
# multiply, so both are kept small: a store that is down fails a call within seconds.
# The user's own storage options win, key by key.
S3_CONFIG = {
    "retries": {"max_attempts": 4, "mode": "standard"},
    "connect_timeout": 10,
    "read_timeout": 60,
}
S3_CALL_RETRIES = 3  # s3fs's attempts at a call (a read cut mid-body is retried only here)
_RETRIES = {"count": 0}  # botocore's retries of S3 requests that then succeeded


def _count_retries(parsed: dict | None = None, **_: Any) -> None:
    """botocore's after-call handler: add the retries the request needed."""
    if parsed:
        _RETRIES["count"] += parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)


def take_retries() -> int:
    """S3 requests retried (by botocore) in this process since the last call."""
    count, _RETRIES["count"] = _RETRIES["count"], 0
    return count


def configure(options: dict[str, Any]) -> None:
    """Storage options for every URL this process opens (fsspec keyword arguments, such
    as `endpoint_url` for an S3-compatible store)."""
    _OPTIONS.clear()
    _OPTIONS.update(options)


def options() -> dict[str, Any]:
    """The storage options this process was given (for the tasks it hands to workers)."""
    return dict(_OPTIONS)


def is_url(path: str) -> bool:
    return "://" in path


def filesystem(path: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the URL's path on it."""
    try:
        import fsspec
    except ImportError:
        from mlmprep.core.errors import ConfigError

        raise ConfigError(
            f"{path}: URLs need fsspec: pip install fsspec (and s3fs, gcsfs...)"
        ) from None
    options = dict(_OPTIONS)
    s3 = path.startswith(("s3://", "s3a://"))
    if s3:
        options["config_kwargs"] = {**S3_CONFIG, **options.get("config_kwargs", {})}
    fs, inner = fsspec.core.url_to_fs(path, **options)
    if s3:
        fs.retries = S3_CALL_RETRIES  # a class attribute of s3fs, not an argument
        if not getattr(fs, "_mlmprep_counts_retries", False):  # instances are cached
            fs.connect().meta.events.register("after-call.s3", _count_retries)
            fs._mlmprep_counts_retries = True
    return fs, inner


def _fs(path: str) -> Any:
    return filesystem(path)[0]


def join(base: str, *parts: str) -> str:
    if is_url(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_url(path) else os.path.basename(path)


def dirname(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) if is_url(path) else os.path.dirname(path)


def open_file(path: str, mode: str = "rb") -> IO:
    """A binary file object (seekable when reading)."""
    return _fs(path).open(path, mode) if is_url(path) else open(path, mode)


def read_range(path: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of a file: one ranged GET on an object store."""
    if is_url(path):
        return _fs(path).cat_file(path, start=start, end=end)
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start)


def exists(path: str) -> bool:
    return _fs(path).exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _fs(path).isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    return _fs(path).isfile(path) if is_url(path) else os.path.isfile(path)


def makedirs(path: str) -> None:
    if is_url(path):
        _fs(path).makedirs(path, exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    """Names (not paths) in a directory, sorted; empty when it does not exist."""
    if is_url(path):
        fs = _fs(path)
        if not fs.isdir(path):
            return []
        return sorted(basename(entry) for entry in fs.ls(path, detail=False))
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def replace(source: str, target: str) -> None:
    """Rename (atomic locally; a copy and delete on object stores)."""
    if is_url(source):
        _fs(source).mv(source, target)
    else:
        os.replace(source, target)


def remove(path: str) -> None:
    if is_url(path):
        _fs(path).rm(path)
    else:
        os.remove(path)


def rmtree(path: str) -> None:
    if is_url(path):
        fs = _fs(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    else:
        with contextlib.suppress(FileNotFoundError):  # already gone is fine; other errors are not
            shutil.rmtree(path)


def size(path: str) -> int:
    return _fs(path).size(path) if is_url(path) else os.path.getsize(path)


def sync(path: str) -> None:
    """fsync a local file or directory (a no-op for URLs: an object store's write is
    durable once it returns). Its errors are raised: an EIO from fsync is the one sign
    that written data was lost."""
    if is_url(path):
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def arrow_sink(path: str) -> pa.NativeFile:
    """An Arrow output stream for IPC and Parquet writers."""
    if is_url(path):
        return pa.PythonFile(open_file(path, "wb"), mode="w")
    return pa.OSFile(path, "wb")


def parquet_file(path: str) -> pq.ParquetFile:
    return pq.ParquetFile(open_file(path, "rb") if is_url(path) else path)
