"""A recipe file (TOML): its sources, its phases, and the build options of each phase,
checked once with one-line errors that name the file and the key."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SOURCES_DIR = "sources"  # OUT/sources/<name>.bin/.idx: each source tokenized once
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOP_KEYS = ("build", "sources", "phases")
READING_OPTIONS = ("input_format", "text_field")  # per source, or shared in [build]
TOKENIZING_OPTIONS = ("tokenizer", "lowercase", "special_tokens")  # [build] only
SOURCE_KEYS = ("inputs", *READING_OPTIONS)
PHASE_KEYS = ("name", "sources", "tokens", "alpha", "weights")
NOT_IN_RECIPES = {
    "sources": "it is the recipe's own key",
    "dupe_factor": "a phase repeats a source by asking for more tokens than it holds",
}
BUILD_OPTIONS = tuple(
    f.name for f in dataclasses.fields(BuildConfig) if f.name not in NOT_IN_RECIPES
)
PHASE_OPTIONS = tuple(
    name for name in BUILD_OPTIONS if name not in (*READING_OPTIONS, *TOKENIZING_OPTIONS)
)


@dataclass(frozen=True)
class RecipeSource:
    """One source: its inputs (paths relative to the recipe file made absolute) and how
    its files are read."""

    name: str
    inputs: tuple[str, ...]
    input_format: str
    text_field: str


@dataclass(frozen=True)
class RecipePhase:
    """One phase: the sources it draws from, how many text tokens and in which shares,
    and the build options of its dataset."""

    name: str
    sources: tuple[str, ...]
    tokens: int | None  # None: the sources' total, once
    alpha: float | None
    weights: dict[str, float] | None
    config: BuildConfig


@dataclass(frozen=True)
class Recipe:
    """A whole recipe file."""

    path: str
    sources: dict[str, RecipeSource]
    phases: tuple[RecipePhase, ...]
    shared: dict[str, Any]  # the [build] table

    def source_names(self) -> list[str]:
        """The sources some phase draws from, in the order the file defines them."""
        used = {name for phase in self.phases for name in phase.sources}
        return [name for name in self.sources if name in used]


def load_recipe(path: str) -> Recipe:
    """Read and check a recipe file; every mistake is a ConfigError naming path and key."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    return _Checker(path).recipe(data)


