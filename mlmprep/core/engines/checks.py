"""What every cluster engine checks: that a worker's environment is the client's (the
versions that decide the bytes), and how a task's own error reaches the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlmprep.core.errors import ConfigError, MlmprepError


def version_differences(expected: dict[str, str], theirs: dict[str, str]) -> list[str]:
    return [f"{k} {theirs.get(k)} (client {v})" for k, v in expected.items() if theirs.get(k) != v]


def run_checked(
    function: Callable[[Any], Any],
    environment: Callable[[], dict[str, str]],
    expected: dict[str, str],
    engine: str,
    task: Any,
) -> Any:
    """Run function(task) on a worker whose environment is the client's, else refuse."""
    differing = version_differences(expected, environment())
    if differing:
        raise ConfigError(
            f"a {engine} worker has {', '.join(differing)}; install the client's versions "
            "there, or the output would not be byte-identical"
        )
    return function(task)


def task_error(task: Any, exc: BaseException, engine: str) -> BaseException:
    """A task's own error: ours and write errors (OSError, reported by the build with
    their path) as they are, anything else named with its task."""
    if isinstance(exc, (MlmprepError, OSError)):
        return exc
    reason = " ".join(str(exc).split())
    return MlmprepError(
        f"{task.describe()}: failed on a {engine} worker: {type(exc).__name__}: {reason}"
    )
