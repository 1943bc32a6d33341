"""`mlmprep tokenize --plan`: what a tokenize run would make and need, measured on a
sample of the inputs instead of guessed: the build plan's sample (`plan/sample.py`:
about 4 MB in all, each input format's share in proportion to its bytes) is split and
tokenized with the chosen tokenizer, and each format's counts are scaled to its inputs."""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass

from mlmprep.formats.indexed_format import IndexHeader, output_paths, token_dtype
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import InputFile, Source, describe_inputs, resolve_inputs
from mlmprep.input.readers import iter_documents
from mlmprep.pipeline.plan.sample import sample_groups
from mlmprep.pipeline.planning import plan_units
from mlmprep.pipeline.sizing import WINDOW_BYTES
from mlmprep.pipeline.tokenize.tokenize import MAX_UNITS, TokenizeConfig
from mlmprep.text.encoders import encoder_for
from mlmprep.text.sentences import document_sentences
from mlmprep.text.tokenization import TokenEncoder


@dataclass(frozen=True)
class TokenizeEstimate:
    """A tokenize run's plan and its estimated output, scaled from a measured sample."""

    files: int
    raw_bytes: int
    sampled_bytes: int
    units: int
    unit_size: int
    documents: int
    sequences: int
    tokens: int
    dtype: str
    bin_bytes: int
    idx_bytes: int
    temporary_bytes: int  # peak: the partial files, then the output beside them

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Sample:
    raw_bytes: int = 0
    documents: float = 0
    sentences: float = 0
    tokens: float = 0


def estimate_tokenize(
    inputs: list[str], prefix: str, config: TokenizeConfig, unit_size: int = 0
) -> TokenizeEstimate:
    """Measure a sample of `inputs` with the chosen tokenizer, and scale it."""
    files = describe_inputs(resolve_inputs(inputs, output_paths(prefix)["work"]))
    readable = [f for f in files if not f.skipped]
    raw = sum(f.raw_size for f in readable)
    size = unit_size or max(WINDOW_BYTES, math.ceil(raw / MAX_UNITS))
    units = plan_units(files, config.build_config(size), size)
    sample = _measure(readable, config)
    documents = round(sample.documents)
    sentence_level = config.level == "sentence"
    sequences = round(sample.sentences if sentence_level else sample.documents)
    tokens = round(sample.tokens + (sample.documents if config.append_eod else 0))
    encoder = encoder_for(config.build_config())
    dtype = token_dtype(encoder.vocab_size)
    bin_bytes = tokens * dtype.itemsize
    idx_bytes = IndexHeader(dtype, sequences, documents + 1).size()
    return TokenizeEstimate(
        files=len(files),
        raw_bytes=raw,
        sampled_bytes=sample.raw_bytes,
        units=len(units),
        unit_size=size,
        documents=documents,
        sequences=sequences,
        tokens=tokens,
        dtype=dtype.name,
        bin_bytes=bin_bytes,
        idx_bytes=idx_bytes,
        temporary_bytes=2 * (bin_bytes + idx_bytes),
    )


def _measure(files: list[InputFile], config: TokenizeConfig) -> _Sample:
    """The plan's sample of `files`, split into sentences and tokenized, scaled to the
    whole input format by format (`raw_bytes` stays the bytes sampled)."""
    build_config = config.build_config()
    encoder = encoder_for(build_config)
    whole = _Sample()
    with tempfile.TemporaryDirectory(prefix="mlmprep-plan-") as scratch:
        for group in sample_groups(files, build_config, scratch):
            sample = _Sample()
            for source in group.sources:
                _count(source, config.text_field, encoder, sample)
            scale = group.input_bytes / max(group.sampled_bytes, 1)
            whole.raw_bytes += group.sampled_bytes
            whole.documents += sample.documents * scale
            whole.sentences += sample.sentences * scale
            whole.tokens += sample.tokens * scale
    return whole


def _count(source: Source, text_field: str, encoder: TokenEncoder, sample: _Sample) -> None:
    """Add one sample file's documents, sentences and tokens to `sample`."""
    documents, sentences = [], []
    for part in iter_documents(source.path, source.format, text_field, InputReport()):
        sentences += document_sentences(part.lines, part.presplit)[0]
        if not part.continued:
            documents.append(sentences)
            sentences = []
    ids, lengths = encoder.encode_documents([d for d in documents if d])
    sample.documents += sum(len(i) > 0 for i in ids)
    sample.sentences += sum(int((n > 0).sum()) for n in lengths)
    sample.tokens += sum(len(i) for i in ids)
