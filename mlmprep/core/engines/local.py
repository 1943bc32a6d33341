"""Local engine: a process pool (or the current process for one worker)."""

from __future__ import annotations

import multiprocessing
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from typing import Any

from mlmprep.core.processes import process_alive

IN_FLIGHT_PER_WORKER = 2  # tasks submitted ahead: workers never wait, task inputs stay few


def available_cpus() -> int:
    """CPUs this process may use (affinity-aware), the default worker count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_context(preload: Sequence[str] = ()) -> BaseContext:
    """How pool workers start: on Linux, forked from a server process that has imported
    `preload` once; elsewhere spawned, each importing for itself (forking after numpy has
    loaded Apple's frameworks is not safe on macOS). The server starts on the first call,
    so calling this early lets it import while the caller does other work."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", *preload])
    # The server runs `python -c`, which puts the working directory first on its
    # sys.path; a directory named like one of our packages there (a corpus folder called
    # `mlmprep/`) would shadow it. PYTHONSAFEPATH (Python 3.11+) leaves it off.
    safe = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        forkserver.ensure_running()
    finally:
        if safe is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = safe
    return context


def _start_worker(
    environment: dict[str, str], initializer: Callable[[], None] | None, owner: int
) -> None:
    """Give a worker the environment of the process that made the pool (a fork server
    hands down its own, from when it started), make it end with that process, then run
    the initializer."""
    os.environ.clear()
    os.environ.update(environment)
    _end_with(owner)
    if initializer is not None:
        initializer()


def _end_with(owner: int) -> None:
    """End this process as soon as process `owner` ends, however it ends (SIGKILL and the
    OOM killer included). A pool worker waits on a queue whose write end it holds itself,
    and a fork server lives while any worker does: without this, both outlive a killed
    owner. On Linux a pidfd of the owner becomes readable when it exits; elsewhere the
    owner is polled every second."""
    try:
        handle = os.pidfd_open(owner)
    except (AttributeError, OSError):
        handle = None
    if handle is None and not process_alive(owner):
        os._exit(1)

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:
            while process_alive(owner):
                time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-owner", daemon=True).start()


class LocalEngine:
    """Runs functions over tasks with `workers` processes; results arrive as they finish.

    `preload` names the modules the tasks' functions need, imported once by the server
    that forks the workers.
    """

    def __init__(
        self,
        workers: int,
        initializer: Callable[[], None] | None = None,
        preload: Sequence[str] = (),
    ) -> None:
        self.workers = workers
        self._initializer = initializer
        self._preload = preload
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalEngine:
        if self.workers == 1 and self._initializer is not None:
            self._initializer()
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                initializer=_start_worker,
                initargs=(dict(os.environ), self._initializer, os.getpid()),
                mp_context=worker_context(self._preload),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map_unordered(self, function: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield function(task) for every task, in completion order. Tasks are taken from
        the iterable as workers free up, so a lazy iterable is read as the build runs."""
        if self._pool is None:
            for task in tasks:
                yield function(task)
            return
        remaining = iter(tasks)
        running: set[Future] = set()
        while True:
            while len(running) < IN_FLIGHT_PER_WORKER * self.workers:
                task = next(remaining, None)
                if task is None:
                    break
                running.add(self._pool.submit(function, task))
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
