"""Library errors (and Ctrl-C) become one-line messages and exit codes, never tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from mlmprep.core.errors import MlmprepError


def friendly(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C) into one-line messages with exit codes, no traceback."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except MlmprepError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # storage gave up (an object store down), never a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            _storage_failed(f"{where}{exc.strerror or exc}")
        except Exception as exc:
            if not type(exc).__module__.startswith(STORAGE_CLIENT_MODULES):
                raise
            _storage_failed(f"{type(exc).__name__}: {exc}".splitlines()[0])
        except KeyboardInterrupt:
            click.echo("Interrupted; run the same command again to resume.", err=True)
            sys.exit(130)

    return wrapper


# the HTTP and S3 clients under fsspec: what they raise past s3fs's own retries
STORAGE_CLIENT_MODULES = ("aiohttp", "botocore", "aiobotocore")


def _storage_failed(what: str) -> None:
    click.echo(
        f"Error: {what} (after retries); check the storage (disk or object store), then run "
        "the same command again to resume",
        err=True,
    )
    sys.exit(1)
