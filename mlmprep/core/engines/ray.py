"""Ray engine: the same per-unit, per-group and per-bucket functions, as Ray tasks.

Without an address it starts a local Ray instance of `workers` CPUs; with one (`host:6379`
of `ray start --head`, or `ray://host:10001` for Ray Client, or RAY_ADDRESS) it joins
that cluster. As with Dask, spill files and shards go through the output directory,
which every node must see, and only small result records travel to the client. A task
whose worker dies is retried by Ray (TASK_RETRIES times) before the build stops with one
line; every task checks its worker's versions before it runs.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mlmprep.core.engines.checks import run_checked, task_error, version_differences
from mlmprep.core.engines.local import IN_FLIGHT_PER_WORKER
from mlmprep.core.errors import ClusterError, ConfigError

CONNECT_SECONDS = 10
TASK_RETRIES = 3  # of a task whose worker process or node died
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024  # results are small records
INSTALL = "pip install 'mlmprep[ray]'"


class RayEngine:
    """Runs functions over tasks on a Ray cluster; results arrive as they finish."""

    def __init__(
        self,
        workers: int,
        address: str | None = None,
        initializer: Callable[[], None] | None = None,
        environment: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._initializer = initializer
        self._environment = environment
        self._ray: Any = None

    def __enter__(self) -> RayEngine:
        try:
            import ray
        except ImportError:
            raise ConfigError(f"--engine ray needs Ray: {INSTALL}") from None
        self._ray = ray
        options = {"include_dashboard": False, "log_to_driver": False}
        options["logging_level"] = logging.ERROR
        if self.address:
            self._check_reachable()
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(
                    num_cpus=self.workers,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    **options,
                )
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            raise self._unreachable(" ".join(str(exc).split())) from None
        self.workers = max(self.workers if not self.address else 1, self._cluster_cpus())
        self._check_one_worker()
        return self

    def _check_reachable(self) -> None:
        """Fail in seconds where nothing listens at the address (ray.init would wait for
        minutes); "auto" and other forms Ray resolves itself are left to it."""
        host, _, port = self.address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            return
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
        except OSError as exc:
            raise self._unreachable(exc.strerror or str(exc)) from None

    def _unreachable(self, reason: str) -> ConfigError:
        return ConfigError(
            f"--scheduler {self.address}: cannot reach the Ray cluster ({reason}); check the "
            "address (host:6379 of `ray start --head`, or ray://host:10001) and that the "
            "cluster is running"
        )

    def _cluster_cpus(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1))

    def _check_one_worker(self) -> None:
        """Fail at once, in one line, where the workers cannot run mlmprep at all."""
        probe = self._ray.remote(num_cpus=1, max_retries=0)(_environment_of_worker)
        try:
            theirs = self._ray.get(probe.remote(self._environment))
        except Exception as exc:
            raise self._worker_error(exc) from None
        differing = version_differences(self._environment(), theirs)
        if differing:
            raise ConfigError(
                f"a Ray worker has {', '.join(differing)}; install the client's versions "
                "there, or the output would not be byte-identical"
            )

    def __exit__(self, *exc: object) -> None:
        if self._ray is not None:
            self._ray.shutdown()

    def map_unordered(self, function: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield function(task) for every task, in completion order; tasks are taken from
        the iterable as results arrive."""
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(
            _run_on_worker
        )
        fixed = (self._initializer, function, self._environment, self._environment())
        remaining = iter(tasks)
        which: dict[Any, Any] = {}

        def submit(task: Any) -> None:
            which[remote.remote(*fixed, task)] = task

        for task in _take(remaining, IN_FLIGHT_PER_WORKER * self.workers):
            submit(task)
        while which:
            (ready,), _ = ray.wait(list(which), num_returns=1)
            task = which.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayTaskError as exc:
                raise self._task_failure(task, exc) from None
            except ray.exceptions.RayError as exc:
                raise self._lost(exc) from None
            yield result
            following = next(remaining, None)
            if following is not None:
                submit(following)

    def _task_failure(self, task: Any, exc: Any) -> BaseException:
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, ImportError):
            return self._worker_error(cause)
        return task_error(task, cause, "Ray")

    def _worker_error(self, exc: BaseException) -> ConfigError:
        cause = getattr(exc, "cause", None) or exc
        reason = " ".join(str(cause).split())[:300]
        if isinstance(cause, ImportError) or "mlmprep" in reason:
            return ConfigError(
                f"a Ray worker cannot import mlmprep ({type(cause).__name__}: {reason}); "
                f"install it on every node ({INSTALL}, the client's versions)"
            )
        return ConfigError(
            f"a Ray worker failed to start a task ({type(cause).__name__}: {reason})"
        )

    def _lost(self, exc: BaseException) -> ClusterError:
        reason = " ".join(str(exc).split())[:300]
        return ClusterError(
            f"lost Ray workers ({type(exc).__name__}: {reason}) after {TASK_RETRIES} retries "
            "of the task; check the cluster, then run the same command again to resume"
        )


def _take(iterator: Iterator[Any], count: int) -> list[Any]:
    taken = []
    for task in iterator:
        taken.append(task)
        if len(taken) == count:
            break
    return taken


def _environment_of_worker(environment: Callable[[], dict[str, str]]) -> dict[str, str]:
    return environment()


def _run_on_worker(
    initializer: Callable[[], None] | None,
    function: Callable[[Any], Any],
    environment: Callable[[], dict[str, str]],
    expected: dict[str, str],
    task: Any,
) -> Any:
    """A task on a Ray worker: the worker set up as the local engine sets up its own
    (Ray reuses its worker processes, so this repeats, cheaply), versions checked."""
    if initializer is not None:
        initializer()
    return run_checked(function, environment, expected, "Ray", task)
