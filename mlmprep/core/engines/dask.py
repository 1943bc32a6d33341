"""Dask engine: the same per-unit and per-bucket functions, as tasks on a Dask cluster.

Without a scheduler address it starts a `LocalCluster` of `workers` processes (one thread
each). Spill files and shards go through the output directory, which every worker must
see (a shared filesystem); nothing but small result records travels to the client.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from typing import Any

from mlmprep.core.engines.checks import run_checked, task_error, version_differences
from mlmprep.core.engines.local import IN_FLIGHT_PER_WORKER
from mlmprep.core.errors import ClusterError, ConfigError

CONNECT_TIMEOUT = "30s"


class DaskEngine:
    """Runs functions over tasks on a Dask cluster; results arrive as they finish."""

    def __init__(
        self,
        workers: int,
        scheduler: str | None = None,
        initializer: Callable[[], None] | None = None,
        environment: Callable[[], dict[str, str]] = dict,
    ) -> None:
        """`environment` says what every worker must share with this process (versions
        that decide the bytes, say); it runs on each worker and must be picklable."""
        self.workers = workers
        self.scheduler = scheduler
        self._initializer = initializer
        self._environment = environment
        self._client: Any = None
        self._cluster: Any = None
        self._log_levels: dict[str, int] = {}

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
            self._log_levels = _quiet_distributed_logs()
        except OSError as exc:
            raise ConfigError(
                f"--scheduler {self.scheduler}: cannot reach the Dask scheduler ({exc}); "
                "check the address and that `dask scheduler` is running"
            ) from None
        self._check_versions()
        self.workers = max(self.workers, len(self._client.scheduler_info()["workers"]))
        if self._initializer is not None:
            self._client.run(self._initializer)
        return self

    def _check_versions(self) -> None:
        """Refuse workers whose environment differs from this process's."""
        ours = self._environment()
        for worker, theirs in sorted(self._client.run(self._environment).items()):
            differing = version_differences(ours, theirs)
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
        for name, level in self._log_levels.items():
            logging.getLogger(name).setLevel(level)

    def map_unordered(self, function: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield function(task) for every task, in completion order. Tasks are taken from
        the iterable as results arrive; each runs after a version check on its worker, so
        a worker that joins mid-build with other versions is refused too."""
        from distributed import as_completed

        checked = functools.partial(
            run_checked, function, self._environment, self._environment(), "Dask"
        )
        remaining = iter(tasks)
        which: dict[str, Any] = {}
        running = as_completed()
        failed: tuple[Any, BaseException] | None = None
        try:
            for task in itertools.islice(remaining, IN_FLIGHT_PER_WORKER * self.workers):
                running.add(self._submit(checked, task, which))
            for future in running:
                task = which.pop(future.key)
                if future.status == "error":  # the task itself failed on its worker
                    failed = (task, future.exception())
                    break
                yield future.result()
                task = next(remaining, None)
                if task is not None:
                    running.add(self._submit(checked, task, which))
        except (OSError, CancelledError, TimeoutError) as exc:  # the cluster, not a task
            reason = " ".join(str(exc).split())  # distributed's messages span lines
            raise ClusterError(
                f"lost the Dask cluster ({type(exc).__name__}: {reason}); check the scheduler "
                "and workers, then run the same command again to resume"
            ) from None
        if failed is not None:
            raise task_error(*failed, "Dask")

    def _submit(self, checked: Callable[[Any], Any], task: Any, which: dict[str, Any]) -> Any:
        future = self._client.submit(checked, task, pure=False)
        which[future.key] = task
        return future


def _quiet_distributed_logs() -> dict[str, int]:
    """Silence distributed's own error logs (a lost connection is reported in one line
    by map_unordered); return the levels to restore."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return levels
