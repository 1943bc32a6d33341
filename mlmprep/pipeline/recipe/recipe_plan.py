"""`mlmprep plan --recipe`: what a recipe's build would make and need, before anything is
built. Each source's plan sample (`plan/sample.py`) is tokenized as the build tokenizes
the source (timed), and each phase is measured by building its sources' sample stores
with the phase's options, as the phase's workers do; the counts are scaled to the
sources' sizes and to the phase's token targets (the same formula the build draws to)."""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np

from mlmprep.algorithm.mixture import shares, targets
from mlmprep.core import storage
from mlmprep.formats.indexed_documents import IndexedDocuments
from mlmprep.formats.indexed_format import output_paths
from mlmprep.input.discovery import Source, describe_inputs
from mlmprep.input.readers import FORMAT_BY_SUFFIX
from mlmprep.pipeline.phase_input import PhaseUnit
from mlmprep.pipeline.plan.capacity import PlanEstimate, PlanScope, scale_plan
from mlmprep.pipeline.plan.sample import (
    SAMPLE_BYTES,
    SampleRates,
    measure_unit,
    mixed_rates,
    sample_sources,
)
from mlmprep.pipeline.planning import plan_units, worker_count
from mlmprep.pipeline.recipe.recipe_build import (
    mixture_table,
    mixture_warnings,
    source_files,
    source_tokenize_config,
    target_row,
)
from mlmprep.pipeline.recipe.recipe_file import SOURCES_DIR, Recipe, RecipePhase
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.sizing import WINDOW_BYTES, Sizing, choose_sizing
from mlmprep.pipeline.tokenize.tokenize import MAX_UNITS, finished_run, tokenize


@dataclass(frozen=True)
class SourceEstimate:
    """One source: its text, what tokenizing it once makes, and how long that takes."""

    name: str
    files: int
    raw_bytes: int
    sampled_bytes: int
    documents: int
    tokens: int
    store_bytes: int  # its .bin and .idx
    seconds: float  # to tokenize it with the plan's workers
    tokenized: bool = False  # its store is in the output already: exact counts, no time

    @property
    def bytes_per_token(self) -> float:
        return self.raw_bytes / max(self.tokens, 1)


@dataclass(frozen=True)
class PhaseEstimate:
    """One phase: its mixture (targets, not yet draws) and its build's plan."""

    name: str
    mixture: dict
    plan: PlanEstimate
    warnings: list[str]


