import bz2
import gzip
import io
import json
import lzma

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlmprep.core.errors import InputError
from mlmprep.input.accounting import InputReport
from mlmprep.input.readers import detect_format, iter_documents

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
    assert report.examples == [f"{path}: corrupt or truncated data"]
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
