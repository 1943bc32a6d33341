"""The reference generators' files, so the trainers that read them need no change.

* `nvidia-hdf5`: what NVIDIA DeepLearningExamples' `create_pretraining_data.py` writes:
  datasets `input_ids` (i4), `input_mask` (i1), `segment_ids` (i1) of shape
  [N, max_seq_length], `masked_lm_positions` (i4), `masked_lm_ids` (i4) of shape
  [N, max_predictions_per_seq], `next_sentence_labels` (i1) of shape [N]; zero-padded,
  gzip-compressed (extra `mlmprep[hdf5]`, h5py). Train files are named `training-…`:
  the trainer reads the files of its input folder whose name holds "training".
* `tfrecord`: `tf.train.Example` records with Google BERT's features (int64 lists
  `input_ids`, `input_mask`, `segment_ids`, `masked_lm_positions`, `masked_lm_ids`,
  `next_sentence_labels`; float list `masked_lm_weights`), framed with the masked
  CRC32C of the TFRecord format; the protobuf messages and the CRC come from the
  `tfrecord` package (extra `mlmprep[tfrecord]`), no TensorFlow. Optionally gzipped.

Both use the reference's NSP convention, the same as mlmprep's: label 1 means B is a
random next segment.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from mlmprep.core.config import LABEL_COLUMNS, TRAIN
from mlmprep.core.errors import ConfigError
from mlmprep.formats.schema import list_values
from mlmprep.outputs.export.files import ExportFile
from mlmprep.outputs.export.writer import ExportOptions, ExportWriter
from mlmprep.outputs.finished_build import FinishedBuild


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


def reference_label_column(build: FinishedBuild) -> str:
    """The column exported as next_sentence_labels; refuses builds that do not map."""
    config, where = build.config, build.output_dir
    if config["masking"] != "static":
        raise ConfigError(
            f"{where}: a dynamic-masking build stores no masks; the reference formats "
            "need static masks: rebuild with --masking static (or export --format mds / lddl)"
        )
    if config["objective"] == "none":
        raise ConfigError(
            f"{where}: an --objective none build has no sentence label; the reference "
            "formats need NSP pairs: rebuild with --objective nsp (or sop), or export "
            "--format mds"
        )
    if "layout" in build.index["tokenizer"]:
        raise ConfigError(
            f"{where}: the reference formats hold BERT's [CLS] A [SEP] B [SEP] rows; this "
            "build has another tokenizer layout: read its Parquet shards directly instead"
        )
    return LABEL_COLUMNS[config["objective"]]


def padded_batches(
    batches: Iterable[pa.RecordBatch], label: str, max_seq_length: int, max_predictions: int
) -> Iterator[PaddedRows]:
    """Record batches of a static build, padded."""
    for batch in batches:
        ids, offsets = list_values(batch.column("input_ids"))
        types, _ = list_values(batch.column("token_type_ids"))
        positions, mask_offsets = list_values(batch.column("masked_lm_positions"))
        originals, _ = list_values(batch.column("masked_lm_ids"))
        yield PaddedRows(
            input_ids=_pad(ids, offsets, max_seq_length, np.int32),
            input_mask=_pad(np.ones(len(ids), np.int8), offsets, max_seq_length, np.int8),
            segment_ids=_pad(types, offsets, max_seq_length, np.int8),
            masked_lm_positions=_pad(positions, mask_offsets, max_predictions, np.int32),
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


class ReferenceWriter(ExportWriter):
    """What the two reference formats share: the label, the fixed shapes."""

    def __init__(self, build: FinishedBuild, options: ExportOptions) -> None:
        self.label = reference_label_column(build)
        self.seq = build.config["max_seq_length"]
        self.predictions = build.config["max_predictions_per_seq"]
        self.compress = options.gzip

    def padded(self, batches: Iterable[pa.RecordBatch]) -> Iterator[PaddedRows]:
        return padded_batches(batches, self.label, self.seq, self.predictions)

    def summary(self) -> dict:
        return {
            "label_from": self.label,
            "max_seq_length": self.seq,
            "max_predictions_per_seq": self.predictions,
        }


class Hdf5Writer(ReferenceWriter):
    file_pattern = r"(training|validation)-\d{5}-of-\d{5}\.hdf5"

    def check_installed(self) -> None:
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format nvidia-hdf5 needs h5py: pip install 'mlmprep[hdf5]'"
            ) from None

    def warnings(self, counts: dict[str, int]) -> list[str]:
        if counts.get(TRAIN, 2) >= 2:
            return []
        return [
            "one training file: NVIDIA's HDF5 trainer never trains on the last file of its "
            "shuffled list each epoch, so with one file it trains on nothing; export with "
            "--num-files 2 or more"
        ]

    def file_name(self, file: ExportFile) -> str:
        """NVIDIA's run_pretraining.py reads the files of --input_dir whose name holds
        'training': train files are named so, validation files are not."""
        stem = "training" if file.split == TRAIN else file.split
        return f"{stem}-{file.number:05d}-of-{file.count:05d}.hdf5"

    def write(
        self, batches: Iterable[pa.RecordBatch], rows: int, path: str, file: ExportFile
    ) -> dict:
        import h5py

        seq, predictions = self.seq, self.predictions
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
            for batch in self.padded(batches):
                for name, dataset in datasets.items():
                    dataset[written : written + len(batch)] = getattr(batch, name)
                written += len(batch)
        return {"rows": written}


class TfRecordWriter(ReferenceWriter):
    takes_gzip = True
    file_pattern = r"(train|validation)-\d{5}-of-\d{5}\.tfrecord(\.gz)?"

    def check_installed(self) -> None:
        try:
            import tfrecord  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format tfrecord needs the tfrecord package: pip install 'mlmprep[tfrecord]'"
            ) from None

    def file_name(self, file: ExportFile) -> str:
        suffix = ".tfrecord.gz" if self.compress else ".tfrecord"
        return f"{file.split}-{file.number:05d}-of-{file.count:05d}{suffix}"

    def write(
        self, batches: Iterable[pa.RecordBatch], rows: int, path: str, file: ExportFile
    ) -> dict:
        from tfrecord.writer import TFRecordWriter

        written = 0
        with open(path, "wb") as raw, _gzip_or_not(raw, self.compress) as handle:
            for batch in self.padded(batches):
                for i in range(len(batch)):
                    record = _tf_example(
                        {
                            "input_ids": batch.input_ids[i].tolist(),
                            "input_mask": batch.input_mask[i].tolist(),
                            "segment_ids": batch.segment_ids[i].tolist(),
                            "masked_lm_positions": batch.masked_lm_positions[i].tolist(),
                            "masked_lm_ids": batch.masked_lm_ids[i].tolist(),
                            "next_sentence_labels": [int(batch.next_sentence_labels[i])],
                        },
                        {"masked_lm_weights": batch.masked_lm_weights[i].tolist()},
                    )
                    length = len(record).to_bytes(8, "little")
                    handle.write(length + TFRecordWriter.masked_crc(length))
                    handle.write(record + TFRecordWriter.masked_crc(record))
                written += len(batch)
        return {"rows": written}


def _tf_example(ints: dict[str, list[int]], floats: dict[str, list[float]]) -> bytes:
    """A serialized tf.train.Example, its features in name order: protobuf writes a map
    in whatever order the process's hashing gives unless asked to be deterministic (the
    tfrecord package does not ask), so two runs, or two workers, wrote different bytes."""
    from tfrecord import example_pb2

    feature = {
        name: example_pb2.Feature(int64_list=example_pb2.Int64List(value=values))
        for name, values in ints.items()
    }
    feature |= {
        name: example_pb2.Feature(float_list=example_pb2.FloatList(value=values))
        for name, values in floats.items()
    }
    example = example_pb2.Example(features=example_pb2.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def _gzip_or_not(raw: BinaryIO, compress: bool) -> contextlib.AbstractContextManager:
    """`raw`, or a gzip stream into it with no name or time in its header, so the same
    rows give the same bytes."""
    if not compress:
        return contextlib.nullcontext(raw)
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
