"""`mlmprep report`: one self-contained HTML page of plots about a build (or two, side by
side), for a person checking a build or a CI drift check.

Plots are drawn with matplotlib (extra `mlmprep[report]`) and embedded as PNG data URLs:
the page loads no script, style sheet or image from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import numpy as np

from mlmprep.core.config import TRAIN
from mlmprep.core.errors import ConfigError
from mlmprep.formats.schema import list_values
from mlmprep.outputs.finished_build import FinishedBuild
from mlmprep.outputs.stats import split_stats

TOP_TOKENS = 20
COLORS = ("#3465a4", "#cc6f0b")


@dataclass
class BuildFacts:
    """What the plots of one build need: `stats` plus distributions `stats` does not keep."""

    name: str
    stats: dict
    lengths: np.ndarray  # instances per length (index = length)
    masked: np.ndarray  # instances per masked-position count
    token_counts: np.ndarray  # occurrences of each content id (original ids, no specials)
    shard_rows: list[int] = field(default_factory=list)
    shard_tokens: list[int] = field(default_factory=list)
    bin_lengths: dict[int, np.ndarray] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)


def collect(output_dir: str, split: str = TRAIN) -> BuildFacts:
    """Stream over a build's shards once for the distributions of the report."""
    build = FinishedBuild(output_dir)
    encoder = build.tokenizer
    max_len = build.config["max_seq_length"]
    facts = BuildFacts(
        name=output_dir,
        stats=split_stats(build, split),
        lengths=np.zeros(max_len + 1, np.int64),
        masked=np.zeros(max_len + 1, np.int64),
        token_counts=np.zeros(encoder.vocab_size, np.int64),
    )
    for shard in build.shards(split):
        rows = tokens = 0
        for batch in build.batches(shard):
            lengths = batch.column("num_tokens").to_numpy().astype(np.int64)
            facts.lengths += np.bincount(lengths, minlength=max_len + 1)[: max_len + 1]
            ids, offsets = list_values(batch.column("input_ids"))
            ids = ids.astype(np.int64)
            if "masked_lm_positions" in batch.schema.names:
                positions, mask_offsets = list_values(batch.column("masked_lm_positions"))
                originals, _ = list_values(batch.column("masked_lm_ids"))
                counts = np.diff(mask_offsets)
                facts.masked += np.bincount(counts, minlength=max_len + 1)[: max_len + 1]
                row = np.repeat(np.arange(len(counts)), counts)
                ids[offsets[row] + positions] = originals
            facts.token_counts += np.bincount(ids, minlength=encoder.vocab_size)
            if "length_bin" in batch.schema.names:
                bins = batch.column("length_bin").to_numpy()
                for value in np.unique(bins):
                    counts = np.bincount(lengths[bins == value], minlength=max_len + 1)
                    facts.bin_lengths.setdefault(int(value), np.zeros(max_len + 1, np.int64))
                    facts.bin_lengths[int(value)] += counts[: max_len + 1]
            rows += batch.num_rows
            tokens += int(lengths.sum())
        facts.shard_rows.append(rows)
        facts.shard_tokens.append(tokens)
    role_ids = list(build.index["tokenizer"]["special_ids"].values())
    facts.token_counts[[i for i in role_ids if i != encoder.special_ids.unk]] = 0  # content only
    top = np.argsort(-facts.token_counts, kind="stable")[:TOP_TOKENS]
    facts.tokens = [repr(encoder.id_to_token(int(i))) for i in top]
    return facts


