"""What local worker processes import, and starting the server that forks them early."""

from __future__ import annotations

from mlmprep.core.engines.local import worker_context

# the task functions' modules; pyarrow.compute costs ~0.08 s on first use
WORKER_MODULES = (
    "mlmprep.pipeline.units",
    "mlmprep.pipeline.shuffle",
    "mlmprep.pipeline.tokenize.units",
    "pyarrow.compute",
)


def start_worker_server() -> None:
    """Start the server that forks local workers, so that it imports their modules while
    this process goes on (no-op once it runs, or where workers are spawned)."""
    worker_context(WORKER_MODULES)
