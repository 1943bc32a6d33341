"""`mlmprep plan` against the build it plans: rows, shards, temporary disk and the peak
RSS of all processes within ±20%, on the bundled sample, en-tech and zh-mixed at dupe 1
and 5 with two workers (benchmarks/plan_accuracy.py prints the same, and wall time)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from plan_accuracy import compare, corpus_available

from .helpers import shared_corpus

TOLERANCE = 0.2


@pytest.mark.parametrize("dupe", [1, 5])
@pytest.mark.parametrize("corpus", ["sample", "en-tech", "zh-mixed"])
def test_the_plan_is_within_20_percent_of_the_build(corpus, dupe, tmp_path):
    if not corpus_available(corpus):
        shared_corpus(corpus)  # skips with the reason
    result = compare(corpus, ["--dupe-factor", str(dupe), "--workers", "2"], tmp_path)
    for measure in ("rows", "shards", "spill_bytes", "peak_rss"):
        ratio = result.ratio(measure)
        assert abs(ratio - 1) <= TOLERANCE, (measure, result.planned, result.measured)
