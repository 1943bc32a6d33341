"""MosaicML Streaming's MDS shards, as the ModernBERT family's trainers read them.

Written by mlmprep itself from the published layout (the `mosaicml-streaming` package
pins torch, transformers and numpy, and is only needed to read). One directory per split,
`DEST/<split>/`, holding `index.json` (version 2) and `shard.NNNNN.mds` files, so
`StreamingDataset(local=DEST, split="train")` reads it. A shard file is:

    uint32 sample count n | uint32 offsets[n + 1] (from the start of the file) |
    the shard's JSON config | the samples

and a sample is the uint32 sizes of its variable-size columns, then each column's bytes,
columns in name order. An `ndarray:<dtype>` column is one byte (ndim << 2 | shape dtype
code), the shape, then the values. With `--compression zstd` the file is a zstd frame of
that, named `…mds.zstd`; the raw layout is the default (ModernBERT's NoStreamingDataset
reads only raw shards).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlmprep.core import storage
from mlmprep.core.config import LABEL_COLUMNS, SOURCE_COLUMN
from mlmprep.core.errors import OutputError
from mlmprep.core.files import write_json_atomically
from mlmprep.formats.schema import list_values
from mlmprep.outputs.export.files import ExportFile
from mlmprep.outputs.export.formats import MDS_COMPRESSIONS
from mlmprep.outputs.export.writer import ExportOptions, ExportWriter
from mlmprep.outputs.finished_build import FinishedBuild

INDEX_FILE = "index.json"
HASH = "sha1"
MAX_SHARD_BYTES = 2**32 - 1  # offsets are uint32
UINT16_IDS = 2**16  # vocabularies up to this size store ids as uint16, larger as uint32
SCALARS = {"int8": np.int8, "int16": np.dtype("<i2")}  # MDS scalar encodings we write
SHAPE_DTYPES = ((2**8, np.uint8, 0), (2**16, np.uint16, 1), (2**32, np.uint32, 2))


class MdsWriter(ExportWriter):
    """Rows of any build: input_ids, then what the objective and masking give."""

    compressions = MDS_COMPRESSIONS
    file_pattern = rf"shard\.\d{{5}}\.mds(\.zstd)?|{re.escape(INDEX_FILE)}"

    def __init__(self, build: FinishedBuild, options: ExportOptions) -> None:
        compression = options.compression
        self.compression = compression
        config = build.config
        self.id_dtype = (
            "uint16" if build.index["tokenizer"]["vocab_size"] <= UINT16_IDS else "uint32"
        )
        columns = {"input_ids": f"ndarray:{self.id_dtype}"}
        if config["objective"] != "none":
            columns["token_type_ids"] = "ndarray:uint8"
            columns[LABEL_COLUMNS[config["objective"]]] = "int8"
        if config["masking"] == "static":
            columns["masked_lm_positions"] = "ndarray:uint16"
            columns["masked_lm_ids"] = f"ndarray:{self.id_dtype}"
        if config.get("sources"):  # a recipe phase: each row's source, names in index.json
            columns[SOURCE_COLUMN] = "int16"
        self.columns = [MdsColumn(name, columns[name]) for name in sorted(columns)]
        self.config = {
            "column_encodings": [c.encoding for c in self.columns],
            "column_names": [c.name for c in self.columns],
            "column_sizes": [c.size for c in self.columns],
            "compression": compression,
            "format": "mds",
            "hashes": [HASH],
            "size_limit": None,
            "version": 2,
        }

    def file_name(self, file: ExportFile) -> str:
        return storage.join(file.split, self._raw_name(file) + self._suffix())

    @staticmethod
    def _raw_name(file: ExportFile) -> str:
        return f"shard.{file.number:05d}.mds"

    def _suffix(self) -> str:
        return f".{self.compression}" if self.compression else ""

    def write(
        self, batches: Iterable[pa.RecordBatch], rows: int, path: str, file: ExportFile
    ) -> dict:
        """Write `file` (at the temporary `path`); return its index.json entry."""
        config_bytes = json.dumps(self.config, sort_keys=True).encode("utf-8")
        with tempfile.TemporaryFile(dir=os.path.dirname(path) or ".") as body:
            sizes = []
            for batch in batches:
                for sample in self._samples(batch):
                    body.write(sample)
                    sizes.append(len(sample))
            head = 4 * (len(sizes) + 2) + len(config_bytes)
            offsets = head + np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
            if offsets[-1] > MAX_SHARD_BYTES:
                raise OutputError(
                    f"{path}: an MDS shard holds at most 4 GiB ({int(offsets[-1])} bytes "
                    "here); export with a larger --num-files"
                )
            body.seek(0)
            raw_digest = hashlib.new(HASH)
            with open(path, "wb") as out:
                for part in (
                    np.uint32(len(sizes)).tobytes(),
                    offsets.astype(np.uint32).tobytes(),
                    config_bytes,
                ):
                    out.write(part)
                    raw_digest.update(part)
                for block in iter(lambda: body.read(1 << 20), b""):
                    out.write(block)
                    raw_digest.update(block)
        raw_name = self._raw_name(file)
        entry = dict(self.config)
        entry["samples"] = len(sizes)
        entry["raw_data"] = _file_info(raw_name, int(offsets[-1]), raw_digest.hexdigest())
        entry["zip_data"] = self._compress(path, raw_name + self._suffix())
        return {"rows": len(sizes), "mds": entry}

    def _compress(self, path: str, name: str) -> dict | None:
        """Replace the raw shard at `path` by its zstd frame; return the frame's info."""
        if not self.compression:
            return None
        with open(path, "rb") as handle:
            data = pa.Codec("zstd").compress(handle.read(), asbytes=True)
        with open(path, "wb") as handle:
            handle.write(data)
        return _file_info(name, len(data), hashlib.new(HASH, data).hexdigest())

    def _samples(self, batch: pa.RecordBatch) -> list[bytes]:
        """The encoded samples of one record batch."""
        columns = [column.encode(batch.column(column.name)) for column in self.columns]
        samples = []
        for parts in zip(*columns):
            variable = [len(p) for p, c in zip(parts, self.columns) if c.size is None]
            samples.append(np.array(variable, np.uint32).tobytes() + b"".join(parts))
        return samples

    def finish(self, dest: str, files: list[tuple[ExportFile, dict]]) -> None:
        """Write each split's index.json, listing its shards in order."""
        by_split: dict[str, list[tuple[ExportFile, dict]]] = {}
        for file, record in files:
            by_split.setdefault(file.split, []).append((file, record))
        for split, entries in by_split.items():
            shards = [record["mds"] for _, record in sorted(entries, key=lambda e: e[0].number)]
            index = storage.join(dest, split, INDEX_FILE)
            write_json_atomically(index, {"shards": shards, "version": 2})

    def summary(self) -> dict:
        return {
            "input_ids_dtype": self.id_dtype,
            "columns": {column.name: column.encoding for column in self.columns},
            "compression": self.compression,
        }


