"""Dask engine: the same per-unit and per-bucket functions, as tasks on a Dask cluster.

Without a scheduler address it starts a `LocalCluster` of `workers` processes (one thread
each). Spill files and shards go through the output directory, which every worker must
see (a shared filesystem); nothing but small result records travels to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError, MlmprepError
from ..manifest import versions

CONNECT_TIMEOUT = "30s"


class DaskEngine:
    """Runs functions over tasks on a Dask cluster; results arrive as they finish."""

    name = "dask"

    def __init__(
        self,
        workers: int,
        scheduler: str | None = None,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.workers = workers
        self.scheduler = scheduler
        self._initializer = initializer
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskEngine:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--engine dask needs dask: pip install 'mlmprep[dask]'") from None
        try:
            if self.scheduler:
                self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            else:
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = Client(self._cluster)
        except OSError as exc:
            raise ConfigError(
                f"--scheduler {self.scheduler}: cannot reach the Dask scheduler ({exc}); "
                "check the address and that `dask scheduler` is running"
            ) from None
        self._check_versions()
        if self._initializer is not None:
            self._client.run(self._initializer)
        return self

    def _check_versions(self) -> None:
        """Refuse workers whose numpy, pyarrow or tokenizers differ: their bytes would."""
        ours = versions()
        for worker, theirs in sorted(self._client.run(versions).items()):
            differing = [
                f"{k} {theirs.get(k)} (client {v})" for k, v in ours.items() if theirs.get(k) != v
            ]
            if differing:
                raise ConfigError(
                    f"Dask worker {worker} has {', '.join(differing)}; install the client's "
                    "versions there, or the output would not be byte-identical"
                )

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def map_unordered(self, function: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield function(task) for every task, in completion order."""
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return
        futures = self._client.map(function, tasks, pure=False)
        which = {future.key: task for future, task in zip(futures, tasks)}
        for future in as_completed(futures):
            try:
                yield future.result()
            except MlmprepError:
                raise
            except Exception as exc:  # the worker's error, reported with its task
                task = which[future.key]
                raise MlmprepError(
                    f"{task.describe()}: failed on a Dask worker: {type(exc).__name__}: {exc}"
                ) from None
