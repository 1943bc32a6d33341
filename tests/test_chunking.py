import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.algorithm.chunking import (
    ChunkingTotals,
    UniformDraws,
    chunk_documents,
    document_target,
)


def scan_reference(lengths, document_starts, draws, max_num_tokens, short_seq_prob, minimum, take):
    """The chunking rule read literally: add sentences one at a time until the chunk holds
    `minimum` sentences and reaches the target, or the document ends."""
    skipped = unused = 0
    for document in range(len(document_starts) - 1):
        first, end = document_starts[document], document_starts[document + 1]
        if end - first < minimum:
            skipped += 1
            continue
        target = document_target(draws, max_num_tokens, short_seq_prob)
        chunk_first = i = first
        tokens = 0
        while i < end:
            tokens += lengths[i]
            if i - chunk_first + 1 >= minimum and (i == end - 1 or tokens >= target):
                chunk_first = i = take(document, chunk_first, i, target)
                tokens = 0
            else:
                i += 1
        unused += end - chunk_first
    return ChunkingTotals(skipped, unused)


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    cuts=st.sets(st.integers(1, 59)),
    max_num_tokens=st.integers(2, 100),
    minimum=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_chunks_are_those_of_the_sentence_by_sentence_scan(
    lengths, cuts, max_num_tokens, minimum, seed
):
    document_starts = sorted({0, len(lengths), *(c for c in cuts if c < len(lengths))})
    sentence_starts = np.concatenate(([0], np.cumsum(lengths))).tolist()

    def run(chunker, sentences):
        calls = []

        def take(document, first, last, target):
            calls.append((document, first, last, target))
            return first + 1 + (7 * first + last) % (last - first + 1)  # in first+1..last+1

        draws = UniformDraws(np.random.default_rng(seed))
        totals = chunker(sentences, document_starts, draws, max_num_tokens, 0.3, minimum, take)
        return calls, totals

    ours = run(chunk_documents, sentence_starts)
    assert ours == run(scan_reference, lengths)
    assert ours[0] or ours[1].skipped_documents == len(document_starts) - 1
