"""Recipes: sources mixed by the formula's token targets, each source tokenized once,
every phase an ordinary build, byte-identical and resumable; bad recipe files refused."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tokenizers import BertWordPieceTokenizer

from mlmprep.cli.main import main
from mlmprep.pipeline.recipe.recipe_build import build_recipe
from mlmprep.pipeline.recipe.recipe_file import load_recipe
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.text.tokenization import TokenEncoder

from .helpers import SAMPLE_DIR, shard_hashes
from .reader_envs import reader_python, run_reader
from .test_export_mds import STREAMING
from .test_resume import kill_when

VOCAB = SAMPLE_DIR.parent / "bert-base-uncased-vocab.txt"


def _paragraphs(name: str) -> list[str]:
    text = gzip.decompress((SAMPLE_DIR / name).read_bytes()).decode()
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 20]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three sources of different sizes and formats: austen (JSONL, 3 paragraphs a
    document), kjv (text, 2 paragraphs a document), notes (JSONL with a `body` field)."""
    root = tmp_path_factory.mktemp("recipe-corpus")
    austen = _paragraphs("austen.txt.gz")
    (root / "austen").mkdir()
    with open(root / "austen" / "a.jsonl", "w") as out:
        for i in range(0, len(austen), 3):
            out.write(json.dumps({"text": "\n".join(austen[i : i + 3])}) + "\n")
    kjv = _paragraphs("kjv.txt.gz")
    (root / "kjv.txt").write_text(
        "\n\n".join("\n".join(kjv[i : i + 2]) for i in range(0, len(kjv), 2)) + "\n"
    )
    with open(root / "notes.jsonl", "w") as out:
        for i in range(60):
            note = f"Note {i} is about the kernel. The driver number {i} loads. It works."
            out.write(json.dumps({"body": note}) + "\n")
    return root


