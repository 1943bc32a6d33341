"""Plain-text renderings of what the commands return, for the terminal (the CLI's --json
prints the same dicts as JSON)."""

from __future__ import annotations

from mlmprep.pipeline.plan.capacity import PlanEstimate
from mlmprep.pipeline.plan.resources import PhaseTime
from mlmprep.pipeline.plan.tokenize_estimate import TokenizeEstimate
from mlmprep.pipeline.recipe.recipe_plan import RecipePlan
from mlmprep.pipeline.sizing import Sizing


def build_text(summary: dict, output_dir: str) -> str:
    """The summary `mlmprep build` prints."""
    accounting = summary["accounting"]
    rows = ", ".join(f"{n} {split}" for split, n in summary["rows"].items())
    lines = [
        *accounting_lines(accounting),
        f"sentences: {summary['sentences']}" + _cut_text(summary),
        f"instances: {summary['instances']} ({rows})" + _short_rows_text(summary),
        f"shards:    {summary['shards']} in {output_dir}",
        f"speed:     {summary['mb_per_s']:.2f} MB/s, {summary['instances_per_s']:.0f} "
        f"instances/s ({summary['seconds']:.1f} s)",
        f"temp disk: {summary['peak_spill_bytes'] / 1e6:.1f} MB at peak (spill files, deleted)",
    ]
    if summary.get("storage_retries"):
        lines.append(f"retried:   {summary['storage_retries']} object-store requests")
    return "\n".join(lines)


def accounting_lines(accounting: dict) -> list[str]:
    """What was read: files skipped (when any), documents used and skipped, lines
    repaired (when any); `build` and `vocab` print these."""
    skipped = accounting["documents"]["skipped"]
    documents = accounting["documents"]["used"]
    lines = [f"documents: {documents} used, {sum(skipped.values())} skipped" + _reasons(skipped)]
    files_skipped = accounting["files"]["skipped"]
    if files_skipped:
        skipped_files = f"{sum(files_skipped.values())} skipped" + _reasons(files_skipped)
        lines.insert(0, f"files:     {accounting['files']['read']} read, {skipped_files}")
    if accounting["repaired"]:
        repaired = accounting["repaired"]
        lines.insert(1, f"repaired:  {sum(repaired.values())} lines" + _reasons(repaired))
    return lines


MIXTURE_COLUMNS = (  # a mixture row's key, its column's header and format
    ("available_tokens", "available", "{:,}"),
    ("asked_share", "asked", "{:.1%}"),
    ("target_tokens", "target", "{:,}"),
    ("drawn_tokens", "drawn", "{:,}"),
    ("achieved_share", "achieved", "{:.1%}"),
    ("passes", "passes", "{:.2f}"),
    ("documents", "documents", "{:,}"),
)


def mixture_text(mixture: dict) -> list[str]:
    """A phase's mixture: per source, the tokens it holds, the share asked, the target,
    the tokens drawn and the share achieved (once drawn), the passes over it and the
    documents used; the columns its rows have."""
    rows = mixture["sources"]
    columns = [c for c in MIXTURE_COLUMNS if all(c[0] in row for row in rows.values())]
    return _table(
        ("source", *(header for _, header, _ in columns)),
        [
            (name, *(form.format(row[key]) for key, _, form in columns))
            for name, row in rows.items()
        ],
    )


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Columns indented by two: the first left-aligned, the others right-aligned."""
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return [
        "  "
        + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]


def recipe_plan_text(plan: RecipePlan) -> str:
    """The human-readable `mlmprep plan --recipe`: each source tokenized once, then each
    phase with its mixture (about: from samples) and its build's plan."""
    lines = []
    for source in plan.sources:
        head = f"source {source.name}: {size_text(source.raw_bytes)} of text " + (
            f"({_plural(source.files, 'file')}),"
        )
        if source.tokenized:
            lines.append(
                f"{head} {source.documents:,} documents, {source.tokens:,} tokens; tokenized "
                f"already ({size_text(source.store_bytes)} in the output)"
            )
            continue
        lines.append(
            f"{head} about {source.documents:,} documents, {source.tokens:,} tokens; tokenized "
            f"once: about {size_text(source.store_bytes)}, {_duration(source.seconds)}"
        )
    for phase in plan.phases:
        build, memory = phase.plan, phase.plan.resources
        shards = ", ".join(f"{n:,} {split}" for split, n in build.shards.items())
        lines += [
            f"phase {phase.name}: about {build.rows:,} rows in "
            f"{_plural(sum(build.shards.values()), 'shard')} ({shards}), "
            f"{size_text(build.output_bytes)}; {size_text(build.spill_bytes)} of spill, "
            f"{size_text(memory.total_rss)} of memory at peak, {_duration(memory.seconds)} "
            f"with {_workers(build.workers)} ({_plural(build.tasks, 'unit')})",
            *mixture_text(phase.mixture),
        ]
    lines += [f"warning: {w}" for w in plan.warnings]
    lines.append(
        f"in all: about {_duration(plan.seconds)}, {size_text(plan.output_bytes)} of output "
        "(stores and shards); tokens and documents are scaled from samples, so the build's "
        "draws differ a little"
    )
    return "\n".join(lines)


