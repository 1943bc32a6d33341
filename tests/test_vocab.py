import json
import shutil

import pytest
from click.testing import CliRunner
from tokenizers import Tokenizer

from mlmprep.cli.main import main
from mlmprep.core.errors import ConfigError
from mlmprep.outputs.stats import compute_stats
from mlmprep.text.vocab import train_vocab

from .helpers import SAMPLE_DIR, run_build, shared_corpus


def test_vocab_on_the_sample_is_usable_and_covers_it(tmp_path):
    vocab = tmp_path / "vocab.txt"
    result = CliRunner().invoke(
        main, ["vocab", str(SAMPLE_DIR), "-o", str(vocab), "--size", "4000"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "documents: 37 used, 0 skipped\n"
        f"{vocab}: wordpiece for bert, 4000 entries (40 characters) from 2 files\n"
    )
    lines = vocab.read_text().split("\n")
    assert lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(lines) == 4001 and lines[-1] == ""
    assert any(line.startswith("##") for line in lines)
    run_build([SAMPLE_DIR], tmp_path / "out", tokenizer=str(vocab))
    assert compute_stats(str(tmp_path / "out"))["unk_rate"] < 0.01


def test_too_small_vocabulary_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--size must be larger than 5"):
        train_vocab([str(SAMPLE_DIR)], str(tmp_path / "v.txt"), 5)


def test_chinese_vocabulary_sizes_its_alphabet_from_the_corpus(tmp_path):
    corpus = shared_corpus("zh-mixed")
    result = train_vocab([str(corpus)], str(tmp_path / "zh.txt"), 30000)
    assert result["alphabet"] > 1000  # the trainer's default limit would leave most [UNK]
    run_build([corpus], tmp_path / "out", tokenizer=str(tmp_path / "zh.txt"))
    assert compute_stats(str(tmp_path / "out"))["unk_rate"] < 0.01


@pytest.mark.parametrize("model", ["wordpiece", "bpe", "unigram"])
def test_inputs_without_text_are_one_error_for_every_model(tmp_path, model):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    result = CliRunner().invoke(
        main, ["vocab", str(tmp_path), "-o", str(tmp_path / "t.json"), "--model", model]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path}: no documents found (1 files read, documents skipped: none); "
        "check the files, --input-format and --text-field\n"
    )


def test_vocab_reads_and_counts_the_inputs_as_build_does(tmp_path):
    """Before, a JSONL file without the text field was dropped without a word and the
    command said only 'from 3 files'."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_DIR, corpus)
    with open(corpus / "man.jsonl", "w") as handle:
        for i in range(30):
            handle.write(json.dumps({"body": f"Page {i} says a thing. And another."}) + "\n")
    vocab = CliRunner().invoke(
        main, ["vocab", str(corpus), "-o", str(tmp_path / "v.txt"), "--size", "500"]
    )
    assert vocab.exit_code == 0, vocab.output
    build = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out")])
    counts = "documents: 37 used, 30 skipped (30 missing text field 'text')"
    assert counts in vocab.stdout.splitlines() and counts in build.stdout.splitlines()
    hint = f"warning: {corpus / 'man.jsonl'}: no record has a text field 'text'"
    assert vocab.stderr.startswith(hint) and build.stderr.startswith(hint)
    fixed = CliRunner().invoke(
        main,
        [
            "vocab",
            str(corpus / "man.jsonl"),
            "-o",
            str(tmp_path / "m.txt"),
            "--size",
            "200",
            "--text-field",
            "body",
        ],
    )
    assert fixed.stdout.startswith("documents: 30 used, 0 skipped\n")


def test_the_output_is_checked_before_training_and_never_clobbered(tmp_path, monkeypatch):
    """Before, -o into a missing directory failed after training, naming a temp file, and
    an unrelated file was overwritten."""
    trained = []
    monkeypatch.setattr(Tokenizer, "train_from_iterator", lambda *a, **k: trained.append(1))
    missing = CliRunner().invoke(main, ["vocab", str(SAMPLE_DIR), "-o", str(tmp_path / "no/v.txt")])
    assert missing.exit_code == 1 and not trained
    assert missing.stderr == (
        f"Error: -o {tmp_path / 'no/v.txt'}: no directory {tmp_path / 'no'}; create it or "
        "choose another -o\n"
    )
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    refused = CliRunner().invoke(main, ["vocab", str(SAMPLE_DIR), "-o", str(notes)])
    assert refused.exit_code == 1 and not trained and notes.read_text() == "my notes\n"
    assert "the file exists; pass --overwrite to replace it" in refused.stderr
    monkeypatch.undo()
    replaced = CliRunner().invoke(
        main, ["vocab", str(SAMPLE_DIR), "-o", str(notes), "--size", "300", "--overwrite"]
    )
    assert replaced.exit_code == 0 and notes.read_text().startswith("[PAD]\n")


def test_a_cased_vocabulary_lowercased_by_default_is_warned_about(tmp_path):
    """Before, a cased vocab.txt was lowercased without a word, and its uppercase
    entries appeared only as random replacements."""
    cased = tmp_path / "cased.txt"
    train_vocab([str(SAMPLE_DIR)], str(cased), 1000, lowercase=False)
    uppercase = sum(1 for e in cased.read_text().split("\n") if e != e.lower() and e[:1] != "[")
    assert uppercase > 50
    runner = CliRunner()
    warned = runner.invoke(
        main, ["build", str(SAMPLE_DIR), str(tmp_path / "a"), "--tokenizer", str(cased)]
    )
    assert warned.exit_code == 0
    assert (
        f"warning: {cased}: {uppercase:,} entries hold uppercase letters (a cased vocabulary), "
        "but the text is lowercased by default" in warned.stderr
    )
    for flag in ("--no-lowercase", "--lowercase"):
        chosen = runner.invoke(
            main, ["build", str(SAMPLE_DIR), str(tmp_path / flag), "--tokenizer", str(cased), flag]
        )
        assert chosen.exit_code == 0 and "cased vocabulary" not in chosen.stderr
    uncased = tmp_path / "uncased.txt"
    train_vocab([str(SAMPLE_DIR)], str(uncased), 1000)
    plain = runner.invoke(
        main, ["build", str(SAMPLE_DIR), str(tmp_path / "u"), "--tokenizer", str(uncased)]
    )
    assert plain.exit_code == 0 and "cased vocabulary" not in plain.stderr
    tokenized = runner.invoke(
        main, ["tokenize", str(SAMPLE_DIR), str(tmp_path / "t" / "s"), "--tokenizer", str(cased)]
    )
    assert tokenized.exit_code == 0 and "(a cased vocabulary)" in tokenized.stderr