def document_tokens(corpus: Path) -> dict[str, np.ndarray]:
    """Tokens of every document of each source, counted with `tokenizers` directly."""
    tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)

    def count(texts: list[str]) -> np.ndarray:
        return np.array(
            [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
        )

    def field(path: Path, name: str) -> list[str]:
        return [json.loads(line)[name] for line in path.read_text().splitlines()]

    austen = field(corpus / "austen" / "a.jsonl", "text")
    kjv = (corpus / "kjv.txt").read_text().strip().split("\n\n")
    notes = field(corpus / "notes.jsonl", "body")
    return {"austen": count(austen), "kjv": count(kjv), "notes": count(notes)}


SOURCES = """
[sources.austen]
inputs = ["austen/"]
[sources.kjv]
inputs = ["kjv.txt"]
[sources.notes]
inputs = ["*.jsonl"]
text_field = "body"
"""


def write_recipe(corpus: Path, phases: str, build: str = "", name: str = "recipe.toml") -> Path:
    path = corpus / name
    path.write_text(f"[build]\nseed = 3\n{build}\n{SOURCES}\n{phases}")
    return path


def read_rows(directory: Path) -> dict:
    """Every row of a phase's shards, as Python lists."""
    return pa.concat_tables(
        pq.read_table(p) for p in sorted(directory.glob("*.parquet"))
    ).to_pydict()


def run(recipe: Path, out: Path, workers: int = 1) -> dict:
    return build_recipe(load_recipe(str(recipe)), str(out), RunOptions(workers=workers))


def expected_targets(available: dict[str, int], tokens: int, alpha=None, weights=None):
    """q_i = p_i**alpha / sum (or the weights normalized), times the phase's tokens."""
    if weights is None:
        total = sum(available.values())
        powered = {k: (v / total) ** alpha for k, v in available.items()}
    else:
        powered = dict(weights)
    norm = sum(powered.values())
    return {k: round(v / norm * tokens) for k, v in powered.items()}


@pytest.mark.parametrize(
    "mix,tokens",
    [
        ("alpha = 1.0", 30_000),
        ("alpha = 0.3", 30_000),
        ("alpha = 0.0", 30_000),
        ("weights = {austen = 1, kjv = 2, notes = 3}", 30_000),
        ("alpha = 0.5", 400_000),  # every source repeated: whole passes, then a sample
        ("alpha = 1.0", None),  # the sources once, exactly
    ],
)
def test_tokens_drawn_meet_the_formula_within_one_document(corpus, tmp_path, mix, tokens):
    counted = document_tokens(corpus)
    available = {name: int(t.sum()) for name, t in counted.items()}
    line = f"tokens = {tokens}" if tokens else ""
    recipe = write_recipe(
        corpus,
        f'[[phases]]\nname = "mix"\n{line}\n{mix}\nobjective = "none"\nmasking = "dynamic"',
    )
    summary = run(recipe, tmp_path / "out")
    mixture = summary["phases"][0]["mixture"]["sources"]
    assert {n: row["available_tokens"] for n, row in mixture.items()} == available
    if "weights" in mix:
        want = expected_targets(available, tokens, weights={"austen": 1, "kjv": 2, "notes": 3})
    else:
        alpha = float(mix.split("=")[1])
        want = expected_targets(available, tokens or sum(available.values()), alpha=alpha)
    rows = read_rows(tmp_path / "out" / "mix")
    names = json.loads((tmp_path / "out" / "mix" / "index.json").read_text())["config"]["sources"]
    text_tokens = dict.fromkeys(names, 0)
    for source, special in zip(rows["source"], rows["special_tokens_mask"]):
        text_tokens[names[source]] += len(special) - sum(special)
    for name, row in mixture.items():
        assert row["target_tokens"] == want[name]
        assert abs(row["drawn_tokens"] - want[name]) <= counted[name].max(), name
        assert text_tokens[name] == row["drawn_tokens"], name  # FULL-SENTENCES drops nothing
        if tokens is None:
            assert row["drawn_tokens"] == available[name] and row["passes"] == 1
    if tokens == 400_000:
        assert all(row["passes"] > 1 for row in mixture.values())


def test_each_source_is_tokenized_once_per_recipe_run(corpus, tmp_path, monkeypatch):
    """Two phases drawing every source, one of them repeating: each document is
    encoded once (counted at the encoder), and a rerun encodes nothing."""
    encoded = []
    original = TokenEncoder.encode_documents

    def counting(self, documents):
        encoded.append(len(documents))
        return original(self, documents)

    monkeypatch.setattr(TokenEncoder, "encode_documents", counting)
    recipe = write_recipe(
        corpus,
        '[[phases]]\nname = "one"\ntokens = 200_000\nalpha = 0.3\n'
        '[[phases]]\nname = "two"\nsources = ["austen", "kjv"]\nmax_seq_length = 256\n',
    )
    summary = run(recipe, tmp_path / "out")
    documents = sum(len(t) for t in document_tokens(corpus).values())
    assert sum(encoded) == documents
    assert all(s["tokenized_now"] for s in summary["sources"].values())
    encoded.clear()
    again = run(recipe, tmp_path / "out")
    assert encoded == [] and not any(s["tokenized_now"] for s in again["sources"].values())
    assert all(p["already_built"] for p in again["phases"])


def test_rows_never_mix_sources(corpus, tmp_path):
    """An NSP row's random B comes from its own source: every row's tokens occur in its
    source's text (notes has words the books lack)."""
    recipe = write_recipe(corpus, '[[phases]]\nname = "nsp"\ntokens = 40_000\nalpha = 0.0\n')
    run(recipe, tmp_path / "out")
    out = tmp_path / "out" / "nsp"
    names = json.loads((out / "index.json").read_text())["config"]["sources"]
    kernel = BertWordPieceTokenizer(str(VOCAB), lowercase=True).token_to_id("kernel")
    table = read_rows(out)
    with_kernel = {
        names[s]
        for s, ids, original in zip(table["source"], table["input_ids"], table["masked_lm_ids"])
        if kernel in ids or kernel in original
    }
    assert with_kernel == {"notes"}
    assert set(table["source"]) == {0, 1, 2}


PHASES = (
    '[[phases]]\nname = "short"\ntokens = 60_000\nalpha = 0.3\nunit_size = 16384\n'
    '[[phases]]\nname = "long"\nsources = ["kjv", "austen"]\ntokens = 30_000\n'
    'max_seq_length = 256\nobjective = "none"\nunit_size = 16384\n'
)


def phase_hashes(out: Path) -> dict[str, dict[str, str]]:
    return {phase: shard_hashes(out / phase) for phase in ("short", "long")}


def test_phases_are_identical_for_one_and_two_workers_and_after_sigkill(corpus, tmp_path):
    recipe = write_recipe(corpus, PHASES)
    run(recipe, tmp_path / "one", workers=1)
    run(recipe, tmp_path / "two", workers=2)
    assert phase_hashes(tmp_path / "one") == phase_hashes(tmp_path / "two")
    command = [sys.executable, "-m", "mlmprep.cli", "build", "--recipe", str(recipe)]
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, str(killed), "--workers", "1", "-q"])
    kill_when(process, killed / "short" / ".mlmprep-work" / "units", 3)
    rerun = subprocess.run([*command, str(killed), "-q"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert phase_hashes(killed) == phase_hashes(tmp_path / "one")


def test_a_changed_phase_alone_is_built_again(corpus, tmp_path):
    out = tmp_path / "out"
    run(write_recipe(corpus, PHASES), out)
    before = phase_hashes(out)
    changed = run(
        write_recipe(corpus, PHASES.replace("max_seq_length = 256", "max_seq_length = 200")), out
    )
    states = {
        p["name"]: (p["already_built"], p["rebuilt_because_changed"]) for p in changed["phases"]
    }
    assert states == {"short": (True, False), "long": (False, True)}
    after = phase_hashes(out)
    assert after["short"] == before["short"] and after["long"] != before["long"]
    result = CliRunner().invoke(main, ["build", "--recipe", str(corpus / "recipe.toml"), str(out)])
    assert result.exit_code == 0 and "already built; nothing to do" in result.output


def test_a_phase_works_as_any_build(corpus, tmp_path):
    """stats, validate, export --format mds and the collator read a phase's output."""
    torch = pytest.importorskip("torch")
    from mlmprep.torch import MlmCollator, MlmprepDataset

    run(write_recipe(corpus, PHASES), tmp_path / "out")
    phase = str(tmp_path / "out" / "short")
    runner = CliRunner()
    stats = runner.invoke(main, ["stats", phase])
    assert stats.exit_code == 0, stats.output
    assert "austen" in stats.output and "achieved" in stats.output
    files = next(line for line in stats.output.splitlines() if line.startswith("files:"))
    assert "none: read from the recipe's token stores" in files  # not "0 read"
    assert runner.invoke(main, ["validate", phase]).exit_code == 0
    mds = str(tmp_path / "mds")
    exported = runner.invoke(main, ["export", phase, mds, "--format", "mds"])
    assert exported.exit_code == 0, exported.output
    rows = read_rows(Path(phase))
    read = run_reader(reader_python("mds", STREAMING), "read_mds.py", mds, "train", "streaming")
    assert [r["source"] for r in read] == rows["source"]
    assert [r["input_ids"]["values"] for r in read] == rows["input_ids"]
    if importlib.util.find_spec("matplotlib"):
        page = tmp_path / "report.html"
        report = runner.invoke(main, ["report", phase, "-o", str(page)])
        assert report.exit_code == 0, report.output
        assert "Recipe mixture" in page.read_text() and page.read_text().count("<img") == 8
    batch = MlmCollator.from_build(phase)([MlmprepDataset(phase)[i] for i in range(4)])
    assert batch["input_ids"].shape[0] == 4 and torch.is_tensor(batch["labels"])


BAD = [
    (
        "[build]\nseed = 3\nmax_seq_lenght = 64\n" + SOURCES + '[[phases]]\nname = "a"\n',
        "build.max_seq_lenght: unknown key; did you mean 'max_seq_length'?",
    ),
    (
        SOURCES + '[[phases]]\nname = "a"\nsources = ["austin"]\n',
        "phases[0] (a).sources: no source 'austin' is defined; did you mean 'austen'?",
    ),
    (
        SOURCES + '[[phases]]\nname = "a"\nweights = {austen = 1, kjv = -1, notes = 1}\n',
        "phases[0] (a).weights.kjv: must be a positive number, not -1",
    ),
    (
        SOURCES
        + '[[phases]]\nname = "a"\nalpha = 0.3\nweights = {austen = 1, kjv = 1, notes = 1}\n',
        "phases[0] (a).weights: give alpha or weights, not both",
    ),
    (SOURCES + '[[phases]]\nname = "a"\ntokens = 0\n', "phases[0] (a).tokens: must be a positive"),
    (
        SOURCES + '[[phases]]\nname = "a"\n[[phases]]\nname = "a"\n',
        "phases[1].name: 'a' is used twice",
    ),
    (SOURCES + '[[phases]]\nname = "../up"\n', "phases[0].name: '../up' is not a usable name"),
    (
        SOURCES + '[[phases]]\nname = "a"\nmax_seq_length = 9000\n',
        "phases[0] (a): --max-seq-length must be at most 8192, got 9000",
    ),
    (
        SOURCES + '[[phases]]\nname = "a"\nmax_seq_length = "long"\n',
        "phases[0] (a).max_seq_length: must be a whole number, not 'long'",
    ),
    (
        SOURCES + '[[phases]]\nname = "a"\ntokenizer = "x.json"\n',
        "phases[0] (a).tokenizer: decides how sources are tokenized",
    ),
    (
        SOURCES + '[[phases]]\nname = "a"\ndupe_factor = 2\n',
        "phases[0] (a).dupe_factor: not a recipe option",
    ),
    (SOURCES + '[[phases]\nname = "a"\n', "not valid TOML: "),
    (
        SOURCES.replace('["kjv.txt"]', '["nothing/*.txt"]') + '[[phases]]\nname = "a"\n',
        "nothing/*.txt",
    ),
]


@pytest.mark.parametrize("text,message", BAD)
def test_a_bad_recipe_is_one_line_naming_file_and_key(corpus, tmp_path, text, message):
    recipe = tmp_path / "bad.toml"
    for name in ("austen", "kjv.txt", "notes.jsonl"):
        (tmp_path / name).symlink_to(corpus / name)
    recipe.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", "--recipe", str(recipe), str(out)])
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"Error: {recipe}: "), result.stderr
    assert message in result.stderr
    assert result.exit_code == 2 and not out.exists()


def test_an_output_of_a_plain_build_or_another_recipe_is_refused(corpus, tmp_path):
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["build", str(corpus / "kjv.txt"), str(out)]).exit_code == 0
    recipe = write_recipe(corpus, '[[phases]]\nname = "a"\n')
    refused = runner.invoke(main, ["build", "--recipe", str(recipe), str(out)])
    assert refused.exit_code == 1 and "holds a plain build" in refused.stderr
    other = tmp_path / "other"
    assert runner.invoke(main, ["build", "--recipe", str(recipe), str(other)]).exit_code == 0
    renamed = write_recipe(corpus, '[[phases]]\nname = "b"\n', name="renamed.toml")
    refused = runner.invoke(main, ["build", "--recipe", str(renamed), str(other)])
    assert refused.exit_code == 1 and "holds another recipe's output" in refused.stderr
    replaced = runner.invoke(main, ["build", "--recipe", str(renamed), str(other), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert (other / "b" / "index.json").exists() and not (other / "a").exists()
