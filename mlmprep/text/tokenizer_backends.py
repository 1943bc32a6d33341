"""Which library encodes text: Hugging Face `tokenizers` (the reference) or kitoken
(mlmprep[fast], about 3x faster on English WordPiece). Both give the same ids; the
choice never changes a byte, and a per-unit self-check falls back to the reference."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

from mlmprep.core.errors import TokenizerError
from mlmprep.text.special_tokens import BERT_SPECIAL_TOKENS

BACKENDS = ("auto", "hf", "kitoken")
DEFAULT_BACKEND = "auto"  # kitoken where it is installed and exact, else tokenizers
# kitoken is ~3x faster than tokenizers on English and 2-6x slower on Chinese; the two
# cross near 13% CJK characters (measured in docs/performance.md): auto keeps a margin.
CJK_SHARE_LIMIT = 0.10
CJK_SAMPLE_STEP = 16  # cjk_share looks at every 16th character
SELF_CHECK_CHARS = 64 * 1024  # text encoded by both backends at the start of each unit
_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")
# kitoken's BertNormalizer steps that change nothing in printable ASCII: Replace (control
# characters, whitespace other than " ", CJK spacing, marks) and Unicode (NFD).
PLAIN_NO_OPS = frozenset({"Replace", "Unicode"})

EncodeTexts = Callable[[list[str]], list[list[int]]]


def kitoken_version() -> str | None:
    """The installed kitoken's version, or None."""
    try:
        return metadata.version("kitoken")
    except metadata.PackageNotFoundError:
        return None


def backend_versions() -> dict[str, str]:
    """The encoders this process can use (a Dask worker must have the client's set)."""
    return {"kitoken": kitoken_version() or "absent"}


def cjk_share(texts: list[str]) -> float:
    """Share of CJK characters in texts, estimated on every CJK_SAMPLE_STEP-th one."""
    sample = "".join(texts)[::CJK_SAMPLE_STEP]
    return len(_CJK.findall(sample)) / len(sample) if sample else 0.0


def kitoken_refusal(tokenizer_json: str) -> str | None:
    """Why kitoken cannot stand in for this tokenizer, or None when it can: a BERT
    WordPiece (BertNormalizer, BertPreTokenizer) whose added tokens are plain specials."""
    definition = json.loads(tokenizer_json)
    parts = {
        "model": (definition.get("model") or {}).get("type"),
        "normalizer": (definition.get("normalizer") or {}).get("type"),
        "pre-tokenizer": (definition.get("pre_tokenizer") or {}).get("type"),
    }
    wanted = {
        "model": "WordPiece",
        "normalizer": "BertNormalizer",
        "pre-tokenizer": "BertPreTokenizer",
    }
    for part, kind in parts.items():
        if kind != wanted[part]:
            return f"its {part} is {kind}, kitoken stands in only for {wanted[part]}"
    for token in definition.get("added_tokens", []):
        if not token["special"] or token["normalized"] or token["lstrip"] or token["rstrip"]:
            return f"its added token {token['content']!r} is not a plain special token"
    return None