def build_report(output_dir: str, compare: str | None = None, split: str = TRAIN) -> str:
    """The HTML page for a build (and another one to compare it with)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "mlmprep report needs matplotlib: pip install 'mlmprep[report]'"
        ) from None
    builds = [collect(output_dir, split)] + ([collect(compare, split)] if compare else [])
    figures = [
        ("Instance length", _length_plot),
        ("Masked positions per instance", _masked_plot),
        ("Masked tokens: [MASK] / random / kept", _split_plot),
        ("Sentence labels", _label_plot),
        ("Rows and tokens per shard", _shard_plot),
        (f"Most frequent tokens (top {TOP_TOKENS}) and [UNK] rate", _token_plot),
        ("Documents: used, skipped per reason, repaired", _accounting_plot),
    ]
    if any("mixture" in b.stats for b in builds):
        figures.append(("Recipe mixture: share asked and achieved, passes", _mixture_plot))
    sections = []
    for title, draw in figures:
        figure, axes = plt.subplots(1, len(builds), figsize=(6 * len(builds), 3.6), squeeze=False)
        for ax, facts, color in zip(axes[0], builds, COLORS):
            draw(ax, facts, color)
            ax.set_title(facts.name, fontsize=9)
        figure.tight_layout()
        sections.append(f"<h2>{html.escape(title)}</h2>\n{_embed(figure)}")
        plt.close(figure)
    return _page(builds, sections)


def _embed(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _length_plot(ax, facts: BuildFacts, color: str) -> None:
    if facts.bin_lengths:
        bottom = np.zeros(len(facts.lengths))
        for value, counts in sorted(facts.bin_lengths.items()):
            ax.bar(np.arange(len(counts)), counts, bottom=bottom, width=1.0, label=f"bin {value}")
            bottom += counts
        ax.legend(fontsize=6, ncol=2)
    else:
        ax.bar(np.arange(len(facts.lengths)), facts.lengths, width=1.0, color=color)
    ax.set_xlabel("tokens")
    ax.set_ylabel("instances")


def _masked_plot(ax, facts: BuildFacts, color: str) -> None:
    last = int(np.flatnonzero(facts.masked).max()) + 1 if facts.masked.any() else 1
    ax.bar(np.arange(last + 1), facts.masked[: last + 1], color=color)
    ax.set_xlabel(f"masked positions (mean {facts.stats['mean_masked']:.2f})")
    ax.set_ylabel("instances")


def _split_plot(ax, facts: BuildFacts, color: str) -> None:
    split = facts.stats["mask_split"]
    ax.bar(list(split), list(split.values()), color=color)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of masked tokens")


def _label_plot(ax, facts: BuildFacts, color: str) -> None:
    stats = facts.stats
    if stats["objective"] == "nsp":
        shares = {
            "random next": stats["nsp_random_fraction"],
            "true next": 1 - stats["nsp_random_fraction"],
            "forced random (of chunks)": stats["forced_random_fraction"],
        }
    elif stats["objective"] == "sop":
        swapped = stats["sop_swapped_fraction"]
        shares = {"swapped": swapped, "in order": 1 - swapped}
    else:
        shares = {"no label (MLM only)": 0.0}
    ax.bar(list(shares), list(shares.values()), color=color)
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelsize=7)


def _shard_plot(ax, facts: BuildFacts, color: str) -> None:
    index = np.arange(len(facts.shard_rows))
    ax.bar(index, facts.shard_rows, color=color)
    ax.set_xticks(index[:: max(1, len(index) // 10)])
    ax.set_xlabel("shard")
    ax.set_ylabel("rows")
    twin = ax.twinx()
    twin.plot(index, facts.shard_tokens, color="black", marker=".")
    twin.set_ylabel("tokens")


def _token_plot(ax, facts: BuildFacts, color: str) -> None:
    counts = -np.sort(-facts.token_counts)[:TOP_TOKENS]
    ax.barh(np.arange(len(counts))[::-1], counts, color=color)
    ax.set_yticks(np.arange(len(counts))[::-1], facts.tokens, fontsize=6)
    ax.set_xlabel(f"occurrences ([UNK] rate {facts.stats['unk_rate']:.5f})")


def _accounting_plot(ax, facts: BuildFacts, color: str) -> None:
    documents = facts.stats["documents"]
    bars = {"used": documents["used"], **documents["skipped"], **facts.stats["repaired"]}
    ax.bar(list(bars), list(bars.values()), color=color)
    ax.set_ylabel("documents")
    ax.tick_params(axis="x", labelsize=7, rotation=20)


def _mixture_plot(ax, facts: BuildFacts, color: str) -> None:
    """A recipe phase's text-token share per source, asked against achieved, with the
    passes over each source written above its bars."""
    if "mixture" not in facts.stats:
        ax.text(0.5, 0.5, "not a recipe phase", ha="center", transform=ax.transAxes)
        return
    sources = facts.stats["mixture"]["sources"]
    names = list(sources)
    where = np.arange(len(names))
    asked = [sources[n]["asked_share"] for n in names]
    achieved = [sources[n]["achieved_share"] for n in names]
    ax.bar(where - 0.2, asked, width=0.4, color="#999999", label="asked")
    ax.bar(where + 0.2, achieved, width=0.4, color=color, label="achieved")
    for x, name in zip(where, names):
        top = max(sources[name]["asked_share"], sources[name]["achieved_share"])
        ax.text(x, top, f"{sources[name]['passes']:.2f}x", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(where, names, fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of the phase's text tokens")
    ax.legend(fontsize=7)


KEY_STATS = (
    "instances",
    "tokens",
    "mean_tokens",
    "frac_shorter_than_max",
    "mean_masked",
    "masked_per_token",
    "nsp_random_fraction",
    "sop_swapped_fraction",
    "unk_rate",
)
OBJECTIVE_STATS = {"nsp_random_fraction": "nsp", "sop_swapped_fraction": "sop"}


def _applies(key: str, stats: dict) -> bool:
    """A label statistic means something only for its own objective."""
    return OBJECTIVE_STATS.get(key, stats["objective"]) == stats["objective"]


def _page(builds: list[BuildFacts], sections: list[str]) -> str:
    header = "".join(f"<th>{html.escape(b.name)}</th>" for b in builds)
    rows = "".join(
        f"<tr><td>{key}</td>"
        + "".join(f"<td>{b.stats[key] if _applies(key, b.stats) else 'n/a'}</td>" for b in builds)
        + "</tr>"
        for key in KEY_STATS
        if any(_applies(key, b.stats) for b in builds)
    )
    title = " vs ".join(html.escape(b.name) for b in builds)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlmprep report: {title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
img{{max-width:100%}}</style></head>
<body><h1>mlmprep report: {title}</h1>
<table><tr><th></th>{header}</tr>{rows}</table>
{"".join(sections)}
</body></html>
"""