@dataclass(frozen=True)
class MdsColumn:
    """One column of the samples: its name, its MDS encoding (`int8` or `int16` for a
    scalar, `ndarray:<dtype>` for a list column), and its values as each sample's bytes."""

    name: str
    encoding: str

    @property
    def size(self) -> int | None:
        """Bytes per sample when fixed (a scalar), None for a variable-size column."""
        return np.dtype(SCALARS[self.encoding]).itemsize if self.encoding in SCALARS else None

    def encode(self, column: pa.Array) -> list[bytes]:
        """Each row's bytes: a little-endian two's-complement scalar, or a one-dimensional
        ndarray."""
        if self.encoding in SCALARS:
            data = column.to_numpy().astype(SCALARS[self.encoding]).tobytes()
            width = self.size
            return [data[i : i + width] for i in range(0, len(data), width)]
        values, offsets = list_values(column)
        return _ndarrays(values.astype(self.encoding.split(":")[1]), offsets)


def _ndarrays(values: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    """Each row of a flat list column as an MDS one-dimensional `ndarray` of fixed dtype."""
    data = values.tobytes()
    width = values.dtype.itemsize
    out = []
    for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        length = stop - start
        shape_dtype, code = _shape_dtype(length)
        head = bytes([(1 << 2) | code]) + np.array([length], shape_dtype).tobytes()
        out.append(head + data[start * width : stop * width])
    return out


def _shape_dtype(length: int) -> tuple[type, int]:
    """The smallest unsigned dtype that holds `length`, and its MDS code."""
    return next((dtype, code) for limit, dtype, code in SHAPE_DTYPES if length < limit)


def _file_info(basename: str, size: int, digest: str) -> dict:
    return {"basename": basename, "bytes": size, "hashes": {HASH: digest}}
