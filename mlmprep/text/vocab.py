"""Train a tokenizer from the same inputs `build` reads: a BERT WordPiece vocab.txt, or a
tokenizer.json of any family (WordPiece, byte-level BPE, Unigram) laid out for a recipe
(BERT, RoBERTa, XLM-R): its special tokens and post-processor."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram, WordPiece
from tokenizers.trainers import BpeTrainer, UnigramTrainer, WordPieceTrainer

from mlmprep.core import storage
from mlmprep.core.errors import ConfigError, InputError, OutputError
from mlmprep.core.files import write_text_atomically
from mlmprep.input.accounting import EMPTY_DOCUMENT, InputReport, no_documents_error
from mlmprep.input.discovery import describe_inputs, resolve_inputs
from mlmprep.input.readers import detect_format, iter_documents
from mlmprep.text.vocab_recipes import DEFAULT_RECIPE, MODELS, RECIPES, Recipe

MIN_CHARACTER_COUNT = 2  # characters seen once are left to [UNK]


def train_vocab(
    inputs: list[str],
    output: str,
    size: int,
    lowercase: bool | None = None,
    input_format: str = "auto",
    text_field: str = "text",
    model: str = "wordpiece",
    recipe_name: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Train a tokenizer of `size` entries and write it to `output`.

    A WordPiece model for the BERT recipe written to a `.txt` path is BERT's vocab.txt:
    `[PAD] [UNK] [CLS] [SEP] [MASK]` first, the alphabet sized from the corpus (every
    character seen at least twice, not the trainer's default 1,000, which leaves Chinese
    text mostly [UNK]). Any other choice writes a tokenizer.json (`output` must end in
    .json) with the recipe's special tokens first and its post-processor.

    The inputs are read as `build` reads them and accounted the same way (the result's
    `accounting` and `warnings`); `output` is checked before training, and an existing
    file is replaced only with `overwrite`.
    """
    recipe_name = recipe_name or DEFAULT_RECIPE.get(model, "bert")
    if model not in MODELS or recipe_name not in RECIPES:
        raise ConfigError(
            f"--model must be one of {', '.join(MODELS)} and --recipe one of "
            f"{', '.join(RECIPES)}, got {model} and {recipe_name}"
        )
    recipe = RECIPES[recipe_name]
    vocab_txt = not output.endswith(".json")
    if vocab_txt and (model, recipe_name) != ("wordpiece", "bert"):
        raise ConfigError(
            f"-o {output}: a {model} tokenizer for {recipe_name} is written as a tokenizer.json; "
            "give a path ending in .json"
        )
    if size <= len(recipe.specials):
        raise ConfigError(f"--size must be larger than {len(recipe.specials)}, got {size}")
    described = describe_inputs(resolve_inputs(inputs, output))
    _check_output(output, overwrite)
    files = [f.path for f in described if not f.skipped]
    first = InputReport()
    if next(_texts(files, input_format, text_field, first), None) is None:
        raise no_documents_error(inputs, first)
    lower = (model == "wordpiece") if lowercase is None else lowercase
    tokenizer, trainer, alphabet = _untrained(
        model, recipe, size, lower, inputs, files, input_format, text_field
    )
    report = InputReport()  # of the training pass, as a build reports its inputs
    for file in described:
        if file.skipped:
            report.skip_file(file.path, file.skip_reason)
    texts = _texts(files, input_format, text_field, report)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if vocab_txt:
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
        write_text_atomically(output, "".join(f"{token}\n" for token, _ in vocab))
    else:
        tokenizer.post_processor = _post_processor(tokenizer, recipe)
        write_text_atomically(output, tokenizer.to_str(pretty=True))
    return {
        "output": output,
        "size": tokenizer.get_vocab_size(),
        "alphabet": alphabet,
        "files": len(files),
        "accounting": report.to_dict(),
        "warnings": report.warnings(listed_in=""),
        "model": model,
        "recipe": recipe_name,
    }


def _untrained(
    model: str,
    recipe: Recipe,
    size: int,
    lowercase: bool,
    inputs: list[str],
    files: list[str],
    input_format: str,
    text_field: str,
) -> tuple[Tokenizer, object, int]:
    """A tokenizer of the family, its trainer, and the alphabet size used."""
    specials = list(recipe.specials)
    if model == "wordpiece":
        normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
        )
        characters: Counter = Counter()
        for text in _texts(files, input_format, text_field, InputReport()):
            characters.update(normalizer.normalize_str(text))
        characters.pop(" ", None)
        if not characters:  # only control characters, which the normalizer removes
            raise _no_text(inputs)
        alphabet = sum(1 for n in characters.values() if n >= MIN_CHARACTER_COUNT)
        tokenizer = Tokenizer(WordPiece(unk_token=recipe.unk))
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        trainer = WordPieceTrainer(
            vocab_size=size,
            special_tokens=specials,
            limit_alphabet=min(alphabet, size - len(specials)),
            continuing_subword_prefix="##",
            show_progress=False,
        )
        return tokenizer, trainer, alphabet
    if model == "bpe":  # byte-level, as RoBERTa and GPT-2: no unknown bytes
        tokenizer = Tokenizer(BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = BpeTrainer(
            vocab_size=size,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=False,
        )
    else:  # SentencePiece-style Unigram, as XLM-R
        tokenizer = Tokenizer(Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = UnigramTrainer(
            vocab_size=size,
            special_tokens=specials,
            unk_token=recipe.unk,
            show_progress=False,
        )
        alphabet = []
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    return tokenizer, trainer, len(alphabet)


def _post_processor(tokenizer: Tokenizer, recipe: Recipe) -> processors.PostProcessor:
    """The recipe's row layout: [CLS] A [SEP] B [SEP] or <s> A </s></s> B </s>."""
    cls_pair = (recipe.cls, tokenizer.token_to_id(recipe.cls))
    sep_pair = (recipe.sep, tokenizer.token_to_id(recipe.sep))
    b_type = 1 if recipe.pair_types else 0
    separators = " ".join([recipe.sep] * recipe.pair_separators)
    return processors.TemplateProcessing(
        single=f"{recipe.cls} $A {recipe.sep}",
        pair=f"{recipe.cls} $A {separators} $B:{b_type} {recipe.sep}:{b_type}",
        special_tokens=[cls_pair, sep_pair],
    )


def _no_text(inputs: list[str]) -> InputError:
    return InputError(f"{', '.join(inputs)}: no text found to train a vocabulary on")


def _check_output(output: str, overwrite: bool) -> None:
    """Refuse, before any training, an output that cannot be written or that exists."""
    if storage.isdir(output):
        raise OutputError(f"-o {output}: is a directory; give a file name such as vocab.txt")
    if storage.exists(output) and not overwrite:
        raise OutputError(f"-o {output}: the file exists; pass --overwrite to replace it")
    if storage.is_url(output):
        return
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise OutputError(f"-o {output}: no directory {parent}; create it or choose another -o")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"-o {output}: {parent} is not writable; choose another -o")


def _texts(
    files: list[str], input_format: str, text_field: str, report: InputReport
) -> Iterator[str]:
    """Paragraph text of every document of every file, streamed (accounted in `report`)."""
    for path in files:
        fmt = detect_format(path, input_format)
        has_text = False  # of the document whose parts are being read
        for document in iter_documents(path, fmt, text_field, report):
            for line in document.lines:
                if line.strip():
                    has_text = True
                    yield line
            if not document.continued:
                if has_text:
                    report.use_document()
                else:
                    report.skip_document(document.location, EMPTY_DOCUMENT)
                has_text = False
