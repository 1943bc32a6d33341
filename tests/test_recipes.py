"""RoBERTa and XLM-R layouts end to end: tokenizers trained here with `mlmprep vocab`,
FULL-SENTENCES builds, their rows, their masks, whole words by the family's rule, and a
tiny RobertaForMaskedLM that learns from them."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from mlmprep.input.accounting import InputReport
from mlmprep.input.readers import iter_documents
from mlmprep.outputs.stats import compute_stats
from mlmprep.outputs.validate import validate
from mlmprep.text.vocab import train_vocab

from .helpers import SAMPLE_DIR, TINY_MODEL, run_build, training_batches

FAMILIES = {"roberta": ("bpe", "\u0120"), "xlmr": ("unigram", "\u2581")}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, str]:
    """A RoBERTa-layout byte-level BPE and an XLM-R-layout Unigram, trained on the sample."""
    directory = tmp_path_factory.mktemp("tokenizers")
    paths = {}
    for recipe, (model, _) in FAMILIES.items():
        path = directory / f"{recipe}.json"
        train_vocab([str(SAMPLE_DIR)], str(path), 3000, model=model, recipe_name=recipe)
        paths[recipe] = str(path)
    return paths


def _rows(output_dir) -> list[dict]:
    return pq.read_table(next(output_dir.glob("train-*.parquet"))).to_pylist()


def _special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    return {t: tokenizer.token_to_id(t) for t in ("<s>", "</s>", "<mask>", "<pad>", "<unk>")}


@pytest.mark.parametrize("recipe", list(FAMILIES))
def test_the_trained_tokenizer_carries_its_recipe(tokenizers, recipe):
    with open(tokenizers[recipe], encoding="utf-8") as handle:
        definition = json.load(handle)
    tokenizer = Tokenizer.from_file(tokenizers[recipe])
    assert definition["model"]["type"] == {"roberta": "BPE", "xlmr": "Unigram"}[recipe]
    assert _special_ids(tokenizer) == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    pair = tokenizer.encode("one", "two")
    assert pair.tokens[0] == "<s>" and pair.tokens[-1] == "</s>"
    assert pair.tokens.count("</s>") == 3  # <s> A </s></s> B </s>
    assert set(pair.type_ids) == {0}


@pytest.mark.parametrize("recipe", list(FAMILIES))
def test_full_sentences_build_with_the_recipe(tokenizers, recipe, tmp_path):
    tokenizer = Tokenizer.from_file(tokenizers[recipe])
    ids = _special_ids(tokenizer)
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, tokenizer=tokenizers[recipe], objective="none")
    rows = _rows(out)
    assert rows
    masked = mask_hits = 0
    for row in rows:
        tokens = row["input_ids"]
        assert tokens[0] == ids["<s>"] and tokens[-1] == ids["</s>"]
        assert set(row["token_type_ids"]) == {0}
        positions = set(row["masked_lm_positions"])
        assert {i for i, t in enumerate(tokens) if t == ids["<mask>"]} <= positions
        assert not {0, len(tokens) - 1} & positions
        masked += len(positions)
        mask_hits += sum(tokens[p] == ids["<mask>"] for p in positions)
    assert 0.75 < mask_hits / masked < 0.85  # 80% of the chosen positions show <mask>
    assert validate(str(out))["ok"]
    index = json.loads((out / "index.json").read_text())
    assert index["tokenizer"]["layout"]["roles"] == {
        "pad": "<pad>",
        "unk": "<unk>",
        "cls": "<s>",
        "sep": "</s>",
        "mask": "<mask>",
    }
    assert compute_stats(str(out))["tokens_dropped"] == 0


@pytest.mark.parametrize("recipe", list(FAMILIES))
def test_rows_hold_the_corpus_tokens(tokenizers, recipe, tmp_path):
    """At least 99.5% of a direct encode of the same documents is in the rows."""
    tokenizer = Tokenizer.from_file(tokenizers[recipe])
    structure = set(_special_ids(tokenizer).values())
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, tokenizer=tokenizers[recipe], objective="none")
    in_rows = 0
    for row in _rows(out):
        tokens = np.array(row["input_ids"])
        tokens[row["masked_lm_positions"]] = row["masked_lm_ids"]  # undo the masks
        in_rows += int(np.isin(tokens, list(structure), invert=True).sum())
    direct = 0
    for path in sorted(SAMPLE_DIR.glob("*.txt.gz")):
        texts = [
            " ".join(d.lines) for d in iter_documents(str(path), "text", "text", InputReport())
        ]
        direct += sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    assert 0.995 <= in_rows / direct <= 1.01, (in_rows, direct)


@pytest.mark.parametrize("recipe", list(FAMILIES))
def test_whole_words_follow_the_family_word_start(tokenizers, recipe, tmp_path):
    """A word is a token carrying the family's word-start mark ('Ġ' or '▁') and the
    tokens after it up to the next mark; a masked word is masked whole."""
    tokenizer = Tokenizer.from_file(tokenizers[recipe])
    mark = FAMILIES[recipe][1]
    out = tmp_path / "out"
    run_build(
        [SAMPLE_DIR], out, tokenizer=tokenizers[recipe], objective="none", whole_word_mask=True
    )
    special = set(_special_ids(tokenizer).values())
    partial = words_masked = 0
    for row in _rows(out):
        tokens = np.array(row["input_ids"])
        tokens[row["masked_lm_positions"]] = row["masked_lm_ids"]
        masked = np.zeros(len(tokens), bool)
        masked[row["masked_lm_positions"]] = True
        word, words = -1, []
        for token in tokens.tolist():
            if token in special:
                words.append(-1)
                continue
            if tokenizer.id_to_token(token).startswith(mark) or words[-1] == -1:
                word += 1
            words.append(word)
        words = np.array(words)
        for w in np.unique(words[masked]):
            words_masked += 1
            partial += not masked[words == w].all()
    assert words_masked > 500
    assert partial == 0


def test_a_tiny_roberta_learns_from_the_roberta_build(tokenizers, tmp_path):
    torch = pytest.importorskip("torch", reason="torch (mlmprep[torch]) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    from mlmprep.torch import MlmCollator

    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, tokenizer=tokenizers["roberta"], objective="none")
    torch.manual_seed(0)
    config = transformers.RobertaConfig(
        vocab_size=Tokenizer.from_file(tokenizers["roberta"]).get_vocab_size(),
        **TINY_MODEL,
        max_position_embeddings=130,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    model = transformers.RobertaForMaskedLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    collator = MlmCollator.from_build(str(out))
    assert collator.pad_id == 1 and collator.mask_id == 4
    losses = []
    for batch in training_batches(out, 30):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0


def test_long_rows_mask_their_share_and_validate(tmp_path):
    """ModernBERT-style: 8,192-token rows, 30% masking, default max predictions."""
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, objective="none", max_seq_length=8192, masked_lm_prob=0.3)
    index = json.loads((out / "index.json").read_text())
    assert index["config"]["max_predictions_per_seq"] == 2458  # ceil(8192 * 0.3)
    rows = _rows(out)
    assert max(len(r["input_ids"]) for r in rows) > 4096
    for row in rows:
        assert len(row["masked_lm_positions"]) == round(len(row["input_ids"]) * 0.3)
    assert abs(compute_stats(str(out))["masked_per_token"] - 0.3) <= 0.005
    assert validate(str(out))["ok"]
    parquet = pq.ParquetFile(next(out.glob("train-*.parquet")))
    assert parquet.metadata.row_group(0).num_rows <= 512  # 8,192 rows of 8,192 would be 256 MB


def test_sop_drops_no_more_than_nsp(tmp_path):
    for objective in ("nsp", "sop"):
        run_build([SAMPLE_DIR], tmp_path / objective, objective=objective)
    dropped = {
        o: compute_stats(str(tmp_path / o))["tokens_dropped_fraction"] for o in ("nsp", "sop")
    }
    assert dropped["sop"] <= dropped["nsp"]
    assert dropped["nsp"] > 0


def test_special_tokens_override_and_a_missing_role(tokenizers, tmp_path):
    """Without a post-processor and with other names, --special-tokens gives the roles; a
    missing one is named in the error."""
    from mlmprep.core.errors import TokenizerError
    from mlmprep.text.tokenization import TokenEncoder

    definition = json.loads(Tokenizer.from_file(tokenizers["roberta"]).to_str())
    definition["post_processor"] = None
    for token in definition["added_tokens"]:
        token["content"] = {"<s>": "[BOS]", "</s>": "[EOS]"}.get(token["content"], token["content"])
    vocab = definition["model"]["vocab"]
    vocab["[BOS]"], vocab["[EOS]"] = vocab.pop("<s>"), vocab.pop("</s>")
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(definition))
    with pytest.raises(
        TokenizerError, match=r"no token for cls, sep .*--special-tokens cls=TOKEN,sep=TOKEN"
    ):
        TokenEncoder(str(path))
    encoder = TokenEncoder(str(path), special_tokens={"cls": "[BOS]", "sep": "[EOS]"})
    assert (encoder.special_ids.cls, encoder.special_ids.sep, encoder.special_ids.mask) == (0, 2, 4)
    assert [p.token or p.kind for p in encoder.layout.pair] == ["[BOS]", "A", "[EOS]", "B", "[EOS]"]
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, tokenizer=str(path), special_tokens="cls=[BOS],sep=[EOS]")
    row = _rows(out)[0]
    assert row["input_ids"][0] == 0 and row["input_ids"][-1] == 2
    assert validate(str(out))["ok"]


def test_a_malformed_special_tokens_option_is_one_line(tmp_path):
    from click.testing import CliRunner

    from mlmprep.cli.main import main

    result = CliRunner().invoke(
        main, ["build", str(SAMPLE_DIR), str(tmp_path / "out"), "--special-tokens", "bos=<s>"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --special-tokens: 'bos=<s>' is not ROLE=TOKEN with ROLE one of pad, unk, cls, "
        "sep, mask (e.g. cls=<s>,sep=</s>,mask=<mask>,pad=<pad>,unk=<unk>)\n"
    )


def test_export_refuses_a_roberta_layout(tokenizers, tmp_path):
    """NVIDIA's and Google's formats are BERT's rows: another layout is refused."""
    from click.testing import CliRunner

    from mlmprep.cli.main import main

    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, tokenizer=tokenizers["roberta"])  # NSP pairs, RoBERTa layout
    assert validate(str(out))["ok"]
    assert all(row["input_ids"].count(2) == 3 for row in _rows(out))  # <s> A </s></s> B </s>
    result = CliRunner().invoke(
        main, ["export", str(out), str(tmp_path / "h5"), "--format", "nvidia-hdf5"]
    )
    assert result.exit_code == 2
    assert "has another tokenizer layout" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_sentencepiece_model_builds_with_its_own_ids(tmp_path):
    """An XLM-R-style SentencePiece Unigram .model, trained here, converted by tokenizers
    without network access: the same ids as sentencepiece itself, <s> A </s> rows."""
    spm = pytest.importorskip("sentencepiece", reason="mlmprep[sentencepiece] is not installed")
    import gzip

    text = tmp_path / "sample.txt"
    text.write_bytes(b"".join(gzip.decompress(p.read_bytes()) for p in SAMPLE_DIR.glob("*.gz")))
    prefix = tmp_path / "xlmr"
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(prefix),
        vocab_size=3000,
        model_type="unigram",
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        user_defined_symbols=["<mask>"],
        minloglevel=2,
    )
    model = f"{prefix}.model"
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out, tokenizer=model, objective="none")
    rows = _rows(out)
    assert all(r["input_ids"][0] == 0 and r["input_ids"][-1] == 2 for r in rows)
    assert validate(str(out))["ok"]
    assert json.loads((out / "index.json").read_text())["tokenizer"]["special_ids"] == {
        "<pad>": 1,
        "<unk>": 3,
        "<s>": 0,
        "</s>": 2,
        "<mask>": 4,
    }
    sentence = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home."
    converted = Tokenizer.from_file(str(out / "tokenizer.json"))
    processor = spm.SentencePieceProcessor(model_file=model)
    assert converted.encode(sentence, add_special_tokens=False).ids == processor.encode(sentence)


