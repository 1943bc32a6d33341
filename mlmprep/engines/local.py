"""Local engine: a process pool (or the current process for one worker)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


def available_cpus() -> int:
    """CPUs this process may use (affinity-aware), the default worker count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalEngine:
    """Runs functions over tasks with `workers` processes; results arrive as they finish."""

    name = "local"

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None) -> None:
        self.workers = workers
        self._initializer = initializer
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalEngine:
        if self.workers == 1 and self._initializer is not None:
            self._initializer()
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                initializer=self._initializer,
                mp_context=multiprocessing.get_context("spawn"),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map_unordered(self, function: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield function(task) for every task, in completion order."""
        if self._pool is None:
            for task in tasks:
                yield function(task)
            return
        futures = [self._pool.submit(function, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