def _files_line(stats: dict) -> str:
    """The input files read; a recipe phase reads its sources' token stores instead."""
    if "mixture" in stats:
        names = ", ".join(stats["mixture"]["sources"])
        return f"files:                none: read from the recipe's token stores ({names})"
    files = stats["files"]
    return (
        f"files:                {files['read']} read, skipped "
        f"{sum(files['skipped'].values())}{_reasons(files['skipped'])}"
    )


def _mixture_lines(stats: dict) -> list[str]:
    """A recipe phase's mixture in `stats`, with the split's rows per source."""
    if "mixture" not in stats:
        return []
    rows = ", ".join(f"{name} {n:,}" for name, n in stats["rows_by_source"].items())
    return [
        "mixture (text tokens of the recipe phase):",
        *mixture_text(stats["mixture"]),
        f"rows by source:       {rows}",
    ]


def recipe_text(summary: dict, run: bool = True) -> str:
    """What `mlmprep build --recipe` prints (with `run`: what this run did) and `stats`
    of a recipe's output: each source, each phase with its mixture."""
    lines = []
    for name, source in summary["sources"].items():
        done = "tokenized" if source["tokenized_now"] else "already tokenized"
        held = f"{source['documents']:,} documents, {source['tokens']:,} tokens"
        lines.append(f"source {name}: {held}" + (f" ({done})" if run else ""))
    for phase in summary["phases"]:
        rows = ", ".join(f"{n:,} {split}" for split, n in phase["rows"].items())
        state = f" ({_phase_state(phase)})" if run else ""
        lines.append(f"phase {phase['name']}: {rows} rows in {phase['output']}{state}")
        lines += mixture_text(phase["mixture"])
    return "\n".join(lines)


def _phase_state(phase: dict) -> str:
    if phase["already_built"]:
        return "already built; nothing to do"
    if phase["rebuilt_because_changed"]:
        return "changed in the recipe; built again"
    return "built"


def _reasons(counts: dict[str, int]) -> str:
    """(2 empty, 1 binary)"""
    return f" ({', '.join(f'{n} {reason}' for reason, n in counts.items())})" if counts else ""


def _short_rows_text(counts: dict) -> str:
    """; 4 left out under --min-row-tokens 64"""
    short = counts.get("rows_under_min_tokens", 0)
    return f"; {short} left out under --min-row-tokens {counts['min_row_tokens']}" if short else ""


def _cut_text(summary: dict) -> str:
    cut, long_cut = summary["sentences_cut"], summary["long_sentences_cut"]
    parts = [f"{cut} longer than a row, cut"] if cut else []
    parts += [f"{long_cut} over the character limit, cut"] if long_cut else []
    return f" ({'; '.join(parts)})" if parts else ""


def tokenize_text(summary: dict, prefix: str) -> str:
    """The summary `mlmprep tokenize` prints: what was made, and what Megatron's BERT
    dataset will skip of it, so the user knows before training."""
    counts, accounting = summary["counts"], summary["accounting"]
    skipped = accounting["documents"]["skipped"]
    skipped_text = ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"
    files = summary["files"]
    lines = [
        f"documents: {counts['documents']} used, skipped: {skipped_text}",
        f"sequences: {counts['sequences']:,} ({summary['identity']['config']['level']} level), "
        f"{counts['tokens']:,} tokens as {summary['dtype']}",
        f"written:   {prefix}.bin ({size_text(files['bin']['bytes'])}), {prefix}.idx "
        f"({size_text(files['idx']['bytes'])})",
    ]
    if accounting["files"]["skipped"]:
        lines.append(f"files skipped: {accounting['files']['skipped']}")
    if counts["long_sentences_cut"] or counts["empty_sentences"]:
        lines.append(
            f"sentences: {counts['long_sentences_cut']} cut at the character limit, "
            f"{counts['empty_sentences']} without tokens (not written)"
        )
    if summary["identity"]["config"]["level"] == "sentence":
        long_documents = counts["documents_with_a_sentence_over_512_tokens"]
        lines.append(
            f"megatron:  its BERT dataset skips {long_documents} documents with a sentence over "
            f"512 tokens ({counts['sentences_over_512_tokens']} sentences) and, with NSP, "
            f"{counts['one_sentence_documents']} one-sentence documents"
        )
    return "\n".join(lines)


