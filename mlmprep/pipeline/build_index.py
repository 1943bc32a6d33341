"""index.json of a finished build, and the summary the CLI prints from it."""

from __future__ import annotations

from collections import Counter

from mlmprep.core.config import SPLITS, BuildConfig
from mlmprep.core.counts import SplitCounts
from mlmprep.formats.schema import SCHEMA_VERSION
from mlmprep.formats.shard_names import ShardName
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import InputFile
from mlmprep.pipeline.unit_result import UnitResult
from mlmprep.text.vocab_casing import casing_warning


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
        if file.skipped:
            report.skip_file(file.path, file.skip_reason)
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
        "warnings": [
            *report.warnings(),
            *degenerate_warnings(identity["config"], counts),
            *_backend_warnings(backend["fell_back"]),
        ],
        "run": {
            "input_bytes": sum(r.raw_bytes for r in results),
            "units": len(results),
            "tokenizer_backend": backend,
            **run,
        },
    }


DROPPED_TOKENS_WARNING = 0.25  # of the text's tokens over all passes; the defaults drop 9-15%
CUT_SENTENCES_WARNING = 0.10  # of the sentences
NSP_BALANCE_WARNING = 0.05  # |random share - 0.5|
SHORT_ROWS = 32  # tokens per row below which a build is hardly BERT pretraining


def left_out_warnings(outputs: list[str]) -> list[str]:
    """One line naming the mlmprep outputs found among the inputs and not read."""
    if not outputs:
        return []
    names = ", ".join(outputs[:3]) + (f" and {len(outputs) - 3} more" if len(outputs) > 3 else "")
    return [f"left out {len(outputs)} mlmprep output(s) found among the inputs: {names}"]


def tokenizer_warnings(config: BuildConfig) -> list[str]:
    """A cased vocab.txt lowercased by default."""
    warning = casing_warning(config.tokenizer, config.lowercase)
    return [warning] if warning else []


def degenerate_warnings(config: dict, counts: dict[str, SplitCounts]) -> list[str]:
    """Settings that silently waste data: tiny rows, many dropped tokens or cut
    sentences, an NSP balance far from one half."""
    warnings = []
    if config["max_seq_length"] < SHORT_ROWS:
        warnings.append(
            f"--max-seq-length {config['max_seq_length']} leaves rows of a few tokens; "
            "BERT uses 128 to 512"
        )
    total = SplitCounts()
    for split_counts in counts.values():
        total.add(split_counts)
    text_tokens = total.tokens * config["dupe_factor"]
    if text_tokens and total.tokens_dropped / text_tokens > DROPPED_TOKENS_WARNING:
        warnings.append(
            f"{total.tokens_dropped / text_tokens:.0%} of the text's tokens are in no row "
            "(truncated or left over); a larger --max-seq-length keeps more"
        )
    if total.sentences and total.sentences_cut / total.sentences > CUT_SENTENCES_WARNING:
        warnings.append(
            f"{total.sentences_cut / total.sentences:.0%} of the sentences were longer than "
            "a row's text and cut; a larger --max-seq-length cuts fewer"
        )
    if config["objective"] == "nsp" and total.instances:
        share = total.random_next / total.instances
        if abs(share - 0.5) > NSP_BALANCE_WARNING:
            warnings.append(
                f"NSP labels are {share:.1%} random (50% expected): documents too short for "
                "the row length force random pairs"
            )
    return warnings


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
        "sentences_cut": sum(c["sentences_cut"] for c in index["counts"].values()),
        "long_sentences_cut": sum(c.get("long_sentences_cut", 0) for c in index["counts"].values()),
        "instances": sum(rows.values()),
        "rows": rows,
        "rows_under_min_tokens": sum(
            c.get("rows_under_min_tokens", 0) for c in index["counts"].values()
        ),
        "min_row_tokens": index["config"].get("min_row_tokens", 0),
        "shards": len(index["shards"]),
        "input_bytes": run["input_bytes"],
        "resumed_units": run["units_done_before"],
        "redone_units": run.get("units_redone", []),
        "seconds": run["total_seconds"],
        "mb_per_s": round(run["bytes_processed"] / 1e6 / seconds, 3),
        "instances_per_s": round(sum(rows.values()) / seconds, 1),
        "peak_spill_bytes": run["peak_spill_bytes"],
        "storage_retries": run.get("storage_retries", 0),
        "accounting": index["accounting"],
        "warnings": index["warnings"],
        "repaired_shards": [],
    }
