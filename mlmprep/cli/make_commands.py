"""Commands that make data: build, plan, vocab. Each imports the library it calls when it
runs: `--help` stays quick, and a parallel build starts its worker server before this
process loads pyarrow and numpy."""

from __future__ import annotations

import json
from typing import Any

import click

from mlmprep.cli.errors import friendly
from mlmprep.cli.options import (
    INPUT_FORMAT_OPTION,
    SHUFFLE_GROUPS_OPTION,
    TEXT_FIELD_OPTION,
    ByteSize,
    config_options,
    make_run_options,
    run_options,
    storage_options,
)
from mlmprep.core.config import BuildConfig
from mlmprep.text.vocab_recipes import MODELS, RECIPES


@click.command(name="build")
@click.argument("inputs", nargs=-1)
@click.argument("output_dir")
@click.option(
    "--recipe",
    type=click.Path(dir_okay=False),
    default=None,
    help="Build every phase of a recipe file (TOML: sources, phases, their token targets "
    "and shares; docs/recipes.md) into OUTPUT_DIR/<phase>/; give no INPUTS.",
)
@config_options
@run_options
@click.option(
    "--tmp-dir",
    default=None,
    help="Directory for spill files (one per unit, deleted at the end), e.g. local disk "
    "while OUTPUT_DIR is on object storage; every worker must see it. "
    "[default: OUTPUT_DIR/.mlmprep-work]",
)
@SHUFFLE_GROUPS_OPTION
@click.option(
    "--verify",
    is_flag=True,
    help="On a finished build, check every shard's sha256 too (not only its size) before "
    "calling it done; damaged shards are written again.",
)
@friendly
def build_command(
    inputs: tuple[str, ...],
    output_dir: str,
    workers: int | None,
    storage_options: dict,
    engine: str,
    scheduler: str | None,
    tokenizer_backend: str,
    tmp_dir: str | None,
    verify: bool,
    shuffle_groups: int | None,
    strict: bool,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
    recipe: str | None,
    **options: Any,
) -> None:
    """Build Parquet shards of BERT instances from INPUTS (files, directories, globs).

    \b
    Examples:
      mlmprep build corpus/ out/
      mlmprep build 'shards/*.jsonl.gz' out/ --dupe-factor 5 --workers 8
      mlmprep build corpus/ out/ --tokenizer roberta.json --objective none --max-seq-length 512
      mlmprep build books.txt.gz out/ --input-format sentences --seed 1 --json
      mlmprep build --recipe recipe.toml out/

    Running the same command again after a crash resumes; after a finished build it
    checks the shards and writes again only those missing or damaged (byte-identical),
    else does nothing. Compressed inputs (.gz .bz2 .xz .zst) are read as streams.
    """
    if recipe is None and not inputs:
        raise click.UsageError("Missing argument 'INPUTS...' (or give --recipe FILE)")
    if recipe is not None:
        _refuse_with_recipe(inputs, [*options, "verify", "shuffle_groups"])
    config = BuildConfig.requested(**options) if recipe is None else None
    run = make_run_options(
        workers,
        as_json,
        quiet,
        engine=engine,
        scheduler=scheduler,
        tmp_dir=tmp_dir,
        storage_options=storage_options,
        strict=strict,
        overwrite=overwrite,
        tokenizer_backend=tokenizer_backend,
        verify=verify,
        shuffle_groups=shuffle_groups,
    )
    if recipe is not None:
        _build_recipe(recipe, output_dir, run, quiet, as_json)
        return
    from mlmprep.cli.render import build_text
    from mlmprep.pipeline.build import build

    summary = build(list(inputs), output_dir, config, run)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    if summary["already_built"]:
        click.echo(f"{output_dir} already holds this build; nothing to do.")
    elif summary["repaired_shards"]:
        names = ", ".join(summary["repaired_shards"])
        click.echo(f"repaired: {names} (missing or damaged) written again")
    elif summary["resumed_units"] or summary["redone_units"]:
        click.echo(f"resumed: {summary['resumed_units']} units were already done")
    if summary["redone_units"]:
        redone = summary["redone_units"]
        click.echo(
            f"redone: {len(redone)} units recorded as done whose spill files were missing or "
            f"short ({', '.join(redone[:3])}{', ...' if len(redone) > 3 else ''}); keep "
            "--tmp-dir on storage that outlives the build to resume without redoing them"
        )
    if not quiet:
        for warning in summary["warnings"]:
            click.echo(f"warning: {warning}", err=True)
    click.echo(build_text(summary, output_dir))


