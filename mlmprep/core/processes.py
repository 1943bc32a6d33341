"""Whether a process of this host still runs."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process `pid` exists (also when it is another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
