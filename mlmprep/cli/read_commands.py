"""Commands that read a finished build: stats, show, validate, report, export. Each
imports the library it calls when it runs, so `--help` stays quick."""

from __future__ import annotations

import json
import sys

import click

from mlmprep.cli.errors import friendly
from mlmprep.cli.options import ENGINE_OPTION, SCHEDULER_OPTION, SPLIT_OPTION, storage_options
from mlmprep.core.config import SOP_LABEL
from mlmprep.outputs.export.formats import FORMATS, MDS_COMPRESSIONS


@click.command(name="stats")
@click.argument("output_dir")
@SPLIT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@storage_options()
@friendly
def stats_command(output_dir: str, split: str, as_json: bool) -> None:
    """Statistics of a build: lengths, NSP balance, masking, [UNK] rate, accounting. Of a
    `mlmprep tokenize` output (give its prefix): counts, sequence lengths, what Megatron
    will skip.

    \b
    Examples:
      mlmprep stats out/ --json | jq .nsp_random_fraction
      mlmprep stats data/wiki
      mlmprep stats recipe-out/          # each phase's mixture: asked against achieved
    """
    from mlmprep.cli.render import stats_text, tokenize_stats_text
    from mlmprep.outputs.indexed_output import tokenize_prefix, tokenize_stats

    prefix = tokenize_prefix(output_dir)
    if prefix is not None:
        stats = tokenize_stats(prefix)
        click.echo(json.dumps(stats, sort_keys=True) if as_json else tokenize_stats_text(stats))
        return
    from mlmprep.outputs.stats import compute_stats, recipe_summary

    recipe = recipe_summary(output_dir)
    if recipe is not None:  # a recipe's output: its phases and their mixtures
        from mlmprep.cli.render import recipe_text

        click.echo(
            json.dumps(recipe, sort_keys=True) if as_json else recipe_text(recipe, run=False)
        )
        return
    stats = compute_stats(output_dir, split)
    if as_json:
        click.echo(json.dumps(stats, sort_keys=True))
        return
    click.echo(stats_text(stats))


@click.command(name="show")
@click.argument("output_dir")
@click.option(
    "-n",
    "count",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Instances to show.",
)
@click.option(
    "--offset", default=0, show_default=True, type=click.IntRange(min=0), help="Rows to skip."
)
@SPLIT_OPTION
@storage_options()
@friendly
def show_command(output_dir: str, count: int, offset: int, split: str) -> None:
    """Decode instances with the build's tokenizer; masked positions appear as
    [MASK](original), A and B on lines of their own.

    \b
    Examples:
      mlmprep show out/ -n 3
      mlmprep show out/ -n 5 --offset 1000 --split validation
    """
    from mlmprep.outputs.show import show

    click.echo("\n\n".join(show(output_dir, count, split, offset)))


@click.command(name="validate")
@click.argument("output_dir")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@storage_options()
@friendly
def validate_command(output_dir: str, as_json: bool) -> None:
    """Re-hash every shard against index.json and check every row's invariants. For a
    `mlmprep tokenize` output (give its prefix): the .idx header against the file sizes,
    pointers and document indices, checksums, ids within the vocabulary.

    Exits 1 and prints every problem found (each bad shard, with its first bad row).

    \b
    Examples:
      mlmprep validate out/ && echo healthy
      mlmprep validate data/wiki
    """
    from mlmprep.outputs.indexed_output import tokenize_prefix, validate_tokenize
    from mlmprep.outputs.validate import validate

    prefix = tokenize_prefix(output_dir)
    result = validate(output_dir) if prefix is None else validate_tokenize(prefix)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    elif result["ok"] and prefix is not None:
        click.echo(f"ok: {result['sequences']} sequences in {result['documents']} documents")
    elif result["ok"]:
        click.echo(f"ok: {result['shards']} shards, {result['rows']} rows")
    else:
        for problem in result["problems"]:
            click.echo(f"Error: {problem}", err=True)
        if prefix is not None:
            repair = "run the same `mlmprep tokenize` command again; it writes what is missing "
            repair += "or damaged again"
        else:
            repair = (
                "run the same `mlmprep build` command again with --verify; it checks every "
                "shard's sha256 and writes what is missing or damaged again"
            )
        click.echo(f"to repair: {repair}, byte-identical", err=True)
    if not result["ok"]:
        sys.exit(1)


@click.command(name="report")
@click.argument("output_dir")
@click.option("-o", "--output", required=True, help="Where to write the HTML page.")
@click.option("--compare", default=None, help="Another build to show side by side.")
@SPLIT_OPTION
@storage_options()
@friendly
def report_command(output_dir: str, output: str, compare: str | None, split: str) -> None:
    """One self-contained HTML page of plots: lengths, masking, labels, shards, tokens and
    the accounting; with --compare, two builds side by side (mlmprep[report]).

    \b
    Examples:
      mlmprep report out/ -o report.html
      mlmprep report out/ --compare previous-out/ -o drift.html
    """
    from mlmprep.core.files import write_text_atomically
    from mlmprep.outputs.report import build_report

    write_text_atomically(output, build_report(output_dir, compare, split))
    click.echo(f"{output}: report of {output_dir}" + (f" vs {compare}" if compare else ""))


