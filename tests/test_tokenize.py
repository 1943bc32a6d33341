"""`mlmprep tokenize`: Megatron/fairseq indexed datasets. megatron-core's own
IndexedDataset reads every sequence equal to the tokenizer's ids of that sentence, with
the input's documents as boundaries; a reader written here from fairseq's published
layout agrees; the bytes are the same for any worker count, on Dask and after SIGKILL."""

import gzip
import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tokenizers import BertWordPieceTokenizer

from mlmprep.cli.main import main
from mlmprep.input.accounting import InputReport
from mlmprep.input.readers import detect_format, iter_documents
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.tokenize.tokenize import TokenizeConfig, tokenize
from mlmprep.text.sentences import document_sentences

from .helpers import SAMPLE_DIR, large_vocabulary, plain_sample, shared_corpus, write_text

with warnings.catch_warnings():  # it warns that Apex and Transformer Engine are absent
    warnings.simplefilter("ignore")
    indexed_dataset = pytest.importorskip(
        "megatron.core.datasets.indexed_dataset",
        reason="megatron-core is not installed (make test installs it)",
    )

VOCAB = SAMPLE_DIR.parent / "bert-base-uncased-vocab.txt"
FAIRSEQ_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64,
                  6: np.float64, 7: np.double, 8: np.uint16}  # fmt: skip


def run(inputs, prefix, *options, workers=1):
    args = ["tokenize", *map(str, inputs), str(prefix), "-q", "--workers", str(workers)]
    result = CliRunner().invoke(main, [*args, *map(str, options)])
    assert result.exit_code == 0, result.output
    return result


def expected_documents(inputs, vocab=VOCAB, lowercase=True) -> list[list[list[int]]]:
    """Each document's sentences as a plain `tokenizers` WordPiece encodes them one by one
    (no special tokens); sentences without tokens are left out, as the output leaves them."""
    encoder = BertWordPieceTokenizer(str(vocab), lowercase=lowercase)
    paths = sorted(p for i in inputs for p in (i.rglob("*") if i.is_dir() else [i]) if p.is_file())
    documents, sentences = [], []
    for path in paths:
        fmt = detect_format(str(path), "auto")
        for part in iter_documents(str(path), fmt, "text", InputReport()):
            sentences += document_sentences(part.lines, part.presplit)[0]
            if not part.continued:
                encoded = [encoder.encode(s, add_special_tokens=False).ids for s in sentences]
                if any(encoded):
                    documents.append([ids for ids in encoded if ids])
                sentences = []
    return documents


def megatron_documents(prefix) -> list[list[list[int]]]:
    dataset = indexed_dataset.IndexedDataset(str(prefix))
    bounds = dataset.document_indices.tolist()
    return [
        [dataset[i].tolist() for i in range(start, end)]
        for start, end in itertools.pairwise(bounds)
    ]


