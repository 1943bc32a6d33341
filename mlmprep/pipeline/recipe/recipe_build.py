"""build_recipe(): every source tokenized once (`OUT/sources/`), then every phase built
as an ordinary build (`OUT/<phase>/`) from whole documents drawn to its token targets;
`OUT/recipe.json` says what each phase asked and got."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from mlmprep.algorithm.mixture import Draw, draw_documents, shares, targets
from mlmprep.core import storage
from mlmprep.core.errors import ConfigError, InputError, OutputError
from mlmprep.core.files import open_atomically, read_json, write_json_atomically
from mlmprep.core.random_streams import MIXTURE_DRAW, name_key, rng_for
from mlmprep.formats.indexed_documents import IndexedDocuments
from mlmprep.formats.manifest import INDEX, RECIPE_SUMMARY, WorkState, differences
from mlmprep.input.discovery import resolve_inputs
from mlmprep.pipeline.build import LOCK_FILE, BuildJob, run_build
from mlmprep.pipeline.output_dir import remove_build
from mlmprep.pipeline.phase_input import PhaseInput, SourceDraw
from mlmprep.pipeline.recipe.recipe_file import SOURCES_DIR, Recipe, RecipePhase
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.tokenize.tokenize import TokenizeConfig, tokenize
from mlmprep.pipeline.workers import start_worker_server
from mlmprep.text.encoders import encoder_for

RECIPE_WORK = ".mlmprep-recipe"  # OUT/.mlmprep-recipe/: what this output is, the draws
STARTED = "started.json"
STORE_LEVEL = "sentence"  # phases cut rows at sentences, so sources keep them
REPEAT_WARNING = 4  # passes over a source in one phase
SMALL_SHARE_WARNING = 0.001  # of a phase
SHORT_SUPPLY_WARNING = 0.10  # the phase's sources hold less than this share of its target


@dataclasses.dataclass(frozen=True)
class SourceStore:
    """A source tokenized once: its indexed dataset and what the phases need of it."""

    name: str
    prefix: str
    document_tokens: np.ndarray
    bytes_per_token: float
    checksums: dict[str, str]  # of its .bin and .idx
    tokenized_now: bool

    @property
    def tokens(self) -> int:
        return int(self.document_tokens.sum())


def build_recipe(recipe: Recipe, output_dir: str, options: RunOptions) -> dict:
    """Build (or resume, or confirm) every phase of `recipe` in `output_dir`; return the
    summary written to `recipe.json`."""
    started = time.monotonic()
    if options.forks_local_workers:
        start_worker_server()
    _check_inputs(recipe, output_dir)
    _claim_output(recipe, output_dir, options.overwrite)
    quiet = dataclasses.replace(options, overwrite=False)
    stores = {
        name: _tokenized_source(recipe, name, output_dir, options, quiet)
        for name in recipe.source_names()
    }
    phases = [_build_phase(phase, output_dir, stores, quiet) for phase in recipe.phases]
    summary = {
        "kind": "mlmprep-recipe",
        "recipe": recipe.path,
        "sources": {
            s.name: {
                "tokens": s.tokens,
                "documents": len(s.document_tokens),
                "tokenized_now": s.tokenized_now,
            }
            for s in stores.values()
        },
        "phases": phases,
        "warnings": [w for phase in phases for w in phase["warnings"]],
        "total_seconds": round(time.monotonic() - started, 3),
    }
    write_json_atomically(storage.join(output_dir, RECIPE_SUMMARY), summary)
    return summary


def _check_inputs(recipe: Recipe, output_dir: str) -> None:
    """Every source's inputs name files, checked before anything is written."""
    for name in recipe.source_names():
        source_files(recipe, name, output_dir)


def source_files(recipe: Recipe, name: str, output_dir: str) -> list[str]:
    """The files a source's inputs name; none is an error naming the recipe's key."""
    try:
        return resolve_inputs(list(recipe.sources[name].inputs), output_dir)
    except InputError as exc:
        raise ConfigError(f"{recipe.path}: sources.{name}.inputs: {exc}") from None


