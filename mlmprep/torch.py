"""The documented PyTorch API, `from mlmprep.torch import ...`: a collator, datasets and a
packed batch sampler over mlmprep shards (their homes are `mlmprep.outputs.torch` and
`mlmprep.outputs.packed_sampler`)."""

from mlmprep.outputs.packed_sampler import PackedBatchSampler
from mlmprep.outputs.torch import (
    MlmCollator,
    MlmprepDataset,
    MlmprepIterableDataset,
    block_diagonal_mask,
)

__all__ = [
    "MlmCollator",
    "MlmprepDataset",
    "MlmprepIterableDataset",
    "PackedBatchSampler",
    "block_diagonal_mask",
]
