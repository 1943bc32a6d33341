"""Load the tokenizer (WordPiece, BPE or Unigram) and encode documents to token ids, one
array per sentence run."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import NamedTuple

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

from mlmprep.core import storage
from mlmprep.core.errors import TokenizerError
from mlmprep.text.special_tokens import SpecialTokens, read_special_tokens
from mlmprep.text.tokenizer_backends import DEFAULT_BACKEND, BackendChooser, BackendUsage

BUNDLED = {"bert-base-uncased": ("bert-base-uncased-vocab.txt", True)}
MODEL_TYPES = ("WordPiece", "BPE", "Unigram")
SENTENCE_MARK = "\ue000"  # private-use character, added as a token: exact for any text
# Punctuation that a vocabulary holds as one token: joining sentences with it is ~10% faster
# than an added token, and exact whenever the text itself does not contain it.
FAST_MARKS = ("¶", "§", "※", "‖", "†", "‡")
BATCH_CHARS = 1 << 20


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the five roles: pad, unk, cls (or bos), sep (or eos), mask."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


class _Piece(NamedTuple):
    """Sentences of one document joined for encoding: with the fast marker or the added
    token, and whether they hold only printable ASCII."""

    document: int
    fast: bool
    text: str
    plain: bool


class TokenEncoder:
    """A loaded tokenizer plus what mlmprep needs of it: the special tokens and row layout,
    the random-id pool, where words start, and its sha256."""

    def __init__(
        self,
        name_or_path: str,
        lowercase: bool | None = None,
        backend: str = DEFAULT_BACKEND,
        special_tokens: dict[str, str] | None = None,
    ) -> None:
        self.name, tokenizer = _load(name_or_path, lowercase)
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.json = tokenizer.to_str()
        self.sha256 = hashlib.sha256(self.json.encode("utf-8")).hexdigest()
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        definition = json.loads(self.json)
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.layout: SpecialTokens = read_special_tokens(
            definition, vocab, special_tokens or {}, name_or_path
        )
        self.special_ids = SpecialIds(**self.layout.ids)
        excluded = set(self.layout.ids.values()) | set(tokenizer.get_added_tokens_decoder())
        self.random_pool = np.array(
            [i for i in range(self.vocab_size) if i not in excluded], dtype=np.int32
        )
        self.continuation = _continuation(definition, vocab, self.vocab_size)
        # byte-level BPE without a prefix space: a sentence on its own would lose the
        # space that starts its first word in running text
        self._sentence_prefix = " " if _needs_prefix_space(definition) else ""
        self._tokenizer = tokenizer
        self._fast_mark, self._fast_mark_id = (None, -1)
        if (definition.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer":
            self._fast_mark, self._fast_mark_id = _find_fast_mark(tokenizer)
        self.backend = BackendChooser(backend, self.json, name_or_path)
        self._structural = np.array(
            [
                self.special_ids.cls,
                self.special_ids.sep,
                self.special_ids.mask,
                self.special_ids.pad,
            ],
            dtype=np.int32,
        )

    def start_unit(self) -> BackendUsage:
        """Called at the start of each unit: a new self-check and usage record."""
        return self.backend.start_unit()

    def id_to_token(self, token_id: int) -> str:
        return self._tokenizer.id_to_token(int(token_id)) or self.layout.tokens["unk"]

    def decode(self, ids: list[int]) -> str:
        """Ids as text through the tokenizer's decoder, special tokens kept."""
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def encode_documents(
        self, documents: list[list[str]]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Encode documents (lists of sentences) in bounded batches.

        Returns, per document, all its token ids (int32) and the token count of each
        sentence. Sentences are joined with a private marker token, so one `encode_batch`
        call covers many documents and cutting at sentence boundaries is exact.
        """
        pieces: list[_Piece] = []
        for index, sentences in enumerate(documents):
            if sum(map(len, sentences)) + len(sentences) - 1 <= BATCH_CHARS:
                pieces.append(self._join(index, sentences))  # the loop below would not cut
                continue
            piece: list[str] = []
            size = 0
            for sentence in sentences:
                if piece and size + len(sentence) > BATCH_CHARS:
                    pieces.append(self._join(index, piece))
                    piece, size = [], 0
                piece.append(sentence)
                size += len(sentence) + 1
            pieces.append(self._join(index, piece))
        doc_ids: list[list[np.ndarray]] = [[] for _ in documents]
        doc_lengths: list[list[np.ndarray]] = [[] for _ in documents]
        batch: list[_Piece] = []
        batch_chars = 0
        for piece in pieces:
            batch.append(piece)
            batch_chars += len(piece.text)
            if batch_chars >= BATCH_CHARS:
                self._encode_batch(batch, doc_ids, doc_lengths)
                batch, batch_chars = [], 0
        if batch:
            self._encode_batch(batch, doc_ids, doc_lengths)
        return (
            [_concat(parts, np.int32) for parts in doc_ids],
            [_concat(parts, np.int64) for parts in doc_lengths],
        )

    def _join(self, document: int, sentences: list[str]) -> _Piece:
        """Join sentences with the fast marker where that is exact, else the added token."""
        if self._sentence_prefix:
            sentences = [self._sentence_prefix + s for s in sentences]
        if self._fast_mark:
            text = self._fast_mark.join(sentences)
            if text.count(self._fast_mark) == len(sentences) - 1:
                plain = all(map(str.isascii, sentences)) and text.isprintable()
                return _Piece(document, True, text, plain)
        clean = [s.replace(SENTENCE_MARK, " ") if SENTENCE_MARK in s else s for s in sentences]
        return _Piece(document, False, SENTENCE_MARK.join(clean), False)

    def _encode_batch(self, batch: list[_Piece], doc_ids: list, doc_lengths: list) -> None:
        for fast in (True, False):
            group = [piece for piece in batch if piece.fast == fast]
            if group:
                self._encode_group(fast, group, doc_ids, doc_lengths)

    def _encode_group(
        self, fast: bool, batch: list[_Piece], doc_ids: list, doc_lengths: list
    ) -> None:
        """Encode pieces in one call; cut ids at the markers with whole-batch numpy ops."""
        texts = [piece.text for piece in batch]
        if fast:
            mark_id = self._fast_mark_id
            plain = [piece.plain for piece in batch]
            id_lists = self.backend.encode(texts, self.encode_plain, plain)
        else:  # the added marker token: the reference alone handles it
            mark_id = self.mark_id
            id_lists = _encode_ids(self._marked, texts)
        sizes = np.fromiter(map(len, id_lists), np.int64, len(id_lists))
        flat = np.fromiter(itertools.chain.from_iterable(id_lists), np.int32, int(sizes.sum()))
        is_mark = flat == mark_id
        piece_of_token = np.repeat(np.arange(len(batch)), sizes)
        marks_per_piece = np.bincount(piece_of_token[is_mark], minlength=len(batch))
        # each piece opens a sentence, each marker opens the next one
        sentence_of_token = np.cumsum(is_mark) + piece_of_token
        lengths = np.bincount(
            sentence_of_token[~is_mark], minlength=int(is_mark.sum()) + len(batch)
        )
        ids = self.sanitize(flat[~is_mark])
        id_parts = np.split(ids, np.cumsum(sizes - marks_per_piece)[:-1])
        length_parts = np.split(lengths, np.cumsum(marks_per_piece + 1)[:-1])
        for piece, piece_ids, piece_lengths in zip(batch, id_parts, length_parts):
            doc_ids[piece.document].append(piece_ids)
            doc_lengths[piece.document].append(piece_lengths)

    @functools.cached_property
    def _marked(self) -> Tokenizer:
        """The tokenizer with SENTENCE_MARK added, loaded when a batch first needs it."""
        marked = Tokenizer.from_str(self.json)
        marked.add_special_tokens([AddedToken(SENTENCE_MARK, special=True, normalized=False)])
        return marked

    @functools.cached_property
    def mark_id(self) -> int:
        """Id of SENTENCE_MARK in `encode_marked` output."""
        return self._marked.token_to_id(SENTENCE_MARK)

    def encode_marked(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Ids and character start offsets of texts whose sentences are joined with
        SENTENCE_MARK (slower than `encode_documents`: it computes offsets)."""
        encodings = self._marked.encode_batch(texts, add_special_tokens=False)
        return [
            (np.array(e.ids, np.int32), np.array([start for start, _ in e.offsets], np.int64))
            for e in encodings
        ]

    def sanitize(self, ids: np.ndarray) -> np.ndarray:
        """Literal "[SEP]" etc. in the text must not become structure: they become [UNK]."""
        ids[np.isin(ids, self._structural)] = self.special_ids.unk
        return ids

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """`tokenizers` ids of plain texts, no special tokens (a faster backend's check)."""
        return _encode_ids(self._tokenizer, texts)

    def manifest_entry(self) -> dict:
        """The tokenizer section of index.json."""
        return {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "sha256": self.sha256,
            "special_ids": self.layout.manifest_ids(),
            "file": "tokenizer.json",
            **({} if self.layout.is_bert else {"layout": self.layout.manifest_layout()}),
        }


def _continuation(definition: dict, vocab: dict[str, int], size: int) -> np.ndarray:
    """True for tokens that continue the word before them: WordPiece's '##' pieces; for
    byte-level BPE and SentencePiece, tokens without the word-start mark ('Ġ', '▁')."""
    model = definition.get("model") or {}
    continuation = np.zeros(size, dtype=bool)
    if model.get("type") == "WordPiece":
        prefix = model.get("continuing_subword_prefix") or "##"
        continuation[[i for token, i in vocab.items() if token.startswith(prefix)]] = True
        return continuation
    start = _word_start_mark(definition)
    continuation[[i for token, i in vocab.items() if not token.startswith(start)]] = True
    return continuation


def _pre_tokenizers(definition: dict) -> list[dict]:
    pre = definition.get("pre_tokenizer") or {}
    return pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]


