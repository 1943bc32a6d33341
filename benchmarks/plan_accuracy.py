"""How close `mlmprep plan` comes to the build it plans: rows, shards, temporary disk,
peak RSS of all processes and wall time, predicted against measured, as ratios.

    python benchmarks/plan_accuracy.py                    # every corpus; dupe 1, 5
    python benchmarks/plan_accuracy.py --workers 1 2 --corpora en-tech

Each corpus is planned, then built with the same arguments (a subprocess, its process
tree's RSS sampled every 20 ms); then `tokenize --plan` is compared with a tokenize run.
`mixed` is made from the shared corpora as a corpus nobody prepared for mlmprep looks:
700 small text files (en-books documents, one a file), two en-tech .jsonl.gz files and
a third as Parquet. tests/test_plan_accuracy.py asserts the same comparisons.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from process_rss import RssSampler

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
MLMPREP = Path(sys.executable).with_name("mlmprep")
CORPORA = {
    "sample": [str(ROOT / "mlmprep" / "data" / "sample")],
    "en-tech": [str(SHARED / "en-tech")],
    "zh-mixed": [
        str(SHARED / "zh-mixed"),
        "--tokenizer",
        str(SHARED / "vocab" / "bert-base-chinese-vocab.txt"),
    ],
}
MIXED = "mixed"
MEASURES = ("rows", "shards", "spill_bytes", "peak_rss", "seconds")
TOKENIZE_MEASURES = ("documents", "sequences", "tokens", "bin_bytes")


@dataclass(frozen=True)
class Comparison:
    """One build's planned and measured figures, by MEASURES."""

    corpus: str
    arguments: list[str]
    planned: dict[str, float]
    measured: dict[str, float]

    def ratio(self, measure: str) -> float:
        return self.planned[measure] / self.measured[measure]


def corpus_available(name: str) -> bool:
    return (SHARED / "en-tech").exists() if name == MIXED else Path(CORPORA[name][0]).exists()


def corpus_arguments(name: str, scratch: Path) -> list[str]:
    """The inputs (and tokenizer) of corpus `name`; `mixed` is made in `scratch` once."""
    if name != MIXED:
        return CORPORA[name]
    directory = scratch / MIXED
    if not directory.exists():
        make_mixed_corpus(directory)
    return [str(directory)]


def make_mixed_corpus(directory: Path) -> None:
    """Three formats in very different file counts (see the module's docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (directory / "docs").mkdir(parents=True)
    documents = []
    for path in sorted((SHARED / "en-books").glob("*.txt.gz")):
        documents += gzip.decompress(path.read_bytes()).decode().split("\n\n")
    for number, document in enumerate(documents[:700]):
        (directory / "docs" / f"doc-{number:04d}.txt").write_text(document.strip() + "\n")
    tech = sorted((SHARED / "en-tech").glob("*.jsonl.gz"))
    for path in tech[:2]:
        (directory / path.name).write_bytes(path.read_bytes())
    lines = gzip.decompress(tech[2].read_bytes()).decode().splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    pq.write_table(pa.table({"text": texts}), directory / "part-00002.parquet")


def compare(name: str, arguments: list[str], scratch: Path) -> Comparison:
    """Plan corpus `name` with `arguments`, build it the same way, and compare."""
    source, *tokenizer = corpus_arguments(name, scratch)
    out = scratch / f"{name}-{len(list(scratch.iterdir()))}"
    command = [source, str(out), *tokenizer, *arguments]
    plan = json.loads(_run(["plan", *command, "--json"]))
    started = time.monotonic()
    process = subprocess.Popen([str(MLMPREP), "build", *command, "-q"], stdout=subprocess.DEVNULL)
    sampler = RssSampler(process.pid, interval=0.02)
    if process.wait() != 0:
        raise RuntimeError(f"mlmprep build {' '.join(command)} failed")
    seconds, peak = time.monotonic() - started, sampler.stop()
    index = json.loads((out / "index.json").read_text())
    planned = {
        "rows": plan["rows"],
        "shards": sum(plan["shards"].values()),
        "spill_bytes": plan["spill_bytes"],
        "peak_rss": plan["resources"]["total_rss"],
        "seconds": plan["resources"]["seconds"],
    }
    measured = {
        "rows": sum(shard["rows"] for shard in index["shards"]),
        "shards": len(index["shards"]),
        "spill_bytes": index["run"]["peak_spill_bytes"],
        "peak_rss": peak,
        "seconds": seconds,
    }
    return Comparison(name, arguments, planned, measured)


def compare_tokenize(name: str, scratch: Path) -> Comparison:
    """`tokenize --plan` of corpus `name` against the tokenize run: documents, sequences,
    tokens and .bin bytes."""
    source, *tokenizer = corpus_arguments(name, scratch)
    prefix = scratch / f"{name}-tokens-{len(list(scratch.iterdir()))}" / "data"
    command = [source, str(prefix), *tokenizer]
    plan = json.loads(_run(["tokenize", *command, "--plan", "--json"]))
    made = json.loads(_run(["tokenize", *command, "--json", "--quiet"]))
    planned = {measure: plan[measure] for measure in TOKENIZE_MEASURES}
    measured = {
        "documents": made["counts"]["documents"],
        "sequences": made["counts"]["sequences"],
        "tokens": made["counts"]["tokens"],
        "bin_bytes": made["files"]["bin"]["bytes"],
    }
    return Comparison(name, [], planned, measured)


def _run(arguments: list[str]) -> str:
    return subprocess.run(
        [str(MLMPREP), *arguments], check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpora = [*CORPORA, MIXED]
    parser.add_argument("--corpora", nargs="+", default=corpora, choices=corpora)
    parser.add_argument("--dupe-factors", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--workers", nargs="+", type=int, default=[2])
    args = parser.parse_args()
    print(f"{'corpus':10} {'dupe':>4} {'workers':>7}  " + "  ".join(f"{m:>11}" for m in MEASURES))
    with tempfile.TemporaryDirectory() as scratch:
        for name in (c for c in args.corpora if corpus_available(c)):
            for dupe in args.dupe_factors:
                for workers in args.workers:
                    arguments = ["--dupe-factor", str(dupe), "--workers", str(workers)]
                    result = compare(name, arguments, Path(scratch))
                    ratios = "  ".join(f"{result.ratio(m):>11.2f}" for m in MEASURES)
                    print(f"{name:10} {dupe:>4} {workers:>7}  {ratios}", flush=True)
        print("(planned / measured; 1.00 is exact)\n\ntokenize --plan against the run:")
        print(f"{'corpus':10}  " + "  ".join(f"{m:>11}" for m in TOKENIZE_MEASURES))
        for name in (c for c in args.corpora if corpus_available(c)):
            result = compare_tokenize(name, Path(scratch))
            ratios = "  ".join(f"{result.ratio(m):>11.2f}" for m in TOKENIZE_MEASURES)
            print(f"{name:10}  {ratios}", flush=True)


if __name__ == "__main__":
    main()
