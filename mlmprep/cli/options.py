"""Click options shared by several commands: the BuildConfig options and storage options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import click

from mlmprep.core.config import (
    INPUT_FORMATS,
    LANGUAGES,
    MASKING_MODES,
    OBJECTIVES,
    SPLITS,
    TRAIN,
    BuildConfig,
)
from mlmprep.text.tokenizer_backends import BACKENDS, DEFAULT_BACKEND

DEFAULTS = BuildConfig()

INPUT_FORMAT_OPTION = click.option(
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    default=DEFAULTS.input_format,
    show_default=True,
    help="text: blank-line documents, a paragraph per line; jsonl/parquet: a document "
    "per record; sentences: Google's one sentence per line (not re-split). "
    "auto: by extension (.jsonl, .parquet, else text).",
)
TEXT_FIELD_OPTION = click.option(
    "--text-field",
    default=DEFAULTS.text_field,
    show_default=True,
    help="Field (jsonl) or column (parquet) holding the text.",
)

CONFIG_OPTIONS = [
    INPUT_FORMAT_OPTION,
    TEXT_FIELD_OPTION,
    click.option(
        "--tokenizer",
        default=DEFAULTS.tokenizer,
        show_default=True,
        help="Bundled name, a vocab.txt, a Hugging Face tokenizer.json (WordPiece, BPE or "
        "Unigram; special tokens and row layout come from its post-processor) or a "
        "SentencePiece Unigram .model (mlmprep[sentencepiece]).",
    ),
    click.option(
        "--special-tokens",
        default=DEFAULTS.special_tokens,
        help="Roles for tokenizers without a post-processor or with other names, e.g. "
        "cls=<s>,sep=</s>,mask=<mask>,pad=<pad>,unk=<unk>. Giving cls or sep lays rows out "
        "as cls A sep (B sep).",
    ),
    click.option(
        "--lowercase/--no-lowercase",
        default=None,
        help="Lowercase and strip accents before WordPiece (BERT uncased) or keep case and "
        "accents (cased). Applies to a vocab.txt and the bundled vocabulary [default: "
        "lowercase]; refused with a tokenizer.json, which brings its own normalizer.",
    ),
    click.option(
        "--max-seq-length",
        default=DEFAULTS.max_seq_length,
        show_default=True,
        help="Tokens per instance, special tokens included (at most 8192).",
    ),
    click.option(
        "--max-predictions-per-seq",
        default=None,
        type=int,
        help="At most this many masked positions per instance. "
        "[default: ceil(max-seq-length x masked-lm-prob), 20 for BERT's 128 x 0.15]",
    ),
    click.option(
        "--masked-lm-prob",
        default=DEFAULTS.masked_lm_prob,
        show_default=True,
        help="Share of tokens to mask: round(len * p), at least 1 (at most 0.5).",
    ),
    click.option(
        "--short-seq-prob",
        default=DEFAULTS.short_seq_prob,
        show_default=True,
        help="Share of documents whose target length is random in [2, max] (nsp, sop).",
    ),
    click.option(
        "--dupe-factor",
        default=DEFAULTS.dupe_factor,
        show_default=True,
        type=int,
        help="Passes over the data, each with fresh pairs and masks (Google's reference "
        "uses 10 with static masking). Documents are tokenized once.",
    ),
    click.option(
        "--objective",
        type=click.Choice(OBJECTIVES),
        default=DEFAULTS.objective,
        show_default=True,
        help="nsp: next sentence prediction (BERT); sop: sentence order prediction (ALBERT); "
        "none: MLM only, rows filled with whole sentences (RoBERTa FULL-SENTENCES).",
    ),
    click.option(
        "--cross-documents/--no-cross-documents",
        default=DEFAULTS.cross_documents,
        show_default=True,
        help="With --objective none: let a row continue into the next document after a "
        "separator (FULL-SENTENCES), or end rows with their document (DOC-SENTENCES).",
    ),
    click.option(
        "--min-row-tokens",
        default=DEFAULTS.min_row_tokens,
        show_default=True,
        help="Leave out rows of fewer text tokens (counted in stats as rows under the "
        "minimum), e.g. Ettin's minimum chunk length with --no-cross-documents. 0: off.",
    ),
    click.option(
        "--whole-word-mask",
        is_flag=True,
        help="Mask whole words, one 80/10/10 draw per word: a token and its ## pieces "
        "(WordPiece), or a token starting with Ġ or ▁ and those after it (BPE, Unigram).",
    ),
    click.option(
        "--language",
        type=click.Choice(LANGUAGES),
        default=DEFAULTS.language,
        show_default=True,
        help="zh: with --whole-word-mask, words come from jieba segmentation (mlmprep[zh]).",
    ),
    click.option(
        "--bin-size",
        default=DEFAULTS.bin_size,
        show_default=True,
        help="Write a length_bin column ((len - 1) // N) and give each bin its own row groups "
        "in every shard, so a trainer can batch similar lengths. 0: off.",
    ),
    click.option(
        "--masking",
        type=click.Choice(MASKING_MODES),
        default=DEFAULTS.masking,
        show_default=True,
        help="static: masks written to the shards; dynamic: special_tokens_mask written, "
        "the trainer's collator masks each batch.",
    ),
    click.option(
        "--seed",
        default=DEFAULTS.seed,
        show_default=True,
        help="Every random choice derives from it.",
    ),
    click.option(
        "--shard-size",
        default=DEFAULTS.shard_size,
        show_default=True,
        type=int,
        help="Maximum rows per output shard.",
    ),
    click.option(
        "--unit-size",
        default=DEFAULTS.unit_size,
        type=int,
        help="Bytes of raw text per work unit; units are read in windows of at most 8 MiB, "
        "and NSP negatives come from the same window. 0: chosen from the input size so that "
        "spill slices stay >= 1 MiB (see `mlmprep plan`). [default: 0]",
    ),
    click.option(
        "--units",
        default=DEFAULTS.units,
        type=click.IntRange(min=0),
        help="Cut the input into about N work units (unit size = input / N), instead of "
        "--unit-size; e.g. several per worker of a large cluster. 0: chosen from the "
        "input size (see `mlmprep plan`). [default: 0]",
    ),
    click.option(
        "--validation-fraction",
        default=DEFAULTS.validation_fraction,
        show_default=True,
        type=float,
        help="Share of documents held out as validation-*.parquet.",
    ),
]


def _use_storage_options(
    _context: click.Context, _param: click.Parameter, value: str | None
) -> dict:
    """--storage-options: a JSON object handed to fsspec (e.g. endpoint_url for S3), used
    by every URL this process opens from here on."""
    if value is None:
        return {}
    try:
        options = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON ({exc})", param_hint="--storage-options"
        ) from None
    if not isinstance(options, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--storage-options")
    from mlmprep.core import storage  # loads pyarrow: only when the option is given

    storage.configure(options)
    return options


def storage_options(expose_value: bool = False) -> Callable[[Any], Any]:
    """--storage-options for a command that reads or writes through fsspec; its value
    (a dict) reaches the command only where it hands it on, as build does to workers."""
    return click.option(
        "--storage-options",
        "storage_options",
        default=None,
        envvar="MLMPREP_STORAGE_OPTIONS",
        callback=_use_storage_options,
        expose_value=expose_value,
        help="JSON object passed to fsspec for URLs, as pandas' storage_options, e.g. "
        '\'{"endpoint_url": "http://127.0.0.1:9000"}\' for an S3-compatible store. '
        "[env: MLMPREP_STORAGE_OPTIONS]",
    )


SPLIT_OPTION = click.option(
    "--split", default=TRAIN, show_default=True, type=click.Choice(SPLITS), help="Which split."
)


def config_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options that make a BuildConfig (shared by `build` and `plan`)."""
    for option in reversed(CONFIG_OPTIONS):
        function = option(function)
    return function


