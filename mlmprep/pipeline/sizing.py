"""How large units and buckets are, chosen from the input size and the config.

Three sizes pull against each other: a unit's spill file holds one slice per bucket, so
slices shrink as units and buckets multiply (and each slice is one read, one request on
object storage); a bucket is shuffled in memory by one worker; and units are the grain
of parallelism. The rule, with S the estimated spill bytes (raw × dupe × 1.8):

* while windows of 8 MiB and buckets of about one shard still leave slices of at least
  1 MiB, units are 8 MiB and a bucket is about one shard (small and medium corpora);
* beyond that, buckets grow to 256 MiB of spill (a bucket then becomes several shards),
  buckets = ceil(S / 256 MiB), and units grow so that slices stay at 1 MiB:
  units = floor(S / (buckets × 1 MiB)), about 256, unit size = raw / units.

Units are always read in windows of at most 8 MiB of text, so memory stays flat however
large a unit is; NSP negatives come from the same window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mlmprep.core.config import TRAIN, VALIDATION, BuildConfig

MiB = 1024 * 1024
WINDOW_BYTES = 8 * MiB
SPILL_BYTES_PER_RAW_BYTE = 1.8  # Arrow IPC with lz4, per pass (measured on en-tech)
OUTPUT_BYTES_PER_SPILL_BYTE = 0.8  # Parquet shards against their spill (en-tech, sample)
BYTES_PER_TOKEN = 3.0  # conservative (English ~4.3, Chinese ~3): overestimates instances
FILL = 0.9  # instances are about 90% of max_num_tokens long
MIN_SLICE_BYTES = 1 * MiB
MAX_BUCKET_SPILL_BYTES = 256 * MiB


@dataclass(frozen=True)
class Sizing:
    """Unit size in raw input bytes, window size in bytes of text (UTF-8, as the input
    holds it), and spill buckets per split."""

    unit_size: int
    window_size: int
    buckets: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Sizing:
        return cls(**data)


def split_shares(config: BuildConfig) -> dict[str, float]:
    """The share of the input each split gets."""
    return {TRAIN: 1 - config.validation_fraction, VALIDATION: config.validation_fraction}


def estimated_instances(raw_bytes: float, config: BuildConfig) -> float:
    """Instances a build makes from `raw_bytes` of text (an overestimate)."""
    return raw_bytes * config.dupe_factor / (BYTES_PER_TOKEN * config.max_num_tokens * FILL)


def estimated_spill_bytes(raw_bytes: float, config: BuildConfig) -> float:
    return raw_bytes * config.dupe_factor * SPILL_BYTES_PER_RAW_BYTE


def choose_sizing(raw_bytes: int, config: BuildConfig) -> Sizing:
    """Unit, window and bucket sizes for `raw_bytes` of input (see the module docstring).
    An explicit --unit-size keeps buckets of about one shard."""
    shares = split_shares(config)
    per_shard = {
        split: _shard_buckets(raw_bytes * share, config) if share else 0
        for split, share in shares.items()
    }
    if config.unit_size:
        return Sizing(config.unit_size, min(config.unit_size, WINDOW_BYTES), per_shard)
    spill = estimated_spill_bytes(raw_bytes, config)
    windows = max(1, math.ceil(raw_bytes / WINDOW_BYTES))
    if spill / (windows * sum(per_shard.values())) >= MIN_SLICE_BYTES:
        return Sizing(WINDOW_BYTES, WINDOW_BYTES, per_shard)
    total = max(1, math.ceil(spill / MAX_BUCKET_SPILL_BYTES))
    units = max(1, int(spill // (total * MIN_SLICE_BYTES)))
    unit_size = max(WINDOW_BYTES, math.ceil(raw_bytes / units))
    buckets = {
        split: max(1, round(total * share)) if share else 0 for split, share in shares.items()
    }
    return Sizing(unit_size, WINDOW_BYTES, buckets)


def _shard_buckets(raw_bytes: float, config: BuildConfig) -> int:
    """Buckets of about one shard each."""
    return max(1, math.ceil(estimated_instances(raw_bytes, config) / config.shard_size))
