"""InputReport: every document read is either used or skipped with a reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mlmprep.core.errors import InputError

MAX_EXAMPLES = 5


@dataclass
class InputReport:
    """Accounting of what was read: every document is either used or skipped with a reason."""

    documents_read: int = 0
    documents_used: int = 0
    documents_skipped: Counter = field(default_factory=Counter)
    files_read: int = 0
    files_skipped: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about whole files, each said once
    strict: bool = False

    def use_document(self) -> None:
        """Count a document that made it into the build."""
        self.documents_read += 1
        self.documents_used += 1

    def skip_document(self, location: str, reason: str, detail: str = "") -> None:
        """Count a document that is dropped (by `reason`; `detail` is said of this one
        only); in strict mode, fail naming it."""
        self.documents_read += 1
        self.documents_skipped[reason] += 1
        self._problem(location, f"{reason} ({detail})" if detail else reason)

    def note_file(self, path: str, message: str) -> None:
        """Say something of a whole file once (a warning; with --strict, an error)."""
        line = f"{path}: {message}"
        if self.strict:
            raise InputError(f"{line} (--strict is on)")
        if line not in self.notes:
            self.notes.append(line)

    def skip_file(self, path: str, reason: str) -> None:
        """Count a file that yields nothing (binary, unreadable)."""
        self.files_skipped[reason] += 1
        self._problem(path, reason)

    def repair(self, location: str, reason: str) -> None:
        """Count a document used after repairing its bytes."""
        self.repaired[reason] += 1
        self._problem(location, f"{reason} (replaced)")

    def _problem(self, location: str, reason: str) -> None:
        message = f"{location}: {reason}"
        if self.strict:
            raise InputError(f"{message} (--strict is on; drop --strict to skip and count it)")
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)

    def merge_dict(self, data: dict, examples: list[str]) -> None:
        """Add counts from another report's `to_dict()` (from another unit or process)."""
        self.documents_read += data["documents"]["read"]
        self.documents_used += data["documents"]["used"]
        self.documents_skipped.update(data["documents"]["skipped"])
        self.files_read += data["files"]["read"]
        self.files_skipped.update(data["files"]["skipped"])
        self.repaired.update(data["repaired"])
        self.notes.extend(n for n in data.get("notes", []) if n not in self.notes)
        self.examples.extend(examples[: MAX_EXAMPLES - len(self.examples)])

    def to_dict(self) -> dict:
        """The accounting section of index.json: documents, files and repairs."""
        return {
            "documents": {
                "read": self.documents_read,
                "used": self.documents_used,
                "skipped": dict(sorted(self.documents_skipped.items())),
            },
            "files": {"read": self.files_read, "skipped": dict(sorted(self.files_skipped.items()))},
            "repaired": dict(sorted(self.repaired.items())),
            "notes": self.notes,
        }
