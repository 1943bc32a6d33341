import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.core.errors import InputError
from mlmprep.input.compressed_parts import cut_parts
from mlmprep.input.discovery import Source

from .helpers import run_build


def cut(tmp_path, data: bytes, fmt: str, unit_size: int, done=frozenset()):
    path = tmp_path / "input.gz"
    path.write_bytes(gzip.compress(data))
    parts = list(
        cut_parts(
            Source(str(path), fmt),
            unit_size,
            lambda p: str(tmp_path / f"part-{p}"),
            lambda p: p in done,
        )
    )
    return str(path), parts


@settings(max_examples=40, deadline=None)
@given(
    documents=st.lists(
        st.lists(st.text("ab .", min_size=1, max_size=30), min_size=1, max_size=4),
        min_size=1,
        max_size=30,
    ),
    unit_size=st.integers(1, 200),
)
def test_text_parts_cover_the_stream_and_start_at_documents(tmp_path_factory, documents, unit_size):
    tmp_path = tmp_path_factory.mktemp("cut")
    data = "\n\n".join("\n".join(d) for d in documents).encode() + b"\n"
    path, parts = cut(tmp_path, data, "text", unit_size)
    contents = [Path(p.source.path).read_bytes() for p in parts]
    assert b"".join(contents) == data
    assert [p.index for p in parts] == list(range(len(parts)))
    line = 1
    for part, content in zip(parts, contents):
        assert part.source.origin == path and part.source.first_line == line
        line += content.count(b"\n")
    for content in contents[:-1]:
        assert len(content) >= unit_size
    for before, content in itertools.pairwise(contents):
        # cut right before a document: after a blank line, before a non-blank one
        assert not before.splitlines()[-1].strip() and content.splitlines()[0].strip()


def test_jsonl_parts_cut_at_lines_and_done_parts_are_not_written(tmp_path):
    lines = [json.dumps({"text": f"Document {i}."}) for i in range(10)]
    data = ("\n".join(lines) + "\n").encode()
    _, parts = cut(tmp_path, data, "jsonl", 60, done={1})
    line_bytes = len(lines[0]) + 1  # all lines have the same length
    per_part = -(-60 // line_bytes)
    written = [len(Path(p.source.path).read_bytes()) for p in parts if p.source is not None]
    assert written[:-1] == [per_part * line_bytes] * (len(written) - 1)
    assert parts[1].source is None and not (tmp_path / "part-1").exists()
    assert parts[2].source.first_line == 2 * per_part + 1


def test_messages_name_the_original_file_and_line(tmp_path):
    lines = [json.dumps({"text": f"Document {i}. It has two sentences."}) for i in range(400)]
    lines[300] = "{broken"
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    summary = run_build([path], tmp_path / "out", unit_size=4096)
    assert f"{path}:301: malformed JSON line" in summary["warnings"]
    assert summary["accounting"]["documents"]["read"] == 400
    assert summary["accounting"]["files"]["read"] == 1


def test_a_stream_that_breaks_leaves_no_part_half_written(tmp_path):
    words = np.random.default_rng(0).integers(0, 2**32, size=40_000)
    lines = [json.dumps({"text": f"Document {i}: {w:x} {w * 7:x}."}) for i, w in enumerate(words)]
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode())[:-50])  # truncated
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    found = []
    with pytest.raises(InputError, match=r"broken\.jsonl\.gz: corrupt or truncated"):
        for part in cut_parts(
            Source(str(path), "jsonl"),
            4096,
            lambda p: str(parts_dir / f"part-{p}"),
            lambda p: False,
        ):
            found.append(part.index)
    names = sorted(p.name for p in parts_dir.iterdir())
    assert len(found) > 1 and names == sorted(f"part-{i}" for i in found)
