"""index.json and the work directory's resume records: read, write atomically, compare."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import tokenizers

from mlmprep import __version__
from mlmprep.core import storage
from mlmprep.core.errors import OutputError
from mlmprep.core.files import read_json, sha256_file, write_json_atomically
from mlmprep.core.output_markers import BUILD_INDEX, WORK_DIR
from mlmprep.input.discovery import InputFile, fingerprint
from mlmprep.text.tokenization import TokenEncoder
from mlmprep.text.tokenizer_backends import backend_versions

INDEX = BUILD_INDEX
RECIPE_SUMMARY = "recipe.json"  # OUT/recipe.json of `build --recipe`: every phase's mixture
TOKENIZER_FILE = "tokenizer.json"
PLAN = "plan.json"
UNITS_DIR = "units"
GROUPS_DIR = "groups"  # of a two-level shuffle (pipeline/groups.py)
SHARDS_DIR = "shards"
IDENTITY_KEYS = ("config", "tokenizer", "versions")


def worker_environment() -> dict[str, str]:
    """What every worker must share with the building process: the versions that decide
    the bytes, and the tokenizer backends (which decide speed and fallbacks)."""
    return {**versions(), **backend_versions()}


def versions() -> dict[str, str]:
    """Versions that decide the output bytes."""
    return {
        "mlmprep": __version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "tokenizers": tokenizers.__version__,
    }


def identity_of(config: dict, encoder: TokenEncoder, files: list[InputFile]) -> dict:
    """What decides an output's bytes (build or tokenize): its options, the tokenizer and
    the inputs, and the versions; a rerun with another identity is refused."""
    return {
        "config": {**config, "tokenizer": encoder.name, "input_fingerprint": fingerprint(files)},
        "tokenizer": encoder.manifest_entry(),
        "versions": versions(),
    }


def read_index(output_dir: str) -> dict:
    """The manifest of a finished build, with a clear error when there is none."""
    path = storage.join(output_dir, INDEX)
    if not storage.exists(path):
        raise OutputError(
            f"{path}: not found; is {output_dir} an mlmprep build output "
            "(run 'mlmprep build' first)?"
        )
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise OutputError(
            f"{path}: unreadable manifest ({exc}); rebuild with --overwrite"
        ) from None


def shard_damage(output_dir: str, shard: dict, verify: bool = False) -> str | None:
    """What is wrong with one shard of index.json: missing, another size, or (with
    `verify`) another sha256; None when it is intact."""
    path = storage.join(output_dir, shard["name"])
    if not storage.exists(path):
        return "missing"
    size = storage.size(path)
    if size != shard["bytes"]:
        return f"{size} bytes, {INDEX} says {shard['bytes']} (truncated or replaced)"
    if verify and sha256_file(path) != shard["sha256"]:
        return f"sha256 differs from {INDEX} (damaged)"
    return None


def differences(old: dict, new: dict) -> list[str]:
    """Names of the identity sections (and config keys) that differ between two builds."""
    found = []
    for key in IDENTITY_KEYS:
        if old.get(key) == new.get(key):
            continue
        if key == "config" and isinstance(old.get(key), dict):
            changed = sorted(
                k for k in set(old[key]) | set(new[key]) if old[key].get(k) != new[key].get(k)
            )
            if "input_fingerprint" in changed:
                changed.remove("input_fingerprint")
                found.append("inputs (files, sizes or mtimes)")
            if changed:
                found.append("config (" + ", ".join(changed) + ")")
        else:
            found.append(f"{key} ({_changed_keys(old.get(key), new.get(key))})")
    return found


def _changed_keys(old: Any, new: Any) -> str:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return "differs"
    return ", ".join(sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)))


class WorkState:
    """The work directory under the output: the plan, and a record per finished unit/shard."""

    def __init__(self, output_dir: str) -> None:
        self.path = storage.join(output_dir, WORK_DIR)

    @classmethod
    def at(cls, path: str) -> WorkState:
        """A work directory at `path` itself (tokenize's, beside its output prefix)."""
        state = cls.__new__(cls)
        state.path = path
        return state

    def exists(self) -> bool:
        return storage.exists(storage.join(self.path, PLAN))

    def start(
        self, plan: dict, kinds: tuple[str, ...] = (UNITS_DIR, GROUPS_DIR, SHARDS_DIR)
    ) -> None:
        """Create the record directories, then the plan (which marks the start)."""
        for kind in kinds:
            storage.makedirs(storage.join(self.path, kind))
        write_json_atomically(storage.join(self.path, PLAN), plan)

    def plan(self) -> dict:
        return read_json(storage.join(self.path, PLAN))

    def record(self, kind: str, name: str, data: dict) -> None:
        write_json_atomically(storage.join(self.path, kind, f"{name}.json"), data)

    def names(self, kind: str) -> set[str]:
        """The names recorded under `kind`, from one listing (no record is read)."""
        directory = storage.join(self.path, kind)
        return {n[:-5] for n in storage.listdir(directory) if n.endswith(".json")}

    def forget(self, kind: str, name: str) -> None:
        """Remove one record: that unit or shard is to be made again."""
        storage.remove(storage.join(self.path, kind, f"{name}.json"))

    def records(self, kind: str) -> dict[str, dict]:
        directory = storage.join(self.path, kind)
        return {
            n[:-5]: read_json(storage.join(directory, n))
            for n in storage.listdir(directory)
            if n.endswith(".json")
        }

    def remove(self) -> None:
        storage.rmtree(self.path)