@click.command(name="export")
@click.argument("output_dir")
@click.argument("dest")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    required=True,
    help="; ".join(f"{name}: {f.description}" for name, f in FORMATS.items()) + ".",
)
@click.option(
    "--num-files",
    type=click.IntRange(min=1),
    help="Files per split (per length bin for lddl), rows balanced n/n+1. Default: one per "
    "build shard, at least 2, up to 8 while each keeps 64 rows. lddl: a multiple of "
    "world size x loader workers.",
)
@click.option("--gzip", "compress", is_flag=True, help="gzip the TFRecord files.")
@click.option(
    "--compression",
    type=click.Choice(MDS_COMPRESSIONS),
    help="Compress MDS shards (raw by default, which ModernBERT's NoStreamingDataset needs).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Remove an earlier export's files from DEST first (only files exports write).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes writing files (each file is one task; the bytes are the same for any "
    "count). [default: CPUs this process may use]",
)
@ENGINE_OPTION
@SCHEDULER_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@storage_options()
@friendly
def export_command(
    output_dir: str,
    dest: str,
    fmt: str,
    num_files: int | None,
    compress: bool,
    compression: str | None,
    overwrite: bool,
    workers: int | None,
    engine: str,
    scheduler: str | None,
    quiet: bool,
) -> None:
    """Write a build in the format a trainer already reads, so it needs no change.
    NSP label 1 = random next everywhere; an SOP build writes its sentence_order_label
    there. Resumable: rerun the same command after a failure. DEST must be empty, or
    hold the same export (resumed) or an earlier one (--overwrite removes its files).

    \b
    mds: DEST/train/ and DEST/validation/, each with index.json, for
         StreamingDataset(local=DEST, split="train"); input_ids as uint16 when the
         vocabulary fits, else uint32. Any build (dynamic and --objective none too).
    lddl: DEST/train/*.parquet[_<bin>] and DEST/vocab.txt, for
         lddl.torch.get_bert_pretrain_data_loader("DEST/train", vocab_file="DEST/vocab.txt").
         BERT WordPiece NSP/SOP builds, static or dynamic masking.
    nvidia-hdf5, tfrecord: static NSP/SOP builds with BERT's layout.

    \b
    Examples:
      mlmprep export out/ mds/ --format mds
      mlmprep export out/ lddl/ --format lddl --num-files 16
      mlmprep export out/ hdf5/ --format nvidia-hdf5
      mlmprep export out/ tfrecords/ --format tfrecord --gzip
      mlmprep export out/ mds/ --format mds --workers 16
      mlmprep export out/ mds/ --format mds --engine dask --scheduler tcp://h:8786
    """
    from mlmprep.core.engines.local import available_cpus
    from mlmprep.outputs.export.export import export_build
    from mlmprep.outputs.export.writer import ExportOptions, ExportRun

    options = ExportOptions(fmt, num_files, compress, compression, overwrite)
    progress = not quiet and sys.stderr.isatty()
    run = ExportRun(workers or available_cpus(), engine, scheduler, progress)
    summary = export_build(output_dir, dest, options, run)
    if summary["already_exported"]:
        click.echo(f"{dest} already holds this export; nothing to do.")
    if summary.get("label_from") == SOP_LABEL:
        click.echo("note: an SOP build; the NSP label column holds its sentence_order_label")
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for split, rows in summary["left_out"].items():
        click.echo(
            f"note: {rows} {split} row(s) left out: LDDL needs files of n and n+1 rows, so a "
            "split (or bin) whose row count --num-files divides gives up one row"
        )
    counts = ", ".join(f"{split} {count}" for split, count in summary["files_per_split"].items())
    per_bin = " per length bin" if any("bin" in f for f in summary["files"]) else ""
    click.echo(f"{dest}: {len(summary['files'])} {fmt} files ({counts}{per_bin}), "
               f"{summary['rows']} rows{_format_facts(summary)}")  # fmt: skip


def _format_facts(summary: dict) -> str:
    """What a trainer's configuration needs to know about an export, in brackets."""
    if "input_ids_dtype" in summary:
        return f" (input_ids {summary['input_ids_dtype']})"
    if "vocab_file" in summary:
        return f" (vocab_file {summary['vocab_file']})"
    return (
        f" (max_seq_length {summary['max_seq_length']}, max_predictions_per_seq "
        f"{summary['max_predictions_per_seq']})"
    )
