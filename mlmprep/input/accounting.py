"""InputReport: every document read is either used or skipped with a reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mlmprep.core.errors import InputError

EMPTY_DOCUMENT = "empty"  # the reason a document without text is skipped
MAX_EXAMPLES = 5  # documents with a problem named in a run's warnings
MAX_FILES_SHOWN = 3  # skipped files named in a run's warnings, per reason (all in index.json)


@dataclass
class InputReport:
    """Accounting of what was read: every document is either used or skipped with a reason."""

    documents_read: int = 0
    documents_used: int = 0
    documents_skipped: Counter = field(default_factory=Counter)
    files_read: int = 0
    files_skipped: Counter = field(default_factory=Counter)
    files_named: dict[str, list[str]] = field(default_factory=dict)  # reason -> every file
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
        """Count and name a file left out (binary) or cut short (damaged), once."""
        if self.strict and path not in self.files_named.get(reason, ()):
            self._problem(path, reason)
        self._name_file(path, reason)

    def _name_file(self, path: str, reason: str) -> None:
        named = self.files_named.setdefault(reason, [])
        if path not in named:
            named.append(path)
            self.files_skipped[reason] += 1

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
        for reason, paths in data["files"].get("named", {}).items():
            for path in paths:
                self._name_file(path, reason)
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
            "files": {
                "read": self.files_read,
                "skipped": dict(sorted(self.files_skipped.items())),
                "named": {
                    reason: sorted(paths) for reason, paths in sorted(self.files_named.items())
                },
            },
            "repaired": dict(sorted(self.repaired.items())),
            "notes": self.notes,
        }

    def warnings(self, listed_in: str = "index.json accounting") -> list[str]:
        """What a run says of its inputs: notes on whole files, the skipped files (the
        first few of each reason, each reason counted on its own), the first documents
        with a problem, and how many more of those there are."""
        where = f" (every one is named in {listed_in})" if listed_in else ""
        lines = list(self.notes)
        for reason, paths in sorted(self.files_named.items()):
            shown = sorted(paths)[:MAX_FILES_SHOWN]
            lines += [f"{path}: {reason}" for path in shown]
            if len(paths) > len(shown):
                lines.append(f"... and {len(paths) - len(shown)} more files: {reason}{where}")
        more = sum(self.documents_skipped.values()) + sum(self.repaired.values())
        more -= len(self.examples)
        lines += self.examples
        if more > 0:
            where = f" (see {listed_in})" if listed_in else ""
            lines.append(f"... and {more} more documents like these{where}")
        return lines


def no_documents_error(inputs: list[str], report: InputReport) -> InputError:
    """The error for inputs that gave no document: what was skipped, and why."""
    skipped = ", ".join(f"{n} {reason}" for reason, n in report.documents_skipped.items())
    damaged = ", ".join(f"{n} {reason}" for reason, n in report.files_skipped.items())
    said = f"; {report.notes[0]}" if report.notes else ""
    said += f"; files skipped: {damaged}" if damaged else ""
    return InputError(
        f"{', '.join(inputs)}: no documents found ({report.files_read} files read, documents "
        f"skipped: {skipped or 'none'}{said}); check the files, --input-format and --text-field"
    )
