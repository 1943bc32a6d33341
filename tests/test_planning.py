import gzip
import json
import os

import pytest

from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import InputError
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import describe_inputs, resolve_inputs
from mlmprep.input.readers import iter_documents
from mlmprep.pipeline.plan.sample import SAMPLE_BYTES, sample_groups, spread_order
from mlmprep.pipeline.planning import plan_units
from mlmprep.pipeline.sizing import WINDOW_BYTES

from .helpers import run_build


def test_resolve_expands_dirs_and_globs_and_skips_output(tmp_path):
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "a.txt").write_text("x\n")
    (tmp_path / "corpus" / "sub" / "b.txt").write_text("y\n")
    (tmp_path / "corpus" / ".hidden").write_text("z\n")
    out = tmp_path / "corpus" / "out"
    out.mkdir()
    (out / "train-00000-of-00001.parquet").write_text("not input")
    found = resolve_inputs([str(tmp_path / "corpus")], str(out))
    assert [os.path.relpath(p, tmp_path) for p in found] == ["corpus/a.txt", "corpus/sub/b.txt"]
    assert resolve_inputs([str(tmp_path / "corpus" / "*.txt")], str(out)) == [
        os.path.normpath(str(tmp_path / "corpus" / "a.txt"))
    ]


@pytest.mark.parametrize(
    "spec,message",
    [("missing.txt", "no such file or directory"), ("*.nothing", "matches no file")],
)
def test_resolve_errors(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        resolve_inputs([spec], "out")


def test_empty_directory_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no input files found"):
        resolve_inputs([str(tmp_path / "empty")], str(tmp_path / "out"))


@pytest.mark.parametrize("fmt,sep", [("text", "\n\n"), ("jsonl", "\n")])
def test_byte_range_units_cover_every_document_once(tmp_path, fmt, sep):
    if fmt == "jsonl":
        docs = [f'{{"text": "Document number {i}. It has words."}}' for i in range(3000)]
        path = tmp_path / "big.jsonl"
    else:
        docs = [f"Document number {i}.\nIt has two paragraphs." for i in range(3000)]
        path = tmp_path / "big.txt"
    path.write_text(sep.join(docs) + "\n")
    config = BuildConfig(unit_size=8192)
    units = plan_units(describe_inputs([str(path)]), config, config.unit_size)
    assert len(units) > 5
    seen = []
    for unit in units:
        (source,) = unit.sources
        report = InputReport()
        docs_in_unit = iter_documents(str(path), fmt, "text", report, source.start, source.end)
        seen += [d.lines[0] for d in docs_in_unit]
    assert len(seen) == 3000
    assert len(set(seen)) == 3000


def test_small_files_are_grouped(tmp_path):
    for i in range(10):
        (tmp_path / f"f{i}.txt").write_text("Some text here.\n" * 300)
    files = describe_inputs(sorted(str(p) for p in tmp_path.glob("*.txt")))
    units = plan_units(files, BuildConfig(), 10_000)
    assert [len(u.sources) for u in units] == [3, 3, 3, 1]


def test_the_plan_a_build_uses_is_the_same_for_any_worker_count(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    paragraph = "Some text here. And more of it.\n\n"  # 33 bytes
    for i in range(6):
        (corpus / f"f{i}.txt").write_text(paragraph * 300)  # 9,900 bytes each
    # units of 20,000 bytes: a group closes once it reaches the size, so after three
    # files (19,800 bytes after two): two units of three files, whatever the workers
    for workers in (1, 2, 3):
        out = tmp_path / f"out-{workers}"
        run_build([corpus], out, workers=workers, unit_size=20_000)
        plan = json.loads((out / "index.json").read_text())["plan"]
        assert (plan["units"], plan["tasks"], plan["unit_size"]) == (2, 2, 20_000), workers


def test_binary_files_are_left_out_of_the_plan(tmp_path):
    (tmp_path / "a.txt").write_text("Text.\n")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02" * 100)
    files = describe_inputs(sorted(str(p) for p in tmp_path.iterdir()))
    units = plan_units(files, BuildConfig(), WINDOW_BYTES)
    assert [s.path for u in units for s in u.sources] == [str(tmp_path / "a.txt")]


def varied_text(lines: int, start: int = 0) -> bytes:
    return "".join(
        f"line {i} holds {i * 7919 % 10007}.\n" for i in range(start, start + lines)
    ).encode()


def test_a_concatenated_gzip_is_sized_by_all_its_members(tmp_path):
    """Guards the raw-size estimate: before the fix the gzip trailer (the size of the
    last member only) sized a concatenated file, here 4x low, so its buckets came out
    too small and memory ran past the plan."""
    members = [varied_text(60_000, k * 60_000) for k in range(3)] + [varied_text(500)]
    path = tmp_path / "joined.txt.gz"
    path.write_bytes(b"".join(gzip.compress(m) for m in members))
    (described,) = describe_inputs([str(path)])
    raw = sum(map(len, members))
    assert 0.8 * raw < described.raw_size < 1.25 * raw


def test_a_gzip_trailer_that_wrapped_at_4_gib_is_not_trusted(tmp_path):
    """A file over 4 GiB holds its size modulo 2**32 in the trailer: crafted here by
    rewriting the trailer of a small file, the estimate comes from the measured ratio."""
    text = varied_text(300_000)
    data = bytearray(gzip.compress(text))
    data[-4:] = (1000).to_bytes(4, "little")  # as a size of 4 GiB + 1000 bytes reads
    path = tmp_path / "big.txt.gz"
    path.write_bytes(bytes(data))
    (described,) = describe_inputs([str(path)])
    assert 0.8 * len(text) < described.raw_size < 1.25 * len(text)


def test_a_plain_gzip_is_sized_exactly_by_its_trailer(tmp_path):
    text = varied_text(300_000)
    path = tmp_path / "one.txt.gz"
    path.write_bytes(gzip.compress(text))
    (described,) = describe_inputs([str(path)])
    assert described.raw_size == len(text)


def test_the_plan_sample_reaches_its_size_with_every_format_in_its_share(tmp_path):
    """400 small text files (8 MB) beside one JSONL file (2 MB): before, the sample was the
    first 64 files spread by count, 64 KB at most each, so about 0.8 MB of text only."""
    corpus = tmp_path / "corpus"
    (corpus / "docs").mkdir(parents=True)
    sentence = "A sentence of some words that ends here. "
    for number in range(400):
        (corpus / "docs" / f"{number:03d}.txt").write_text(sentence * 500 + "\n")
    with open(corpus / "pages.jsonl", "w") as handle:
        for _ in range(100):
            handle.write(json.dumps({"text": sentence * 500}) + "\n")
    files = describe_inputs(resolve_inputs([str(corpus)], str(tmp_path / "out")))
    (tmp_path / "scratch").mkdir()
    groups = sample_groups(files, BuildConfig(), str(tmp_path / "scratch"))
    sampled = {g.fmt: sum(os.path.getsize(s.path) for s in g.sources) for g in groups}
    raw = {g.fmt: g.input_bytes for g in groups}
    assert SAMPLE_BYTES * 0.9 <= sum(sampled.values()) <= SAMPLE_BYTES * 1.1
    for fmt in ("text", "jsonl"):  # each format in proportion to its bytes
        share = raw[fmt] / sum(raw.values())
        assert abs(sampled[fmt] / sum(sampled.values()) - share) < 0.05, (fmt, sampled, raw)


def test_a_spread_order_spreads_every_prefix():
    order = spread_order(1000, 8)
    assert sorted(order) == [62, 187, 312, 437, 562, 687, 812, 937]
    assert order[:2] == [62, 562] and sorted(order[:4]) == [62, 312, 562, 812]
    assert spread_order(3, 64) == [0, 2, 1]