def tokenize_stats_text(stats: dict) -> str:
    """The human-readable `mlmprep stats` of a tokenize output."""
    histogram = ", ".join(f"{span}: {n}" for span, n in stats["length_histogram"].items() if n)
    skipped = stats["accounting"]["documents"]["skipped"]
    return "\n".join(
        [
            f"documents:        {stats['documents']} (skipped: "
            f"{', '.join(f'{n} {r}' for r, n in skipped.items()) or 'none'})",
            f"sequences:        {stats['sequences']} at {stats['level']} level, {stats['tokens']} "
            f"tokens as {stats['dtype']}",
            f"sequence tokens:  mean {stats['mean_sequence_tokens']:.1f}, max "
            f"{stats['max_sequence_tokens']}",
            f"lengths:          {histogram}",
            _megatron_line(stats),
            f"sha256:           .bin {stats['files']['bin']['sha256'][:16]}..., .idx "
            f"{stats['files']['idx']['sha256'][:16]}...",
        ]
    )


def _megatron_line(stats: dict) -> str:
    """What Megatron's BERT dataset will skip (sentence level); a document-level output has
    no sentences to skip by."""
    counts = stats["counts"]
    if stats["level"] != "sentence":
        return (
            "megatron:         one sequence per document, for GPT-style and packed MLM "
            "datasets (BERT's NSP dataset needs --level sentence)"
        )
    return (
        f"megatron skips:   {counts['documents_with_a_sentence_over_512_tokens']} documents "
        f"with a sentence over 512 tokens, {counts['one_sentence_documents']} one-sentence "
        "documents (with NSP)"
    )


def tokenize_plan_text(plan: TokenizeEstimate) -> str:
    """The human-readable `mlmprep tokenize --plan`."""
    return "\n".join(
        [
            f"input:          {size_text(plan.raw_bytes)} of text ({plan.files} files; "
            f"{size_text(plan.sampled_bytes)} tokenized as a sample)",
            f"units:          {plan.units} of about {size_text(plan.unit_size)}",
            f"documents:      about {plan.documents:,}",
            f"sequences:      about {plan.sequences:,} ({plan.tokens:,} tokens as {plan.dtype})",
            f"output:         about {size_text(plan.bin_bytes)} .bin, {size_text(plan.idx_bytes)} "
            ".idx",
            f"temporary disk: about {size_text(plan.temporary_bytes)} at peak (partial files "
            "until the merge ends)",
        ]
    )


def plan_text(plan: PlanEstimate, target_minutes: float | None = None) -> str:
    """The human-readable plan."""
    sizing, sample, memory = plan.sizing, plan.sample, plan.resources
    buckets = ", ".join(f"{n} {split}" for split, n in sizing.buckets.items() if n)
    shards = ", ".join(f"{n:,} {split}" for split, n in plan.shards.items())
    source = f"{plan.files} files" if plan.files else "assumed, like the inputs"
    workers = _workers(plan.workers)
    lines = [
        f"input:            {size_text(plan.raw_bytes)} of text ({source}; "
        f"{size_text(sample.sampled_bytes)} built as a sample)",
        f"units:            {plan.units} of about {size_text(sizing.unit_size)} ({plan.tasks} "
        f"task{'s' if plan.tasks != 1 else ''}), read in windows of "
        f"{size_text(sizing.window_size)}",
        f"buckets:          {buckets} (each shuffled in memory by one worker)",
        *_groups_line(sizing),
        f"shards:           about {shards}",
        f"rows:             about {plan.rows:,} (from about {plan.tokens:,} tokens of text)",
        f"temporary disk:   about {size_text(plan.spill_bytes)} at peak (spill files), "
        f"beside about {size_text(plan.output_bytes)} of shards",
        f"memory:           about {size_text(memory.total_rss)} at peak in all ({workers}; "
        f"{size_text(memory.worker_rss)} the largest worker)",
        f"time:             about {_duration(memory.seconds)} with {workers}",
        *_phase_lines(memory.phases),
    ]
    if target_minutes is not None:
        cores = plan.cores_for_target
        lines.append(
            f"{f'within {target_minutes:g} min:':<18}"
            + (
                f"{_workers(cores)}"
                if cores
                else "not with any number of workers (one unit or bucket alone takes "
                "longer; lower --unit-size or --shard-size)"
            )
        )
    lines += [
        f"work-dir files:   at most {plan.work_dir_files:,}",
        f"object store:     about {plan.object_store_writes:,} writes and "
        f"{plan.object_store_reads:,} range reads of about {size_text(plan.slice_bytes)}",
    ]
    return "\n".join(lines)


