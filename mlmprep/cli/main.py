"""The `mlmprep` command group: parse options, call the library, print. The commands live
in make_commands (build, plan, vocab), tokenize_command and read_commands (stats, show,
validate, report, export)."""

from __future__ import annotations

import sys

import click

from mlmprep import __version__
from mlmprep.cli import make_commands, read_commands, tokenize_command

# When a build is killed (kill -9, the OOM killer), multiprocessing's resource tracker
# removes the semaphores the build held and warns that they "leaked": true of every
# such kill and nothing to act on (the next run resumes). The tracker takes its warning
# filters from this process's -W options, so it is silenced here, for it alone.
TRACKER_WARNING = "ignore:resource_tracker:UserWarning"
if TRACKER_WARNING not in sys.warnoptions:
    sys.warnoptions.append(TRACKER_WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlmprep")
def main() -> None:
    """Turn raw text corpora into BERT pretraining data (NSP pairs + masked LM) as Parquet;
    RoBERTa, XLM-R and ModernBERT-style data with their tokenizers too.

    \b
    Examples:
      mlmprep build corpus/ out/            # raw text -> Parquet shards + index.json
      mlmprep stats out/                    # what is in it, is it healthy
      mlmprep show out/ -n 3                # decode a few instances, masks visible
      mlmprep validate out/                 # checksums + invariants
      mlmprep plan corpus/ out/             # what a build would make and need
      mlmprep export out/ mds/ --format mds # files for existing trainers (also lddl,
                                            # nvidia-hdf5, tfrecord)
      mlmprep tokenize corpus/ data/wiki    # Megatron .bin/.idx for pretrain_bert.py
      mlmprep report out/ -o report.html    # one HTML page of plots
      mlmprep vocab corpus/ -o vocab.txt    # train a WordPiece vocabulary
      mlmprep vocab corpus/ -o bpe.json --model bpe  # or a RoBERTa-layout tokenizer
      mlmprep build corpus/ out/ --tokenizer bpe.json --objective none  # FULL-SENTENCES
    """


for command in (
    make_commands.build_command,
    make_commands.plan_command,
    read_commands.stats_command,
    read_commands.show_command,
    read_commands.validate_command,
    read_commands.report_command,
    read_commands.export_command,
    make_commands.vocab_command,
    tokenize_command.tokenize_command,
):
    main.add_command(command)
