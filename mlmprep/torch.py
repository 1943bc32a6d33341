"""The documented PyTorch API, `from mlmprep.torch import ...`: a collator, datasets, a
packed batch sampler and a packed iterable dataset over mlmprep shards (their homes are
`mlmprep.outputs.torch` and `mlmprep.outputs.packed_batches`)."""

from mlmprep.outputs.packed_batches import PackedBatchSampler, PackedIterableDataset
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
    "PackedIterableDataset",
    "block_diagonal_mask",
]
