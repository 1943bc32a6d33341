"""The local engine's process pool."""

from __future__ import annotations

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
