"""The errors for inputs that give nothing to make (build and tokenize share them)."""

from __future__ import annotations

from collections.abc import Sequence

from mlmprep.core.errors import InputError
from mlmprep.input.accounting import InputReport, no_documents_error
from mlmprep.pipeline.unit_result import UnitRecord


def no_readable_input(inputs: list[str]) -> InputError:
    """The error for inputs of which no file can be read as text."""
    return InputError(
        f"{', '.join(inputs)}: no readable input (every file is binary); "
        "pass text, jsonl or parquet files"
    )


def no_documents(inputs: list[str], results: Sequence[UnitRecord]) -> InputError:
    """The error for inputs that gave no document, with what the units skipped."""
    report = InputReport()
    for result in results:
        report.merge_dict(result.accounting, result.examples)
    return no_documents_error(inputs, report)
