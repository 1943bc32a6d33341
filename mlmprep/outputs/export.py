"""`mlmprep export`: a static NSP (or SOP) build as the reference generators' files, so the
trainers that read them need no change.

* `nvidia-hdf5`: what NVIDIA DeepLearningExamples' `create_pretraining_data.py` writes:
  datasets `input_ids` (i4), `input_mask` (i1), `segment_ids` (i1) of shape
  [N, max_seq_length], `masked_lm_positions` (i4), `masked_lm_ids` (i4) of shape
  [N, max_predictions_per_seq], `next_sentence_labels` (i1) of shape [N]; zero-padded,
  gzip-compressed (extra `mlmprep[hdf5]`, h5py).
* `tfrecord`: `tf.train.Example` records with Google BERT's features (int64 lists
  `input_ids`, `input_mask`, `segment_ids`, `masked_lm_positions`, `masked_lm_ids`,
  `next_sentence_labels`; float list `masked_lm_weights`), framed with the masked
  CRC32C of the TFRecord format; the protobuf messages and the CRC come from the
  `tfrecord` package (extra `mlmprep[tfrecord]`), no TensorFlow. Optionally gzipped.

Both formats use the reference's NSP convention, the same as mlmprep's: label 1 means
B is a random next segment. One file per shard, written under a temporary name and
renamed, with a completion record: a rerun skips finished files.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from mlmprep.core import storage
from mlmprep.core.config import LABEL_COLUMNS
from mlmprep.core.errors import ConfigError, OutputError
from mlmprep.core.files import atomic_path, write_json_atomically
from mlmprep.outputs.export_formats import FORMATS
from mlmprep.outputs.finished_build import BATCH_ROWS, FinishedBuild
from mlmprep.pipeline.manifest import WorkState
from mlmprep.pipeline.schema import list_values

EXPORTED = "exported"


@dataclass
class PaddedRows:
    """A batch of rows padded to the reference generators' fixed shapes."""

    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray
    masked_lm_positions: np.ndarray
    masked_lm_ids: np.ndarray
    masked_lm_weights: np.ndarray
    next_sentence_labels: np.ndarray

    def __len__(self) -> int:
        return len(self.next_sentence_labels)


def label_column(index: dict, output_dir: str) -> str:
    """The column exported as next_sentence_labels; refuses builds that do not map."""
    config = index["config"]
    if config["masking"] != "static":
        raise ConfigError(
            f"{output_dir}: a dynamic-masking build stores no masks; the reference formats "
            "need static masks: rebuild with --masking static"
        )
    if config["objective"] == "none":
        raise ConfigError(
            f"{output_dir}: an --objective none build has no sentence label; the reference "
            "formats need NSP pairs: rebuild with --objective nsp (or sop)"
        )
    if "layout" in index["tokenizer"]:
        raise ConfigError(
            f"{output_dir}: the reference formats hold BERT's [CLS] A [SEP] B [SEP] rows; this "
            "build has another tokenizer layout: read its Parquet shards directly instead"
        )
    return LABEL_COLUMNS[config["objective"]]


def padded_batches(
    path: str, label: str, max_seq_length: int, max_predictions: int
) -> Iterator[PaddedRows]:
    """The rows of one shard, padded, in batches of at most BATCH_ROWS."""
    parquet = storage.parquet_file(path)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        ids, offsets = list_values(batch.column("input_ids"))
        types, _ = list_values(batch.column("token_type_ids"))
        positions, mask_offsets = list_values(batch.column("masked_lm_positions"))
        originals, _ = list_values(batch.column("masked_lm_ids"))
        tokens = _pad(ids, offsets, max_seq_length, np.int32)
        masked = _pad(positions, mask_offsets, max_predictions, np.int32)
        yield PaddedRows(
            input_ids=tokens,
            input_mask=_pad(np.ones(len(ids), np.int8), offsets, max_seq_length, np.int8),
            segment_ids=_pad(types, offsets, max_seq_length, np.int8),
            masked_lm_positions=masked,
            masked_lm_ids=_pad(originals, mask_offsets, max_predictions, np.int32),
            masked_lm_weights=_pad(
                np.ones(len(positions), np.float32), mask_offsets, max_predictions, np.float32
            ),
            next_sentence_labels=batch.column(label).to_numpy().astype(np.int8),
        )


def _pad(values: np.ndarray, offsets: np.ndarray, width: int, dtype: type) -> np.ndarray:
    """Rows of a flat list column as a zero-padded [rows, width] array."""
    lengths = np.diff(offsets)
    out = np.zeros((len(lengths), width), dtype)
    row = np.repeat(np.arange(len(lengths)), lengths)
    column = np.arange(len(values)) - np.repeat(offsets[:-1], lengths)
    out[row, column] = values
    return out


def export_build(
    output_dir: str, dest: str, fmt: str, compress: bool = False, progress: bool = False
) -> dict:
    """Write every shard of a build as a `fmt` file in `dest`; return a summary."""
    try:
        return _export(output_dir, dest, fmt, compress, progress)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputError(
            f"{dest}: cannot write ({exc.strerror or exc}){where}; fix it, then run the same "
            "command again to resume"
        ) from None


