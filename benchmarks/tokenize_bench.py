"""`mlmprep tokenize` beside what Megatron-LM's tools/preprocess_data.py does, same run.

The baseline is a plain Python loop shaped like that script: JSON lines read by the
main process and handed to a pool of --workers processes (`imap`, chunks of 32); each
worker parses the line, splits the text into sentences and tokenizes each sentence; the
main process adds every document to a builder that appends the tokens to .bin and keeps
the sequence lengths and document indices in Python lists until it writes the .idx.
Megatron splits with NLTK's punkt, whose data must be downloaded: here both sides use
mlmprep's sentence splitter, and both use the `tokenizers` WordPiece of the bundled
vocabulary (Megatron's own BERT tokenizer is slower pure Python), so the baseline is
if anything flattered. The two .bin files are compared at the end.

Also runs a plain `tokenizers` encode of the same documents on the same cores (the
ceiling of bench.py). Prints seconds, MB/s, peak RSS of each process tree, and ratios.

    python benchmarks/tokenize_bench.py                      # 60 MB of en-tech, 2 workers
    python benchmarks/tokenize_bench.py --size-mb 200 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from bench import run_ceiling, source_documents
from process_rss import RssSampler

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ROOT / "mlmprep" / "data" / "bert-base-uncased-vocab.txt"


def make_jsonl(path: Path, size_mb: float, source: str) -> int:
    """About size_mb of JSON lines, {"text": ...}, repeating the source documents."""
    documents = source_documents(source)
    target, written, index = int(size_mb * 1e6), 0, 0
    with path.open("w") as out:
        while written < target:
            line = json.dumps({"text": documents[index % len(documents)]}) + "\n"
            out.write(line)
            written += len(line.encode())
            index += 1
    return written


_encoder = None


def _start_worker() -> None:
    global _encoder
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import BertWordPieceTokenizer

    _encoder = BertWordPieceTokenizer(str(VOCAB), lowercase=True)


def _encode_line(line: str) -> tuple[list[list[int]], int]:
    """What preprocess_data.py's Encoder.encode does with --split-sentences."""
    from mlmprep.text.sentences import document_sentences

    text = json.loads(line)["text"]
    sentences = document_sentences(text.split("\n"), presplit=False)[0]
    ids = [e.ids for e in _encoder.encode_batch(sentences, add_special_tokens=False)]
    return [s for s in ids if s], len(line)


def baseline(jsonl: Path, prefix: Path, workers: int) -> None:
    """The preprocess_data.py-shaped loop and builder."""
    lengths: list[int] = []
    document_indices = [0]
    with (
        jsonl.open() as lines,
        Pool(workers, _start_worker) as pool,
        open(f"{prefix}.bin", "wb") as out,
    ):
        for sentences, _ in pool.imap(_encode_line, lines, 32):
            if not sentences:
                continue
            for ids in sentences:
                out.write(np.array(ids, dtype=np.uint16).tobytes())
                lengths.append(len(ids))
            document_indices.append(len(lengths))
    from mlmprep.formats.indexed_format import write_index

    with open(f"{prefix}.idx", "wb") as out:
        write_index(out, np.dtype(np.uint16), np.array(lengths), np.array(document_indices))


def timed(command: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    process = subprocess.Popen(command)
    sampler = RssSampler(process.pid)
    if process.wait():
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.monotonic() - started, sampler.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=60)
    parser.add_argument("--source", default="en-tech")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", nargs=3, metavar=("JSONL", "PREFIX", "WORKERS"))
    args = parser.parse_args()
    if args.baseline:
        baseline(Path(args.baseline[0]), Path(args.baseline[1]), int(args.baseline[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "corpus").mkdir()
        jsonl = work / "corpus" / "corpus.jsonl"
        size = make_jsonl(jsonl, args.size_mb, args.source)
        mb = size / 1e6
        script = [sys.executable, __file__, "--baseline", str(jsonl), str(work / "base"),
                  str(args.workers)]  # fmt: skip
        rows = [("preprocess_data-style loop", *timed(script))]
        for backend in ("hf", "auto"):
            mlmprep = [sys.executable, "-m", "mlmprep.cli", "tokenize", str(work / "corpus"),
                       str(work / f"mlmprep-{backend}"), "-q", "--workers", str(args.workers),
                       "--tokenizer-backend", backend]  # fmt: skip
            rows.append((f"mlmprep tokenize ({backend})", *timed(mlmprep)))
        seconds, peak = run_ceiling(work / "corpus", args.workers, "bert-base-uncased", "hf")
        rows.append(("tokenizers encode (ceiling)", seconds, peak))
        same = all(
            (work / f"mlmprep-{backend}{s}").read_bytes() == (work / f"base{s}").read_bytes()
            for s in (".bin", ".idx")
            for backend in ("hf", "auto")
        )
        print(f"{mb:.0f} MB of JSON lines ({args.source}), {args.workers} workers")
        print(f"{'run':<30}{'seconds':>9}{'MB/s':>8}{'RSS MB':>8}{'x baseline':>12}")
        for name, seconds, peak in rows:
            ratio = rows[0][1] / seconds
            print(f"{name:<30}{seconds:>9.1f}{mb / seconds:>8.2f}{peak / 1e6:>8.0f}{ratio:>12.2f}")
        print(f"same .bin and .idx as the baseline: {same}")


if __name__ == "__main__":
    main()
