import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main

from .helpers import SAMPLE_DIR


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_build_json_summary_then_stats_show_validate(runner, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(main, ["build", str(SAMPLE_DIR), str(out), "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 37 and summary["shards"] == 1
    assert summary["instances"] == summary["rows"]["train"] > 500

    stats = json.loads(runner.invoke(main, ["stats", str(out), "--json"]).stdout)
    for key in (
        "instances",
        "shards",
        "tokens",
        "mean_tokens",
        "median_tokens",
        "p95_tokens",
        "frac_shorter_than_max",
        "length_histogram",
        "nsp_random_fraction",
        "forced_random_fraction",
        "mean_masked",
        "masked_per_token",
        "mask_split",
        "unk_rate",
        "rows_per_shard",
        "documents",
        "files",
        "repaired",
    ):
        assert key in stats
    assert stats["instances"] == summary["instances"]

    text = runner.invoke(main, ["stats", str(out)]).stdout
    assert f"instances:            {summary['instances']} in 1 shards" in text

    shown = runner.invoke(main, ["show", str(out), "-n", "2"])
    assert shown.exit_code == 0
    assert shown.stdout.count("next_sentence_label=") == 2
    assert "[MASK](" in shown.stdout and "  B: " in shown.stdout

    checked = runner.invoke(main, ["validate", str(out)])
    assert checked.exit_code == 0
    assert checked.stdout.strip() == f"ok: 1 shards, {summary['instances']} rows"


def test_second_run_says_nothing_to_do(runner, tmp_path):
    out = str(tmp_path / "out")
    runner.invoke(main, ["build", str(SAMPLE_DIR), out, "-q", "--workers", "1"])
    again = runner.invoke(main, ["build", str(SAMPLE_DIR), out, "-q", "--workers", "1"])
    assert again.exit_code == 0
    assert "already holds this build; nothing to do" in again.stdout


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["build", "missing-dir", "OUT"], 1, "Error: missing-dir: no such file or directory\n"),
        (
            ["build", "IN", "OUT", "--masked-lm-prob", "1.5"],
            2,
            "Error: --masked-lm-prob must be in (0, 0.5], got 1.5\n",
        ),
        (
            ["build", "IN", "OUT", "--max-seq-length", "4"],
            2,
            "Error: --max-seq-length must be at least 8 (room for [CLS] A [SEP] B [SEP]), got 4\n",
        ),
        (
            ["build", "IN", "OUT", "--tokenizer", "nope.txt"],
            2,
            "Error: nope.txt: tokenizer not found; pass --tokenizer bert-base-uncased, "
            "a vocab.txt, a tokenizer.json or a SentencePiece .model\n",
        ),
        (
            ["build", "IN", "OUT", "--unit-size", "70000000000"],
            2,
            "Error: --unit-size must be 0 (auto) or between 4096 bytes and 68719476736 (64 GiB), "
            "got 70000000000\n",
        ),
        (
            ["stats", "IN"],
            1,
            "Error: IN/index.json: not found; is IN an mlmprep build output "
            "(run 'mlmprep build' first)?\n",
        ),
    ],
)
def test_errors_are_one_line_with_exit_codes(runner, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "IN").mkdir()
    (tmp_path / "IN" / "a.txt").write_text("Some text. More text.\n")
    result = runner.invoke(main, args)
    assert result.exit_code == code
    assert result.stderr == message
    assert "Traceback" not in result.output