def _word_start_mark(definition: dict) -> str:
    """'▁' (or the configured replacement) for Metaspace tokenizers, else byte-level 'Ġ'."""
    for pre in _pre_tokenizers(definition):
        if pre.get("type") == "Metaspace":
            return pre.get("replacement", "\u2581")
    return "\u0120"


def _needs_prefix_space(definition: dict) -> bool:
    return any(
        pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space", True)
        for pre in _pre_tokenizers(definition)
    )


def _find_fast_mark(tokenizer: Tokenizer) -> tuple[str | None, int]:
    """The first FAST_MARKS character that the tokenizer keeps as one separate token."""
    for char in FAST_MARKS:
        mark_id = tokenizer.token_to_id(char)
        if mark_id is None:
            continue
        probe = tokenizer.encode_batch_fast([f"a{char}b", char], add_special_tokens=False)
        if probe[1].ids == [mark_id] and probe[0].ids[1:2] == [mark_id] and len(probe[0].ids) == 3:
            return char, mark_id
    return None, -1


def _encode_ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts).astype(dtype, copy=False)


def tokenizer_key(name_or_path: str) -> str:
    """What identifies a tokenizer's content: the bundled name, or the file's sha256."""
    if name_or_path in BUNDLED:
        return name_or_path
    try:
        with storage.open_file(name_or_path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return name_or_path  # loading it reports the problem


def _load(name_or_path: str, lowercase: bool | None) -> tuple[str, Tokenizer]:
    """Resolve a bundled name, a vocab.txt, a tokenizer.json or a SentencePiece .model."""
    if name_or_path in BUNDLED:
        filename, default_lowercase = BUNDLED[name_or_path]
        text = resources.files("mlmprep.data").joinpath(filename).read_text(encoding="utf-8")
        lower = default_lowercase if lowercase is None else lowercase
        return name_or_path, wordpiece_from_vocab(text, lower)
    if not storage.exists(name_or_path):
        raise TokenizerError(
            f"{name_or_path}: tokenizer not found; pass --tokenizer bert-base-uncased, "
            "a vocab.txt, a tokenizer.json or a SentencePiece .model"
        )
    name = storage.basename(name_or_path)
    if name_or_path.endswith((".json", ".model")) and lowercase is not None:
        raise TokenizerError(
            f"{name_or_path}: --lowercase/--no-lowercase applies to a vocab.txt or the bundled "
            "vocabulary; a tokenizer.json or .model brings its own normalizer, so drop the flag"
        )
    if name_or_path.endswith(".model"):
        return name, _from_sentencepiece(name_or_path)
    try:
        with storage.open_file(name_or_path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{name_or_path}: cannot read the tokenizer ({exc})") from None
    if name_or_path.endswith(".json"):
        return name, _from_json(name_or_path, text)
    return name, wordpiece_from_vocab(text, True if lowercase is None else lowercase)


def _from_json(name_or_path: str, text: str) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_str(text)
        model_type = json.loads(text).get("model", {}).get("type")
    except Exception as exc:  # tokenizers raises plain Exception on bad JSON
        raise TokenizerError(f"{name_or_path}: not a valid tokenizer.json ({exc})") from None
    if model_type not in MODEL_TYPES:
        raise TokenizerError(
            f"{name_or_path}: model type is {model_type}; mlmprep reads WordPiece, BPE and Unigram "
            "tokenizers"
        )
    return tokenizer


def _from_sentencepiece(name_or_path: str) -> Tokenizer:
    """A SentencePiece Unigram `.model` converted by `tokenizers` (no network): its
    converter reads the model with the protobuf module that the sentencepiece package
    ships (mlmprep[sentencepiece])."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise TokenizerError(
            f"{name_or_path}: reading a SentencePiece .model needs pip install "
            "'mlmprep[sentencepiece]' (or convert it to a tokenizer.json)"
        ) from None
    from tokenizers.implementations import SentencePieceUnigramTokenizer

    # the converter imports the module under its bare name, as a file beside the caller
    sys.modules.setdefault("sentencepiece_model_pb2", sentencepiece_model_pb2)
    with (
        storage.open_file(name_or_path, "rb") as handle,
        tempfile.TemporaryDirectory() as directory,
    ):
        local = os.path.join(directory, "tokenizer.model")
        with open(local, "wb") as copy:
            copy.write(handle.read())
        try:
            return SentencePieceUnigramTokenizer.from_spm(local)._tokenizer
        except Exception as exc:  # the converter raises plain Exception
            raise TokenizerError(
                f"{name_or_path}: not a SentencePiece Unigram model that tokenizers can "
                f"convert ({exc})"
            ) from None


def wordpiece_from_vocab(text: str, lowercase: bool) -> Tokenizer:
    """A BERT WordPiece tokenizer from vocab.txt contents (split on '\\n' only)."""
    vocab: dict[str, int] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for index, line in enumerate(lines):
        vocab.setdefault(line.rstrip("\r"), index)
    if "[UNK]" not in vocab:
        raise TokenizerError(
            "the vocabulary has no [UNK]; a BERT vocabulary needs [PAD] [UNK] [CLS] [SEP] [MASK]"
        )
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer
