import bz2
import errno
import gzip
import io
import json
import lzma
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main
from mlmprep.core.errors import InputError
from mlmprep.input.accounting import InputReport
from mlmprep.input.jsonl_records import NOT_JSON_LINES
from mlmprep.input.readers import detect_format, iter_documents

from .helpers import SAMPLE_DIR

TEXT = "First para. Second sentence.\nAnother paragraph.\n\n\nDoc two line.\n"


def read(path, fmt="auto", report=None, **kwargs):
    report = report or InputReport()
    fmt = detect_format(str(path), fmt)
    return [d.lines for d in iter_documents(str(path), fmt, "text", report, **kwargs)], report


def test_text_documents_split_on_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(TEXT)
    docs, report = read(path)
    assert docs == [["First para. Second sentence.", "Another paragraph."], ["Doc two line."]]
    assert report.files_read == 1


@pytest.mark.parametrize(
    "suffix,opener",
    [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open), (".zst", None)],
)
def test_compressed_inputs(tmp_path, suffix, opener):
    path = tmp_path / f"a.txt{suffix}"
    if opener is None:
        with pa.CompressedOutputStream(str(path), "zstd") as out:
            out.write(TEXT.encode())
    else:
        with opener(path, "wb") as out:
            out.write(TEXT.encode())
    docs, _ = read(path)
    assert docs == [["First para. Second sentence.", "Another paragraph."], ["Doc two line."]]


def test_jsonl_documents_and_bad_lines_are_counted(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = [
        json.dumps({"text": "Para one.\n\nPara two."}),
        "{not json",
        json.dumps({"body": "no text field"}),
        json.dumps({"text": "Last."}),
    ]
    path.write_text("\n".join(lines) + "\n")
    docs, report = read(path)
    assert docs == [["Para one.", "", "Para two."], ["Last."]]
    assert dict(report.documents_skipped) == {
        "malformed JSON line": 1,
        "missing text field 'text'": 1,
    }
    assert report.examples[0] == f"{path}:2: malformed JSON line"


def test_strict_mode_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(InputError, match=r"a\.jsonl:2: malformed JSON line"):
        read(path, report=InputReport(strict=True))


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"Good line.\nBad \xff byte.\n")
    docs, report = read(path)
    assert docs == [["Good line.", "Bad \ufffd byte."]]
    assert dict(report.repaired) == {"invalid_utf8": 1}


def test_parquet_input(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["One. Two.", None, "Three."]}), path)
    docs, report = read(path)
    assert docs == [["One. Two."], ["Three."]]
    assert sum(report.documents_skipped.values()) == 1


def test_parquet_missing_column_is_a_clear_error(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(InputError, match="no column 'text'"):
        read(path)


def test_a_corrupt_gzip_is_counted_and_fatal_only_when_strict(tmp_path):
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress(TEXT.encode() * 100)[:-30])
    _, report = read(path)
    assert report.files_skipped == {"corrupt or truncated data": 1}
    assert report.warnings() == [f"{path}: corrupt or truncated data"]
    with pytest.raises(InputError, match=r"corrupt or truncated data \(--strict is on"):
        read(path, report=InputReport(strict=True))


