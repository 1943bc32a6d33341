"""Train a tiny BertForPreTraining on mlmprep output for a few steps (CPU, no downloads).

    mlmprep build mlmprep/data/sample out/
    python examples/train_tiny_bert.py out/ --steps 30

Needs `pip install "mlmprep[torch]" transformers`. Works with static and dynamic
(`--masking dynamic`) builds and with `--objective nsp` or `sop`.
"""

from __future__ import annotations

import argparse

import torch
from transformers import BertConfig, BertForPreTraining

from mlmprep.formats.manifest import read_index
from mlmprep.torch import MlmCollator, MlmprepIterableDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    args = parser.parse_args()

    index = read_index(args.output_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=index["tokenizer"]["vocab_size"],
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=index["config"]["max_seq_length"],
    )
    model = BertForPreTraining(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    dataset = MlmprepIterableDataset(args.output_dir, shuffle=True, seed=0)
    collator = MlmCollator.from_build(args.output_dir, pad_to_multiple_of=8)

    step, epoch = 0, 0
    while step < args.steps:
        dataset.set_epoch(epoch)  # new row-group order and, for dynamic builds, new masks
        collator.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, collate_fn=collator, num_workers=args.workers
        )
        for batch in loader:
            if "sentence_order_label" in batch:  # ALBERT's name; BERT's head takes it as NSP
                batch["next_sentence_label"] = batch.pop("sentence_order_label")
            output = model(**batch)
            mlm_loss = torch.nn.functional.cross_entropy(
                output.prediction_logits.view(-1, config.vocab_size), batch["labels"].view(-1)
            )
            output.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            print(f"step {step:3d}  loss {output.loss.item():.3f}  mlm {mlm_loss.item():.3f}")
            if step == args.steps:
                break
        epoch += 1


if __name__ == "__main__":
    main()
