"""One writer per object-store output: a lease object beside the output.

The lease holds its owner (a random token), host, pid, start time and heartbeat. Its
holder renews it every third of LEASE_SECONDS; a lease whose heartbeat is older than
LEASE_SECONDS is taken over (a holder killed with SIGKILL stops renewing it, so a writer
on another host waits at most that long; on the same host a lease whose process is gone
is taken over at once, as is one left by a run that could not delete it, the store
being down when it ended). On S3 every change is a conditional write: created only
if absent (If-None-Match), replaced or deleted only if unchanged since it was read
(If-Match), so two writers can never both hold it. Stores without conditional writes get
the same protocol with a read-back check, which narrows the race but cannot close it.

A holder that cannot renew for two thirds of the lease (two beats in a row failed, or
another writer replaced the lease) has lost it: from then on every commit of a file
(`core/files.atomic_path`) raises `LeaseLostError`, in the building process through the
lease itself and in workers through `LeaseCheck`, which reads the lease object before
each commit. The third left over is the margin before another host may take over.

`MLMPREP_LEASE_SECONDS` sets the lease (default 60 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from mlmprep.core import files, storage
from mlmprep.core.errors import OutputError
from mlmprep.core.lock_holder import UNKNOWN_HOLDER, BusyError, Holder

DEFAULT_LEASE_SECONDS = 60.0
LOST_AFTER = 2 / 3  # of the lease without a renewal: lost (another may take over at 1)
_HELD: dict[str, _Lease] = {}  # the leases this process holds, by path


class LeaseLostError(OutputError):
    """This run's lease was lost: it must not write to the output any more."""


class _Conflict(Exception):
    """The lease object changed since it was read (a precondition failed)."""