def test_byte_range_reads_only_its_documents(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("A one.\n\nB two.\n\nC three.\n")
    start = len("A one.\n\n")
    end = start + len("B two.\n\n")
    docs, _ = read(path, start=start, end=end)
    assert docs == [["B two."]]


def test_long_line_comes_in_pieces_cut_at_whitespace_or_character_boundary(tmp_path):
    from mlmprep.input.readers import _numbered_lines

    line = ("wörd " * 30 + "ü" * 50).encode() * 20
    pieces = [raw for _, raw in _numbered_lines(io.BytesIO(line + b"\n"), "f", 0, None, 64)]
    assert all(len(p) <= 128 for p in pieces) and len(pieces) > 10
    assert b"".join(pieces) == line + b"\n"
    for piece in pieces:
        piece.decode("utf-8")  # never cut inside a character


def test_long_single_line_document_is_handed_on_in_parts(tmp_path, monkeypatch):
    monkeypatch.setattr("mlmprep.input.readers.LINE_BYTES", 4096)
    monkeypatch.setattr("mlmprep.input.readers.PART_CHARS", 10_000)
    path = tmp_path / "a.txt"
    path.write_text("Some words here. " * 20_000)  # one 340 kB line, no newline
    parts = list(iter_documents(str(path), "text", "text", InputReport()))
    assert len(parts) > 20
    assert all(p.continued for p in parts[:-1]) and not parts[-1].continued
    assert all(sum(map(len, p.lines)) < 10_000 + 4096 for p in parts)
    assert {p.location for p in parts} == {f"{path}:1"}


def test_long_jsonl_document_is_handed_on_in_parts(tmp_path, monkeypatch):
    monkeypatch.setattr("mlmprep.input.readers.PART_CHARS", 10_000)
    path = tmp_path / "a.jsonl"
    text = "Some words here. " * 5_000
    path.write_text(json.dumps({"text": text}) + "\n")
    parts = list(iter_documents(str(path), "jsonl", "text", InputReport()))
    assert len(parts) >= 8
    assert " ".join(" ".join(p.lines) for p in parts).split() == text.split()


class FailingStream(io.RawIOBase):
    """A file whose reads fail with `error` after `good` bytes, as a disk or a store
    that stops answering does."""

    def __init__(self, data: bytes, good: int, error: OSError) -> None:
        self.data, self.good, self.error, self.at = data, good, error, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.at >= self.good:
            raise self.error
        chunk = self.data[self.at : min(self.good, self.at + len(buffer))]
        buffer[: len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


@pytest.mark.parametrize(
    "error",
    [OSError(errno.EIO, "Input/output error"), TimeoutError("read timed out")],
    ids=["EIO", "timeout"],
)
def test_an_io_error_fails_the_read_and_is_never_counted_as_bad_data(tmp_path, monkeypatch, error):
    """Guards the split between bad bytes and failing storage: before the fix any OSError
    but permission or not-found was 'corrupt or truncated data', so a non-strict build
    dropped the rest of the file on a transient EIO or timeout, and two runs differed."""
    path = tmp_path / "docs.txt"
    data = ("first document.\n\nsecond document.\n\n" * 2000).encode()
    path.write_bytes(data)
    stream = io.BufferedReader(FailingStream(data, 1000, error), 256)
    monkeypatch.setattr("mlmprep.input.readers.open_binary", lambda _: stream)
    report = InputReport()
    with pytest.raises(InputError, match=r"docs\.txt: reading failed .*run the same command"):
        list(iter_documents(str(path), "text", "text", report))
    assert not report.files_skipped


def fast_xz(data: bytes) -> bytes:
    return lzma.compress(data, preset=0)


@pytest.mark.parametrize(
    "suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", fast_xz)]
)
def test_damaged_compressed_data_is_still_bad_data(tmp_path, suffix, compress):
    """The other side of the split: a cut compressed stream stays bad data, counted, with
    the documents before the damage kept."""
    path = tmp_path / f"docs.txt{suffix}"
    text = "".join(f"sentence {i} says {i * 7919 % 10007}.\n\n" for i in range(300000))
    data = compress(text.encode())
    path.write_bytes(data[: len(data) // 2])
    report = InputReport()
    documents = list(iter_documents(str(path), "text", "text", report))
    assert documents  # those before the damage are kept
    assert report.files_skipped


def test_a_jsonl_file_without_the_text_field_names_its_fields(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    with open(corpus / "man.jsonl", "w") as handle:
        for i in range(12):
            record = {"title": f"page {i}", "body": f"Page {i} says one thing. It says another."}
            handle.write(json.dumps(record) + "\n")
    shutil.copy(SAMPLE_DIR / "austen.txt.gz", corpus)
    built = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out")])
    assert built.exit_code == 0
    hint = (
        f"warning: {corpus / 'man.jsonl'}: no record has a text field 'text'; "
        "its records' text fields: body, title; pass --text-field body"
    )
    assert built.stderr.splitlines()[0] == hint
    strict = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "s"), "--strict"])
    assert strict.exit_code == 1
    assert "missing text field 'text' (its fields: title, body; pass --text-field)" in strict.stderr


def test_a_json_array_is_said_not_to_be_json_lines(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "pages.json").write_text(json.dumps([{"text": "Hello there. Hi."}] * 5, indent=1))
    result = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "pages.json: not JSON Lines: write one JSON object a line" in result.stderr
    assert "{'" not in result.stderr and "malformed JSON line" in result.stderr


def test_a_one_line_json_array_and_an_empty_file(tmp_path):
    array = tmp_path / "one.jsonl"
    array.write_text(json.dumps([{"text": "A."}, {"text": "B."}]) + "\n")
    report = InputReport()
    assert list(iter_documents(str(array), "jsonl", "text", report)) == []
    assert report.notes == [f"{array}: {NOT_JSON_LINES}"]
    assert report.examples == [f"{array}:1: missing text field 'text' (a JSON list, not an object)"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    report = InputReport()
    assert list(iter_documents(str(empty), "jsonl", "text", report)) == []
    assert report.notes == [] and not report.documents_skipped
