"""The local engine's process pool."""

from __future__ import annotations

import importlib
import os

from mlmprep.pipeline.engines.local import LocalEngine

VARIABLE = "MLMPREP_TEST_ENGINE_VARIABLE"


def environment_variable(name: str) -> str | None:
    return os.environ.get(name)


def test_workers_see_the_environment_of_the_process_that_made_the_pool(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    with LocalEngine(2) as engine:  # starts the fork server, if not already running
        assert list(engine.map_unordered(environment_variable, [VARIABLE])) == [None]
    monkeypatch.setenv(VARIABLE, "set later")
    with LocalEngine(2) as engine:
        values = list(engine.map_unordered(environment_variable, [VARIABLE] * 4))
    assert values == ["set later"] * 4


def test_every_task_result_arrives_once():
    with LocalEngine(2) as engine:
        results = sorted(engine.map_unordered(abs, range(-5, 5)))
    assert results == sorted(abs(n) for n in range(-5, 5))


def test_the_fork_server_preloads_the_modules_of_the_build_task_functions():
    """WORKER_MODULES names modules as strings (the CLI must not import them early): a
    module that moves or is renamed must not silently drop out of the preload."""
    from mlmprep.pipeline.shuffle import write_bucket_shards
    from mlmprep.pipeline.tokenize_units import tokenize_unit
    from mlmprep.pipeline.units import process_unit
    from mlmprep.pipeline.workers import WORKER_MODULES

    for name in WORKER_MODULES:
        importlib.import_module(name)
    task_functions = (process_unit, write_bucket_shards, tokenize_unit)
    assert {function.__module__ for function in task_functions} <= set(WORKER_MODULES)