def test_a_template_with_a_token_outside_the_roles_is_refused(tokenizers, tmp_path):
    from mlmprep.core.errors import TokenizerError
    from mlmprep.text.tokenization import TokenEncoder

    definition = json.loads(Tokenizer.from_file(tokenizers["roberta"]).to_str())
    pair = definition["post_processor"]["pair"]
    pair.insert(2, {"SpecialToken": {"id": "<pad>", "type_id": 0}})  # <s> A <pad> </s> ...
    definition["post_processor"]["special_tokens"]["<pad>"] = {
        "id": "<pad>",
        "ids": [1],
        "tokens": ["<pad>"],
    }
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(definition))
    encoder = TokenEncoder(str(path))  # <pad> is a role: allowed
    assert [p.token or p.kind for p in encoder.layout.pair][:3] == ["<s>", "A", "<pad>"]
    vocab = definition["model"]["vocab"]
    vocab["<extra>"] = len(vocab)
    pair[2] = {"SpecialToken": {"id": "<extra>", "type_id": 0}}
    definition["post_processor"]["special_tokens"]["<extra>"] = {
        "id": "<extra>",
        "ids": [vocab["<extra>"]],
        "tokens": ["<extra>"],
    }
    path.write_text(json.dumps(definition))
    with pytest.raises(TokenizerError, match=r"places <extra>, which is none of cls"):
        TokenEncoder(str(path))
