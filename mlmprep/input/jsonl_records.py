"""JSON Lines records: each line's text field, and why a file gave none (the fields its
records hold instead, or lines that are not JSON Lines)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from mlmprep.input.accounting import InputReport


def jsonl_texts(
    lines: Iterator[tuple[str, bytes]], text_field: str, report: InputReport, name: str
) -> Iterator[tuple[str, str]]:
    """(location, text) of each usable record of JSON Lines file (or part) `name`; the
    others are skipped with their reason, and a file none of whose records could be used
    gets a note saying why."""
    seen = JsonlRecords(text_field)
    for location, raw in lines:
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            seen.malformed += 1
            report.skip_document(location, MALFORMED_JSON)
            continue
        text = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            seen.add(record)
            report.skip_document(location, f"missing text field {text_field!r}", seen.detail)
            continue
        seen.used += 1
        yield location, text
    note = seen.note()
    if note:
        report.note_file(name, note)


MALFORMED_JSON = "malformed JSON line"
NOT_JSON_LINES = (
    "not JSON Lines: write one JSON object a line (a JSON array or pretty-printed JSON is not read)"
)


class JsonlRecords:
    """What the records of one JSON Lines file (or part) held when none could be used: the
    fields they have instead of the text field, or lines that are not JSON Lines at all."""

    def __init__(self, text_field: str) -> None:
        self.text_field = text_field
        self.used = self.malformed = self.objects = 0
        self.text_chars: dict[str, int] = {}  # field -> characters of its string values
        self.detail = ""  # of the last record without the text field

    def add(self, record: object) -> None:
        """Count a record that has no text field."""
        if not isinstance(record, dict):
            self.detail = f"a JSON {type(record).__name__}, not an object"
            return
        self.objects += 1
        self.detail = f"its fields: {', '.join(list(record)[:8])}; pass --text-field"
        for key, value in record.items():
            if isinstance(value, str):
                self.text_chars[key] = self.text_chars.get(key, 0) + len(value)

    def note(self) -> str | None:
        """Why nothing of the file (or part) was used, when nothing was: a one-line hint."""
        if self.used:
            return None
        if self.text_chars:
            best = max(self.text_chars, key=self.text_chars.get)
            return (
                f"no record has a text field {self.text_field!r}; its records' text fields: "
                f"{', '.join(sorted(self.text_chars))}; pass --text-field {best}"
            )
        if not self.objects and (self.malformed or self.detail):
            return NOT_JSON_LINES
        return None