def test_validate_reports_damage(runner, tmp_path):
    out = tmp_path / "out"
    runner.invoke(
        main, ["build", str(SAMPLE_DIR), str(out), "-q", "--workers", "1", "--shard-size", "300"]
    )
    shards = sorted(out.glob("train-*.parquet"))
    assert len(shards) >= 2
    data = bytearray(shards[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    shards[0].write_bytes(bytes(data))
    shards[1].write_bytes(shards[1].read_bytes()[:-100])
    result = runner.invoke(main, ["validate", str(out)])
    assert result.exit_code == 1
    assert f"Error: {shards[0].name}: sha256 differs from index.json (damaged)" in result.stderr
    assert f"Error: {shards[1].name}: " in result.stderr and "truncated" in result.stderr


def test_help_has_examples(runner):
    for command in ([], *([c] for c in main.commands)):
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0
        assert "mlmprep " in result.stdout and "Example" in result.stdout


def test_the_command_line_loads_no_array_library_until_a_command_runs():
    """A parallel build starts its worker server before this process loads them."""
    probe = "import sys, mlmprep.cli.main; print(sorted({'numpy', 'pyarrow'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--no-cross-documents"], "--no-cross-documents goes with --objective none"),
        (["--objective", "sop", "--no-cross-documents"], "--no-cross-documents goes with"),
        (["--language", "zh"], "--language zh chooses the words of --whole-word-mask"),
        (
            ["--masking", "dynamic", "--max-predictions-per-seq", "20"],
            "--max-predictions-per-seq caps the masks a static build draws",
        ),
    ],
)
@pytest.mark.parametrize("command", ["build", "plan"])
def test_an_option_that_would_change_nothing_is_refused(runner, tmp_path, command, options, named):
    """Before, each of these was accepted and did nothing (issue 31, point 11)."""
    result = runner.invoke(main, [command, str(SAMPLE_DIR), str(tmp_path / "out"), *options])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {named}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_same_options_where_they_apply_are_accepted(runner, tmp_path):
    for options in (
        ["--objective", "none", "--no-cross-documents"],
        ["--language", "zh", "--whole-word-mask"],
        ["--max-predictions-per-seq", "10"],
    ):
        result = runner.invoke(main, ["plan", str(SAMPLE_DIR), str(tmp_path / "out"), *options])
        assert result.exit_code == 0, (options, result.output)


def test_a_split_the_build_does_not_hold_is_refused(runner, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(main, ["build", str(SAMPLE_DIR), str(out), "-q"]).exit_code == 0
    for command in (["show", str(out)], ["stats", str(out)]):
        result = runner.invoke(main, [*command, "--split", "validation"])
        assert result.exit_code == 2
        assert result.stderr == (
            f"Error: --split validation: {out} has no validation rows (its splits: train; "
            "a validation split needs --validation-fraction)\n"
        )
    shown = runner.invoke(main, ["show", str(out), "-n", "-1"])
    assert shown.exit_code == 2 and "-1 is not in the range x>=1" in shown.stderr
    with_validation = tmp_path / "v"
    built = runner.invoke(
        main, ["build", str(SAMPLE_DIR), str(with_validation), "-q", "--validation-fraction", "0.2"]
    )
    assert built.exit_code == 0
    stats = runner.invoke(main, ["stats", str(with_validation), "--split", "validation", "--json"])
    assert json.loads(stats.stdout)["instances"] > 0


@pytest.mark.parametrize(
    ("given", "planned"),
    [("8000000000000", 8 * 10**12), ("8e12", 8 * 10**12), ("8TB", 8 * 10**12),
     ("100 GB", 10**11), ("1.5TiB", round(1.5 * 2**40)), ("2_000_000", 2 * 10**6)],
)  # fmt: skip
def test_input_bytes_takes_units_and_exponents(runner, tmp_path, given, planned):
    result = runner.invoke(
        main, ["plan", str(SAMPLE_DIR), str(tmp_path / "o"), "--input-bytes", given, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["raw_bytes"] == planned


@pytest.mark.parametrize("given", ["8x", "TB", "-5", "0", "nan"])
def test_input_bytes_refuses_what_is_no_size(runner, tmp_path, given):
    result = runner.invoke(
        main, ["plan", str(SAMPLE_DIR), str(tmp_path / "o"), "--input-bytes", given]
    )
    assert result.exit_code == 2 and "Invalid value for '--input-bytes'" in result.stderr