def fairseq_layout(prefix) -> tuple[np.dtype, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The .idx and .bin read by hand, as fairseq's MMapIndexedDataset lays them out."""
    data = Path(f"{prefix}.idx").read_bytes()
    assert data[:9] == b"MMIDIDX\x00\x00"
    (version,) = struct.unpack("<Q", data[9:17])
    (code,) = struct.unpack("<B", data[17:18])
    (count,) = struct.unpack("<Q", data[18:26])
    (doc_count,) = struct.unpack("<Q", data[26:34])
    assert version == 1
    dtype = np.dtype(FAIRSEQ_DTYPES[code])
    sizes = np.frombuffer(data, np.int32, count, 34)
    pointers = np.frombuffer(data, np.int64, count, 34 + sizes.nbytes)
    doc_idx = np.frombuffer(data, np.int64, doc_count, 34 + sizes.nbytes + pointers.nbytes)
    assert len(data) == 34 + sizes.nbytes + pointers.nbytes + doc_idx.nbytes
    tokens = np.fromfile(f"{prefix}.bin", dtype)
    return dtype, sizes, pointers, doc_idx, tokens


def test_megatron_reads_every_sentence_of_the_sample_as_tokenized(tmp_path):
    run([SAMPLE_DIR], tmp_path / "sample")
    got = megatron_documents(tmp_path / "sample")
    assert got == expected_documents([SAMPLE_DIR])
    assert indexed_dataset.IndexedDataset(str(tmp_path / "sample")).index.dtype == np.uint16
    manifest = json.loads((tmp_path / "sample.json").read_text())
    assert manifest["counts"]["documents"] == len(got)
    assert manifest["counts"]["sequences"] == sum(map(len, got))


def test_the_fairseq_layout_agrees_with_megatron(tmp_path):
    run([SAMPLE_DIR], tmp_path / "sample")
    dtype, sizes, pointers, doc_idx, tokens = fairseq_layout(tmp_path / "sample")
    dataset = indexed_dataset.IndexedDataset(str(tmp_path / "sample"))
    assert dtype == np.uint16 and len(sizes) == len(dataset)
    assert doc_idx.tolist() == dataset.document_indices.tolist() and doc_idx[0] == 0
    for i in range(len(sizes)):
        start = pointers[i] // dtype.itemsize
        assert tokens[start : start + sizes[i]].tolist() == dataset[i].tolist()
    assert pointers[-1] // dtype.itemsize + sizes[-1] == len(tokens)  # nothing after


def test_chinese_text_is_tokenized_sentence_by_sentence(tmp_path):
    corpus = write_text(
        tmp_path / "zh.txt",
        [
            ["今天天气很好。我们去公园散步吧！你觉得怎么样？", "他说：“好的。”"],
            ["北京是中国的首都。上海是一个大城市。"],
            ["只有一句话的文档。"],
        ],
    )
    run([corpus], tmp_path / "zh")
    got = megatron_documents(tmp_path / "zh")
    assert got == expected_documents([corpus])
    assert [len(d) for d in got] == [4, 2, 1]
    manifest = json.loads((tmp_path / "zh.json").read_text())
    assert manifest["counts"]["one_sentence_documents"] == 1


def test_a_shared_chinese_corpus_reads_back_as_tokenized(tmp_path):
    first = shared_corpus("zh-mixed/part-00000.jsonl.gz")
    vocab = shared_corpus("vocab/bert-base-chinese-vocab.txt")
    run([first], tmp_path / "zh", "--tokenizer", vocab, "--no-lowercase", workers=2)
    got = megatron_documents(tmp_path / "zh")
    assert got == expected_documents([first], vocab, lowercase=False)
    assert len(got) > 800


def test_the_document_level_appends_the_end_of_document_token(tmp_path):
    run([SAMPLE_DIR], tmp_path / "docs", "--level", "document", "--append-eod")
    got = megatron_documents(tmp_path / "docs")
    expected = expected_documents([SAMPLE_DIR])
    sep = 102  # [SEP] of the bundled vocabulary
    assert got == [[[t for s in doc for t in s] + [sep]] for doc in expected]


def test_a_vocabulary_over_65535_ids_gives_int32_and_no_id_is_truncated(tmp_path):
    vocab, high_words = large_vocabulary(tmp_path)
    corpus = write_text(
        tmp_path / "corpus.txt",
        [[f"The {w} met {high_words[-1 - i]} here." for i, w in enumerate(high_words)]] * 3,
    )
    run([corpus], tmp_path / "big", "--tokenizer", vocab)
    dataset = indexed_dataset.IndexedDataset(str(tmp_path / "big"))
    assert dataset.index.dtype == np.int32
    got = megatron_documents(tmp_path / "big")
    assert got == expected_documents([corpus], vocab)
    assert max(t for d in got for s in d for t in s) > 65535


def test_nothing_is_dropped_silently(tmp_path):
    over_512 = " ".join(["lengthy"] * 600) + "."
    corpus = write_text(
        tmp_path / "mixed.txt",
        [["One sentence only."], ["First one. Second one.", over_512], ["\u200b"]],
    )
    long_line = " ".join(["word"] * 5000)  # over MAX_SENTENCE_CHARS: cut before tokenizing
    (tmp_path / "long.txt").write_text(long_line + "\n")
    run([corpus, tmp_path / "long.txt"], tmp_path / "out")
    manifest = json.loads((tmp_path / "out.json").read_text())
    counts = manifest["counts"]
    assert counts["documents"] == 3  # the zero-width one has no token: skipped, counted
    assert manifest["accounting"]["documents"]["skipped"] == {"no tokens": 1}
    assert counts["one_sentence_documents"] == 1
    assert counts["long_sentences_cut"] == 1  # into two pieces of about 2,500 words
    assert counts["sentences_over_512_tokens"] == 3  # those two, and the 600-word one
    assert counts["documents_with_a_sentence_over_512_tokens"] == 2
    result = CliRunner().invoke(
        main, ["tokenize", str(corpus), str(tmp_path / "long.txt"), str(tmp_path / "out")]
    )
    assert "skips 2 documents with a sentence over 512 tokens (3 sentences)" in result.output
    assert "1 cut at the character limit" in result.output
    assert "skipped: 1 no tokens" in result.output


@pytest.fixture(scope="module")
def many_units(tmp_path_factory):
    """The sample as plain text, cut into about 5 units."""
    return plain_sample(tmp_path_factory.mktemp("tokenize-units") / "plain")


def digest(prefix) -> tuple[bytes, bytes]:
    return Path(f"{prefix}.bin").read_bytes(), Path(f"{prefix}.idx").read_bytes()


@pytest.fixture(scope="module")
def one_worker(many_units, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("one") / "one"
    run([many_units], prefix, "--unit-size", 65536)
    return digest(prefix)


@pytest.mark.parametrize("workers", [2, 3])
def test_the_bytes_are_the_same_for_any_worker_count(many_units, one_worker, tmp_path, workers):
    run([many_units], tmp_path / "out", "--unit-size", 65536, workers=workers)
    assert digest(tmp_path / "out") == one_worker
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert manifest["run"]["units"] >= 4
    assert not (tmp_path / "out.mlmprep-work").exists()


def test_the_bytes_are_the_same_on_dask(many_units, one_worker, tmp_path):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    options = RunOptions(workers=2, engine="dask")
    tokenize([str(many_units)], str(tmp_path / "out"), TokenizeConfig(), options, 65536)
    assert digest(tmp_path / "out") == one_worker


def test_a_killed_run_resumes_to_the_same_bytes(many_units, one_worker, tmp_path):
    prefix = tmp_path / "out"
    command = [sys.executable, "-m", "mlmprep.cli", "tokenize", str(many_units), str(prefix),
               "-q", "--workers", "1", "--unit-size", "65536"]  # fmt: skip
    process = subprocess.Popen(command)
    records = tmp_path / "out.mlmprep-work" / "units"
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if records.is_dir() and len(list(records.glob("*.json"))) >= 2:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "finished before it could be killed"
    assert not (tmp_path / "out.bin").exists()
    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((tmp_path / "out.json").read_text())["run"]["units_done_before"] >= 2
    assert digest(prefix) == one_worker


def test_another_run_into_the_same_prefix_is_refused_in_one_line(tmp_path):
    run([SAMPLE_DIR], tmp_path / "out")
    result = CliRunner().invoke(
        main, ["tokenize", str(SAMPLE_DIR), str(tmp_path / "out"), "--level", "document"]
    )
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert "holds a different output (config (level) differ)" in result.stderr
    assert result.stderr.count("\n") == 1
    run([SAMPLE_DIR], tmp_path / "out", "--level", "document", "--overwrite")


def test_stats_and_validate_read_a_tokenize_output(tmp_path):
    run([SAMPLE_DIR], tmp_path / "sample")
    dataset = indexed_dataset.IndexedDataset(str(tmp_path / "sample"))
    result = CliRunner().invoke(main, ["stats", str(tmp_path / "sample"), "--json"])
    stats = json.loads(result.output)
    lengths = dataset.sequence_lengths
    assert stats["sequences"] == len(dataset) == sum(stats["length_histogram"].values())
    assert stats["documents"] == len(dataset.document_indices) - 1
    assert stats["tokens"] == int(lengths.sum()) and stats["max_sequence_tokens"] == lengths.max()
    assert stats["length_histogram"]["16-31"] == int(((lengths >= 16) & (lengths < 32)).sum())
    for name in ("sample", "sample.idx", "sample.bin"):
        result = CliRunner().invoke(main, ["validate", str(tmp_path / name)])
        assert result.exit_code == 0 and result.output.startswith(f"ok: {len(dataset)} sequences")


def test_validate_finds_damage_and_a_rerun_repairs_a_lost_file(tmp_path):
    run([SAMPLE_DIR], tmp_path / "sample")
    prefix = tmp_path / "sample"
    original = Path(f"{prefix}.bin").read_bytes()
    damaged = bytearray(original)
    damaged[100] ^= 0xFF
    Path(f"{prefix}.bin").write_bytes(bytes(damaged))
    result = CliRunner().invoke(main, ["validate", str(prefix)])
    assert result.exit_code == 1 and "sha256 differs" in result.stderr
    Path(f"{prefix}.bin").write_bytes(original[:1000])
    result = CliRunner().invoke(main, ["validate", str(prefix)])
    assert result.exit_code == 1 and "1000 bytes, the index holds" in result.stderr
    Path(f"{prefix}.bin").unlink()
    result = CliRunner().invoke(main, ["stats", str(prefix)])
    assert result.exit_code == 1 and "missing; run the same" in result.stderr
    assert result.stderr.count("\n") == 1
    run([SAMPLE_DIR], prefix)
    assert Path(f"{prefix}.bin").read_bytes() == original


@pytest.mark.parametrize("corpus", ["sample", "en-tech", "zh-mixed"])
def test_the_plan_is_within_20_percent_of_the_run(tmp_path, corpus):
    inputs = SAMPLE_DIR if corpus == "sample" else shared_corpus(corpus)
    planned = CliRunner().invoke(main, ["tokenize", str(inputs), str(tmp_path / "x"), "--plan",
                                        "--json"])  # fmt: skip
    plan = json.loads(planned.output)
    assert not (tmp_path / "x.bin").exists()  # a plan writes nothing
    manifest = json.loads(run([inputs], tmp_path / "x", "--json", workers=2).output)
    counts, files = manifest["counts"], manifest["files"]
    for planned_value, actual in [
        (plan["documents"], counts["documents"]),
        (plan["sequences"], counts["sequences"]),
        (plan["tokens"], counts["tokens"]),
        (plan["bin_bytes"], files["bin"]["bytes"]),
        (plan["idx_bytes"], files["idx"]["bytes"]),
    ]:
        assert 0.8 <= planned_value / actual <= 1.2, (planned_value, actual)
    assert plan["units"] == manifest["run"]["units"]


def test_one_large_compressed_file_runs_on_every_worker(many_units, tmp_path):
    """Guards tokenize's worker count: before the fix it was capped at the unit count, so
    one large .gz (one unit, cut into parts as it is read) ran on one worker whatever
    --workers said; the build's rule counts the parts."""
    text = "\n\n".join(p.read_text().strip() for p in sorted(many_units.glob("*.txt")))
    big = tmp_path / "one.txt.gz"
    big.write_bytes(gzip.compress(text.encode()))
    run([big], tmp_path / "one", "--unit-size", 65536, workers=2)
    manifest = json.loads((tmp_path / "one.json").read_text())
    assert manifest["run"]["units"] == 1
    assert manifest["run"]["workers"] == 2
    single = tmp_path / "single"
    run([big], single, "--unit-size", 65536)
    assert digest(tmp_path / "one") == digest(single)


@pytest.mark.parametrize("damaged", ["{ not json", "[1, 2]"])
def test_an_unreadable_manifest_is_one_line(tmp_path, damaged):
    """Guards tokenize's check of an earlier output: a damaged PREFIX.json gave a
    traceback before the fix (a JSON list raised AttributeError)."""
    run([SAMPLE_DIR], tmp_path / "out")
    (tmp_path / "out.json").write_text(damaged)
    result = CliRunner().invoke(main, ["tokenize", str(SAMPLE_DIR), str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "out.json: unreadable" in result.stderr and "--overwrite" in result.stderr
    assert result.stderr.count("\n") == 1
    rerun = CliRunner().invoke(
        main, ["tokenize", str(SAMPLE_DIR), str(tmp_path / "out"), "--overwrite"]
    )
    assert rerun.exit_code == 0, rerun.output  # before the fix it read the manifest first


def test_build_and_tokenize_refuse_another_run_with_the_same_line_and_code(tmp_path):
    """Guards the one output-state rule: build refused with exit 1, tokenize with exit 2
    and other words, for the same case (other options into a finished output)."""
    sample = str(SAMPLE_DIR)
    assert CliRunner().invoke(main, ["build", sample, str(tmp_path / "b")]).exit_code == 0
    run([SAMPLE_DIR], tmp_path / "t")
    build = CliRunner().invoke(main, ["build", sample, str(tmp_path / "b"), "--seed", "7"])
    tok = CliRunner().invoke(
        main, ["tokenize", sample, str(tmp_path / "t"), "--append-eod", "--level", "document"]
    )
    assert build.exit_code == tok.exit_code == 1
    tail = ": holds a different output (config ("
    assert tail in build.stderr and tail in tok.stderr
    assert build.stderr.split(")", 1)[1] == tok.stderr.split(")", 1)[1]


def test_stats_of_a_document_level_output_says_nothing_of_sentences(tmp_path):
    """Before, it printed what Megatron's sentence-level BERT dataset would skip."""
    run([SAMPLE_DIR], tmp_path / "doc", "--level", "document")
    run([SAMPLE_DIR], tmp_path / "sent")
    document = CliRunner().invoke(main, ["stats", str(tmp_path / "doc")]).stdout
    sentence = CliRunner().invoke(main, ["stats", str(tmp_path / "sent")]).stdout
    assert "sentence over 512" not in document and "needs --level sentence" in document
    assert "megatron skips:   0 documents with a sentence over 512 tokens" in sentence
