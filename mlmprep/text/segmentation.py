"""Word boundaries for languages written without spaces (Chinese, via jieba).

Chinese characters are single WordPiece tokens, so '##' pieces cannot tell words apart;
whole-word masking takes word boundaries from jieba's segmentation of the original text
instead, mapped to tokens through their character offsets (the Chinese-BERT-wwm idea).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from mlmprep.core.errors import ConfigError
from mlmprep.text.tokenization import SENTENCE_MARK, TokenEncoder

Segmenter = Callable[[str], list[str]]


def jieba_segmenter() -> Segmenter:
    """jieba's default segmentation (extra `mlmprep[zh]`)."""
    try:
        import jieba
    except ImportError:
        raise ConfigError(
            "--language zh needs jieba for word boundaries: pip install 'mlmprep[zh]'"
        ) from None
    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut


def word_boundaries(text: str, segment: Segmenter) -> np.ndarray:
    """Boolean per character position (plus the end): True where a word starts."""
    boundary = np.zeros(len(text) + 1, dtype=bool)
    position = 0
    for word in segment(text):
        boundary[position] = True
        position += len(word)
    return boundary


def encode_with_word_starts(
    encoder: TokenEncoder, documents: list[list[str]], segment: Segmenter
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Like `TokenEncoder.encode_documents`, plus per token: does a word start here?"""
    texts = [
        SENTENCE_MARK.join(s.replace(SENTENCE_MARK, " ") for s in sentences)
        for sentences in documents
    ]
    all_ids, all_lengths, all_starts = [], [], []
    for text, (ids, offsets) in zip(texts, encoder.encode_marked(texts)):
        is_mark = ids == encoder.mark_id
        marks = np.flatnonzero(is_mark)
        all_lengths.append(np.diff(np.concatenate(([-1], marks, [len(ids)]))) - 1)
        all_starts.append(word_boundaries(text, segment)[offsets][~is_mark])
        all_ids.append(encoder.sanitize(ids[~is_mark]))
    return all_ids, all_lengths, all_starts
