"""The tokenizer families `mlmprep vocab` trains: models, and each family's special tokens
and row layout.

Free of heavy imports, so that the command line offers them without loading `tokenizers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlmprep.text.special_tokens import BERT_SPECIAL_TOKENS

MODELS = ("wordpiece", "bpe", "unigram")
DEFAULT_RECIPE = {"wordpiece": "bert", "bpe": "roberta", "unigram": "xlmr"}


@dataclass(frozen=True)
class Recipe:
    """The special tokens of a model family, in id order, and how rows are laid out."""

    specials: tuple[str, ...]
    cls: str
    sep: str
    unk: str
    pair_separators: int  # separators between A and B: 1 (BERT) or 2 (RoBERTa, XLM-R)
    pair_types: bool  # B gets token type 1 (BERT) or stays 0


RECIPES = {
    "bert": Recipe(BERT_SPECIAL_TOKENS, "[CLS]", "[SEP]", "[UNK]", 1, True),
    "roberta": Recipe(
        ("<s>", "<pad>", "</s>", "<unk>", "<mask>"), "<s>", "</s>", "<unk>", 2, False
    ),
    "xlmr": Recipe(("<s>", "<pad>", "</s>", "<unk>", "<mask>"), "<s>", "</s>", "<unk>", 2, False),
}