@dataclass(frozen=True)
class LeaseRecord:
    """What the lease object holds."""

    holder: Holder
    owner: str
    heartbeat: float
    lease_seconds: float

    def expired(self, now: float) -> bool:
        """Not renewed for lease_seconds, or held by a process of this host that is gone."""
        return now - self.heartbeat > self.lease_seconds or not self.holder.alive()

    def overdue(self, now: float) -> bool:
        """Not renewed for LOST_AFTER of the lease: its holder must stop writing."""
        return now - self.heartbeat > self.lease_seconds * LOST_AFTER

    def encode(self) -> bytes:
        fields = {"owner": self.owner, "heartbeat": self.heartbeat}
        return json.dumps(
            {**asdict(self.holder), **fields, "lease_seconds": self.lease_seconds}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> LeaseRecord | None:
        try:
            fields = json.loads(data)
            holder = Holder(fields["pid"], fields["host"], fields["since"])
            return cls(holder, fields["owner"], fields["heartbeat"], fields["lease_seconds"])
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as expired


def lease_seconds() -> float:
    return float(os.environ.get("MLMPREP_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


@contextlib.contextmanager
def object_lease(path: str, output: str) -> Iterator[LeaseCheck]:
    """Hold the lease at URL `path` for writing `output`, renewed in a thread; raise
    BusyError at once when another live writer holds it. Yields the check that workers
    run before committing a file; in this process every commit is checked meanwhile."""
    lease = _Lease(_store_for(path), lease_seconds(), path, output)
    lease.acquire(output)
    renewer = threading.Thread(target=lease.renew_until_stopped, daemon=True)
    renewer.start()
    _HELD[path] = lease
    check = LeaseCheck(path, output, lease.record.owner, lease.seconds)
    try:
        with commits_guarded(check):
            yield check
    finally:
        del _HELD[path]
        lease.stop.set()
        if not (lease.lost or lease.stale()):  # a lost lease is not waited for nor deleted
            renewer.join()
            lease.release()
    lease.verify()


@dataclass(frozen=True)
class LeaseCheck:
    """What a worker needs to tell whether the build still holds its lease (picklable)."""

    path: str
    output: str
    owner: str
    seconds: float

    def verify(self) -> None:
        """Raise LeaseLostError unless the lease is still this build's and fresh: in the
        holding process from what its renewals saw, elsewhere by reading the lease."""
        held = _HELD.get(self.path)
        if held is not None and held.record.owner == self.owner:
            held.verify()
            return
        _, data = _store_for(self.path).read()
        record = LeaseRecord.decode(data) if data is not None else None
        if record is None or record.owner != self.owner:
            raise _lost(self.output, self.path, "another writer holds it now")
        if record.overdue(time.time()):
            raise _lost(self.output, self.path, "its heartbeat stopped")


@contextlib.contextmanager
def commits_guarded(check: LeaseCheck | None) -> Iterator[None]:
    """In a worker: every file committed in the block first checks the build's lease
    (none to check for a local output, whose flock cannot be lost)."""
    if check is None:
        yield
        return
    with files.commits_checked_by(check.verify):
        yield


def _lost(output: str, path: str, why: str) -> LeaseLostError:
    return LeaseLostError(
        f"{output}: this run lost its lease ({path}; {why}) and stopped writing; run the "
        "same command again once no other writer is at work there, which checks the output"
    )


class _Lease:
    def __init__(
        self, store: _S3Store | _PlainStore, seconds: float, path: str, output: str
    ) -> None:
        self.store, self.seconds, self.path, self.output = store, seconds, path, output
        self.record = LeaseRecord(Holder.of_this_process(), uuid.uuid4().hex, 0.0, seconds)
        self.tag = ""
        self.stop = threading.Event()
        self.lost = ""  # why, once lost

    def acquire(self, output: str) -> None:
        self.record = replace(self.record, heartbeat=time.time())
        try:
            self.tag = self.store.create(self.record.encode())
            return
        except _Conflict:
            pass
        tag, data = self.store.read()
        current = LeaseRecord.decode(data) if data is not None else None
        if current is not None and not current.expired(time.time()):
            raise _busy(output, current)
        try:  # expired (its holder died) or gone: take it over
            self.tag = self.store.replace(self.record.encode(), tag)
        except _Conflict:
            _, data = self.store.read()
            raise _busy(output, LeaseRecord.decode(data or b"")) from None

    def renew_until_stopped(self) -> None:
        """Renew every third of the lease; a failed renewal counts toward losing it."""
        while not self.stop.wait(self.seconds / 3):
            renewed = replace(self.record, heartbeat=time.time())
            try:
                self.tag = self.store.replace(renewed.encode(), self.tag)
                self.record = renewed
            except _Conflict:
                self.lost = "another writer holds it now"
                return
            except OSError:  # the store is unreachable: lost if it stays so
                if self.stale():
                    self.lost = "its heartbeat could not be renewed"
                    return

    def stale(self) -> bool:
        return self.record.overdue(time.time())

    def verify(self) -> None:
        """Raise LeaseLostError once the lease is lost (or overdue for renewal)."""
        if self.lost or self.stale():
            raise _lost(self.output, self.path, self.lost or "its heartbeat stopped")

    def release(self) -> None:
        with contextlib.suppress(OSError, _Conflict):
            self.store.delete(self.tag)


def _busy(output: str, record: LeaseRecord | None) -> BusyError:
    """The error for a second writer, naming the lease's holder."""
    holder = UNKNOWN_HOLDER
    if record is not None:
        left = max(0, round(record.heartbeat + record.lease_seconds - time.time()))
        holder = (
            f"{record.holder.describe()}; its lease runs out {left} s from now if it stops "
            "renewing it"
        )
    return BusyError(f"{output}: {holder}; wait for it to end")


class _S3Store:
    """The lease object on S3, changed only by conditional writes."""

    def __init__(self, fs, bucket: str, key: str) -> None:
        self.fs, self.bucket, self.key = fs, bucket, key

    def create(self, data: bytes) -> str:
        return self._call("put_object", Body=data, IfNoneMatch="*")["ETag"]

    def replace(self, data: bytes, tag: str) -> str:
        if not tag:  # it was gone when read: only a create may replace nothing
            return self.create(data)
        return self._call("put_object", Body=data, IfMatch=tag)["ETag"]

    def delete(self, tag: str) -> None:
        self._call("delete_object", IfMatch=tag)

    def read(self) -> tuple[str, bytes | None]:
        path = f"{self.bucket}/{self.key}"
        try:
            tag = self.fs.info(path, refresh=True)["ETag"]
            return tag, self.fs.cat_file(path)
        except FileNotFoundError:
            return "", None

    def _call(self, method: str, **kwargs) -> dict:
        try:
            return self.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)
        except OSError as exc:
            if isinstance(exc, FileExistsError) or _precondition_failed(exc):
                raise _Conflict from None
            raise


def _precondition_failed(exc: OSError) -> bool:
    response = getattr(exc.__cause__, "response", None) or {}
    return response.get("Error", {}).get("Code") in ("PreconditionFailed", "412")


class _PlainStore:
    """The lease object on a store without conditional writes: the tag is the content's
    hash, compared before each change and read back after it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def create(self, data: bytes) -> str:
        if storage.exists(self.path):
            raise _Conflict
        storage.makedirs(storage.dirname(self.path))
        return self._write_and_check(data)

    def replace(self, data: bytes, tag: str) -> str:
        if self.read()[0] != tag:
            raise _Conflict
        return self._write_and_check(data)

    def delete(self, tag: str) -> None:
        if self.read()[0] == tag:
            storage.remove(self.path)

    def read(self) -> tuple[str, bytes | None]:
        try:
            with storage.open_file(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return "", None
        return hashlib.sha256(data).hexdigest(), data

    def _write_and_check(self, data: bytes) -> str:
        with storage.open_file(self.path, "wb") as handle:
            handle.write(data)
        tag, written = self.read()
        if written != data:
            raise _Conflict
        return tag


def _store_for(path: str) -> _S3Store | _PlainStore:
    fs, inner = storage.filesystem(path)
    if hasattr(fs, "call_s3"):
        bucket, key, _ = fs.split_path(inner)
        return _S3Store(fs, bucket, key)
    return _PlainStore(path)
