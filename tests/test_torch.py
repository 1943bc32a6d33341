"""The PyTorch collator and datasets, Hugging Face `datasets`, and a real training step."""

import hashlib
import itertools
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

from mlmprep.torch import MlmCollator, MlmprepDataset, MlmprepIterableDataset  # noqa: E402

from .helpers import SAMPLE_DIR, TINY_MODEL, run_build, training_batches  # noqa: E402

ROWS = [
    {
        "input_ids": [101, 5, 103, 102, 7, 102],
        "token_type_ids": [0, 0, 0, 0, 1, 1],
        "masked_lm_positions": [2],
        "masked_lm_ids": [6],
        "next_sentence_label": 1,
    },
    {
        "input_ids": [101, 8, 102, 9, 102],
        "token_type_ids": [0, 0, 0, 1, 1],
        "masked_lm_positions": [1, 3],
        "masked_lm_ids": [8, 11],
        "next_sentence_label": 0,
    },
]


def static_collator(**kwargs) -> MlmCollator:
    return MlmCollator(pad_id=0, mask_id=103, random_ids=np.arange(200, 300), **kwargs)


def test_collator_pads_and_labels_exactly():
    batch = static_collator()(ROWS)
    assert batch["input_ids"].tolist() == [[101, 5, 103, 102, 7, 102], [101, 8, 102, 9, 102, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]
    assert batch["labels"].tolist() == [
        [-100, -100, 6, -100, -100, -100],
        [-100, 8, -100, 11, -100, -100],
    ]
    assert batch["next_sentence_label"].tolist() == [1, 0]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collator_pads_to_a_multiple_of_8():
    batch = static_collator(pad_to_multiple_of=8)(ROWS)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum().item() == 11
    assert batch["labels"][:, 6:].eq(-100).all()


@pytest.fixture(scope="module")
def dynamic_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("dynamic")
    run_build([SAMPLE_DIR], out, masking="dynamic")
    return out


def masked_batches(collator, rows, epoch):
    collator.set_epoch(epoch)
    return [collator([dict(r) for r in rows[i : i + 32]]) for i in range(0, len(rows), 32)]


def masking_rates(batches, rows) -> dict[str, float]:
    """Selected / candidate tokens, and the [MASK] / random / kept shares of the selected,
    checking on the way that labels hold the original ids and unselected tokens stay."""
    selected = candidates = masked = kept = randomized = 0
    for batch, start in zip(batches, range(0, len(rows), 32)):
        width = batch["input_ids"].shape[1]
        originals = static_collator()._pad_ids(
            [r["input_ids"] for r in rows[start : start + 32]], width
        )
        special = torch.tensor(
            [
                r["special_tokens_mask"] + [1] * (width - len(r["input_ids"]))
                for r in rows[start : start + 32]
            ]
        ).bool()
        chosen = batch["labels"] != -100
        assert not (chosen & special).any()
        assert torch.equal(batch["labels"][chosen], originals[chosen])
        assert torch.equal(batch["input_ids"][~chosen], originals[~chosen])
        selected += chosen.sum().item()
        candidates += (~special).sum().item()
        now = batch["input_ids"][chosen]
        masked += (now == 103).sum().item()
        kept += ((now == originals[chosen]) & (now != 103)).sum().item()
        randomized += ((now != originals[chosen]) & (now != 103)).sum().item()
    return {
        "selected": selected / candidates,
        "mask": masked / selected,
        "kept": kept / selected,
        "random": randomized / selected,
    }


@pytest.fixture(scope="module")
def dynamic_rows(dynamic_build):
    return [MlmprepDataset(str(dynamic_build))[i] for i in range(600)]


def test_dynamic_masking_rates_and_epochs(dynamic_build, dynamic_rows):
    rows = dynamic_rows
    collator = MlmCollator.from_build(str(dynamic_build))
    assert collator.dynamic and collator.masked_lm_prob == 0.15
    batches = masked_batches(collator, rows, epoch=0)
    rates = masking_rates(batches, rows)
    assert abs(rates["selected"] - 0.15) < 0.01
    assert abs(rates["mask"] - 0.8) < 0.02
    assert abs(rates["kept"] - 0.1) < 0.015
    assert abs(rates["random"] - 0.1) < 0.015
    again = masked_batches(MlmCollator.from_build(str(dynamic_build)), rows, epoch=0)
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(batches, again))
    other = masked_batches(collator, rows, epoch=1)
    assert not all(torch.equal(a["labels"], b["labels"]) for a, b in zip(batches, other))


