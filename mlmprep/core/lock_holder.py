"""Who holds an output's writer lock or lease, and the error a second writer gets."""

from __future__ import annotations

import datetime
import os
import socket
import time
from dataclasses import dataclass

from mlmprep.core.errors import OutputError
from mlmprep.core.processes import process_alive


class BusyError(OutputError):
    """Another process is writing the same output."""


# what a second writer is told when the holder's record cannot be read (yet)
UNKNOWN_HOLDER = "another mlmprep process is writing it (it has just started)"


@dataclass(frozen=True)
class Holder:
    """A writer: its process, host and start time (seconds since the epoch)."""

    pid: int
    host: str
    since: float

    @classmethod
    def of_this_process(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), time.time())

    def alive(self) -> bool:
        """False only when the holder ran on this host and its process is gone."""
        if self.host != socket.gethostname():
            return True
        return process_alive(self.pid)

    def describe(self) -> str:
        since = datetime.datetime.fromtimestamp(self.since).strftime("%Y-%m-%d %H:%M:%S")
        ago = round(time.time() - self.since)
        return (
            f"another mlmprep process is writing it (pid {self.pid} on {self.host}, "
            f"since {since}, {ago} s ago)"
        )
