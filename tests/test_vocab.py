import pytest
from click.testing import CliRunner

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
    assert (
        result.stdout == f"{vocab}: wordpiece for bert, 4000 entries (40 characters) from 2 files\n"
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
    assert result.stderr == f"Error: {tmp_path}: no text found to train a vocabulary on\n"