@dataclass(frozen=True)
class RecipePlan:
    """A recipe's plan: its sources, then its phases, built one after the other."""

    recipe: str
    sources: list[SourceEstimate]
    phases: list[PhaseEstimate]

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.sources) + sum(
            p.plan.resources.seconds for p in self.phases
        )

    @property
    def output_bytes(self) -> int:
        """The sources' stores and every phase's shards, once all are built."""
        return sum(s.store_bytes for s in self.sources) + sum(
            p.plan.output_bytes for p in self.phases
        )

    @property
    def warnings(self) -> list[str]:
        return [w for phase in self.phases for w in phase.warnings]

    def to_dict(self) -> dict:
        return {
            "recipe": self.recipe,
            "sources": [asdict(s) for s in self.sources],
            "phases": [
                {"name": p.name, "mixture": p.mixture, "plan": p.plan.to_dict()}
                for p in self.phases
            ],
            "seconds": round(self.seconds, 1),
            "output_bytes": self.output_bytes,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class _SourceSample:
    """A source's plan sample, tokenized into a store in the plan's scratch directory."""

    estimate: SourceEstimate
    store: str
    documents: int
    tokens: int


def estimate_recipe(recipe: Recipe, output_dir: str, options: RunOptions) -> RecipePlan:
    """The plan of building `recipe` into `output_dir` with `options`' workers."""
    with tempfile.TemporaryDirectory(prefix="mlmprep-plan-") as scratch:
        samples = {
            name: _sample_source(recipe, name, output_dir, options, scratch)
            for name in recipe.source_names()
        }
        phases = [_phase_estimate(p, samples, options, scratch) for p in recipe.phases]
    return RecipePlan(recipe.path, [s.estimate for s in samples.values()], phases)


def _sample_source(
    recipe: Recipe, name: str, output_dir: str, options: RunOptions, scratch: str
) -> _SourceSample:
    """Tokenize the source's plan sample as its build does, and scale what it made; or,
    where an earlier `build --recipe` left this source's store, read it."""
    config = source_tokenize_config(recipe, name)
    files = describe_inputs(source_files(recipe, name, output_dir))
    raw = sum(f.raw_size for f in files if not f.skipped)
    prefix = storage.join(output_dir, SOURCES_DIR, name)
    built = finished_run(
        list(recipe.sources[name].inputs), prefix, config, options.tokenizer_backend
    )
    if built is not None:
        return _built_source(name, len(files), raw, prefix, built)
    text_dir = os.path.join(scratch, f"{name}-text")
    os.makedirs(text_dir)
    sample = [_named_by_format(s) for s in sample_sources(files, config.build_config(), text_dir)]
    sampled = sum(storage.size(path) for path in sample)
    store = os.path.join(scratch, name)
    started = time.monotonic()
    tokenize(sample, store, config, RunOptions())
    seconds = time.monotonic() - started
    document_tokens = IndexedDocuments(store).document_tokens()
    documents, tokens = len(document_tokens), int(document_tokens.sum())
    scale = raw / max(sampled, 1)
    unit_size = max(WINDOW_BYTES, math.ceil(raw / MAX_UNITS))
    units = len(plan_units(files, config.build_config(unit_size), unit_size))
    paths = output_paths(store)
    estimate = SourceEstimate(
        name=name,
        files=len(files),
        raw_bytes=raw,
        sampled_bytes=sampled,
        documents=round(documents * scale),
        tokens=round(tokens * scale),
        store_bytes=round((storage.size(paths["bin"]) + storage.size(paths["idx"])) * scale),
        seconds=seconds * scale / worker_count(options.workers, units),
    )
    return _SourceSample(estimate, store, documents, tokens)


def _built_source(name: str, files: int, raw: int, prefix: str, manifest: dict) -> _SourceSample:
    """A source tokenized already: its exact counts, and its first documents (about
    SAMPLE_BYTES of their text) as the sample its phases are measured on."""
    document_tokens = IndexedDocuments(prefix).document_tokens()
    tokens = int(document_tokens.sum())
    bytes_per_token = raw / max(tokens, 1)
    first = int(np.searchsorted(np.cumsum(document_tokens) * bytes_per_token, SAMPLE_BYTES)) + 1
    first = min(first, len(document_tokens))
    sampled_tokens = int(document_tokens[:first].sum())
    paths = output_paths(prefix)
    estimate = SourceEstimate(
        name=name,
        files=files,
        raw_bytes=raw,
        sampled_bytes=round(sampled_tokens * bytes_per_token),
        documents=len(document_tokens),
        tokens=tokens,
        store_bytes=storage.size(paths["bin"]) + storage.size(paths["idx"]),
        seconds=0.0,
        tokenized=True,
    )
    return _SourceSample(estimate, prefix, first, sampled_tokens)


def _named_by_format(source: Source) -> str:
    """A sample file renamed with its format's suffix, so that tokenize reads it as the
    source's file was read (a sample's name has none); a format no suffix names
    (`sentences`) is one the source's options give, and the name stays."""
    suffix = next((k for k, v in FORMAT_BY_SUFFIX.items() if v == source.format), None)
    if suffix is None:
        return source.path
    os.rename(source.path, source.path + suffix)
    return source.path + suffix


def _phase_estimate(
    phase: RecipePhase, samples: dict[str, _SourceSample], options: RunOptions, scratch: str
) -> PhaseEstimate:
    """The phase's targets by the build's formula, and its build measured on the sources'
    sample stores with its options, weighted by the source text each target needs."""
    sources = {name: samples[name].estimate for name in phase.sources}
    available = {name: s.tokens for name, s in sources.items()}
    asked = shares(available, phase.alpha, phase.weights)
    wanted = targets(asked, phase.tokens or sum(available.values()))
    text = {name: wanted[name] * s.bytes_per_token for name, s in sources.items()}
    raw = max(1, round(sum(text.values())))
    sizing = choose_sizing(raw, phase.config)
    rates = {
        name: _measure_phase(phase, samples[name], sizing, options, scratch) for name in sources
    }
    units = sum(_phase_units(text[n], s.raw_bytes, sizing.unit_size) for n, s in sources.items())
    largest = min(sizing.unit_size, max(s.raw_bytes for s in sources.values()))
    plan = scale_plan(
        PlanScope(0, raw, units, units, largest),
        sizing,
        mixed_rates([(rates[name], text[name]) for name in rates]),  # by the text drawn
        phase.config,
        options,
    )
    mixture = mixture_table(
        phase,
        {
            name: {
                **target_row(available[name], asked[name], wanted[name]),
                "passes": round(wanted[name] / max(available[name], 1), 4),
                "documents": round(s.documents * wanted[name] / max(available[name], 1)),
            }
            for name, s in sources.items()
        },
    )
    warnings = [f"phase {phase.name}: {w}" for w in mixture_warnings(phase.tokens, mixture)]
    return PhaseEstimate(phase.name, mixture, plan, warnings)


def _measure_phase(
    phase: RecipePhase, sample: _SourceSample, sizing: Sizing, options: RunOptions, scratch: str
) -> SampleRates:
    """The phase's rates on one source: a unit of all of its sample store's documents,
    processed with the phase's options."""
    name, sampled = sample.estimate.name, sample.estimate.sampled_bytes
    unit = PhaseUnit(
        0, name, sample.store, None, 0, sample.documents, sampled, sampled / max(sample.tokens, 1)
    )
    spill_dir = os.path.join(scratch, f"{phase.name}-{name}")
    os.makedirs(spill_dir)
    return measure_unit(
        unit, phase.config, sizing, options.tokenizer_backend, options.storage_options, spill_dir
    )


def _phase_units(text_bytes: float, source_bytes: int, unit_size: int) -> int:
    """The units a source gives a phase: whole passes, then the sampled rest, each cut
    into units of about `unit_size` bytes of source text (as `SourceDraw.units`)."""
    passes, rest = divmod(text_bytes, max(source_bytes, 1))
    per_pass = math.ceil(source_bytes / unit_size)
    return int(passes) * per_pass + (math.ceil(rest / unit_size) if rest >= 1 else 0)