def _claim_output(recipe: Recipe, output_dir: str, overwrite: bool) -> None:
    """Refuse an output that holds a plain build or another recipe (other sources or
    phases) unless --overwrite, which removes it; then record this recipe's names."""
    names = {"sources": sorted(recipe.sources), "phases": [p.name for p in recipe.phases]}
    marker = storage.join(output_dir, RECIPE_WORK, STARTED)
    if storage.exists(storage.join(output_dir, INDEX)):
        if not overwrite:
            raise OutputError(
                f"{output_dir}: holds a plain build, not a recipe's phases; pass --overwrite "
                "to replace it, or choose another output"
            )
        remove_build(output_dir)
    elif storage.exists(marker):
        recorded = read_json(marker)
        if recorded != names:
            if not overwrite:
                raise OutputError(
                    f"{output_dir}: holds another recipe's output (sources {recorded['sources']}, "
                    f"phases {recorded['phases']}); pass --overwrite to replace it, or choose "
                    "another output"
                )
            _remove_recipe_output(output_dir, recorded)
    elif storage.exists(output_dir) and storage.listdir(output_dir):
        raise OutputError(
            f"{output_dir}: not empty and not a recipe's output; choose an empty or new directory"
        )
    storage.makedirs(storage.join(output_dir, RECIPE_WORK))
    write_json_atomically(marker, names)


def _remove_recipe_output(output_dir: str, recorded: dict) -> None:
    """--overwrite over another recipe: its phases (only what mlmprep wrote), its
    sources' indexed datasets and its work directory."""
    for phase in recorded["phases"]:
        directory = storage.join(output_dir, phase)
        if storage.exists(directory):
            remove_build(directory)
            lock = storage.join(directory, LOCK_FILE)
            if storage.exists(lock):
                storage.remove(lock)
            if not storage.listdir(directory):  # a README.md of the user's own stays
                storage.rmtree(directory)
    for path in (SOURCES_DIR, RECIPE_WORK, RECIPE_SUMMARY):
        target = storage.join(output_dir, path)
        if storage.isdir(target):
            storage.rmtree(target)
        elif storage.exists(target):
            storage.remove(target)


def _tokenized_source(
    recipe: Recipe, name: str, output_dir: str, options: RunOptions, quiet: RunOptions
) -> SourceStore:
    """Tokenize one source (or confirm it is): a sentence-level indexed dataset."""
    source, config = recipe.sources[name], source_tokenize_config(recipe, name)
    prefix = storage.join(output_dir, SOURCES_DIR, name)
    storage.makedirs(storage.join(output_dir, SOURCES_DIR))
    manifest = tokenize(
        list(source.inputs), prefix, config, options if options.overwrite else quiet
    )
    tokens = IndexedDocuments(prefix).document_tokens()
    total = max(int(tokens.sum()), 1)
    return SourceStore(
        name,
        prefix,
        tokens,
        manifest.get("input_bytes", 4 * total) / total,
        {key: manifest["files"][key]["sha256"] for key in ("bin", "idx")},
        not manifest["already_built"],
    )


def source_tokenize_config(recipe: Recipe, name: str) -> TokenizeConfig:
    """How the source `name` is tokenized, once for every phase: the [build] table's
    tokenizer, the source's reading options, sentence level."""
    source, shared = recipe.sources[name], recipe.shared
    return TokenizeConfig(
        tokenizer=shared.get("tokenizer", TokenizeConfig.tokenizer),
        lowercase=shared.get("lowercase"),
        special_tokens=shared.get("special_tokens", ""),
        input_format=source.input_format,
        text_field=source.text_field,
        level=STORE_LEVEL,
    )


def _build_phase(
    phase: RecipePhase, output_dir: str, stores: dict[str, SourceStore], options: RunOptions
) -> dict:
    """Draw the phase's documents and build it in OUT/<phase>/ (rebuilt when it changed)."""
    available = {name: stores[name].tokens for name in phase.sources}
    asked = shares(available, phase.alpha, phase.weights)
    wanted = targets(asked, phase.tokens or sum(available.values()))
    draws_dir = storage.join(output_dir, RECIPE_WORK, phase.name)
    draws = {}
    for name in phase.sources:
        rng = rng_for(phase.config.seed, MIXTURE_DRAW, name_key(phase.name), name_key(name))
        draws[name] = draw_documents(stores[name].document_tokens, wanted[name], rng)
    mixture = _mixture(phase, available, asked, wanted, draws, stores)
    source_draws = tuple(
        SourceDraw(
            name,
            stores[name].prefix,
            len(stores[name].document_tokens),
            draws[name].tokens,
            draws[name].passes,
            len(draws[name].sampled),
            _write_selection(draws_dir, name, draws[name]),
            stores[name].bytes_per_token,
        )
        for name in phase.sources
    )
    directory = storage.join(output_dir, phase.name)
    encoder = encoder_for(phase.config, options.tokenizer_backend)
    job = BuildJob(
        [stores[n].prefix for n in phase.sources],
        directory,
        phase.config,
        options,
        [],
        encoder,
        time.monotonic(),
        PhaseInput(source_draws, mixture),
    )
    changed = _forget_if_changed(directory, job.identity)
    built = run_build(job)
    if storage.exists(draws_dir):
        storage.rmtree(draws_dir)
    return {
        "name": phase.name,
        "output": directory,
        "already_built": built["already_built"],
        "rebuilt_because_changed": changed,
        "rows": built["rows"],
        "documents": built["documents"],
        "build_warnings": built["warnings"],
        "mixture": mixture,
        "warnings": [f"phase {phase.name}: {w}" for w in mixture_warnings(phase.tokens, mixture)],
    }


