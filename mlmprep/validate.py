"""Check a build: shard checksums against index.json, schema, and per-row invariants."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from . import storage
from .config import BuildConfig
from .manifest import INDEX, TOKENIZER_FILE, read_index, sha256_file
from .schema import list_values, output_schema
from .stats import BATCH_ROWS

SHARD_PATTERN = re.compile(r"^(train|validation)-\d{5}-of-\d{5}\.parquet$")


def validate(output_dir: str, check_rows: bool = True) -> dict:
    """Return {"ok": bool, "problems": [...], "shards": n, "rows": n}."""
    index = read_index(output_dir)
    problems: list[str] = []
    listed = {s["name"]: s for s in index["shards"]}
    present = {n for n in storage.listdir(output_dir) if SHARD_PATTERN.match(n)}
    problems += [
        f"{name}: extra shard, not listed in {INDEX}" for name in sorted(present - set(listed))
    ]
    config = index["config"]
    build_config = BuildConfig(
        **{k: v for k, v in config.items() if k in BuildConfig.__dataclass_fields__}
    )
    schema = output_schema(build_config)
    rows = 0
    for name, shard in sorted(listed.items()):
        path = storage.join(output_dir, name)
        if not storage.exists(path):
            problems.append(f"{name}: missing")
            continue
        if storage.size(path) != shard["bytes"]:
            problems.append(
                f"{name}: {storage.size(path)} bytes, {INDEX} says {shard['bytes']} "
                "(truncated or replaced)"
            )
            continue
        if sha256_file(path) != shard["sha256"]:
            problems.append(f"{name}: sha256 differs from {INDEX} (damaged)")
            continue
        if check_rows:
            problem = _check_shard(path, schema, index, shard["rows"])
            if problem:
                problems.append(f"{name}: {problem}")
        rows += shard["rows"]
    if not storage.exists(storage.join(output_dir, TOKENIZER_FILE)):
        problems.append(f"{TOKENIZER_FILE}: missing")
    return {"ok": not problems, "problems": problems, "shards": len(listed), "rows": rows}


def _check_shard(path: str, schema: pa.Schema, index: dict, expected_rows: int) -> str | None:
    try:
        parquet = storage.parquet_file(path)
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable Parquet ({exc})"
    if not parquet.schema_arrow.remove_metadata().equals(schema):
        return "schema differs from the build's objective and masking mode"
    if parquet.metadata.num_rows != expected_rows:
        return f"{parquet.metadata.num_rows} rows, {INDEX} says {expected_rows}"
    special = index["tokenizer"]["special_ids"]
    max_len = index["config"]["max_seq_length"]
    segments = 1 if index["config"].get("objective") == "none" else 2
    first_row = 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        bad = row_problems(batch, special, max_len, segments)
        if bad:
            row, reason = bad
            return f"row {first_row + row}: {reason}"
        first_row += batch.num_rows
    return None


def row_problems(
    batch: pa.RecordBatch, special: dict[str, int], max_len: int, segments: int = 2
) -> tuple[int, str] | None:
    """First row (index in batch) that breaks an invariant, with the reason; None if all hold.

    `segments` is 2 for `[CLS] A [SEP] B [SEP]` rows and 1 for `[CLS] A [SEP]` rows."""
    ids, offsets = list_values(batch.column("input_ids"))
    types, type_offsets = list_values(batch.column("token_type_ids"))
    lengths = np.diff(offsets)
    n = len(lengths)
    row_of = np.repeat(np.arange(n), lengths)
    is_sep = ids == special["[SEP]"]
    sep_count = np.bincount(row_of, weights=is_sep, minlength=n)
    sep_positions = np.flatnonzero(is_sep)
    first_sep = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_sep, row_of[sep_positions], sep_positions - offsets[row_of[sep_positions]])
    checks = [
        (lengths > max_len, f"longer than max_seq_length {max_len}"),
        (lengths < 1 + 2 * segments, "shorter than one token per segment"),
        (
            batch.column("num_tokens").to_numpy() != lengths,
            "num_tokens differs from len(input_ids)",
        ),
        (
            ids[offsets[:-1].clip(max=max(len(ids) - 1, 0))] != special["[CLS]"],
            "does not start with [CLS]",
        ),
        (sep_count != segments, f"does not have exactly {segments} [SEP]"),
        (ids[(offsets[1:] - 1).clip(min=0)] != special["[SEP]"], "does not end with [SEP]"),
        (np.diff(type_offsets) != lengths, "token_type_ids length differs from input_ids"),
    ]
    for label in ("next_sentence_label", "sentence_order_label"):
        if label in batch.schema.names:
            values = batch.column(label).to_numpy()
            checks.append((~np.isin(values, (0, 1)), f"{label} not in {{0, 1}}"))
    for failed, reason in checks:
        if failed.any():
            return int(np.argmax(failed)), reason
    position = np.arange(len(ids)) - offsets[row_of]
    expected_types = (position > first_sep[row_of]).astype(types.dtype)
    wrong = np.bincount(row_of, weights=types != expected_types, minlength=n) > 0
    if wrong.any():
        return int(np.argmax(wrong)), "token_type_ids do not switch right after the first [SEP]"
    if "masked_lm_positions" in batch.schema.names:
        return _mask_problems(batch, ids, offsets, lengths, special)
    return None


def _mask_problems(
    batch: pa.RecordBatch,
    ids: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    special: dict[str, int],
) -> tuple[int, str] | None:
    positions, pos_offsets = list_values(batch.column("masked_lm_positions"))
    originals, id_offsets = list_values(batch.column("masked_lm_ids"))
    n = len(lengths)
    if not np.array_equal(pos_offsets, id_offsets):
        bad = np.flatnonzero(np.diff(pos_offsets) != np.diff(id_offsets))
        return int(bad[0]), "masked_lm_positions and masked_lm_ids differ in length"
    row = np.repeat(np.arange(n), np.diff(pos_offsets))
    out_of_range = (positions < 1) | (positions >= lengths[row] - 1)
    if out_of_range.any():
        return int(row[np.argmax(out_of_range)]), "masked position out of range"
    same_row = row[1:] == row[:-1]
    unsorted = same_row & (positions[1:] <= positions[:-1])
    if unsorted.any():
        return int(row[1:][np.argmax(unsorted)]), "masked positions not sorted and unique"
    at = ids[offsets[row] + positions]
    structural = np.isin(originals, [special["[CLS]"], special["[SEP]"], special["[PAD]"]])
    structural |= at == special["[SEP]"]
    if structural.any():
        return int(row[np.argmax(structural)]), "masked position on a special token"
    return None
