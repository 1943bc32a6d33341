"""RunOptions: how a build runs (workers, engine, temporary space); never what it makes."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlmprep.text.tokenizer_backends import DEFAULT_BACKEND


@dataclass(frozen=True)
class RunOptions:
    """How to run a build; nothing here changes the output bytes."""

    workers: int = 1
    engine: str = "local"
    scheduler: str | None = None
    strict: bool = False
    overwrite: bool = False
    progress: bool = False
    tmp_dir: str | None = None
    storage_options: dict = field(default_factory=dict)
    tokenizer_backend: str = DEFAULT_BACKEND
    verify: bool = False  # a finished build's rerun checks shard checksums, not only sizes
    shuffle_groups: int | None = None  # groups of a two-level shuffle; None: by size

    @property
    def in_process(self) -> bool:
        """Every task runs in the calling process (no worker process at all)."""
        return self.engine == "local" and self.workers == 1

    @property
    def forks_local_workers(self) -> bool:
        return self.engine == "local" and self.workers > 1
