"""Text too long to handle as one piece is cut at whitespace, so memory stays bounded."""

from __future__ import annotations

MAX_SENTENCE_CHARS = 20_000  # a longer "sentence" is cut into pieces of at most this


def cut_long(sentence: str, limit: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Cut a sentence longer than `limit` characters at whitespace, so memory stays bounded."""
    if len(sentence) <= limit:
        return [sentence]
    pieces = []
    start = 0
    while len(sentence) - start > limit:
        cut = sentence.rfind(" ", start + limit // 2, start + limit)
        if cut <= start:
            cut = start + limit
        pieces.append(sentence[start:cut])
        start = cut
    pieces.append(sentence[start:])
    return [piece for piece in (p.strip() for p in pieces) if piece]
