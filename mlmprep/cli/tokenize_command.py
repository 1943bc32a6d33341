"""`mlmprep tokenize`: inputs -> a Megatron/fairseq indexed dataset (.bin + .idx)."""

from __future__ import annotations

import json
from typing import Any

import click

from mlmprep.cli.errors import friendly
from mlmprep.cli.options import (
    DEFAULTS,
    INPUT_FORMAT_OPTION,
    TEXT_FIELD_OPTION,
    make_run_options,
    run_options,
)
from mlmprep.pipeline.run_options import RunOptions


@click.command(name="tokenize")
@click.argument("inputs", nargs=-1, required=True)
@click.argument("out_prefix")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["megatron"]),
    default="megatron",
    show_default=True,
    help="megatron: OUT_PREFIX.bin + OUT_PREFIX.idx (MMIDIDX v1), read by megatron-core's "
    "IndexedDataset and fairseq's MMapIndexedDataset.",
)
@click.option(
    "--level",
    type=click.Choice(["sentence", "document"]),
    default="sentence",
    show_default=True,
    help="sentence: one sequence per sentence, documents as boundaries (Megatron's BERT); "
    "document: one sequence per document (RoBERTa-style packing).",
)
@click.option(
    "--append-eod",
    is_flag=True,
    help="With --level document: end each document with the tokenizer's separator "
    "([SEP], </s>) as its end-of-document token.",
)
@click.option("--tokenizer", default=DEFAULTS.tokenizer, show_default=True, help="As for build.")
@click.option("--lowercase/--no-lowercase", default=None, help="As for build.")
@click.option("--special-tokens", default=None, help="As for build.")
@INPUT_FORMAT_OPTION
@TEXT_FIELD_OPTION
@click.option(
    "--unit-size",
    default=0,
    type=int,
    help="Raw bytes per work unit; never changes the output. [default: 8 MiB, more for "
    "corpora over 32 GB]",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print what this run would make and need (measured on a sample of the inputs with "
    "the tokenizer), and write nothing.",
)
@run_options
@friendly
def tokenize_command(
    inputs: tuple[str, ...],
    out_prefix: str,
    unit_size: int,
    plan_only: bool,
    workers: int | None,
    as_json: bool,
    quiet: bool,
    **values: Any,
) -> None:
    """Tokenize INPUTS into one indexed dataset, as Megatron-LM's preprocess_data.py
    makes for pretrain_bert.py and fairseq's preprocess for RoBERTa: sequences without
    special tokens (the trainer adds them), in input order (the trainer shuffles).
    Token ids are uint16 when the vocabulary fits, else int32. Parallel, flat memory,
    the same bytes for any worker count; rerun the same command to resume.

    \b
    Examples:
      mlmprep tokenize corpus/ data/wiki
      mlmprep tokenize 'shards/*.jsonl.zst' data/wiki --workers 16 --json
      mlmprep tokenize corpus/ data/roberta --tokenizer roberta.json --level document \\
          --append-eod
      mlmprep tokenize corpus/ data/wiki --plan
    """
    run_values = {k: values.pop(k) for k in list(values) if k in RunOptions.__dataclass_fields__}
    config_values = values  # what is left are TokenizeConfig's fields
    if plan_only:
        _print_plan(list(inputs), out_prefix, config_values, unit_size, as_json)
        return
    options = make_run_options(workers, as_json, quiet, **run_values)
    from mlmprep.cli.render import tokenize_text
    from mlmprep.pipeline.tokenize.tokenize import TokenizeConfig, tokenize

    summary = tokenize(
        list(inputs), out_prefix, TokenizeConfig(**config_values), options, unit_size
    )
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    if summary["already_built"]:
        click.echo(f"{out_prefix}.bin/.idx already hold this output; nothing to do.")
    if not quiet:
        for warning in summary["warnings"]:
            click.echo(f"warning: {warning}", err=True)
    click.echo(tokenize_text(summary, out_prefix))


def _print_plan(
    inputs: list[str], prefix: str, config_values: dict, unit_size: int, as_json: bool
) -> None:
    from mlmprep.cli.render import tokenize_plan_text
    from mlmprep.pipeline.plan.tokenize_estimate import estimate_tokenize
    from mlmprep.pipeline.tokenize.tokenize import TokenizeConfig

    estimate = estimate_tokenize(inputs, prefix, TokenizeConfig(**config_values), unit_size)
    click.echo(
        json.dumps(estimate.to_dict(), sort_keys=True) if as_json else tokenize_plan_text(estimate)
    )
