"""Pure: a phase's mixture of sources. The share asked of each source (by temperature or
by weight), its token target, and the whole documents drawn to meet it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def shares(
    available: dict[str, int], alpha: float | None, weights: dict[str, float] | None
) -> dict[str, float]:
    """q_i of each source: weights normalized, or p_i**alpha normalized, where p_i is
    source i's share of the available tokens (alpha 1: natural shares, 0: uniform)."""
    if weights is not None:
        total = sum(weights[name] for name in available)
        return {name: weights[name] / total for name in available}
    exponent = 1.0 if alpha is None else alpha
    tokens = sum(available.values())
    powered = {name: (n / tokens) ** exponent for name, n in available.items()}
    total = sum(powered.values())
    return {name: value / total for name, value in powered.items()}


def targets(asked: dict[str, float], tokens: int) -> dict[str, int]:
    """round(q_i x tokens) text tokens of each source."""
    return {name: round(share * tokens) for name, share in asked.items()}


@dataclass(frozen=True)
class Draw:
    """The documents one source gives a phase: `passes` whole passes over all of them,
    then `sampled` (document indices, ascending) for the rest of the target."""

    passes: int
    sampled: np.ndarray
    tokens: int  # text tokens drawn in all
    source_documents: int  # documents the source holds

    @property
    def documents(self) -> int:
        """Documents used, counting each repeat."""
        return self.passes * self.source_documents + len(self.sampled)


def draw_documents(document_tokens: np.ndarray, target: int, rng: np.random.Generator) -> Draw:
    """Whole passes while the target holds the source at least once more, then a seeded
    sample of documents (in a random order, cut where the running total comes closest
    to what is left): the tokens drawn are within one document of `target`."""
    total = int(document_tokens.sum())
    passes = target // total if total else 0
    left = target - passes * total
    sampled = np.zeros(0, np.int64)
    if left > 0:
        order = rng.permutation(len(document_tokens))
        running = np.cumsum(document_tokens[order])
        cut = int(np.searchsorted(running, left))  # running[cut] is the first >= left
        below = int(running[cut - 1]) if cut else 0
        take = cut if left - below <= int(running[cut]) - left else cut + 1
        sampled = np.sort(order[:take])
    tokens = passes * total + int(document_tokens[sampled].sum())
    return Draw(passes, sampled, tokens, len(document_tokens))