ENGINE_OPTION = click.option(
    "--engine",
    type=click.Choice(["local", "dask", "ray"]),
    default="local",
    show_default=True,
    help="local: a process pool; dask: a Dask cluster (mlmprep[dask]); ray: a Ray cluster "
    "(mlmprep[ray]). Same bytes.",
)
SCHEDULER_OPTION = click.option(
    "--scheduler",
    envvar="DASK_SCHEDULER_ADDRESS",
    default=None,
    help="The cluster's address: Dask's scheduler (tcp://host:8786), or Ray's head "
    "(host:6379, ray://host:10001; else RAY_ADDRESS); without it --engine dask or ray "
    "starts a local cluster of --workers processes. [env: DASK_SCHEDULER_ADDRESS]",
)
RUN_OPTIONS = [
    click.option(
        "--workers",
        default=None,
        type=int,
        help="Worker processes. [default: CPUs this process may use]",
    ),
    ENGINE_OPTION,
    SCHEDULER_OPTION,
    click.option(
        "--tokenizer-backend",
        type=click.Choice(BACKENDS),
        default=DEFAULT_BACKEND,
        show_default=True,
        help="Which library encodes text; the bytes are the same. kitoken (mlmprep[fast]) is "
        "about 3x faster on English WordPiece; auto uses it where it is installed, supports "
        "the tokenizer and the text is under 10% CJK, and tokenizers elsewhere.",
    ),
    click.option(
        "--strict", is_flag=True, help="Fail on the first bad document instead of counting it."
    ),
    click.option(
        "--overwrite",
        is_flag=True,
        help="Replace a different output there (only files mlmprep wrote).",
    ),
    storage_options(expose_value=True),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar and no warnings."),
    click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object."),
]


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """How a command that makes data runs (shared by `build` and `tokenize`); nothing
    here changes the bytes it writes."""
    for option in reversed(RUN_OPTIONS):
        function = option(function)
    return function


def make_run_options(workers: int | None, as_json: bool, quiet: bool, **values: Any) -> Any:
    """RunOptions from the run options' values (workers default to the CPUs we may use)."""
    from mlmprep.core.engines.local import available_cpus
    from mlmprep.pipeline.run_options import RunOptions

    workers = workers if workers is not None else available_cpus()
    if workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    progress = not quiet and not as_json and sys.stderr.isatty()
    return RunOptions(workers=workers, progress=progress, **values)


class ByteSize(click.ParamType):
    """A size in bytes: 8000000000000, 8e12, 8TB, 1.5 TiB (kB, MB, GB, TB, PB are powers
    of 1000; KiB, MiB, GiB, TiB, PiB of 1024)."""

    name = "bytes"
    UNITS: ClassVar[dict[str, int]] = {
        "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
        "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
    }  # fmt: skip

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().replace(" ", "").replace("_", "")
        number = text.rstrip("bkmgtpi")
        unit = text[len(number) :]
        try:
            size = float(number) * self.UNITS[unit]
        except (ValueError, KeyError):
            self.fail(f"{value!r} is not a size: give bytes, e.g. 8000000000000, 8e12 or 8TB")
        if size < 1 or size != size:
            self.fail(f"{value!r}: give a size of at least 1 byte")
        return round(size)


SHUFFLE_GROUPS_OPTION = click.option(
    "--shuffle-groups",
    type=click.IntRange(min=0),
    default=None,
    help="Shuffle in two levels, the buckets cut into about N groups of neighbours (0: "
    "one level); the shards are the same bytes either way. [default: two levels where a "
    "unit's slice of a bucket would be under 1 MiB, see `mlmprep plan`]",
)
