"""BuildConfig: every option that changes the output bytes, validated once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mlmprep.core.errors import ConfigError

INPUT_FORMATS = ("auto", "text", "jsonl", "parquet", "sentences")
MASKING_MODES = ("static", "dynamic")
OBJECTIVES = ("nsp", "sop", "none")
LANGUAGES = ("en", "zh")
SPLITS = ("train", "validation")  # in this order wherever splits are numbered
TRAIN, VALIDATION = SPLITS
NSP_LABEL, SOP_LABEL = "next_sentence_label", "sentence_order_label"  # label columns
SENTENCE_LABELS = (NSP_LABEL, SOP_LABEL)
LABEL_COLUMNS = {"nsp": NSP_LABEL, "sop": SOP_LABEL, "none": None}  # by objective
SOURCE_COLUMN = "source"  # a recipe phase's rows: the index of their source in `sources`
MiB = 1024 * 1024
MAX_UNIT_SIZE = 64 * 1024 * MiB
MAX_SEQ_LENGTH = 8192
MAX_MASKED_LM_PROB = 0.5
# Options added after the first release: left out of `to_dict` at their defaults, so the
# identity (and Parquet metadata) of a build that does not use them stays as it was.
LATER_OPTIONS = {
    "special_tokens": "",
    "cross_documents": True,
    "sources": (),
    "min_row_tokens": 0,
    "units": 0,
}


@dataclass(frozen=True)
class BuildConfig:
    """Options of one build. Two builds with equal configs and inputs write equal bytes."""

    input_format: str = "auto"
    text_field: str = "text"
    tokenizer: str = "bert-base-uncased"
    lowercase: bool | None = None
    max_seq_length: int = 128
    max_predictions_per_seq: int | None = None  # None: ceil(max_seq_length * masked_lm_prob)
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 1
    masking: str = "static"
    objective: str = "nsp"
    whole_word_mask: bool = False
    language: str = "en"
    bin_size: int = 0
    seed: int = 12345
    shard_size: int = 100_000
    unit_size: int = 0  # 0: chosen from the input size (sizing.py)
    units: int = 0  # the unit count, unit size = input / units; 0: chosen (sizing.py)
    validation_fraction: float = 0.0
    special_tokens: str = ""  # role=token overrides, e.g. "mask=<mask>,pad=<pad>"
    cross_documents: bool = True  # objective none: rows may span documents
    sources: tuple[str, ...] = ()  # a recipe phase's source names: rows get a source column
    min_row_tokens: int = 0  # rows of fewer text tokens are left out (counted); 0: off

    def __post_init__(self) -> None:
        _check(
            self.input_format in INPUT_FORMATS,
            f"--input-format must be one of {', '.join(INPUT_FORMATS)}, not {self.input_format!r}",
        )
        _check(
            self.masking in MASKING_MODES,
            f"--masking must be one of {', '.join(MASKING_MODES)}, not {self.masking!r}",
        )
        _check(
            self.objective in OBJECTIVES,
            f"--objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}",
        )
        _check(
            self.language in LANGUAGES,
            f"--language must be one of {', '.join(LANGUAGES)}, not {self.language!r}",
        )
        _check(bool(self.text_field), "--text-field must not be empty")
        _check(
            self.max_seq_length >= 8,
            f"--max-seq-length must be at least 8 (room for [CLS] A [SEP] B [SEP]), "
            f"got {self.max_seq_length}",
        )
        _check(
            self.max_seq_length <= MAX_SEQ_LENGTH,
            f"--max-seq-length must be at most {MAX_SEQ_LENGTH}, got {self.max_seq_length}",
        )
        _check(
            0.0 < self.masked_lm_prob <= MAX_MASKED_LM_PROB,
            f"--masked-lm-prob must be in (0, {MAX_MASKED_LM_PROB}], got {self.masked_lm_prob}",
        )
        if self.max_predictions_per_seq is None:
            # round(len * p) <= ceil(max_seq_length * p): the cap never binds (128 x 0.15: 20)
            auto = math.ceil(round(self.max_seq_length * self.masked_lm_prob, 9))
            object.__setattr__(self, "max_predictions_per_seq", max(1, auto))
        _check(
            self.max_predictions_per_seq >= 1,
            f"--max-predictions-per-seq must be at least 1, got {self.max_predictions_per_seq}",
        )
        for name in ("short_seq_prob", "validation_fraction"):
            value = getattr(self, name)
            _check(
                0.0 <= value <= 1.0,
                f"--{name.replace('_', '-')} must be a probability in [0, 1], got {value}",
            )
        _check(
            self.validation_fraction < 1.0,
            "--validation-fraction must be below 1 (some documents must stay for training)",
        )
        _check(self.bin_size >= 0, f"--bin-size must be 0 (off) or positive, got {self.bin_size}")
        _check(
            0 <= self.min_row_tokens <= self.max_num_tokens,
            f"--min-row-tokens must be 0 (off) or at most the {self.max_num_tokens} text tokens "
            f"a row of --max-seq-length {self.max_seq_length} holds, got {self.min_row_tokens}",
        )
        _check(self.dupe_factor >= 1, f"--dupe-factor must be at least 1, got {self.dupe_factor}")
        _check(0 <= self.seed < 2**63, f"--seed must be in [0, 2**63), got {self.seed}")
        _check(self.shard_size >= 1, f"--shard-size must be at least 1 row, got {self.shard_size}")
        _check(
            self.unit_size == 0 or 4096 <= self.unit_size <= MAX_UNIT_SIZE,
            f"--unit-size must be 0 (auto) or between 4096 bytes and {MAX_UNIT_SIZE} (64 GiB), "
            f"got {self.unit_size}",
        )
        _check(self.units >= 0, f"--units must be at least 1, got {self.units}")
        _check(
            not (self.units and self.unit_size),
            "--units and --unit-size both size the units: give one of them",
        )

    @classmethod
    def requested(cls, **options) -> BuildConfig:
        """The config a user asks for (command line, recipe): checked as any config, and
        refused where an option given would change nothing (a recorded config, read
        back, is not: it was accepted when it was built)."""
        config = cls(**options)
        config._refuse_options_that_do_not_apply(options.get("max_predictions_per_seq"))
        return config

    def _refuse_options_that_do_not_apply(self, max_predictions: int | None) -> None:
        _check(
            self.cross_documents or not self.pairs,
            "--no-cross-documents goes with --objective none: NSP and SOP rows hold one "
            "document's sentences (and a random segment from another) whatever it says",
        )
        _check(
            self.language == "en" or self.whole_word_mask,
            f"--language {self.language} chooses the words of --whole-word-mask and nothing "
            "else (sentences are split and tokenized the same without it): add "
            "--whole-word-mask, or drop --language",
        )
        _check(
            max_predictions is None or self.masking == "static",
            "--max-predictions-per-seq caps the masks a static build draws; with --masking "
            "dynamic the collator masks at load time: drop --max-predictions-per-seq",
        )

    @property
    def pairs(self) -> bool:
        """True when an instance holds two segments (NSP, SOP)."""
        return self.objective != "none"

    @property
    def max_num_tokens(self) -> int:
        """Tokens left for the segments in BERT's layout, [CLS] and one [SEP] per segment
        (the tokenizer's template decides the real budget: SpecialTokens.budget)."""
        return self.max_seq_length - (3 if self.pairs else 2)

    @property
    def label_column(self) -> str | None:
        """The label column of this objective (none for MLM only)."""
        return LABEL_COLUMNS[self.objective]

    def to_dict(self) -> dict:
        """Plain dict for the manifest and Parquet metadata (later options only when set)."""
        values = dataclasses.asdict(self)
        for name, default in LATER_OPTIONS.items():
            if values[name] == default:
                del values[name]
        if "sources" in values:
            values["sources"] = list(values["sources"])  # as JSON reads it back
        return values


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