class _Checker:
    """The checks of one file, each error prefixed with the file and the key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {message}")

    def known(self, table: dict, keys: tuple[str, ...], where: str) -> None:
        for key in table:
            if key in keys:
                continue
            if key in NOT_IN_RECIPES:
                raise self.fail(f"{where}.{key}", f"not a recipe option ({NOT_IN_RECIPES[key]})")
            close = difflib.get_close_matches(key.replace("-", "_"), keys, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.fail(f"{where}.{key}" if where else key, f"unknown key{hint}")

    def recipe(self, data: dict) -> Recipe:
        self.known(data, TOP_KEYS, "")
        shared = self.table(data.get("build", {}), "build")
        self.known(shared, BUILD_OPTIONS, "build")
        self.options(shared, "build")
        sources = self.table(data.get("sources"), "sources")
        if not sources:
            raise self.fail("sources", "define at least one source, e.g. [sources.books]")
        checked = {name: self.source(name, spec, shared) for name, spec in sources.items()}
        phases = data.get("phases")
        if not isinstance(phases, list) or not phases:
            raise self.fail("phases", 'define at least one phase, e.g. [[phases]] name = "main"')
        made: list[RecipePhase] = []
        for number, spec in enumerate(phases):
            phase = self.phase(number, spec, checked, shared)
            if any(p.name == phase.name for p in made):
                raise self.fail(f"phases[{number}].name", f"{phase.name!r} is used twice")
            made.append(phase)
        return Recipe(self.path, checked, tuple(made), shared)

    def table(self, value: Any, where: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        return value

    def name(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not SAFE_NAME.match(value) or value == SOURCES_DIR:
            raise self.fail(
                where,
                f"{value!r} is not a usable name (letters, digits, '_', '.', '-'; it names "
                f"a directory; not {SOURCES_DIR!r})",
            )
        return value

    def source(self, name: str, spec: Any, shared: dict) -> RecipeSource:
        where = f"sources.{name}"
        self.name(name, where)
        spec = self.table(spec, where)
        self.known(spec, SOURCE_KEYS, where)
        inputs = spec.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs or not all(isinstance(i, str) and i for i in inputs):
            raise self.fail(f"{where}.inputs", "give a list of files, directories or globs")
        reading = {key: spec.get(key, shared.get(key)) for key in READING_OPTIONS}
        defaults = BuildConfig()
        values = {k: getattr(defaults, k) if v is None else v for k, v in reading.items()}
        self.options(values, where)
        return RecipeSource(name, tuple(self.resolve(i) for i in inputs), **values)

    def resolve(self, given: str) -> str:
        if "://" in given or os.path.isabs(given):
            return given
        resolved = os.path.join(self.base, given)
        return resolved + os.sep if given.endswith(("/", os.sep)) else resolved

    def phase(self, number: int, spec: Any, sources: dict, shared: dict) -> RecipePhase:
        where = f"phases[{number}]"
        spec = self.table(spec, where)
        if "name" not in spec:
            raise self.fail(where, 'give the phase a name (name = "pretrain")')
        name = self.name(spec["name"], f"{where}.name")
        where = f"phases[{number}] ({name})"
        for key in spec:
            if key in (*READING_OPTIONS, *TOKENIZING_OPTIONS):
                raise self.fail(
                    f"{where}.{key}",
                    "decides how sources are tokenized, once for every phase: set it in "
                    "[build] (or text_field and input_format in the source)",
                )
        self.known(spec, (*PHASE_KEYS, *PHASE_OPTIONS), where)
        names = spec.get("sources", list(sources))
        if not isinstance(names, list) or not names:
            raise self.fail(f"{where}.sources", "give a list of source names")
        for source in names:
            if source not in sources:
                close = difflib.get_close_matches(str(source), list(sources), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.fail(f"{where}.sources", f"no source {source!r} is defined{hint}")
        if len(set(names)) != len(names):
            raise self.fail(f"{where}.sources", "a source is named twice")
        tokens = spec.get("tokens")
        if tokens is not None and (not _is_int(tokens) or tokens <= 0):
            raise self.fail(f"{where}.tokens", f"must be a positive whole number, not {tokens!r}")
        alpha, weights = spec.get("alpha"), spec.get("weights")
        if alpha is not None and weights is not None:
            raise self.fail(f"{where}.weights", "give alpha or weights, not both")
        if alpha is not None and (not _is_number(alpha) or not 0 <= alpha <= 1):
            raise self.fail(f"{where}.alpha", f"must be a number in [0, 1], not {alpha!r}")
        if weights is not None:
            weights = self.weights(weights, names, f"{where}.weights")
        options = {k: v for k, v in spec.items() if k in PHASE_OPTIONS}
        self.options(options, where)
        config = self.config({**_tokenizing(shared), **options}, names, where)
        return RecipePhase(name, tuple(names), tokens, alpha, weights, config)

    def weights(self, value: Any, names: list[str], where: str) -> dict[str, float]:
        value = self.table(value, where)
        for source, weight in value.items():
            if source not in names:
                raise self.fail(f"{where}.{source}", "not one of the phase's sources")
            if not _is_number(weight) or not weight > 0 or not math.isfinite(weight):
                raise self.fail(f"{where}.{source}", f"must be a positive number, not {weight!r}")
        missing = [n for n in names if n not in value]
        if missing:
            raise self.fail(where, f"give a weight to every source of the phase ({missing[0]})")
        return {name: float(value[name]) for name in names}

    def options(self, values: dict, where: str) -> None:
        """Each build option's type, as its default's type (None defaults take ints or
        booleans as the CLI does)."""
        defaults = BuildConfig()
        for key, value in values.items():
            default = getattr(defaults, key)
            if isinstance(default, bool) or key == "lowercase":
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, int) or key == "max_predictions_per_seq":
                ok, kind = _is_int(value), "a whole number"
            elif isinstance(default, float):
                ok, kind = _is_number(value), "a number"
            else:
                ok, kind = isinstance(value, str), "a string"
            if not ok:
                raise self.fail(f"{where}.{key}", f"must be {kind}, not {value!r}")

    def config(self, options: dict, sources: list[str], where: str) -> BuildConfig:
        try:
            return BuildConfig.requested(**options, sources=tuple(sources))
        except ConfigError as exc:
            raise self.fail(where, str(exc)) from None


def _tokenizing(shared: dict) -> dict:
    """[build] without the reading options (a phase reads tokenized sources)."""
    return {k: v for k, v in shared.items() if k not in READING_OPTIONS}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
