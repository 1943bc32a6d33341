"""The documented PyTorch API, `from mlmprep.torch import ...`: a collator and datasets
over mlmprep shards (their home is `mlmprep.outputs.torch`)."""

from mlmprep.outputs.torch import MlmCollator, MlmprepDataset, MlmprepIterableDataset

__all__ = ["MlmCollator", "MlmprepDataset", "MlmprepIterableDataset"]
