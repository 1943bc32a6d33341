"""Find the input files (files, directories, globs; local or URLs) and describe them:
size, modification time, raw size, binary or not, and a fingerprint of the set."""

from __future__ import annotations

import functools
import glob
import os
import zlib
from dataclasses import dataclass

from mlmprep.core import storage
from mlmprep.core.errors import InputError
from mlmprep.core.output_markers import MARKER_KEYS, WORK_DIR, is_mlmprep_output
from mlmprep.input.readers import (
    BINARY_SNIFF_BYTES,
    READ_ERRORS,
    is_data_error,
    open_binary,
    read_error,
    split_suffixes,
)

COMPRESSION_RATIO = 4  # raw/compressed size guess where the format does not record it
GZIP_SAMPLE_BYTES = 1 << 20  # of a gzip file, decompressed to measure its ratio
BINARY_REASON = "binary file (NUL bytes)"


@dataclass(frozen=True)
class Source:
    """A whole file, or the byte range [start, end) of an uncompressed one.

    A part cut from a compressed stream is a file of its own, named in messages after
    the `origin` file it came from, its lines counted from `first_line`.
    """

    path: str
    format: str
    start: int = 0
    end: int | None = None
    origin: str | None = None
    first_line: int = 1


@dataclass(frozen=True)
class InputFile:
    """A resolved input file with what the plan needs of it."""

    path: str
    size: int
    mtime_ns: int
    raw_size: int
    skip_reason: str | None = None  # binary, or unreadable: left out and counted

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None


@dataclass(frozen=True)
class Discovery:
    """The input files found, and the mlmprep outputs (earlier builds and exports) found
    among the inputs and left out."""

    files: list[str]
    outputs_left_out: list[str]


def resolve_inputs(inputs: tuple[str, ...] | list[str], output_dir: str) -> list[str]:
    """The input files of `discover_inputs`, sorted."""
    return discover_inputs(inputs, output_dir).files


def discover_inputs(inputs: tuple[str, ...] | list[str], output_dir: str) -> Discovery:
    """Expand files, directories (recursively) and globs to a sorted list of files.

    Hidden files, the output directory and mlmprep's own outputs (a directory holding a
    build's index.json, an export's export.json or a work directory) are left out; an
    input named that is the output directory or inside it is refused. URLs (`file://`,
    `memory://`, `s3://`, ...) are expanded through fsspec.
    """
    found: set[str] = set()
    left_out: set[str] = set()
    for given in inputs:
        if storage.is_url(given):
            files, outputs = _resolve_url(given, output_dir)
            found.update(files)
            left_out.update(outputs)
            continue
        out = os.path.realpath(output_dir.removeprefix("file://"))
        if glob.has_magic(given):
            matches = glob.glob(given, recursive=True)
            if not matches:
                raise InputError(
                    f"{given}: the pattern matches no file; check the glob and quote it"
                )
        elif os.path.exists(given):
            matches = [given]
            _refuse_output_as_input(given, os.path.realpath(given), out, output_dir)
        else:
            raise InputError(f"{given}: no such file or directory")
        for match in matches:
            if os.path.isdir(match):
                found.update(_walk(match, out, left_out))
            elif not _inside(os.path.realpath(match), out):
                found.add(os.path.normpath(match))
    if not found:
        outputs = ", ".join(sorted(left_out))
        held = f"; it holds only mlmprep outputs ({outputs})" if left_out else ""
        raise InputError(
            f"{', '.join(inputs)}: no input files found (directories are empty "
            f"or hold only the output{held}); pass text, jsonl or parquet files"
        )
    return Discovery(sorted(found), sorted(left_out))


def _refuse_output_as_input(given: str, real: str, out: str, output_dir: str) -> None:
    if _inside(real, out):
        raise InputError(
            f"{output_dir}: the output directory is an input or holds one ({given}); "
            "write the output to a directory outside the inputs"
        )


def _resolve_url(given: str, output_dir: str) -> tuple[list[str], list[str]]:
    """Files of a URL, a URL directory (recursively) or a URL glob, through fsspec, and
    the mlmprep outputs among them."""
    fs, path = storage.filesystem(given)
    out = fs._strip_protocol(output_dir) if storage.is_url(output_dir) else None
    if glob.has_magic(path):
        matches = fs.glob(path)
        if not matches:
            raise InputError(f"{given}: the pattern matches no file; check the glob and quote it")
    elif fs.exists(path):
        matches = [path]
        if out is not None:
            _refuse_output_as_input(given, path.rstrip("/"), out.rstrip("/"), output_dir)
    else:
        raise InputError(f"{given}: no such file or directory")
    files, outputs = [], set()
    for match in matches:
        found = fs.find(match) if fs.isdir(match) else [match]
        outputs |= _url_outputs(fs, match, found)
        for name in found:
            below = name[len(match) :].split("/") if name != match else []
            hidden = any(part.startswith(".") for part in below)
            inside = out is not None and _inside_url(name, out)
            if not hidden and not inside and not any(_inside_url(name, o) for o in outputs):
                files.append(fs.unstrip_protocol(name))
    return files, sorted(fs.unstrip_protocol(o) for o in outputs)