def _groups_line(sizing: Sizing) -> list[str]:
    if not sizing.group_buckets:
        return []
    return [
        f"shuffle:          two levels, {sizing.group_count:,} groups of {sizing.group_buckets} "
        "neighbouring buckets (each unit's file read once per group)"
    ]


def _phase_lines(phases: list[PhaseTime]) -> list[str]:
    """One line per phase: tasks, the largest task's time, the phase's time."""
    lines = []
    for i, phase in enumerate(phases):
        label = "phases:" if i == 0 else ""
        after = " (mlmprep export, MDS)" if phase.name == "export" else ""
        lines.append(
            f"{label:<18}{phase.name:<7} {phase.tasks:>9,} tasks, largest "
            f"{_duration(phase.largest_task_seconds):>7}, in all {_duration(phase.seconds)}{after}"
        )
    return lines


def _workers(n: int) -> str:
    return _plural(n, "worker")


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def size_text(n: float) -> str:
    """Bytes in decimal units: 12.3 MB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _label_line(stats: dict) -> str:
    if stats["objective"] == "nsp":
        return (
            f"NSP random next:      {stats['nsp_random_fraction']:.4f} (forced by one-sentence "
            f"chunks: {stats['forced_random_fraction']:.4f}; "
            f"{stats['single_sentence_chunks']} such chunks; "
            f"{stats['skipped_single_sentence_chunks']} dropped, no other document)"
        )
    if stats["objective"] == "sop":
        return (
            f"SOP swapped:          {stats['sop_swapped_fraction']:.4f} (one-sentence documents "
            f"skipped: {stats['skipped_single_sentence_documents']}; sentences left unpaired: "
            f"{stats['unpaired_sentences']})"
        )
    return "labels:               none (MLM only)"


def stats_text(stats: dict) -> str:
    """The human-readable report of `mlmprep stats`."""
    documents = stats["documents"]
    lines = [
        f"instances:            {stats['instances']} in {stats['shards']} shards "
        f"(rows per shard {stats['rows_per_shard']['min']}-{stats['rows_per_shard']['max']})"
        + _short_rows_text(stats),
        f"tokens:               {stats['tokens']} (mean {stats['mean_tokens']:.1f}, median "
        f"{stats['median_tokens']}, p95 {stats['p95_tokens']})",
        f"shorter than max:     {stats['frac_shorter_than_max']:.3f}",
        _label_line(stats),
        f"masked per instance:  {stats['mean_masked']:.2f} ({stats['masked_per_token']:.4f} "
        "per token)",
        "mask/random/kept:     "
        + " / ".join(f"{k} {v:.3f}" for k, v in stats["mask_split"].items()),
        f"masked words whole:   {stats['whole_word_fraction']:.4f} (words by the tokenizer's "
        "rule: ## pieces, or Ġ/▁ word starts)",
        f"[UNK] rate:           {stats['unk_rate']:.5f}",
        f"sentences cut:        {stats['sentences_cut']} (longer than the segment limit), "
        f"{stats['long_sentences_cut']} (over the character limit, before tokenizing)",
        f"tokens dropped:       {stats['tokens_dropped']} ({stats['tokens_dropped_fraction']:.2%}"
        " of the text over all passes: truncated or left after the last chunk)",
        f"documents:            {stats['split_documents']} in {stats['split']}; whole build: "
        f"{documents['read']} read, {documents['used']} used, skipped "
        f"{sum(documents['skipped'].values())}{_reasons(documents['skipped'])}",
        _files_line(stats),
        f"lines repaired:       {sum(stats['repaired'].values())}{_reasons(stats['repaired'])}",
        *(f"warning:              {warning}" for warning in stats["warnings"]),
        *_mixture_lines(stats),
        "length histogram:",
    ]
    peak = max(stats["length_histogram"].values(), default=1)
    lines += [
        f"  {bucket:>9} {n:>8} {'#' * max(1, round(40 * n / peak))}"
        for bucket, n in stats["length_histogram"].items()
    ]
    return "\n".join(lines)
