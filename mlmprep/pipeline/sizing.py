"""How large units and buckets are, chosen from the input size and the config.

Three sizes pull against each other: a unit's spill file holds one slice per bucket, so
slices shrink as units and buckets multiply (and each slice is one read, one request on
object storage); a bucket is shuffled in memory by one worker; and units are the grain
of parallelism. The rule, with S the estimated spill bytes (raw × dupe × 1.8):

* while windows of 8 MiB and buckets of about one shard still leave slices of at least
  1 MiB, units are 8 MiB and a bucket is about one shard (small and medium corpora);
* beyond that, buckets grow to 256 MiB of spill (a bucket then becomes several shards),
  buckets = ceil(S / 256 MiB), and units grow so that slices stay at 1 MiB:
  units = floor(S / (buckets × 1 MiB)), about 256, unit size = raw / units;
* where that leaves fewer units than sqrt(S / 1 MiB) (about 7.6 GB of raw text at dupe 5,
  38 GB at dupe 1), or units over 4 GiB, there are sqrt(S / 1 MiB) units (raw / 4 GiB if
  more) and the shuffle has two levels (`pipeline/groups.py`): each unit's file is read
  in groups of neighbouring buckets, one slice of at least 1 MiB per unit and group, and
  a group task copies its buckets' rows into one file where every bucket is one range.
  The rows of a bucket, and so the shards, are the same as with one level.

Units are always read in windows of at most 8 MiB of text, so memory stays flat however
large a unit is; NSP negatives come from the same window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from mlmprep.core.config import TRAIN, VALIDATION, BuildConfig
from mlmprep.core.errors import ConfigError

MiB = 1024 * 1024
WINDOW_BYTES = 8 * MiB
SPILL_BYTES_PER_RAW_BYTE = 1.8  # Arrow IPC with lz4, per pass (measured on en-tech)
OUTPUT_BYTES_PER_SPILL_BYTE = 0.8  # Parquet shards against their spill (en-tech, sample)
BYTES_PER_TOKEN = 3.0  # conservative (English ~4.3, Chinese ~3): overestimates instances
FILL = 0.9  # instances are about 90% of max_num_tokens long
MIN_SLICE_BYTES = 1 * MiB
MAX_BUCKET_SPILL_BYTES = 256 * MiB
MAX_UNIT_BYTES = 4 * 1024 * MiB
MIN_UNIT_BYTES = 4096  # as --unit-size


@dataclass(frozen=True)
class Sizing:
    """Unit size in raw input bytes, window size in bytes of text (UTF-8, as the input
    holds it), and spill buckets per split."""

    unit_size: int
    window_size: int
    buckets: dict[str, int]
    group_buckets: int = 0  # two-level shuffle: neighbouring buckets per group; 0: one level

    def groups(self, split: str) -> list[range]:
        """The buckets of each group of `split` (empty with one level)."""
        size, total = self.group_buckets, self.buckets[split]
        if not size:
            return []
        return [range(start, min(start + size, total)) for start in range(0, total, size)]

    @property
    def group_count(self) -> int:
        return sum(len(self.groups(split)) for split in self.buckets)

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


def choose_sizing(raw_bytes: int, config: BuildConfig, shuffle_groups: int | None = None) -> Sizing:
    """Unit, window and bucket sizes for `raw_bytes` of input (see the module docstring).
    An explicit --unit-size keeps buckets of about one shard; --units sets the unit count.
    `shuffle_groups` (--shuffle-groups) sets the groups of a two-level shuffle (0: one
    level), which never changes the rows: without it, the groups follow the rule above."""
    shares = split_shares(config)
    per_shard = {
        split: _shard_buckets(raw_bytes * share, config) if share else 0
        for split, share in shares.items()
    }
    if config.unit_size:  # one level unless asked: the sizes are the user's
        sizing = Sizing(config.unit_size, min(config.unit_size, WINDOW_BYTES), per_shard)
        return _grouped(sizing, raw_bytes, config, shuffle_groups or 0)
    spill = estimated_spill_bytes(raw_bytes, config)
    windows = max(1, math.ceil(raw_bytes / WINDOW_BYTES))
    if spill / (windows * sum(per_shard.values())) >= MIN_SLICE_BYTES:
        buckets, unit_size = per_shard, WINDOW_BYTES
    else:
        total = max(1, math.ceil(spill / MAX_BUCKET_SPILL_BYTES))
        units = max(1, int(spill // (total * MIN_SLICE_BYTES)))
        many = max(math.isqrt(int(spill // MIN_SLICE_BYTES)), math.ceil(raw_bytes / MAX_UNIT_BYTES))
        unit_size = max(WINDOW_BYTES, math.ceil(raw_bytes / max(units, many)))
        buckets = {
            split: max(1, round(total * share)) if share else 0 for split, share in shares.items()
        }
    if config.units:
        unit_size = _unit_size_for(config.units, raw_bytes)
    sizing = Sizing(unit_size, min(unit_size, WINDOW_BYTES), buckets)
    return _grouped(sizing, raw_bytes, config, shuffle_groups)


def _unit_size_for(units: int, raw_bytes: int) -> int:
    """The unit size that cuts `raw_bytes` into `units` units (--units)."""
    most = max(1, raw_bytes // MIN_UNIT_BYTES)
    if units > most:
        raise ConfigError(
            f"--units {units}: this input ({raw_bytes:,} bytes of text) makes at most {most:,} "
            f"units of at least {MIN_UNIT_BYTES} bytes; give at most --units {most}"
        )
    return max(MIN_UNIT_BYTES, math.ceil(raw_bytes / units))


def _grouped(
    sizing: Sizing, raw_bytes: int, config: BuildConfig, shuffle_groups: int | None
) -> Sizing:
    """`sizing` with the groups of its shuffle: those asked for, or, where its slices fall
    under 1 MiB, as many groups as keep slices of a unit's group at 1 MiB (at least 2)."""
    total = sum(sizing.buckets.values())
    if shuffle_groups is None:
        units = max(1, math.ceil(raw_bytes / sizing.unit_size))
        spill = estimated_spill_bytes(raw_bytes, config)
        if spill / (units * total) >= MIN_SLICE_BYTES:
            return sizing
        shuffle_groups = min(total, int(spill // (units * MIN_SLICE_BYTES)))
        if shuffle_groups < 2:
            return sizing
    if shuffle_groups > total:
        raise ConfigError(
            f"--shuffle-groups {shuffle_groups}: this build has {total:,} buckets, and a group "
            f"holds at least one; give at most --shuffle-groups {total}"
        )
    if shuffle_groups == 0:
        return sizing
    return replace(sizing, group_buckets=math.ceil(total / shuffle_groups))


def _shard_buckets(raw_bytes: float, config: BuildConfig) -> int:
    """Buckets of about one shard each."""
    return max(1, math.ceil(estimated_instances(raw_bytes, config) / config.shard_size))