def _url_outputs(fs, top: str, found: list[str]) -> set[str]:
    """The directories under `top` that are mlmprep outputs."""
    names: dict[str, set[str]] = {}
    for name in found:
        directory, _, base = name.rpartition("/")
        if f"/{WORK_DIR}/" in name:
            directory, base = name.split(f"/{WORK_DIR}/")[0], WORK_DIR
        names.setdefault(directory, set()).add(base)
    return {
        directory
        for directory, held in names.items()
        if directory.startswith(top.rstrip("/"))
        and (held & {WORK_DIR, *MARKER_KEYS})
        and is_mlmprep_output(held, lambda marker, d=directory: fs.cat_file(f"{d}/{marker}"))
    }


def _inside_url(name: str, directory: str) -> bool:
    return name == directory or name.startswith(directory.rstrip("/") + "/")


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + os.sep)


def _walk(directory: str, out: str, left_out: set[str]) -> list[str]:
    """The files under `directory`, without the output and mlmprep outputs (added to
    `left_out`)."""
    files = []
    for root, dirs, names in os.walk(directory):
        if is_mlmprep_output({*dirs, *names}, functools.partial(_read_local, root)):
            left_out.add(os.path.normpath(root))
            dirs[:] = []
            continue
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and not _inside(os.path.realpath(os.path.join(root, d)), out)
        )
        files += [os.path.normpath(os.path.join(root, n)) for n in names if not n.startswith(".")]
    return files


def _read_local(directory: str, name: str) -> bytes:
    with open(os.path.join(directory, name), "rb") as handle:
        return handle.read()


def describe_inputs(paths: list[str]) -> list[InputFile]:
    """Sizes, mtimes, raw-size estimates and a binary sniff of each input file."""
    described = []
    for path in paths:
        try:
            size, mtime_ns = _stat(path)
        except READ_ERRORS as exc:
            raise read_error(path, exc) from None
        try:
            binary, raw_size = _sniff(path, size)
        except READ_ERRORS as exc:
            if not is_data_error(exc):
                raise read_error(path, exc) from None
            # damaged within its first bytes: read like any damaged file, which keeps
            # the documents before the damage and counts the file, whatever its size
            binary, raw_size = False, size * COMPRESSION_RATIO
        described.append(
            InputFile(path, size, mtime_ns, raw_size, BINARY_REASON if binary else None)
        )
    return described


def _stat(path: str) -> tuple[int, int]:
    """Size and modification time (ns; 0 where a store does not say) of a file."""
    if not storage.is_url(path):
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    fs, _ = storage.filesystem(path)
    info = fs.info(path)
    modified = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    if hasattr(modified, "timestamp"):
        modified = modified.timestamp()
    return int(info["size"]), int(float(modified) * 1e9)


def _sniff(path: str, size: int) -> tuple[bool, int]:
    if path.lower().endswith(".parquet"):
        return False, size
    with open_binary(path) as stream:
        head = stream.read(BINARY_SNIFF_BYTES)
    _, compression = split_suffixes(path)
    if compression is None:
        raw = size
    elif compression == "gzip" and size >= 4:
        raw = _gzip_raw_size(path, size)
    else:
        raw = size * COMPRESSION_RATIO
    return b"\x00" in head, raw


def _gzip_raw_size(path: str, size: int) -> int:
    """The raw size of a gzip file: its trailer where it can be trusted, else the size
    times the ratio measured on its first MiB. The trailer holds the size of the last
    member only, modulo 2**32: a concatenated file or one over 4 GiB is sized 3-4x low
    by it, so it is used only when the measured estimate agrees within a factor of 2."""
    with storage.open_file(path, "rb") as handle:
        head = handle.read(GZIP_SAMPLE_BYTES)
        handle.seek(size - 4)
        trailer = int.from_bytes(handle.read(4), "little")
    estimate = round(size * _gzip_ratio(head))
    if estimate < 2**32 and estimate / 2 <= trailer <= estimate * 2:
        return max(trailer, size)
    return max(estimate, size)


def _gzip_ratio(head: bytes) -> float:
    """Raw bytes per compressed byte over the first bytes of a gzip file, member after
    member; COMPRESSION_RATIO where they cannot be decompressed."""
    produced, rest = 0, head
    try:
        while len(rest) > 18:  # a gzip member's header and trailer take at least 18 bytes
            member = zlib.decompressobj(wbits=31)
            produced += len(member.decompress(rest))
            if not member.eof:
                return produced / len(head) if produced else COMPRESSION_RATIO
            rest = member.unused_data
    except zlib.error:
        return COMPRESSION_RATIO
    return produced / max(1, len(head) - len(rest))


def fingerprint(files: list[InputFile]) -> list[dict]:
    """Sorted paths, sizes and mtimes: a changed input makes a different fingerprint."""
    return [
        {
            "path": f.path if storage.is_url(f.path) else os.path.abspath(f.path),
            "size": f.size,
            "mtime_ns": f.mtime_ns,
        }
        for f in files
    ]
