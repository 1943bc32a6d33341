"""`mlmprep show`: decoded with the build's tokenizer, A and B apart, nothing added."""

import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main
from mlmprep.outputs.show import render
from mlmprep.text.tokenization import TokenEncoder
from mlmprep.text.vocab import train_vocab

from .helpers import SAMPLE_DIR, run_build

BERT = TokenEncoder("bert-base-uncased")


def ids(*tokens: str) -> list[int]:
    vocab = BERT._tokenizer.get_vocab()
    return [vocab[t] for t in tokens]


def test_a_b_segment_starting_with_a_piece_keeps_its_own_line():
    row = {
        "input_ids": ids("[CLS]", "the", "cat", "[SEP]", "##s", "ran", "[SEP]"),
        "masked_lm_positions": [2],
        "masked_lm_ids": ids("dog"),
        "next_sentence_label": 1,
        "num_tokens": 7,
    }
    assert render(row, BERT).splitlines() == [
        "next_sentence_label=1 (random next)  tokens=7  masked=1",
        "  A: the cat(dog)",
        "  B: s ran",
    ]


def test_a_row_without_b_gets_no_separator_it_lacks():
    row = {"input_ids": ids("[CLS]", "one", "two", "[SEP]", "three", "[SEP]"), "num_tokens": 6}
    assert render(row, BERT).splitlines()[1] == "  text: one two [SEP] three"


@pytest.fixture(scope="module")
def bpe_build(tmp_path_factory):
    directory = tmp_path_factory.mktemp("show-bpe")
    tokenizer = directory / "roberta.json"
    train_vocab([str(SAMPLE_DIR)], str(tokenizer), 3000, model="bpe", recipe_name="roberta")
    run_build([SAMPLE_DIR], directory / "out", tokenizer=str(tokenizer))
    return directory / "out"


def test_byte_level_bpe_rows_read_as_text(bpe_build):
    shown = CliRunner().invoke(main, ["show", str(bpe_build), "-n", "20"]).stdout
    assert shown.count("  A: ") == 20 and shown.count("  B: ") == 20
    for mark in ("\u0120", "\u00e2\u0122", "\u010a"):  # Ġ, the bytes of a dash, Ċ
        assert mark not in shown


def test_offset_shows_rows_past_the_first(tmp_path):
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, shard_size=200)
    first = CliRunner().invoke(main, ["show", str(out), "-n", "260"]).stdout.split("\n\n")
    later = CliRunner().invoke(main, ["show", str(out), "-n", "3", "--offset", "257"]).stdout
    assert later.split("\n\n") == first[257:260]  # across the first shard's end


def test_a_masked_lone_space_token_reads_as_its_vocabulary_entry(bpe_build):
    """Before, a masked 'Ġ' (a space alone) was shown as <mask>()."""
    encoder = TokenEncoder(str(bpe_build.parent / "roberta.json"))
    vocab = encoder._tokenizer.get_vocab()
    row = {
        "input_ids": [vocab[t] for t in ("<s>", "Ġthe", "<mask>", "Ġof", "</s>")],
        "masked_lm_positions": [2],
        "masked_lm_ids": [vocab["\u0120"]],
        "num_tokens": 5,
    }
    assert render(row, encoder).splitlines()[1] == "  text: the <mask>(\u0120) of"
