"""The registry of the formats `mlmprep export` writes: one entry per format, naming its
writer class and the trainers that read it. Light (the writers are imported only when
asked for), so that the command line lists the formats without loading numpy or pyarrow."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlmprep.outputs.export.writer import ExportWriter


@dataclass(frozen=True)
class ExportFormat:
    """One format: what reads it, and where its writer is (module:class in this room)."""

    description: str
    writer: str

    @property
    def module(self) -> str:
        """The writer's module, imported by the writer and by local export workers."""
        return f"mlmprep.outputs.export.{self.writer.split(':')[0]}"

    def writer_class(self) -> type[ExportWriter]:
        return getattr(importlib.import_module(self.module), self.writer.split(":")[1])


FORMATS = {
    "mds": ExportFormat(
        "MosaicML Streaming MDS shards (ModernBERT, mmBERT, EuroBERT; Composer)", "mds:MdsWriter"
    ),
    "lddl": ExportFormat(
        "LDDL balanced Parquet shards (NVIDIA's current BERT, lddl.torch)", "lddl:LddlWriter"
    ),
    "nvidia-hdf5": ExportFormat(
        "NVIDIA DeepLearningExamples' HDF5 (its pre-2022 BERT trainer; mlmprep[hdf5])",
        "reference:Hdf5Writer",
    ),
    "tfrecord": ExportFormat(
        "Google BERT's tf.train.Example records (mlmprep[tfrecord])",
        "reference:TfRecordWriter",
    ),
}
MDS_COMPRESSIONS = ("zstd",)
