"""Read an LDDL export with NVIDIA's own loader and print each yielded row as a JSON line
(tokens, segments and labels cut to the row's attention mask, and its NSP label).

usage: read_lddl.py SPLIT_DIR VOCAB_FILE [RANK WORLD_SIZE PORT]

With RANK, WORLD_SIZE and PORT the process joins a CPU `gloo` process group on 127.0.0.1
first, as one rank of a distributed run; lddl.torch takes rank and world size from it.
"""

import json
import logging
import sys

import torch
import torch.distributed as dist

split_dir, vocab_file = sys.argv[1:3]
if len(sys.argv) > 3:
    rank, world_size, port = (int(a) for a in sys.argv[3:6])
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )

import lddl.torch  # noqa: E402

torch.manual_seed(0)  # dynamic masking draws from torch's global generator
loader = lddl.torch.get_bert_pretrain_data_loader(
    split_dir,
    vocab_file=vocab_file,
    data_loader_kwargs={"batch_size": 16, "num_workers": 1},
    log_level=logging.ERROR,
)
for batch in loader:
    for i in range(len(batch["input_ids"])):
        n = int(batch["attention_mask"][i].sum())
        row = {name: batch[name][i][:n].tolist() for name in ("input_ids", "token_type_ids")}
        row["labels"] = batch["labels"][i][:n].tolist()
        row["next_sentence_label"] = int(batch["next_sentence_labels"][i])
        print(json.dumps(row))
if dist.is_initialized():
    dist.destroy_process_group()
