"""Train a WordPiece vocabulary (vocab.txt) from the same inputs `build` reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer

from .accounting import InputReport
from .errors import ConfigError, InputError
from .manifest import write_text_atomically
from .planning import describe_inputs, resolve_inputs
from .readers import detect_format, iter_documents
from .tokenization import SPECIAL_TOKENS

MIN_CHARACTER_COUNT = 2  # characters seen once are left to [UNK]


def train_vocab(
    inputs: list[str],
    output: str,
    size: int,
    lowercase: bool = True,
    input_format: str = "auto",
    text_field: str = "text",
) -> dict:
    """Train a BERT WordPiece vocabulary of `size` entries and write it to `output`.

    `[PAD] [UNK] [CLS] [SEP] [MASK]` come first, in BERT's order. The alphabet is sized
    from the corpus (every character seen at least twice), not the trainer's default of
    1,000 characters, which leaves Chinese text mostly [UNK].
    """
    if size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"--size must be larger than {len(SPECIAL_TOKENS)}, got {size}")
    files = [f.path for f in describe_inputs(resolve_inputs(inputs, output)) if not f.binary]
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    characters: Counter = Counter()
    for text in _texts(files, input_format, text_field):
        characters.update(normalizer.normalize_str(text))
    characters.pop(" ", None)
    alphabet = sum(1 for n in characters.values() if n >= MIN_CHARACTER_COUNT)
    if not characters:
        raise InputError(f"{', '.join(inputs)}: no text found to train a vocabulary on")
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = WordPieceTrainer(
        vocab_size=size,
        special_tokens=list(SPECIAL_TOKENS),
        limit_alphabet=min(alphabet, size - len(SPECIAL_TOKENS)),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(_texts(files, input_format, text_field), trainer=trainer)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    write_text_atomically(output, "".join(f"{token}\n" for token, _ in vocab))
    return {"output": output, "size": len(vocab), "alphabet": alphabet, "files": len(files)}


def _texts(files: list[str], input_format: str, text_field: str) -> Iterator[str]:
    """Paragraph text of every document of every file, streamed."""
    report = InputReport()
    for path in files:
        fmt = detect_format(path, input_format)
        for document in iter_documents(path, fmt, text_field, report):
            yield from (line for line in document.lines if line.strip())
