"""The one Parquet schema of mlmprep output, and record batches built from flat arrays."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from mlmprep.algorithm.instances import Instances
from mlmprep.algorithm.masking import Masked
from mlmprep.core.config import SOURCE_COLUMN, BuildConfig
from mlmprep.core.errors import OutputError

SCHEMA_VERSION = 1
METADATA_KEY = b"mlmprep"
COMPRESSION = "zstd"


def output_schema(config: BuildConfig) -> pa.Schema:
    """Columns for this build; columns that do not apply are left out (docs/guide.md)."""
    fields = [
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("token_type_ids", pa.list_(pa.int8()), nullable=False),
    ]
    if config.label_column:
        fields.append(pa.field(config.label_column, pa.int8(), nullable=False))
    if config.masking == "static":
        fields += [
            pa.field("masked_lm_positions", pa.list_(pa.int32()), nullable=False),
            pa.field("masked_lm_ids", pa.list_(pa.int32()), nullable=False),
        ]
    else:
        fields.append(pa.field("special_tokens_mask", pa.list_(pa.int8()), nullable=False))
        if config.whole_word_mask:
            fields.append(pa.field("word_ids", pa.list_(pa.int32()), nullable=False))
    if config.bin_size:
        fields.append(pa.field("length_bin", pa.int16(), nullable=False))
    fields.append(pa.field("num_tokens", pa.int16(), nullable=False))
    if config.sources:
        fields.append(pa.field(SOURCE_COLUMN, pa.int16(), nullable=False))
    return pa.schema(fields)


def list_array(offsets: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """A list<value_type> array from int64 offsets, refusing offsets that overflow int32."""
    if len(offsets) and offsets[-1] >= 2**31:
        raise OutputError(
            f"one pass holds {int(offsets[-1])} values, more than a Parquet list column "
            "takes in one batch (2**31); use a smaller --unit-size"
        )
    return pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), pa.array(values, type=value_type)
    )


def record_batch(
    config: BuildConfig,
    instances: Instances,
    masked: Masked | None,
    word_ids: np.ndarray | None = None,
    source: int = 0,
) -> pa.RecordBatch:
    """Rows of one pass of one unit as an Arrow record batch in the output schema
    (`source`: the index of the rows' source in a recipe phase's `config.sources`)."""
    schema = output_schema(config)
    tokens = masked.tokens if masked is not None else instances.tokens
    columns = {
        "input_ids": list_array(instances.offsets, tokens, pa.int32()),
        "token_type_ids": list_array(instances.offsets, instances.token_types, pa.int8()),
    }
    if config.label_column:
        columns[config.label_column] = pa.array(instances.labels, type=pa.int8())
    if masked is not None:
        columns["masked_lm_positions"] = list_array(masked.offsets, masked.positions, pa.int32())
        columns["masked_lm_ids"] = list_array(masked.offsets, masked.original_ids, pa.int32())
    else:
        columns["special_tokens_mask"] = list_array(
            instances.offsets, instances.special_mask, pa.int8()
        )
        if word_ids is not None:
            columns["word_ids"] = list_array(instances.offsets, word_ids, pa.int32())
    if config.bin_size:
        bins = (instances.lengths - 1) // config.bin_size
        columns["length_bin"] = pa.array(bins.astype(np.int16), type=pa.int16())
    columns["num_tokens"] = pa.array(instances.lengths.astype(np.int16), type=pa.int16())
    if config.sources:
        columns[SOURCE_COLUMN] = pa.array(np.full(len(instances), source, np.int16))
    return pa.record_batch([columns[name] for name in schema.names], schema=schema)


def with_metadata(schema: pa.Schema, facts: dict) -> pa.Schema:
    """Attach the build's key facts (config, tokenizer, versions) to a schema."""
    return schema.with_metadata({METADATA_KEY: json.dumps(facts, sort_keys=True).encode()})


def list_values(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values and offsets of a list column as numpy arrays."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy()
    return values[offsets[0] : offsets[-1]], offsets - offsets[0]
