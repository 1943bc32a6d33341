"""Separate virtual environments for trainers' readers whose pins clash with ours
(mosaicml-streaming pins numpy, torch and transformers): created on first use under
.venv-readers/ in the repository, reused while their requirements are unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / ".venv-readers"
CONSTRAINTS = ROOT / "constraints.txt"  # the torch release our own tests use
READERS = Path(__file__).resolve().parent / "readers"
INSTALL_SECONDS = 1200


def reader_python(name: str, requirements: list[str]) -> Path:
    """The python of environment `name` holding `requirements`; created when missing or
    when its requirements changed; the test skips with pip's last line if pip fails."""
    env = ENVS / name
    python = env / "bin" / "python"
    stamp = env / "requirements.json"
    if stamp.exists() and json.loads(stamp.read_text()) == requirements:
        return python
    shutil.rmtree(env, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    install = [str(python), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS)]
    result = subprocess.run(
        [*install, *requirements], capture_output=True, text=True, timeout=INSTALL_SECONDS
    )
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        pytest.skip(f"cannot install {' '.join(requirements)} into {env}: {lines[-1]}")
    stamp.write_text(json.dumps(requirements))
    return python


def run_reader(python: Path, script: str, *args: str) -> list[dict]:
    """Run tests/readers/<script> in a reader environment; its stdout is JSON lines."""
    result = subprocess.run(
        [str(python), str(READERS / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]
