"""Whether a vocab.txt is cased, to warn when its text would be lowercased by default."""

from __future__ import annotations

from mlmprep.core import storage
from mlmprep.text.tokenization import BUNDLED


def casing_warning(name_or_path: str, lowercase: bool | None) -> str | None:
    """A warning when a vocab.txt is cased but its text is lowercased by default: its
    uppercase entries could then be reached only as random replacements. None when the
    casing was chosen (--lowercase or --no-lowercase) or the file is not a vocab.txt."""
    if lowercase is not None or name_or_path in BUNDLED:
        return None
    if name_or_path.endswith((".json", ".model")) or not storage.exists(name_or_path):
        return None
    with storage.open_file(name_or_path, "rb") as handle:
        entries = handle.read().decode("utf-8", errors="replace").split("\n")
    cased = sum(1 for entry in entries if entry != entry.lower() and not _is_special(entry))
    if cased <= max(CASED_ENTRIES, len(entries) * CASED_SHARE):
        return None
    return (
        f"{name_or_path}: {cased:,} entries hold uppercase letters (a cased vocabulary), but "
        "the text is lowercased by default, so they are never produced: pass --no-lowercase "
        "for a cased vocabulary, or --lowercase to keep lowercasing"
    )


CASED_ENTRIES, CASED_SHARE = 10, 0.005  # more uppercase entries than both: a cased vocab


def _is_special(entry: str) -> bool:
    """[CLS], [unused0] and the like."""
    return entry.startswith("[") and entry.endswith("]")
