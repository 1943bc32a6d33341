"""Decode a few instances to text with segments and masks visible."""

from __future__ import annotations

from collections.abc import Iterator

from mlmprep.core.config import NSP_LABEL, SOP_LABEL, TRAIN
from mlmprep.outputs.finished_build import FinishedBuild
from mlmprep.text.tokenization import TokenEncoder


def iter_rows(build: FinishedBuild, split: str = TRAIN) -> Iterator[dict]:
    """Rows of a build's shards as dicts, shard by shard, in stored order."""
    for shard in build.shards(split):
        for batch in build.batches(shard, batch_rows=256):
            yield from batch.to_pylist()


WORD_START_MARKS = "\u0120\u2581"  # 'Ġ' (byte-level BPE) and '▁' (SentencePiece)


def render(row: dict, encoder: TokenEncoder) -> str:
    """One instance as text: 'MASK(original)' marks masked positions, B after the first
    separator; word pieces are joined by the tokenizer family's rule."""
    originals = dict(zip(row.get("masked_lm_positions") or [], row.get("masked_lm_ids") or []))
    words: list[str] = []
    for position, token_id in enumerate(row["input_ids"]):
        token = encoder.id_to_token(token_id)
        if position in originals:
            original = encoder.id_to_token(originals[position]).lstrip(WORD_START_MARKS)
            words.append(f"{token.lstrip(WORD_START_MARKS) or token}({original})")
        elif (
            encoder.continuation[token_id] and words and token not in encoder.layout.tokens.values()
        ):
            words[-1] += token.removeprefix("##")
        else:
            words.append(token.lstrip(WORD_START_MARKS) or token)
    text = " ".join(words)
    header = f"tokens={row['num_tokens']}  masked={len(originals)}"
    if NSP_LABEL in row:
        label = row[NSP_LABEL]
        header = f"{NSP_LABEL}={label} ({'random' if label else 'true'} next)  " + header
    elif SOP_LABEL in row:
        label = row[SOP_LABEL]
        header = f"{SOP_LABEL}={label} ({'swapped' if label else 'in order'})  " + header
    lines = [header]
    sep = encoder.layout.tokens["sep"]
    segments = text.split(f" {sep} ", 1)
    lines.append(f"  A: {segments[0]} {sep}")
    if len(segments) > 1:
        lines.append(f"  B: {segments[1]}")
    return "\n".join(lines)


def show(output_dir: str, count: int, split: str = TRAIN) -> list[str]:
    """Rendered text of the first `count` rows of a split."""
    build = FinishedBuild(output_dir)
    encoder = build.tokenizer
    rendered = []
    for row in iter_rows(build, split):
        if len(rendered) >= count:
            break
        rendered.append(render(row, encoder))
    return rendered
