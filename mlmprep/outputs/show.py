"""Decode instances to text with segments and masks visible: the build's own tokenizer
decodes (byte-level BPE and SentencePiece pieces come back as text), A and B stay apart,
and nothing the row lacks is added."""

from __future__ import annotations

from collections.abc import Iterator

from mlmprep.core.config import NSP_LABEL, SOP_LABEL, TRAIN
from mlmprep.outputs.finished_build import FinishedBuild
from mlmprep.text.tokenization import TokenEncoder

BATCH_ROWS = 256


def iter_rows(build: FinishedBuild, split: str = TRAIN, offset: int = 0) -> Iterator[dict]:
    """Rows of a build's shards as dicts, in stored order, from row `offset` on (shards
    before it are not read)."""
    for shard in build.split_shards(split):
        if offset >= shard["rows"]:
            offset -= shard["rows"]
            continue
        for batch in build.batches(shard, batch_rows=BATCH_ROWS):
            if offset >= batch.num_rows:
                offset -= batch.num_rows
                continue
            yield from batch.slice(offset).to_pylist()
            offset = 0


def render(row: dict, encoder: TokenEncoder) -> str:
    """One instance: a header with its label and counts, then A and B (or the packed
    text of an --objective none row); masked positions read MASK(original)."""
    originals = dict(zip(row.get("masked_lm_positions") or [], row.get("masked_lm_ids") or []))
    header = f"tokens={row['num_tokens']}  masked={len(originals)}"
    if NSP_LABEL in row:
        label = row[NSP_LABEL]
        header = f"{NSP_LABEL}={label} ({'random' if label else 'true'} next)  " + header
    elif SOP_LABEL in row:
        label = row[SOP_LABEL]
        header = f"{SOP_LABEL}={label} ({'swapped' if label else 'in order'})  " + header
    ids = row["input_ids"]
    sep = encoder.special_ids.sep
    structure = {p for p, t in enumerate(ids) if t in encoder.layout.ids.values()}
    structure -= set(originals)  # a masked position is text, whatever it holds now
    if NSP_LABEL in row or SOP_LABEL in row:
        groups = _groups(ids, structure, sep)
        names = ["A", "B"] if len(groups) == 2 else [f"segment {i + 1}" for i in range(len(groups))]
        return "\n".join(
            [header]
            + [f"  {n}: {_text(ids, g, originals, encoder)}" for n, g in zip(names, groups)]
        )
    inner = [p for p in range(len(ids)) if p not in structure or ids[p] == sep]
    while inner and ids[inner[-1]] == sep and inner[-1] in structure:
        inner.pop()  # the row's closing separator
    return f"{header}\n  text: {_text(ids, inner, originals, encoder)}"


def _groups(ids: list[int], structure: set[int], sep: int) -> list[list[int]]:
    """Positions of each segment: the text between structural separators."""
    groups: list[list[int]] = [[]]
    for position in range(len(ids)):
        if position in structure:
            if ids[position] == sep and groups[-1]:
                groups.append([])
            continue
        groups[-1].append(position)
    return [g for g in groups if g]


def _text(ids: list[int], positions: list[int], originals: dict, encoder: TokenEncoder) -> str:
    """Runs of plain tokens decoded by the tokenizer; a masked token as MASK(original)."""
    pieces: list[tuple[str, bool]] = []  # (text, starts a word)
    run: list[int] = []

    def flush() -> None:
        if run:
            pieces.append((_decode(run, encoder), not encoder.continuation[run[0]]))
            run.clear()

    for position in positions:
        if position in originals:
            flush()
            now, was = ids[position], originals[position]
            shown = f"{_decode_one(now, encoder)}({_decode_one(was, encoder)})"
            pieces.append((shown, not encoder.continuation[was]))
        else:
            run.append(ids[position])
    flush()
    text = ""
    for piece, starts_word in pieces:
        text += (" " if text and starts_word else "") + piece
    return text


def _decode(ids: list[int], encoder: TokenEncoder) -> str:
    """Token ids as text, as the tokenizer's decoder gives them (without the continuation
    mark a lone WordPiece piece keeps)."""
    return encoder.decode(ids).strip().removeprefix("##")


def show(output_dir: str, count: int, split: str = TRAIN, offset: int = 0) -> list[str]:
    """Rendered text of `count` rows of a split, from row `offset` on."""
    build = FinishedBuild(output_dir)
    encoder = build.tokenizer
    rendered = []
    for row in iter_rows(build, split, offset):
        if len(rendered) >= count:
            break
        rendered.append(render(row, encoder))
    return rendered


def _decode_one(token_id: int, encoder: TokenEncoder) -> str:
    """One token as text; one that decodes to nothing but space (a lone 'Ġ' or '▁')
    as it stands in the vocabulary, so that a masked space reads <mask>(Ġ), not <mask>()."""
    return _decode([token_id], encoder) or encoder.id_to_token(token_id)
