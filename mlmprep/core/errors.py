"""Error types that the CLI turns into one-line messages (never tracebacks)."""

from __future__ import annotations


class MlmprepError(Exception):
    """Base class: a user mistake or bad input, with a message that says what to do."""

    exit_code = 1


class ConfigError(MlmprepError):
    """An option value is invalid; the message names the option."""

    exit_code = 2


class InputError(MlmprepError):
    """An input file is missing, unreadable or malformed."""


class TokenizerError(MlmprepError):
    """The tokenizer cannot be loaded or lacks a required special token."""

    exit_code = 2


class OutputError(MlmprepError):
    """The output directory cannot be used (not writable, holds another build, disk full)."""


def write_failure(where: str, exc: OSError) -> OutputError:
    """One line for an OSError of our own writes, with the resume hint."""
    path = f" ({exc.filename})" if exc.filename else ""
    return OutputError(
        f"{where}: cannot write ({exc.strerror or exc}){path}; fix it, then run the same "
        "command again to resume"
    )


class ClusterError(MlmprepError):
    """The connection to a Dask scheduler or its workers was lost mid-build."""