def _refuse_with_recipe(inputs: tuple[str, ...], names: list[str]) -> None:
    """With --recipe the recipe says the inputs and the options: refuse INPUTS and the
    options `names` when given."""
    if inputs:
        raise click.UsageError("with --recipe, give only OUTPUT_DIR (the recipe names the inputs)")
    context = click.get_current_context()
    given = [
        name
        for name in names
        if context.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
    ]
    if given:
        from mlmprep.pipeline.recipe.recipe_file import NOT_IN_RECIPES

        name, option = given[0], "--" + given[0].replace("_", "-")
        if name in NOT_IN_RECIPES:
            reason = f": {NOT_IN_RECIPES[name]}"
        elif name in BuildConfig.__dataclass_fields__:
            reason = ": set it in the recipe's [build] table or in a phase"
        else:
            reason = ""
        raise click.UsageError(f"{option} does not go with --recipe{reason}")


def _build_recipe(path: str, output_dir: str, run: Any, quiet: bool, as_json: bool) -> None:
    from mlmprep.cli.render import recipe_text
    from mlmprep.pipeline.recipe.recipe_build import build_recipe
    from mlmprep.pipeline.recipe.recipe_file import load_recipe

    summary = build_recipe(load_recipe(path), output_dir, run)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    if not quiet:
        for phase in summary["phases"]:
            for warning in phase["build_warnings"]:
                click.echo(f"warning: phase {phase['name']}: {warning}", err=True)
        for warning in summary["warnings"]:
            click.echo(f"warning: {warning}", err=True)
    click.echo(recipe_text(summary))


@click.command(name="plan")
@click.argument("inputs", nargs=-1)
@click.argument("output_dir")
@click.option(
    "--recipe",
    type=click.Path(dir_okay=False),
    default=None,
    help="Plan every phase of a recipe file (as `build --recipe`): its mixture table, "
    "then each phase's rows, disk, memory and time; give no INPUTS.",
)
@config_options
@click.option(
    "--input-bytes",
    type=ByteSize(),
    default=None,
    help="Plan for a corpus like INPUTS of this many raw bytes (in many files), e.g. "
    "100GB, 8e12 or 8TB: for capacity planning before you have it all.",
)
@click.option(
    "--target-minutes",
    type=float,
    default=None,
    help="Also say how many workers would finish the build within this many minutes.",
)
@run_options
@click.option("--tmp-dir", default=None, help="Accepted as build takes it; the plan is the same.")
@click.option("--verify", is_flag=True, help="Accepted as build takes it; the plan is the same.")
@SHUFFLE_GROUPS_OPTION
@friendly
def plan_command(
    inputs: tuple[str, ...],
    output_dir: str,
    input_bytes: int | None,
    target_minutes: float | None,
    workers: int | None,
    engine: str,
    tokenizer_backend: str,
    as_json: bool,
    quiet: bool,
    recipe: str | None,
    shuffle_groups: int | None,
    **options: Any,
) -> None:
    """Show what `build` would do with the same arguments, without building: units,
    buckets and shards, rows and tokens, temporary and output disk, peak memory and wall
    time for the given --workers, work-directory files and object-store requests.

    Rows, tokens, disk and time are measured: about 4 MB from the starts of the input
    files are built with the chosen tokenizer and backend (a few seconds), and scaled.
    Takes every `build` option; --tmp-dir, --strict, --overwrite and the like change
    nothing in the plan.

    \b
    Examples:
      mlmprep plan corpus/ out/ --dupe-factor 5 --workers 8
      mlmprep plan corpus/ out/ --target-minutes 30 --json
      mlmprep plan corpus/ out/ --input-bytes 100GB          # 100 GB like corpus/
      mlmprep plan --recipe recipe.toml out/                 # every phase of a recipe
      mlmprep tokenize corpus/ data/wiki --plan              # the plan of a tokenize run
    """
    from mlmprep.cli.render import plan_text
    from mlmprep.pipeline.plan.capacity import estimate_plan

    fields = BuildConfig.__dataclass_fields__
    if recipe is None and not inputs:
        raise click.UsageError("Missing argument 'INPUTS...' (or give --recipe FILE)")
    if recipe is not None:
        _refuse_with_recipe(inputs, [*fields, "input_bytes", "target_minutes", "shuffle_groups"])
    run = make_run_options(
        workers,
        as_json,
        quiet,
        engine=engine,
        tokenizer_backend=tokenizer_backend,
        storage_options=options["storage_options"],
        shuffle_groups=shuffle_groups,
    )
    if recipe is not None:
        _plan_recipe(recipe, output_dir, run, as_json)
        return
    if target_minutes is not None and target_minutes <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--target-minutes")
    config = BuildConfig.requested(**{k: v for k, v in options.items() if k in fields})
    plan = estimate_plan(list(inputs), output_dir, config, run, input_bytes, target_minutes)
    if as_json:
        click.echo(json.dumps(plan.to_dict(), sort_keys=True))
        return
    click.echo(plan_text(plan, target_minutes))


