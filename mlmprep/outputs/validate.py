"""Check a build: shard checksums against index.json, schema, and per-row invariants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlmprep.core import storage
from mlmprep.core.config import SENTENCE_LABELS
from mlmprep.formats.manifest import INDEX, TOKENIZER_FILE, shard_damage
from mlmprep.formats.schema import list_values, output_schema
from mlmprep.formats.shard_names import ShardName
from mlmprep.outputs.finished_build import BATCH_ROWS, FinishedBuild
from mlmprep.text.special_tokens import SpecialTokens


def validate(output_dir: str) -> dict:
    """Return {"ok": bool, "problems": [...], "shards": n, "rows": n}."""
    build = FinishedBuild(output_dir)
    problems: list[str] = []
    listed = {s["name"]: s for s in build.shards()}
    present = {n for n in storage.listdir(output_dir) if ShardName.parse(n)}
    problems += [
        f"{name}: extra shard, not listed in {INDEX}" for name in sorted(present - set(listed))
    ]
    schema = output_schema(build.build_config())
    config = build.config
    objective, cross = config.get("objective", "nsp"), config.get("cross_documents", True)
    shape = RowShape.of(build.special_tokens, objective, cross)
    rows = 0
    for name, shard in sorted(listed.items()):
        damage = shard_damage(output_dir, shard, verify=True)
        if damage:
            problems.append(f"{name}: {damage}")
            continue
        path = build.path(shard)
        problem = _check_shard(path, schema, shape, config["max_seq_length"], shard["rows"])
        if problem:
            problems.append(f"{name}: {problem}")
        rows += shard["rows"]
    if not storage.exists(storage.join(output_dir, TOKENIZER_FILE)):
        problems.append(f"{TOKENIZER_FILE}: missing")
    return {"ok": not problems, "problems": problems, "shards": len(listed), "rows": rows}


def _check_shard(
    path: str, schema: pa.Schema, shape: RowShape, max_seq_length: int, expected_rows: int
) -> str | None:
    try:
        parquet = storage.parquet_file(path)
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable Parquet ({exc})"
    if not parquet.schema_arrow.remove_metadata().equals(schema):
        return "schema differs from the build's objective and masking mode"
    if parquet.metadata.num_rows != expected_rows:
        return f"{parquet.metadata.num_rows} rows, {INDEX} says {expected_rows}"
    first_row = 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        bad = row_problems(batch, shape, max_seq_length)
        if bad:
            row, reason = bad
            return f"row {first_row + row}: {reason}"
        first_row += batch.num_rows
    return None


@dataclass(frozen=True)
class RowShape:
    """What every row of a build looks like, from the tokenizer's template."""

    ids: dict[str, int]  # role -> id
    names: dict[str, str]  # role -> token, for messages
    first: int  # id of the template's first token (cls/bos)
    last: int  # id of its last token (sep/eos)
    separators: int  # sep tokens in a row
    more_separators: bool  # packed rows: one more between documents
    text_segments: int
    first_type: int
    other_type: int | None  # the type after `switch_after` separators, if the template has two
    switch_after: int

    @classmethod
    def of(cls, layout: SpecialTokens, objective: str, cross_documents: bool) -> RowShape:
        template = layout.template(objective != "none")
        ids = layout.tokens_to_ids
        specials = [ids[p.token] for p in template if p.kind == "special"]
        sep = layout.ids["sep"]
        first_type = template[0].type_id
        other = next((i for i, p in enumerate(template) if p.type_id != first_type), None)
        before_other = template[:other] if other is not None else ()
        return cls(
            ids=layout.ids,
            names=layout.tokens,
            first=specials[0],
            last=specials[-1],
            separators=specials.count(sep),
            more_separators=objective == "none" and cross_documents,
            text_segments=sum(p.kind != "special" for p in template),
            first_type=first_type,
            other_type=None if other is None else template[other].type_id,
            switch_after=sum(ids.get(p.token) == sep for p in before_other),
        )


def row_problems(batch: pa.RecordBatch, shape: RowShape, max_len: int) -> tuple[int, str] | None:
    """First row (index in batch) that breaks an invariant, with the reason; None if all
    hold: the template's first and last tokens, its separator count (packed rows may hold
    one more per document boundary), token types switching where the template says."""
    ids, offsets = list_values(batch.column("input_ids"))
    types, type_offsets = list_values(batch.column("token_type_ids"))
    lengths = np.diff(offsets)
    n = len(lengths)
    row_of = np.repeat(np.arange(n), lengths)
    is_sep = ids == shape.ids["sep"]
    sep_count = np.bincount(row_of, weights=is_sep, minlength=n)
    names = shape.names
    wrong_count = (
        sep_count < shape.separators if shape.more_separators else sep_count != shape.separators
    )
    count = f"{'at least ' if shape.more_separators else 'exactly '}{shape.separators}"
    checks = [
        (lengths > max_len, f"longer than max_seq_length {max_len}"),
        (
            lengths < shape.separators + 1 + shape.text_segments,
            "shorter than one token per segment",
        ),
        (
            batch.column("num_tokens").to_numpy() != lengths,
            "num_tokens differs from len(input_ids)",
        ),
        (
            ids[offsets[:-1].clip(max=max(len(ids) - 1, 0))] != shape.first,
            f"does not start with {names['cls']}",
        ),
        (wrong_count, f"does not have {count} {names['sep']}"),
        (ids[(offsets[1:] - 1).clip(min=0)] != shape.last, f"does not end with {names['sep']}"),
        (np.diff(type_offsets) != lengths, "token_type_ids length differs from input_ids"),
    ]
    for label in SENTENCE_LABELS:
        if label in batch.schema.names:
            values = batch.column(label).to_numpy()
            checks.append((~np.isin(values, (0, 1)), f"{label} not in {{0, 1}}"))
    for failed, reason in checks:
        if failed.any():
            return int(np.argmax(failed)), reason
    expected_types = np.full(len(ids), shape.first_type, types.dtype)
    if shape.other_type is not None:
        row_start_count = np.concatenate(([0], np.cumsum(is_sep)))[offsets[:-1]]
        seps_before = np.cumsum(is_sep) - is_sep - row_start_count[row_of]
        after = seps_before >= shape.switch_after
        expected_types[after] = shape.other_type
    wrong = np.bincount(row_of, weights=types != expected_types, minlength=n) > 0
    if wrong.any():
        return int(np.argmax(wrong)), "token_type_ids do not follow the template's segments"
    if "masked_lm_positions" in batch.schema.names:
        return _mask_problems(batch, ids, offsets, lengths, shape.ids)
    return None


def _mask_problems(
    batch: pa.RecordBatch,
    ids: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    role_ids: dict[str, int],
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
    structural = np.isin(originals, [role_ids["cls"], role_ids["sep"], role_ids["pad"]])
    structural |= at == role_ids["sep"]
    if structural.any():
        return int(row[np.argmax(structural)]), "masked position on a special token"
    return None