def _export(output_dir: str, dest: str, fmt: str, compress: bool, progress: bool) -> dict:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if storage.is_url(dest):
        raise ConfigError(f"{dest}: export writes local files; give a local directory")
    build = FinishedBuild(output_dir)
    index = build.index
    label = label_column(index, output_dir)
    config = index["config"]
    writer = _Hdf5Writer if fmt == "nvidia-hdf5" else _TfRecordWriter
    writer.check_installed()
    storage.makedirs(dest)
    work = WorkState(dest)
    if not work.exists():
        work.start({"source": output_dir, "format": fmt, "gzip": compress}, (EXPORTED,))
    done = work.records(EXPORTED)
    files = []
    total = sum(shard["rows"] for shard in build.shards())
    with tqdm(total=total, unit="row", desc="export", disable=not progress) as bar:
        for shard in build.shards():
            name = writer.name(shard["name"], compress)
            if name not in done:
                path = storage.join(dest, name)
                _export_shard(
                    writer, build.path(shard), path, shard["rows"], label, config, compress
                )
                work.record(EXPORTED, name, {"name": name, "rows": shard["rows"]})
            files.append({"name": name, "split": shard["split"], "rows": shard["rows"]})
            bar.update(shard["rows"])
    summary = {
        "format": fmt,
        "source": output_dir,
        "files": files,
        "rows": total,
        "label_from": label,
        "max_seq_length": config["max_seq_length"],
        "max_predictions_per_seq": config["max_predictions_per_seq"],
    }
    write_json_atomically(storage.join(dest, "export.json"), summary)
    work.remove()
    return summary


def _export_shard(
    writer: type,
    source: str,
    path: str,
    indexed_rows: int,
    label: str,
    config: dict,
    compress: bool,
) -> None:
    """Write one shard to a temporary name, check its row count against index.json, and
    rename it into place; a failed or short file never appears under its final name."""
    with atomic_path(path) as tmp:
        rows = writer.write(source, tmp, label, config, compress)
        if rows != indexed_rows:
            raise OutputError(
                f"{storage.basename(path)}: wrote {rows} rows but index.json lists "
                f"{indexed_rows} for {source}; run 'mlmprep validate' on "
                "the build"
            )


class _Hdf5Writer:
    @staticmethod
    def check_installed() -> None:
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format nvidia-hdf5 needs h5py: pip install 'mlmprep[hdf5]'"
            ) from None

    @staticmethod
    def name(shard: str, compress: bool) -> str:
        """NVIDIA's run_pretraining.py reads the files of --input_dir whose name holds
        'training': train shards are named so, validation shards are not."""
        stem = shard.removesuffix(".parquet")
        return (
            "training-" + stem.removeprefix("train-") if stem.startswith("train-") else stem
        ) + ".hdf5"

    @staticmethod
    def write(source: str, path: str, label: str, config: dict, compress: bool) -> int:
        import h5py

        rows = storage.parquet_file(source).metadata.num_rows
        seq, predictions = config["max_seq_length"], config["max_predictions_per_seq"]
        shapes = {
            "input_ids": ((rows, seq), "i4"),
            "input_mask": ((rows, seq), "i1"),
            "segment_ids": ((rows, seq), "i1"),
            "masked_lm_positions": ((rows, predictions), "i4"),
            "masked_lm_ids": ((rows, predictions), "i4"),
            "next_sentence_labels": ((rows,), "i1"),
        }
        written = 0
        with h5py.File(path, "w") as handle:
            datasets = {
                name: handle.create_dataset(name, shape, dtype=dtype, compression="gzip")
                for name, (shape, dtype) in shapes.items()
            }
            for batch in padded_batches(source, label, seq, predictions):
                for name, dataset in datasets.items():
                    dataset[written : written + len(batch)] = getattr(batch, name)
                written += len(batch)
        return written


class _TfRecordWriter:
    @staticmethod
    def check_installed() -> None:
        try:
            import tfrecord  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format tfrecord needs the tfrecord package: pip install 'mlmprep[tfrecord]'"
            ) from None

    @staticmethod
    def name(shard: str, compress: bool) -> str:
        return shard.removesuffix(".parquet") + (".tfrecord.gz" if compress else ".tfrecord")

    @staticmethod
    def write(source: str, path: str, label: str, config: dict, compress: bool) -> int:
        from tfrecord.writer import TFRecordWriter

        seq, predictions = config["max_seq_length"], config["max_predictions_per_seq"]
        written = 0
        opener = gzip.open if compress else open
        with opener(path, "wb") as handle:
            for batch in padded_batches(source, label, seq, predictions):
                for i in range(len(batch)):
                    record = TFRecordWriter.serialize_tf_example(
                        {
                            "input_ids": (batch.input_ids[i].tolist(), "int"),
                            "input_mask": (batch.input_mask[i].tolist(), "int"),
                            "segment_ids": (batch.segment_ids[i].tolist(), "int"),
                            "masked_lm_positions": (batch.masked_lm_positions[i].tolist(), "int"),
                            "masked_lm_ids": (batch.masked_lm_ids[i].tolist(), "int"),
                            "masked_lm_weights": (batch.masked_lm_weights[i].tolist(), "float"),
                            "next_sentence_labels": ([int(batch.next_sentence_labels[i])], "int"),
                        }
                    )
                    length = len(record).to_bytes(8, "little")
                    handle.write(length + TFRecordWriter.masked_crc(length))
                    handle.write(record + TFRecordWriter.masked_crc(record))
                written += len(batch)
        return written