def test_eurobert_masking_is_30_percent_all_mask(dynamic_build, dynamic_rows):
    collator = MlmCollator.from_build(
        str(dynamic_build), masked_lm_prob=0.3, mask_replace_prob=1.0, random_replace_prob=0.0
    )
    rates = masking_rates(masked_batches(collator, dynamic_rows, epoch=0), dynamic_rows)
    assert abs(rates["selected"] - 0.3) < 0.015
    assert rates["mask"] == 1.0 and rates["random"] == rates["kept"] == 0.0


def test_a_mask_rate_schedule_is_followed_and_repeats_exactly(dynamic_build, dynamic_rows):
    """mmBERT's schedule shape: the rate drops during training; the same calls give the
    same batches."""

    def run():
        collator = MlmCollator.from_build(str(dynamic_build))
        collator.set_epoch(0)
        phases = []
        for rate in (0.3, 0.15, 0.05):
            collator.set_mask_probability(rate)
            phases.append(
                [collator([dict(r) for r in dynamic_rows[i : i + 32]]) for i in range(0, 576, 32)]
            )
        return phases

    first, second = run(), run()
    for rate, phase in zip((0.3, 0.15, 0.05), first):
        measured = masking_rates(phase, dynamic_rows)["selected"]
        assert abs(measured - rate) < 0.2 * rate + 0.005
    pairs = [(a, b) for p, q in zip(first, second) for a, b in zip(p, q)]
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in pairs)
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in pairs)


def test_a_static_collator_refuses_a_rate_change():
    with pytest.raises(ValueError, match="static"):
        static_collator().set_mask_probability(0.3)


@pytest.mark.parametrize("dynamic", [False, True])
def test_an_unpadded_batch_equals_the_padded_batch_row_for_row(
    dynamic_build, dynamic, dynamic_rows
):
    if dynamic:
        rows = dynamic_rows[:32]
        padded_collator = MlmCollator.from_build(str(dynamic_build), pad_to_multiple_of=8)
        packed_collator = MlmCollator.from_build(str(dynamic_build), unpadded=True)
    else:
        rows = ROWS
        padded_collator, packed_collator = static_collator(), static_collator(unpadded=True)
    for collator in (padded_collator, packed_collator):
        collator.set_epoch(3)
    padded = padded_collator([dict(r) for r in rows])
    packed = packed_collator([dict(r) for r in rows])
    lengths = [len(r["input_ids"]) for r in rows]
    assert packed["cu_seqlens"].dtype == torch.int32
    assert packed["cu_seqlens"].tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    assert packed["max_seqlen"] == max(lengths)
    assert packed["input_ids"].shape == (sum(lengths),)
    bounds = packed["cu_seqlens"].tolist()
    for i, (start, stop) in enumerate(itertools.pairwise(bounds)):
        n = stop - start
        for name in ("input_ids", "token_type_ids", "labels"):
            assert torch.equal(packed[name][start:stop], padded[name][i, :n]), name
        assert packed["position_ids"][start:stop].tolist() == list(range(n))
    assert torch.equal(packed["next_sentence_label"], padded["next_sentence_label"])


def test_iterable_dataset_splits_row_groups_over_workers(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "out", shard_size=100)
    dataset = MlmprepIterableDataset(str(tmp_path / "out"), shuffle=True, seed=1)
    assert len(dataset.row_groups) >= 6
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    seen = [tuple(row["input_ids"]) for row in loader]
    everything = [
        tuple(MlmprepDataset(str(tmp_path / "out"))[i]["input_ids"])
        for i in range(len(MlmprepDataset(str(tmp_path / "out"))))
    ]
    assert set(seen) == set(everything) and len(set(everything)) == len(everything)
    # the worker dealt fewer rows repeats some, so that both yield as many
    assert len(seen) % 2 == 0 and len(seen) - len(everything) < max(dataset.group_rows)


