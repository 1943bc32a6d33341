"""Throughput and memory of `mlmprep build` against plain-encode ceilings, same run.

Builds a corpus of about --size-mb by repeating ../shared/corpora/ (--source; or the
bundled sample when shared/ is absent), then for each worker count:

* ceilings: read the same files and encode the same documents with N processes, nothing
  else, once with `tokenizers` and once with kitoken (when mlmprep[fast] is installed);
* mlmprep: `mlmprep build` as a subprocess with --workers N, once per --backends entry,
  and at each --dupe-factor above 1 with the largest worker count.

Prints seconds, MB/s, MB/s per worker, instances/s, peak RSS summed over all processes,
the ratio to the `tokenizers` ceiling with as many workers, and the 2-over-1 speedups.

    make bench                                   # 100 MB mixed, workers 1 and 2, dupe 1 and 5
    make bench BENCH_ARGS="--source en-tech --size-mb 60 --layout jsonl.gz:8"
    make bench BENCH_ARGS="--size-mb 200 --workers 2 --layout jsonl.gz:1 jsonl.gz:8"

`--layout FORMAT:FILES` gives mlmprep the same documents as FILES files of FORMAT (txt,
jsonl, jsonl.gz, jsonl.zst); the ceilings read the first layout, decompression included.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
from process_rss import RssSampler

from mlmprep.core.config import BuildConfig
from mlmprep.input.discovery import describe_inputs, resolve_inputs
from mlmprep.input.readers import InputReport, iter_documents
from mlmprep.pipeline.planning import plan_units
from mlmprep.pipeline.sizing import WINDOW_BYTES
from mlmprep.text.tokenizer_backends import kitoken_version

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
SAMPLE = ROOT / "mlmprep" / "data" / "sample"
FILE_BYTES = 64 * 1024 * 1024


def source_documents(source: str) -> list[str]:
    """Blank-line documents from the shared corpora (or the bundled sample): `source` is
    a shared corpus name, or "mixed" for en-books and en-tech."""
    texts = []
    names = ["en-books", "en-tech"] if source == "mixed" else [source]
    if (SHARED / "en-books").is_dir():
        for name in names:
            for path in sorted((SHARED / name).glob("*.txt.gz")):
                texts.append(gzip.decompress(path.read_bytes()).decode())
            for path in sorted((SHARED / name).glob("*.jsonl.gz")):
                for line in gzip.decompress(path.read_bytes()).decode().splitlines():
                    texts.append(json.loads(line)["text"].replace("\n\n", "\n"))
    else:
        for path in sorted(SAMPLE.glob("*.txt.gz")):
            texts.append(gzip.decompress(path.read_bytes()).decode())
    return [d.strip() for t in texts for d in t.split("\n\n") if d.strip()]


def make_corpus(directory: Path, size_mb: float, source: str) -> int:
    """Write ~size_mb of text files (64 MB each) by repeating the source documents."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = source_documents(source)
    target = int(size_mb * 1e6)
    written = file_index = 0
    while written < target:
        parts, size = [], 0
        while size < min(FILE_BYTES, target - written):
            doc = documents[(written + size) // 997 % len(documents)]
            parts.append(doc)
            size += len(doc.encode()) + 2
        (directory / f"part-{file_index:05d}.txt").write_text("\n\n".join(parts) + "\n")
        written += size
        file_index += 1
    return written


def write_layout(corpus: Path, directory: Path, layout: str) -> Path:
    """The documents of the plain corpus as FILES files of FORMAT (layout FORMAT:FILES)."""
    fmt, files = layout.rsplit(":", 1)
    target = directory / layout.replace(":", "-")
    if target.exists():
        return target
    target.mkdir(parents=True)
    documents = [
        d for p in sorted(corpus.glob("*.txt")) for d in p.read_text().split("\n\n") if d.strip()
    ]
    per_file = -(-len(documents) // int(files))
    for index in range(int(files)):
        chunk = documents[index * per_file : (index + 1) * per_file]
        if fmt == "txt":
            data = "\n\n".join(chunk) + "\n"
        else:
            data = "".join(json.dumps({"text": d}) + "\n" for d in chunk)
        path = target / f"part-{index:05d}.{fmt}"
        compression = {"gz": "gzip", "zst": "zstd"}.get(fmt.rsplit(".", 1)[-1])
        if compression:
            with pa.CompressedOutputStream(str(path), compression) as stream:
                stream.write(data.encode())
        else:
            path.write_text(data)
    return target


def ceiling_unit(args: tuple) -> int:
    """Read one unit's documents and encode them with one backend, nothing else.
    Returns the token count."""
    unit, tokenizer_spec, backend = args
    from mlmprep.text.tokenization import BATCH_CHARS, TokenEncoder
    from mlmprep.text.tokenizer_backends import KitokenEncoder

    reference = TokenEncoder(tokenizer_spec)
    encode = KitokenEncoder(reference.json).encode if backend == "kitoken" else None
    tokens = 0
    batch, size = [], 0
    for source in unit.sources:
        for doc in iter_documents(
            source.path, source.format, "text", InputReport(), source.start, source.end
        ):
            batch.append("\n".join(doc.lines))
            size += len(batch[-1])
            if size >= BATCH_CHARS:
                tokens += sum(len(ids) for ids in (encode or reference.encode_plain)(batch))
                batch, size = [], 0
    if batch:
        tokens += sum(len(ids) for ids in (encode or reference.encode_plain)(batch))
    return tokens


def run_ceiling(corpus: Path, workers: int, tokenizer: str, backend: str) -> tuple[float, int]:
    files = describe_inputs(resolve_inputs([str(corpus)], "/nonexistent-output"))
    units = plan_units(files, BuildConfig(), WINDOW_BYTES)
    started = time.monotonic()
    sampler = RssSampler(os.getpid())
    with ProcessPoolExecutor(workers, initializer=_no_tokenizer_threads) as pool:
        tokens = sum(pool.map(ceiling_unit, [(u, tokenizer, backend) for u in units]))
    peak = sampler.stop()
    assert tokens > 0
    return time.monotonic() - started, peak


def _no_tokenizer_threads() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def run_build(
    corpus: Path, out: Path, workers: int, dupe: int, extra: list[str]
) -> tuple[float, int, dict]:
    command = [
        sys.executable,
        "-m",
        "mlmprep.cli",
        "build",
        str(corpus),
        str(out),
        "--json",
        "--workers",
        str(workers),
        "--dupe-factor",
        str(dupe),
        "--overwrite",
        *extra,
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = RssSampler(process.pid)
    stdout, _ = process.communicate()
    peak = sampler.stop()
    if process.returncode:
        raise SystemExit(f"build failed with exit code {process.returncode}")
    return time.monotonic() - started, peak, json.loads(stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=100)
    parser.add_argument(
        "--source",
        default="mixed",
        help="Shared corpus to repeat (en-books, en-tech, zh-mixed) or mixed (en-books and "
        "en-tech).",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--dupe-factor",
        type=int,
        nargs="+",
        default=[1, 5],
        help="Dupe factors; those above 1 run at the largest worker count only.",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["hf", "kitoken"] if kitoken_version() else ["hf"],
        help="Tokenizer backends to run mlmprep and the ceiling with (kitoken needs "
        "mlmprep[fast]).",
    )
    parser.add_argument("--tokenizer", default="bert-base-uncased")
    parser.add_argument("--work-dir", default=None, help="Where to write corpus and output.")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument(
        "--build-arg",
        dest="build_args",
        action="append",
        default=[],
        help="One more option for `mlmprep build` (repeatable), e.g. --build-arg=--seed=1.",
    )
    parser.add_argument(
        "--layout",
        nargs="+",
        default=["txt"],
        help="Input layouts for mlmprep, FORMAT:FILES (e.g. jsonl.gz:1); txt: the plain corpus.",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="Runs per configuration; the fastest counts."
    )
    args = parser.parse_args()

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="mlmprep-bench-"))
    corpus = work / f"corpus-{args.source}-{args.size_mb:g}mb"
    if not corpus.exists():
        make_corpus(corpus, args.size_mb, args.source)
    size = sum(p.stat().st_size for p in corpus.iterdir())
    print(
        f"corpus: {size / 1e6:.1f} MB in {corpus} (source: "
        f"{args.source if SHARED.is_dir() else 'bundled sample'}), "
        f"cpus {len(os.sched_getaffinity(0))}, kitoken {kitoken_version() or 'absent'}"
    )
    print(
        f"{'run':<30}{'seconds':>9}{'MB/s':>8}{'MB/s/w':>8}{'inst/s':>9}{'RSS MB':>8}"
        f"{'vs tokenizers':>15}"
    )

    def row(name: str, workers: int, seconds: float, peak: int, instances: str = "") -> None:
        ratio = f"{ceilings[('hf', workers)] / seconds:.2f}" if ("hf", workers) in ceilings else "-"
        print(
            f"{name:<30}{seconds:>9.2f}{size / 1e6 / seconds:>8.2f}"
            f"{size / 1e6 / seconds / workers:>8.2f}{instances:>9}{peak / 1e6:>8.0f}{ratio:>15}"
        )

    layouts = {
        layout: corpus if layout == "txt" else write_layout(corpus, work, layout)
        for layout in args.layout
    }
    ceilings: dict[tuple[str, int], float] = {}
    builds: dict[tuple[str, int], float] = {}
    for workers in args.workers:
        for backend in [] if args.skip_ceiling else args.backends:
            seconds, peak = min(
                run_ceiling(layouts[args.layout[0]], workers, args.tokenizer, backend)
                for _ in range(args.repeat)
            )
            ceilings[(backend, workers)] = seconds
            name = {"hf": "tokenizers", "kitoken": "kitoken"}[backend]
            row(f"ceiling {name} x{workers}", workers, seconds, peak)
        for backend, dupe, layout in itertools.product(
            args.backends, args.dupe_factor, args.layout
        ):
            if dupe > 1 and workers != max(args.workers):
                continue
            inputs = layouts[layout]
            extra = [*args.build_args, "--tokenizer-backend", backend]
            seconds, peak, summary = min(
                (run_build(inputs, work / "out", workers, dupe, extra) for _ in range(args.repeat)),
                key=lambda run: run[0],
            )
            if dupe == 1 and layout == args.layout[0]:
                builds[(backend, workers)] = seconds
            name = f"mlmprep {backend} x{workers}" + (f" dupe {dupe}" if dupe > 1 else "")
            name += "" if layout == "txt" else f" {layout}"
            row(name, workers, seconds, peak, f"{summary['instances'] / seconds:.0f}")
    top = max(args.workers)
    for backend in args.backends:
        if top > 1 and (backend, 1) in builds and ("hf", 1) in ceilings:
            ours = builds[(backend, 1)] / builds[(backend, top)]
            theirs = ceilings[("hf", 1)] / ceilings[("hf", top)]
            print(
                f"speedup x{top} over x1 ({backend}): mlmprep {ours:.2f}, tokenizers ceiling "
                f"{theirs:.2f}, ratio {ours / theirs:.2f}"
            )
    if not args.work_dir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
