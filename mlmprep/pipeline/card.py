"""The dataset card (`README.md`) a build writes beside its shards.

Its Hugging Face metadata (configs with the data files of each split, features, split
sizes) lets `datasets.load_dataset(OUTPUT_DIR)` and a dataset hub read the build with no
extra arguments; the body states the config and the source. The licence is left for the
user to fill in: mlmprep cannot know the corpus's terms.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from mlmprep.core import storage

CARD = "README.md"
MARKER = "<!-- written by mlmprep: rewritten by every build into this directory -->"


def written_by_mlmprep(output_dir: str) -> bool:
    """True when the directory's README.md is a card a build wrote (a user's own
    README.md is never replaced or removed)."""
    path = storage.join(output_dir, CARD)
    if not storage.isfile(path):
        return False
    with storage.open_file(path, "rb") as handle:
        return MARKER in handle.read().decode("utf-8", "replace")


def dataset_card(index: dict, schema: pa.Schema) -> str:
    """The card of a finished build, from its index.json contents and schema."""
    splits = {}
    for shard in index["shards"]:
        split = splits.setdefault(shard["split"], {"rows": 0, "bytes": 0})
        split["rows"] += shard["rows"]
        split["bytes"] += shard["bytes"]
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for name in splits:
        lines += [f"  - split: {name}", f'    path: "{name}-*.parquet"']
    lines += ["dataset_info:", "  features:"]
    for field in schema:
        lines += [f"  - name: {field.name}", *_feature_type(field.type)]
    lines += ["  splits:"]
    for name, split in splits.items():
        lines += [
            f"  - name: {name}",
            f"    num_bytes: {split['bytes']}",
            f"    num_examples: {split['rows']}",
        ]
    config = index["config"]
    lines += [
        "license: other  # fill in the licence of your corpus",
        "tags:",
        "- bert",
        "- pretraining",
        "- masked-language-modeling",
        "- mlmprep",
        "---",
        MARKER,
        "",
        f"# BERT pretraining data ({config['objective']}, {config['masking']} masking)",
        "",
        f"Built by mlmprep {index['versions']['mlmprep']} with the tokenizer "
        f"`{index['tokenizer']['name']}` (vocabulary {index['tokenizer']['vocab_size']}, "
        f"sha256 `{index['tokenizer']['sha256'][:16]}…`, copied as `tokenizer.json`).",
        "",
        "| split | rows | bytes |",
        "|---|---:|---:|",
        *[f"| {name} | {s['rows']} | {s['bytes']} |" for name, s in splits.items()],
        "",
        "## Config",
        "",
        "```json",
        json.dumps({k: v for k, v in config.items() if k != "input_fingerprint"}, indent=2),
        "```",
        "",
        "## Source",
        "",
        f"{len(config['input_fingerprint'])} input files, fingerprint `{_fingerprint(config)}` "
        "(sha256 of their paths, sizes and modification times, listed in `index.json` under "
        "`config.input_fingerprint`). Documents used and skipped: "
        f"`{json.dumps(index['accounting']['documents'], sort_keys=True)}`.",
        "",
        "## Licence",
        "",
        "Fill in the licence and terms of the source corpus.",
        "",
    ]
    return "\n".join(lines)


def _fingerprint(config: dict) -> str:
    text = json.dumps(config["input_fingerprint"], sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def _feature_type(data_type: pa.DataType) -> list[str]:
    if pa.types.is_list(data_type):
        return [f"    sequence: {data_type.value_type}"]
    return [f"    dtype: {data_type}"]
