"""Bad input and failing writes: one-line messages, exit codes, nothing half-written."""

import errno
import gzip
import json
import re
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmprep.pipeline.shuffle
from mlmprep.cli.main import main
from mlmprep.core.errors import InputError, MlmprepError, OutputError
from mlmprep.formats.schema import list_array
from mlmprep.input.readers import DAMAGE_STEP

from .helpers import SAMPLE_DIR, run_build, shard_hashes

SENTENCES = "The first sentence is here. A second one follows it.\n"


def invoke(*args: str):
    result = CliRunner().invoke(main, ["build", *args, "--workers", "1", "-q"])
    assert "Traceback" not in result.output
    return result


def test_every_corrupt_input_is_reported_in_one_run(tmp_path):
    """Two damaged .gz files (one truncated, one with a broken header) beside a good one:
    both are counted and named in the same run; --strict stops at the first."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt.gz").write_bytes(gzip.compress(SENTENCES.encode() * 2000)[:-50])
    (corpus / "b.txt.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not gzip data" * 50)
    (corpus / "c.txt").write_text(SENTENCES * 50)
    result = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "files:     3 read, 2 skipped (2 corrupt or truncated data)" in result.stdout
    for name in ("a.txt.gz", "b.txt.gz"):
        assert f"warning: {corpus / name}: corrupt or truncated data" in result.stderr
    strict = invoke(str(corpus), str(tmp_path / "strict"), "--strict")
    assert strict.exit_code == 1
    assert strict.stderr.startswith(f"Error: {corpus / 'a.txt.gz'}: corrupt or truncated data")
    assert "--strict is on" in strict.stderr and strict.stderr.count("\n") == 1


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text(SENTENCES)

    def refuse(name):
        raise PermissionError(errno.EACCES, "Permission denied", name)

    monkeypatch.setattr("mlmprep.input.discovery.open_binary", refuse)
    result = invoke(str(path), str(tmp_path / "out"))
    assert result.exit_code == 1
    assert (
        result.stderr == f"Error: {path}: cannot read (permission denied); check its permissions\n"
    )


def test_output_directory_not_writable(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text(SENTENCES)

    def refuse(name, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", name)

    monkeypatch.setattr("mlmprep.core.storage.open", refuse, raising=False)
    result = invoke(str(tmp_path / "a.txt"), str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'out'}: output directory not writable (Permission denied); "
        "choose another output or fix its permissions\n"
    )


def test_disk_full_leaves_no_partial_shard_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "out"

    class FullDisk(pq.ParquetWriter):
        def write_table(self, table, *args, **kwargs):
            super().write_table(table, *args, **kwargs)  # something lands in the temp file
            raise OSError(errno.ENOSPC, "No space left on device", self.where)

    monkeypatch.setattr(mlmprep.pipeline.shuffle.pq, "ParquetWriter", FullDisk)
    result = invoke(str(SAMPLE_DIR), str(out))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {out}: no space left on device (")
    assert re.search(r"this build needs about \d+ MB of temporary space", result.stderr)
    assert result.stderr.endswith("free some space and run the same command again to resume\n")
    assert list(out.glob("*.parquet*")) == []
    assert not (out / "index.json").exists()

    monkeypatch.undo()
    assert invoke(str(SAMPLE_DIR), str(out)).exit_code == 0
    run_build([SAMPLE_DIR], tmp_path / "clean")
    assert shard_hashes(out) == shard_hashes(tmp_path / "clean")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_no_documents(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    result = invoke(str(path), str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {path}: no documents found (1 files read, documents skipped: none); "
        "check the files, --input-format and --text-field\n"
    )


def test_strict_fails_on_first_bad_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": SENTENCES}) + "\n{broken\n")
    result = invoke(str(path), str(tmp_path / "out"), "--strict")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {path}:2: malformed JSON line (--strict is on; drop --strict to skip and "
        "count it)\n"
    )


def test_strict_fails_on_a_binary_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(SENTENCES)
    (corpus / "b.bin").write_bytes(b"\x00\x01binary" * 50)
    result = invoke(str(corpus), str(tmp_path / "out"), "--strict")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {corpus / 'b.bin'}: binary file (NUL bytes) (--strict is on; drop --strict "
        "to skip and count it)\n"
    )
    assert invoke(str(corpus), str(tmp_path / "out")).exit_code == 0  # counted without it


def test_accounting_identity_with_mixed_bad_input(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [
        json.dumps({"text": SENTENCES * 3}),
        "{oops",
        json.dumps({"t": 1}),
        json.dumps({"text": "   "}),
        json.dumps({"text": SENTENCES}),
    ]
    (corpus / "a.jsonl").write_text("\n".join(lines) + "\n")
    (corpus / "b.bin").write_bytes(b"\x00\x01binary" * 50)
    (corpus / "c.txt").write_bytes(b"Bad \xff byte here. " + SENTENCES.encode())
    summary = run_build([corpus], tmp_path / "out")
    accounting = summary["accounting"]
    documents = accounting["documents"]
    assert documents["read"] == documents["used"] + sum(documents["skipped"].values())
    assert documents["used"] == 3
    assert documents["skipped"] == {
        "empty": 1,
        "malformed JSON line": 1,
        "missing text field 'text'": 1,
    }
    assert accounting["files"] == {
        "read": 2,
        "skipped": {"binary file (NUL bytes)": 1},
        "named": {"binary file (NUL bytes)": [str(corpus / "b.bin")]},
    }
    assert accounting["repaired"] == {"invalid_utf8": 1}
    assert f"{corpus / 'a.jsonl'}:2: malformed JSON line" in summary["warnings"]


FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.binary(max_size=3000), name=st.sampled_from(["a.txt", "a.jsonl", "a.txt.gz"]))
def test_random_bytes_never_crash(tmp_path_factory, data, name):
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / name).write_bytes(data)
    check_no_traceback(directory / name, directory / "out")


@FUZZ
@given(cut=st.integers(1, 2000), suffix=st.sampled_from([".gz", ".bz2", ".xz"]))
def test_truncated_compressed_files_never_crash(tmp_path_factory, cut, suffix):
    import bz2
    import lzma

    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix]
    blob = compress((SENTENCES * 200).encode())
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / f"a.txt{suffix}"
    path.write_bytes(blob[: max(1, len(blob) - cut)])
    check_no_traceback(path, directory / "out")


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["text", "id"]), st.one_of(st.text(), st.integers(), st.none())
            ),
            st.text(),
            st.integers(),
            st.lists(st.integers()),
        ),
        max_size=20,
    )
)
def test_random_json_never_crashes(tmp_path_factory, records):
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "a.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    check_no_traceback(path, directory / "out")


def check_no_traceback(path, out):
    """A build either succeeds with a consistent accounting or fails with a one-line
    input error that names the file."""
    try:
        summary = run_build([path], out)
    except MlmprepError as exc:
        assert type(exc) is InputError, f"{type(exc).__name__}: {exc}"
        assert str(exc).startswith(f"{path}"), str(exc)
        assert "\n" not in str(exc)
        return
    documents = summary["accounting"]["documents"]
    assert documents["read"] == documents["used"] + sum(documents["skipped"].values())


def test_list_offsets_beyond_int32_are_refused_not_wrapped():
    offsets = np.array([0, 2**31], np.int64)  # the values are never read: the check is first
    with pytest.raises(OutputError, match="use a smaller --unit-size"):
        list_array(offsets, np.zeros(2, np.int32), pa.int32())


def test_a_failed_start_leaves_nothing_and_the_corrected_command_runs(tmp_path):
    corpus = tmp_path / "pq"
    corpus.mkdir()
    pq.write_table(pa.table({"content": ["First sentence here. Second one there."] * 20}),
                   corpus / "a.parquet")  # fmt: skip
    out = tmp_path / "out"
    failed = CliRunner().invoke(main, ["build", str(corpus), str(out)])
    assert failed.exit_code == 1 and "no column 'text' (columns: content)" in failed.stderr
    assert not out.exists()
    corrected = CliRunner().invoke(
        main, ["build", str(corpus), str(out), "--text-field", "content"]
    )
    assert corrected.exit_code == 0, corrected.output
    kept = tmp_path / "mine"
    kept.mkdir()
    assert CliRunner().invoke(main, ["build", str(corpus), str(kept)]).exit_code == 1
    assert kept.is_dir() and not any(kept.iterdir())  # the user's directory stays, empty


def test_a_killed_start_with_other_settings_is_no_build(tmp_path):
    from mlmprep.formats.manifest import WorkState

    out = tmp_path / "out"
    out.mkdir()
    WorkState(str(out)).start({"identity": {"config": {"seed": 1}}})  # killed before a unit
    result = CliRunner().invoke(main, ["build", str(SAMPLE_DIR), str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "index.json").exists()


@pytest.mark.parametrize("documents", [40, 400, 40000])  # about 4 KB to 4 MB of text
def test_a_truncated_gzip_follows_one_rule_at_every_size(tmp_path, documents):
    """Before, a file whose text up to the damage fit in one 1 MiB read lost all of it
    (and one damaged in its first 8 KB was called binary, stopping a build of it alone);
    now every size keeps the documents before the damage and names the file."""
    text = "".join(
        f"Document {i} says {i * 7919 % 10007}. It ends here.\n\n" for i in range(documents)
    )
    data = gzip.compress(text.encode(), 1)
    cut = data[: len(data) * 3 // 4]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt.gz").write_bytes(cut)
    readable = zlib.decompressobj(wbits=31).decompress(cut)  # all a reader could get
    whole = readable.count(b"\n\n")  # documents wholly before the damage
    surely = readable[: len(readable) - DAMAGE_STEP].count(b"\n\n")  # a step before it
    result = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert max(1, surely) <= summary["documents"] <= whole
    assert f"{corpus / 'a.txt.gz'}: corrupt or truncated data" in summary["warnings"]
    strict = invoke(str(corpus), str(tmp_path / "strict"), "--strict")
    assert strict.exit_code == 1 and "a.txt.gz: corrupt or truncated data" in strict.stderr
