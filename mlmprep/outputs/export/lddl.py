"""LDDL's balanced Parquet shards, as NVIDIA's BERT trainer reads them through
`lddl.torch.get_bert_pretrain_data_loader(DEST/train, vocab_file=DEST/vocab.txt)`.

Columns: `A` and `B` (the segments' WordPiece tokens joined by spaces; in a static build
the masked tokens, as LDDL stores them), `is_random_next` (bool), and for static masking
`masked_lm_positions` (a numpy array saved with `np.save`) and `masked_lm_labels` (the
original tokens joined by spaces). A build with length bins is exported as LDDL bins,
files named `*.parquet_<bin>`, bins numbered 0.. in length order. Each split directory
holds a `.num_samples.json`, and DEST holds the `vocab.txt` the loader's tokenizer reads.

LDDL's ParquetDataset asserts that its files' sample counts are exactly n and n+1, and
that their count divides by world size × loader workers: see `plan_rows`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlmprep.core import storage
from mlmprep.core.config import LABEL_COLUMNS
from mlmprep.core.errors import ConfigError
from mlmprep.core.files import write_json_atomically, write_text_atomically
from mlmprep.formats.schema import list_values
from mlmprep.outputs.export.files import ExportFile
from mlmprep.outputs.export.writer import ExportOptions, ExportWriter
from mlmprep.outputs.finished_build import FinishedBuild

VOCAB_FILE = "vocab.txt"
NUM_SAMPLES_FILE = ".num_samples.json"
SEGMENT_TOKENS = ("[CLS]", "[SEP]")  # what LDDL's loader puts around A and B, by name


class LddlWriter(ExportWriter):
    """BERT WordPiece NSP (or SOP) builds, static or dynamic masking."""

    by_length_bin = True  # a build's length bins become LDDL bins
    file_pattern = (
        rf"part-\d{{5}}-of-\d{{5}}\.parquet(_\d+)?|{re.escape(NUM_SAMPLES_FILE)}"
        rf"|{re.escape(VOCAB_FILE)}"
    )

    def __init__(self, build: FinishedBuild, options: ExportOptions) -> None:
        config, where = build.config, build.output_dir
        if config["objective"] == "none":
            raise ConfigError(
                f"{where}: LDDL rows are sentence pairs with is_random_next; this build has "
                "no pairs: rebuild with --objective nsp, or export --format mds"
            )
        self.label = LABEL_COLUMNS[config["objective"]]
        self.static = config["masking"] == "static"
        self.tokens = _wordpiece_vocabulary(build)

    def plan_rows(self, rows: int, count: int) -> int:
        """How many of `rows` the files hold: LDDL needs file sizes of exactly n and n+1,
        so when `count` divides `rows` the last row is left out (and counted)."""
        if count < 2:
            raise ConfigError(
                "--format lddl needs --num-files of at least 2: LDDL's loader asserts that "
                "its files hold n and n+1 samples"
            )
        return rows - 1 if rows and rows % count == 0 else rows

    def file_name(self, file: ExportFile) -> str:
        suffix = "" if file.bin_number is None else f"_{file.bin_number}"
        return storage.join(
            file.split, f"part-{file.number:05d}-of-{file.count:05d}.parquet{suffix}"
        )

    def write(
        self, batches: Iterable[pa.RecordBatch], rows: int, path: str, file: ExportFile
    ) -> dict:
        written = 0
        with pq.ParquetWriter(path, self._schema()) as out:
            for batch in batches:
                out.write_table(pa.Table.from_batches([self._rows(batch)]))
                written += batch.num_rows
        return {"rows": written}

    def _schema(self) -> pa.Schema:
        fields = [("A", pa.string()), ("B", pa.string()), ("is_random_next", pa.bool_())]
        if self.static:
            fields += [("masked_lm_positions", pa.binary()), ("masked_lm_labels", pa.string())]
        return pa.schema(fields)

    def _rows(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        ids, offsets = list_values(batch.column("input_ids"))
        types, _ = list_values(batch.column("token_type_ids"))
        words = self.tokens[ids]
        a_column, b_column = [], []
        for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
            first_sep = start + int(np.count_nonzero(types[start:stop] == 0)) - 1
            a_column.append(" ".join(words[start + 1 : first_sep]))
            b_column.append(" ".join(words[first_sep + 1 : stop - 1]))
        columns = [
            pa.array(a_column, pa.string()),
            pa.array(b_column, pa.string()),
            pa.array(batch.column(self.label).to_numpy().astype(bool)),
        ]
        if self.static:
            positions, mask_offsets = list_values(batch.column("masked_lm_positions"))
            originals, _ = list_values(batch.column("masked_lm_ids"))
            labels = self.tokens[originals]
            pairs = zip(mask_offsets[:-1].tolist(), mask_offsets[1:].tolist())
            saved, joined = [], []
            for start, stop in pairs:
                saved.append(_saved_array(positions[start:stop].astype(np.uint16)))
                joined.append(" ".join(labels[start:stop]))
            columns += [pa.array(saved, pa.binary()), pa.array(joined, pa.string())]
        return pa.record_batch(columns, schema=self._schema())

    def finish(self, dest: str, files: list[tuple[ExportFile, dict]]) -> None:
        """Each split's .num_samples.json, and DEST/vocab.txt."""
        by_split: dict[str, dict[str, int]] = {}
        for file, record in files:
            name = storage.basename(self.file_name(file))
            by_split.setdefault(file.split, {})[name] = record["rows"]
        for split, counts in by_split.items():
            write_json_atomically(storage.join(dest, split, NUM_SAMPLES_FILE), counts)
        write_text_atomically(storage.join(dest, VOCAB_FILE), "\n".join(self.tokens) + "\n")

    def summary(self) -> dict:
        return {"label_from": self.label, "vocab_file": VOCAB_FILE, "static_masks": self.static}


def _saved_array(values: np.ndarray) -> bytes:
    """An array as `np.save` writes it: what LDDL's deserialize_np_array loads."""
    buffer = io.BytesIO()
    np.save(buffer, values)
    return buffer.getvalue()


def _wordpiece_vocabulary(build: FinishedBuild) -> np.ndarray:
    """The build's tokens by id, when its tokenizer is a BERT WordPiece vocabulary that
    LDDL's BertTokenizer maps back to the same ids; a clear refusal otherwise."""
    where = build.output_dir
    definition = json.loads(build.tokenizer.json)
    if definition["model"]["type"] != "WordPiece" or "layout" in build.index["tokenizer"]:
        raise ConfigError(
            f"{where}: --format lddl takes builds made with a BERT WordPiece vocabulary "
            f"([CLS] A [SEP] B [SEP]); this one is {definition['model']['type']}: export "
            "--format mds instead"
        )
    vocab = dict(definition["model"]["vocab"])
    for added in definition.get("added_tokens", []):
        vocab.setdefault(added["content"], added["id"])
    tokens = np.empty(len(vocab), dtype=object)
    for token, token_id in vocab.items():
        if not 0 <= token_id < len(vocab) or tokens[token_id] is not None:
            raise ConfigError(f"{where}: the vocabulary's ids are not 0..{len(vocab) - 1}")
        if token.split() != [token]:
            raise ConfigError(
                f"{where}: vocabulary token {token!r} holds whitespace; LDDL joins tokens "
                "with spaces and cannot carry it"
            )
        tokens[token_id] = token
    missing = [t for t in (*SEGMENT_TOKENS, "[MASK]") if t not in vocab]
    if missing:
        raise ConfigError(f"{where}: LDDL's loader needs {', '.join(missing)} in the vocabulary")
    return tokens
