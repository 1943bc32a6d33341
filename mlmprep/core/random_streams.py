"""The random streams: one numbered stream per purpose, keyed by what it serves.

Every random choice comes from `Generator(PCG64(SeedSequence([seed, stream, *keys])))`.
The full key layout is in docs/design.md; numbers are never reused for another purpose.
"""

from __future__ import annotations

import hashlib

import numpy as np

from mlmprep.core.config import TRAIN, VALIDATION

TRAIN_PAIRS = 0
TRAIN_MASKING = 1
SCATTER = 2  # keys: unit, split index
SHARD_SHUFFLE = 3  # keys: bucket (, 1 for validation)
VALIDATION_HOLD_OUT = 4  # keys: unit
VALIDATION_PAIRS = 5
DYNAMIC_MASKING = 6  # torch collator; keys: epoch, DataLoader worker, rank
VALIDATION_MASKING = 7
ROW_GROUP_ORDER = 8  # torch iterable dataset; keys: epoch
MIXTURE_DRAW = 9  # a recipe phase's documents of a source; keys: phase key, source key
MIXTURE_HOLD_OUT = 10  # a recipe source's validation documents; keys: source key, block
PACKED_BATCHES = 11  # torch packed batch sampler's row order; keys: epoch

PAIRS = {TRAIN: TRAIN_PAIRS, VALIDATION: VALIDATION_PAIRS}
MASKING = {TRAIN: TRAIN_MASKING, VALIDATION: VALIDATION_MASKING}


def seed_sequence(seed: int, stream: int, *keys: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, stream, *keys])


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """The generator of one stream for the given keys."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, stream, *keys)))


def name_key(name: str) -> int:
    """A stable stream key for a name (a recipe's phase or source): the same in every
    run and process, unlike hash()."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") >> 1
