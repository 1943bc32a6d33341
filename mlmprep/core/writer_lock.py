"""One writer per output: an OS lock (flock) on a lock file beside the output, taken
before anything there is touched. The kernel drops it when its process dies, however it
dies, so a killed run never blocks the next one. An object-store output gets a lease
object at the same path instead (`lease.py`).

The lock file sits beside the work directory, not inside it: `--overwrite` removes a
work directory, and the lock must outlive that. It is removed when the lock is released;
a process that locked a file removed meanwhile sees that and takes the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict

from mlmprep.core import storage
from mlmprep.core.errors import OutputError
from mlmprep.core.lease import LeaseCheck, object_lease
from mlmprep.core.lock_holder import UNKNOWN_HOLDER, BusyError, Holder

LOCK_SUFFIX = ".mlmprep-lock"


@contextlib.contextmanager
def writer_lock(path: str, output: str) -> Iterator[LeaseCheck | None]:
    """Hold the lock at `path` for writing `output`, or raise BusyError at once naming the
    holder. An object-store output is held by a lease object at `path`: then the block
    gets the check its workers run before committing a file (an flock cannot be lost)."""
    if storage.is_url(path):
        with object_lease(path, output) as check:
            yield check
        return
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = _acquire(path, output)
    except BusyError:
        raise
    except OSError as exc:
        raise OutputError(
            f"{output}: cannot write there ({exc.strerror}: {exc.filename}); choose another "
            "output or fix its permissions"
        ) from None
    try:
        yield None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(handle)


def _acquire(path: str, output: str) -> int:
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 4096, 0)
            os.close(handle)
            raise BusyError(f"{output}: {_describe(holder)}; wait for it to end") from None
        try:
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder removed as we opened it
            break
        os.close(handle)
    os.ftruncate(handle, 0)
    os.pwrite(handle, json.dumps(asdict(Holder.of_this_process())).encode(), 0)
    return handle


def _describe(data: bytes) -> str:
    """Who holds the lock, from what it wrote there."""
    try:
        return Holder(**json.loads(data)).describe()
    except (ValueError, TypeError):
        return UNKNOWN_HOLDER
