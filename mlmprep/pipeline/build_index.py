"""index.json of a finished build, and the summary the CLI prints from it."""

from __future__ import annotations

from collections import Counter

from mlmprep.core.config import SPLITS
from mlmprep.core.counts import SplitCounts
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import BINARY_REASON, InputFile
from mlmprep.pipeline.schema import SCHEMA_VERSION
from mlmprep.pipeline.shard_names import ShardName
from mlmprep.pipeline.unit_result import UnitResult


def build_index(
    identity: dict,
    results: list[UnitResult],
    shards: dict[str, dict],
    files: list[InputFile],
    requested_backend: str,
    run: dict,
) -> dict:
    """index.json: identity, shards, accounting, counts, warnings, and how the build ran
    (`run` holds the engine, worker count and timings)."""
    report = InputReport()
    counts: dict[str, SplitCounts] = {}
    for result in results:
        report.merge_dict(result.accounting, result.examples)
        for split, unit_counts in result.counts.items():
            counts.setdefault(split, SplitCounts()).add(unit_counts)
    for file in files:
        if file.binary:
            report.skip_file(file.path, BINARY_REASON)
    backend = _backend_run(results, requested_backend)
    split_rows = Counter()
    for name, shard in shards.items():
        split_rows[ShardName.parse(name).split] += shard["rows"]
    return {
        "schema_version": SCHEMA_VERSION,
        **identity,
        "shards": [{"split": ShardName.parse(n).split, **shards[n]} for n in sorted(shards)],
        "accounting": report.to_dict(),
        "counts": {
            split: {**counts[split].to_dict(), "rows": split_rows[split]}
            for split in SPLITS
            if split in counts
        },
        "warnings": report.examples + _backend_warnings(backend["fell_back"]),
        "run": {
            "input_bytes": sum(r.raw_bytes for r in results),
            "units": len(results),
            "tokenizer_backend": backend,
            **run,
        },
    }


def _backend_run(results: list[UnitResult], requested: str) -> dict:
    """Which backend encoded how many batches, over all units (resumed ones included)."""
    usages = [r.tokenizer_backend for r in results]
    batches: Counter = Counter()
    for usage in usages:
        batches.update(usage.get("batches", {}))
    return {
        "requested": requested,
        "batches": dict(sorted(batches.items())),
        "reference_texts": sum(u.get("reference_texts", 0) for u in usages),
        "fell_back": [r.name for r, u in zip(results, usages) if u.get("fell_back")],
    }


def _backend_warnings(fell_back: list[str]) -> list[str]:
    if not fell_back:
        return []
    return [
        f"kitoken gave other ids than tokenizers in {len(fell_back)} unit(s) (first: "
        f"{fell_back[0]}); those units were encoded with tokenizers, so the output is exact. "
        "Please report it; --tokenizer-backend hf avoids the check"
    ]


def summary(index: dict, already_built: bool) -> dict:
    """The build summary: what the CLI prints (and `--json` emits)."""
    run = index["run"]
    seconds = max(run["total_seconds"], 1e-9)
    rows = {split: counts["rows"] for split, counts in index["counts"].items()}
    return {
        "already_built": already_built,
        "documents": index["accounting"]["documents"]["used"],
        "sentences": sum(counts["sentences"] for counts in index["counts"].values()),
        "instances": sum(rows.values()),
        "rows": rows,
        "shards": len(index["shards"]),
        "input_bytes": run["input_bytes"],
        "resumed_units": run["units_done_before"],
        "seconds": run["total_seconds"],
        "mb_per_s": round(run["bytes_processed"] / 1e6 / seconds, 3),
        "instances_per_s": round(sum(rows.values()) / seconds, 1),
        "peak_spill_bytes": run["peak_spill_bytes"],
        "accounting": index["accounting"],
        "warnings": index["warnings"],
        "repaired_shards": [],
    }