def test_hugging_face_datasets_loads_a_build(sample_build, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="datasets is not installed")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    index = json.loads((sample_build / "index.json").read_text())
    files = [str(sample_build / s["name"]) for s in index["shards"]]
    train = datasets.load_dataset(
        "parquet", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "cache")
    )
    assert train.num_rows == sum(s["rows"] for s in index["shards"])
    assert list(train.features) == [
        "input_ids",
        "token_type_ids",
        "next_sentence_label",
        "masked_lm_positions",
        "masked_lm_ids",
        "num_tokens",
    ]
    assert train.features["input_ids"].feature.dtype == "int32"


def test_tiny_bert_trains_and_its_mlm_loss_falls(sample_build):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        **TINY_MODEL,
        max_position_embeddings=128,
    )
    model = transformers.BertForPreTraining(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for batch in training_batches(sample_build, 30):
        output = model(**batch)
        mlm = torch.nn.functional.cross_entropy(
            output.prediction_logits.view(-1, config.vocab_size), batch["labels"].view(-1)
        )
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(mlm.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0


def test_reading_a_build_leaves_the_environment_alone(sample_build, monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    before = dict(os.environ)
    collate = MlmCollator.from_build(str(sample_build))
    batch = collate([MlmprepDataset(str(sample_build))[i] for i in range(4)])
    assert batch["input_ids"].shape[0] == 4
    assert dict(os.environ) == before


def test_the_dataset_card_lets_load_dataset_read_the_build(tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets is not installed")
    out = tmp_path / "out"
    summary = run_build([SAMPLE_DIR], out, validation_fraction=0.2, shard_size=300)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "license: other" in card
    index = json.loads((out / "index.json").read_text())
    fingerprint = json.dumps(index["config"]["input_fingerprint"], sort_keys=True).encode()
    assert f"fingerprint `{hashlib.sha256(fingerprint).hexdigest()[:16]}`" in card
    loaded = datasets.load_dataset(str(out))
    assert {name: len(split) for name, split in loaded.items()} == summary["rows"]
    assert loaded["train"].features["input_ids"].feature.dtype == "int32"
    assert loaded["train"].features["next_sentence_label"].dtype == "int8"


def test_a_users_own_readme_is_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("my notes\n")
    run_build([SAMPLE_DIR], out)
    assert (out / "README.md").read_text() == "my notes\n"


def test_overwrite_removes_the_card_it_wrote(tmp_path):
    out = tmp_path / "out"
    run_build([SAMPLE_DIR], out)
    assert (out / "README.md").exists()
    from mlmprep.pipeline.output_dir import remove_build

    remove_build(str(out))
    assert sorted(p.name for p in out.iterdir()) == []


@pytest.mark.parametrize("batch_size", [None, 16])
def test_every_rank_yields_as_many_items_and_none_is_lost(tmp_path, monkeypatch, batch_size):
    """Guards DDP at the end of an epoch: before the fix row groups were dealt g, g + W,
    ... and a rank dealt fewer got fewer batches, so the others waited for it forever.
    Now a rank dealt fewer repeats some of its own; every row is still read."""
    run_build([SAMPLE_DIR], tmp_path / "out", shard_size=100)
    dataset = MlmprepIterableDataset(str(tmp_path / "out"), seed=3, batch_size=batch_size)
    world = 3
    assert len(dataset.row_groups) % world  # dealt unevenly
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr("mlmprep.outputs.torch.distributed_rank", lambda r=rank: (r, world))
        per_rank.append(list(dataset))
    assert len({len(items) for items in per_rank}) == 1
    rows = [row for items in per_rank for item in items for row in (
        item if batch_size else [item])]  # fmt: skip
    seen = {tuple(row["input_ids"]) for row in rows}
    everything = MlmprepDataset(str(tmp_path / "out"))
    assert seen == {tuple(everything[i]["input_ids"]) for i in range(len(everything))}