def _kitoken_definition(tokenizer_json: str) -> tuple[bytes, bool]:
    """The tokenizer.json kitoken loads, and whether specials are matched in text.

    kitoken needs the unknown token among the specials. Without added tokens, the BERT
    specials are added but not matched, as `tokenizers` does not match them either.
    """
    definition = json.loads(tokenizer_json)
    if definition.get("added_tokens"):
        return tokenizer_json.encode("utf-8"), True
    vocab = definition["model"]["vocab"]
    definition["added_tokens"] = [
        {
            "id": vocab[token],
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for token in BERT_SPECIAL_TOKENS
        if token in vocab
    ]
    return json.dumps(definition).encode("utf-8"), False


class KitokenEncoder:
    """kitoken loaded from the same tokenizer.json as the reference, plus a copy for plain
    text that skips the Unicode steps of normalization."""

    def __init__(self, tokenizer_json: str) -> None:
        from kitoken import Kitoken

        definition, self._match_specials = _kitoken_definition(tokenizer_json)
        self._kitoken = Kitoken.from_tokenizers(definition)
        self._plain = Kitoken(self._kitoken.to_bytes())  # a copy: faster than converting again
        config = self._plain.config()
        steps = config["normalization"]
        if all(next(iter(step)) in PLAIN_NO_OPS | {"CaseFold"} for step in steps):
            config["normalization"] = [step for step in steps if next(iter(step)) == "CaseFold"]
            self._plain.set_config(config)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self._kitoken.encode_all(texts, self._match_specials)

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Ids of texts of printable ASCII and caseless, undecomposable punctuation
        (the sentence marks), on which every normalization step but case folding is a
        no-op: clean-up of control characters, CJK spacing, NFD and accent stripping.
        About 1.5x faster than `encode`."""
        return self._plain.encode_all(texts, self._match_specials)


@dataclass
class BackendUsage:
    """What one unit was encoded with: batches per backend, texts sent to the reference
    for a character kitoken handles differently, and a failed self-check."""

    batches: Counter = field(default_factory=Counter)
    reference_texts: int = 0
    fell_back: bool = False

    def to_dict(self) -> dict:
        return {
            "batches": dict(sorted(self.batches.items())),
            "reference_texts": self.reference_texts,
            "fell_back": self.fell_back,
        }


class CharacterCheck:
    """Which characters kitoken encodes exactly like the reference, learnt as they appear.

    The two libraries carry different Unicode tables: kitoken drops unassigned code points
    that `tokenizers` maps to [UNK], and classes some marks and punctuation of newer
    scripts differently. Each character is tried once per process, alone and between
    letters, with both backends; a text holding a character that differs goes to the
    reference. ASCII-only texts need no search.
    """

    def __init__(self, fast: KitokenEncoder, reference: EncodeTexts) -> None:
        self._fast, self._reference = fast, reference
        self.same: set[str] = set()
        self.different: set[str] = set()
        self._learn([chr(c) for c in range(128)])
        self._ascii_same = self.different.isdisjoint(map(chr, range(128)))

    def differing_texts(self, texts: list[str]) -> list[int]:
        """Indexes of texts holding a character that kitoken encodes differently."""
        flagged = []
        for index, text in enumerate(texts):
            if self._ascii_same and text.isascii():
                continue
            new = set(self._unknown.findall(text))  # characters not known to be the same
            if new - self.different:
                self._learn(sorted(new - self.different))
            if not new.isdisjoint(self.different):
                flagged.append(index)
        return flagged

    def _learn(self, chars: list[str]) -> None:
        probes = [probe for char in chars for probe in (char, f"a{char}b")]
        expected = self._reference(probes)
        got = self._fast.encode(probes)
        for index, char in enumerate(chars):
            pair = slice(2 * index, 2 * index + 2)
            same = expected[pair] == [list(ids) for ids in got[pair]]
            (self.same if same else self.different).add(char)
        known = re.escape("".join(sorted(self.same)))
        self._unknown = re.compile(f"[^{known}]" if known else "(?s:.)")


class BackendChooser:
    """Picks the backend per batch; kitoken's first batch in each unit is checked
    against the reference on a sample, and a difference sends the unit to the reference."""

    def __init__(self, requested: str, tokenizer_json: str, source: str) -> None:
        if requested not in BACKENDS:
            raise TokenizerError(
                f"--tokenizer-backend must be one of {', '.join(BACKENDS)}, not {requested!r}"
            )
        self.requested = requested
        self._fast_json: str | None = None
        self.usage = BackendUsage()
        self._checked = False
        self._characters: CharacterCheck | None = None
        if requested == "hf":
            return
        refusal = kitoken_refusal(tokenizer_json)
        if requested == "kitoken":
            if kitoken_version() is None:
                raise TokenizerError(
                    "--tokenizer-backend kitoken: kitoken is not installed; "
                    "pip install 'mlmprep[fast]' or use --tokenizer-backend auto"
                )
            if refusal:
                raise TokenizerError(
                    f"{source}: --tokenizer-backend kitoken cannot encode this tokenizer "
                    f"({refusal}); use --tokenizer-backend auto or hf"
                )
        if kitoken_version() is not None and refusal is None:
            self._fast_json = tokenizer_json

    @functools.cached_property
    def fast(self) -> KitokenEncoder | None:
        """kitoken, loaded on first use (a building process that only checks the choice
        never loads it)."""
        return KitokenEncoder(self._fast_json) if self._fast_json else None

    def start_unit(self) -> BackendUsage:
        """Forget the last unit's self-check; return the new unit's usage record."""
        self.usage, self._checked = BackendUsage(), False
        return self.usage

    def encode(
        self, texts: list[str], reference: EncodeTexts, plain: list[bool] | None = None
    ) -> list[list[int]]:
        """Ids of texts, from kitoken where it is chosen and trusted, else `reference`.
        `plain` marks the texts known to hold only printable ASCII and sentence marks."""
        # kitoken is loaded only once a batch wants it: a Chinese corpus never does
        if not self._fast_json or self.usage.fell_back or not self._wants_fast(texts):
            self.usage.batches["hf"] += 1
            return reference(texts)
        if self._characters is None:
            self._characters = CharacterCheck(self.fast, reference)
        ids = self._encode_checked(texts, reference, plain or [False] * len(texts))
        if not self._checked:
            self._checked = True
            sample = _self_check_sample(texts)
            if reference([texts[i] for i in sample]) != [list(ids[i]) for i in sample]:
                self.usage.fell_back = True
                self.usage.batches["hf"] += 1
                return reference(texts)
        self.usage.batches["kitoken"] += 1
        return ids

    def _encode_checked(
        self, texts: list[str], reference: EncodeTexts, plain: list[bool]
    ) -> list[list[int]]:
        """kitoken's ids: plain texts through its plain copy, the others through the full
        one, except texts holding a character it treats differently: the reference's."""
        rest = [i for i, is_plain in enumerate(plain) if not is_plain]
        flagged = self._characters.differing_texts([texts[i] for i in rest])
        differing = {rest[j] for j in flagged}
        self.usage.reference_texts += len(differing)
        groups = [
            ([i for i, is_plain in enumerate(plain) if is_plain], self.fast.encode_plain),
            ([i for i in rest if i not in differing], self.fast.encode),
            (sorted(differing), reference),
        ]
        ids: list[list[int]] = [[] for _ in texts]
        for indexes, encode in groups:
            if indexes:
                for index, result in zip(indexes, encode([texts[i] for i in indexes])):
                    ids[index] = result
        return ids

    def _wants_fast(self, texts: list[str]) -> bool:
        return self.requested == "kitoken" or cjk_share(texts) < CJK_SHARE_LIMIT


def _self_check_sample(texts: list[str]) -> list[int]:
    """Indexes of evenly spread texts totalling about SELF_CHECK_CHARS characters."""
    total = max(1, sum(map(len, texts)))
    wanted = max(1, round(len(texts) * min(1.0, SELF_CHECK_CHARS / total)))
    return list(range(0, len(texts), max(1, len(texts) // wanted)))
