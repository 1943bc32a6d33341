"""The export room's registry: every format's writer loads, owns the names of the files it
writes (what a destination's check recognises), and MDS columns encode as the published
layout decodes."""

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.outputs.export.destination import export_name_pattern
from mlmprep.outputs.export.files import ExportFile
from mlmprep.outputs.export.formats import FORMATS
from mlmprep.outputs.export.mds import MdsColumn
from mlmprep.outputs.export.writer import ExportWriter

SHAPE_CODES = {0: np.uint8, 1: np.uint16, 2: np.uint32}


def decode_ndarray(data: bytes, dtype: str) -> np.ndarray:
    """A one-dimensional MDS ndarray, read as the layout says: one byte (ndim << 2 | shape
    dtype code), the shape in that dtype, then the values."""
    ndim, code = data[0] >> 2, data[0] & 3
    shape_dtype = np.dtype(SHAPE_CODES[code])
    assert ndim == 1
    (length,) = np.frombuffer(data, shape_dtype, 1, 1)
    values = np.frombuffer(data, dtype, offset=1 + shape_dtype.itemsize)
    assert len(values) == length
    return values


@pytest.mark.parametrize("name", FORMATS)
def test_every_registered_writer_loads_and_declares_its_file_names(name):
    writer = FORMATS[name].writer_class()
    assert issubclass(writer, ExportWriter) and writer is not ExportWriter
    assert writer.file_pattern and re.compile(writer.file_pattern)


@pytest.mark.parametrize(
    "name, wanted",
    [
        ("nvidia-hdf5", "training-00001-of-00002.hdf5"),
        ("tfrecord", "validation-00000-of-00001.tfrecord.gz"),
        ("mds", "shard.00001.mds.zstd"),
        ("lddl", "part-00001-of-00002.parquet_3"),
    ],
)
def test_a_writers_pattern_matches_the_names_it_writes(name, wanted):
    """Guards the destination check: a name the writer makes is recognised as an export's
    (or --overwrite would refuse its own earlier export)."""
    writer = FORMATS[name].writer_class().__new__(FORMATS[name].writer_class())
    writer.compress, writer.compression = True, "zstd"
    split = "validation" if "validation" in wanted else "train"
    file = ExportFile(split, 1 if "00001" in wanted else 0, 2, 0, 1, bin_number=3)
    if name == "tfrecord":
        file = ExportFile(split, 0, 1, 0, 1)
    made = writer.file_name(file).rsplit("/", 1)[-1]
    assert made == wanted
    assert re.fullmatch(writer.file_pattern, made)
    assert export_name_pattern().fullmatch(made)
    assert not export_name_pattern().fullmatch("notes.txt")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**16 - 1), max_size=40), min_size=1, max_size=8))
def test_an_ndarray_column_round_trips(rows):
    column = MdsColumn("input_ids", "ndarray:uint16")
    encoded = column.encode(pa.array(rows, pa.list_(pa.int32())))
    assert column.size is None
    assert [decode_ndarray(e, "uint16").tolist() for e in encoded] == rows


@pytest.mark.parametrize("length, code", [(0, 0), (255, 0), (256, 1), (65535, 1), (65536, 2)])
def test_the_shape_takes_the_smallest_dtype_that_holds_it(length, code):
    encoded = MdsColumn("ids", "ndarray:uint32").encode(
        pa.array([list(range(length))], pa.list_(pa.int32()))
    )[0]
    assert encoded[0] == (1 << 2) | code
    assert decode_ndarray(encoded, "uint32").tolist() == list(range(length))


def test_an_int8_column_is_one_twos_complement_byte_per_sample():
    column = MdsColumn("next_sentence_label", "int8")
    assert column.size == 1
    assert column.encode(pa.array([0, 1, -1], pa.int8())) == [b"\x00", b"\x01", b"\xff"]


def test_an_int16_column_is_two_little_endian_bytes_per_sample():
    """A recipe phase's source column, as MDS's int16 scalar encoding reads it."""
    column = MdsColumn("source", "int16")
    assert column.size == 2
    assert column.encode(pa.array([0, 2, 258, -2], pa.int16())) == [
        b"\x00\x00",
        b"\x02\x00",
        b"\x02\x01",
        b"\xfe\xff",
    ]