def _write_selection(directory: str, source: str, draw: Draw) -> str | None:
    """The sampled documents of a source as a .npy the phase's units read; None when
    the draw is whole passes only."""
    if not len(draw.sampled):
        return None
    storage.makedirs(directory)
    path = storage.join(directory, f"{source}.npy")
    with open_atomically(path) as handle:
        np.save(handle, draw.sampled.astype(np.int64))
    return path


def _mixture(
    phase: RecipePhase,
    available: dict[str, int],
    asked: dict[str, float],
    wanted: dict[str, int],
    draws: dict[str, Draw],
    stores: dict[str, SourceStore],
) -> dict:
    """Per source: tokens available, share asked, target, tokens drawn, share achieved,
    passes and documents; with the stores' checksums, part of the phase's identity."""
    drawn = sum(d.tokens for d in draws.values()) or 1
    return mixture_table(
        phase,
        {
            name: {
                **target_row(available[name], asked[name], wanted[name]),
                "drawn_tokens": draws[name].tokens,
                "achieved_share": round(draws[name].tokens / drawn, 6),
                "passes": round(draws[name].tokens / max(available[name], 1), 4),
                "documents": draws[name].documents,
                "store": stores[name].checksums,
            }
            for name in phase.sources
        },
    )


def mixture_table(phase: RecipePhase, rows: dict[str, dict]) -> dict:
    """A phase's mixture: what it asks (tokens, alpha or weights) and a row per source."""
    return {"tokens": phase.tokens, "alpha": phase.alpha, "weights": phase.weights, "sources": rows}


def target_row(available: int, asked: float, target: int) -> dict:
    """What a source's row of a mixture says before drawing."""
    return {"available_tokens": available, "asked_share": round(asked, 6), "target_tokens": target}


def mixture_warnings(asked_tokens: int | None, mixture: dict) -> list[str]:
    """Where a phase wastes or overfits data."""
    warnings = []
    sources = mixture["sources"]
    for name, row in sources.items():
        if row["passes"] > REPEAT_WARNING:
            warnings.append(
                f"source {name} is repeated {row['passes']:.1f} times (over {REPEAT_WARNING}): "
                "it may be memorized; give it a smaller share or the phase fewer tokens"
            )
        if row["asked_share"] < SMALL_SHARE_WARNING:
            warnings.append(
                f"source {name} is {row['asked_share']:.3%} of the phase (under "
                f"{SMALL_SHARE_WARNING:.1%}): it hardly counts; drop it or raise its share"
            )
    supply = sum(row["available_tokens"] for row in sources.values())
    if asked_tokens and supply < SHORT_SUPPLY_WARNING * asked_tokens:
        warnings.append(
            f"its sources hold {supply:,} tokens, under {SHORT_SUPPLY_WARNING:.0%} of the "
            f"{asked_tokens:,} it asks for: most rows repeat text"
        )
    return warnings


def _forget_if_changed(directory: str, identity: dict) -> bool:
    """A phase whose recorded identity differs from `identity` (the recipe changed it)
    is removed so that it is built again; True when that happened."""
    index = storage.join(directory, INDEX)
    work = WorkState(directory)
    if storage.exists(index):
        recorded = read_json(index)
    elif work.exists():
        recorded = work.plan()["identity"]
    else:
        return False
    if not differences(recorded, identity):
        return False
    remove_build(directory)
    return True