def _plan_recipe(path: str, output_dir: str, run: Any, as_json: bool) -> None:
    from mlmprep.cli.render import recipe_plan_text
    from mlmprep.pipeline.recipe.recipe_file import load_recipe
    from mlmprep.pipeline.recipe.recipe_plan import estimate_recipe

    plan = estimate_recipe(load_recipe(path), output_dir, run)
    click.echo(json.dumps(plan.to_dict(), sort_keys=True) if as_json else recipe_plan_text(plan))


@click.command(name="vocab")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    help="Where to write: vocab.txt (WordPiece for BERT) or tokenizer.json (any model).",
)
@click.option("--size", default=30522, show_default=True, help="Vocabulary entries.")
@click.option(
    "--model",
    type=click.Choice(MODELS),
    default="wordpiece",
    show_default=True,
    help="wordpiece (BERT), bpe (byte-level, RoBERTa) or unigram (SentencePiece-style, XLM-R).",
)
@click.option(
    "--recipe",
    type=click.Choice(list(RECIPES)),
    default=None,
    help="Special tokens and row layout: bert ([CLS] A [SEP] B [SEP]), roberta or xlmr "
    "(<s> A </s></s> B </s>). [default: bert for wordpiece, roberta for bpe, xlmr for "
    "unigram]",
)
@click.option(
    "--lowercase/--no-lowercase",
    default=None,
    help="Lowercase the text. [default: lowercase for wordpiece, keep case otherwise]",
)
@INPUT_FORMAT_OPTION
@TEXT_FIELD_OPTION
@click.option("--overwrite", is_flag=True, help="Replace the output file if it exists.")
@storage_options()
@friendly
def vocab_command(
    inputs: tuple[str, ...],
    output: str,
    size: int,
    model: str,
    recipe: str | None,
    lowercase: bool | None,
    input_format: str,
    text_field: str,
    overwrite: bool,
) -> None:
    """Train a tokenizer from INPUTS, usable as `build --tokenizer FILE`.

    A WordPiece vocab.txt has [PAD] [UNK] [CLS] [SEP] [MASK] first and its alphabet
    sized from the corpus. A tokenizer.json has the recipe's special tokens first and
    its post-processor, from which `build` takes the roles and the row layout. The
    inputs are read and counted as `build` reads them (same --input-format and
    --text-field); an existing output is replaced only with --overwrite.

    \b
    Examples:
      mlmprep vocab corpus/ -o vocab.txt --size 30522
      mlmprep vocab corpus/ -o roberta.json --model bpe --size 50265
      mlmprep vocab corpus/ -o xlmr.json --model unigram --size 250002
      mlmprep build corpus/ out/ --tokenizer roberta.json --objective none
    """
    from mlmprep.cli.render import accounting_lines
    from mlmprep.text.vocab import train_vocab

    result = train_vocab(
        list(inputs), output, size, lowercase, input_format, text_field, model, recipe, overwrite
    )
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo("\n".join(accounting_lines(result["accounting"])))
    characters = f" ({result['alphabet']} characters)" if model == "wordpiece" else ""
    click.echo(
        f"{result['output']}: {result['model']} for {result['recipe']}, {result['size']} "
        f"entries{characters} from {result['files']} files"
    )
