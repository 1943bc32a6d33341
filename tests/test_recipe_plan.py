"""`plan --recipe`: the mixture the build will draw to and each phase's build, planned
from samples before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main

from .test_recipe_builds import corpus, document_tokens, expected_targets, run, write_recipe

__all__ = ["corpus"]  # the fixture, shared with the build's tests

PHASES = """
[[phases]]
name = "pretrain"
tokens = 40_000
alpha = 0.3
max_seq_length = 128

[[phases]]
name = "extension"
sources = ["austen", "notes"]
tokens = 20_000
weights = {austen = 3, notes = 1}
max_seq_length = 256
objective = "none"
"""


def plan_json(recipe: Path, out: Path, *options: str) -> dict:
    result = CliRunner().invoke(
        main, ["plan", "--recipe", str(recipe), str(out), "--workers", "1", "--json", *options]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_plan_has_the_build_s_targets_and_about_its_rows(corpus, tmp_path):
    """Sources smaller than the plan's sample are counted exactly, so the plan's targets
    are the formula's; rows and units are the build's within the sample's error."""
    recipe = write_recipe(corpus, PHASES)
    out = tmp_path / "out"
    plan = plan_json(recipe, out)
    assert not out.exists()  # a plan writes nothing
    available = {name: int(t.sum()) for name, t in document_tokens(corpus).items()}
    assert {s["name"]: s["tokens"] for s in plan["sources"]} == available
    pretrain, extension = plan["phases"]
    assert {n: r["target_tokens"] for n, r in pretrain["mixture"]["sources"].items()} == (
        expected_targets(available, 40_000, alpha=0.3)
    )
    want = expected_targets(
        {n: available[n] for n in ("austen", "notes")}, 20_000, weights={"austen": 3, "notes": 1}
    )
    assert {n: r["target_tokens"] for n, r in extension["mixture"]["sources"].items()} == want
    built = run(recipe, out)
    for planned, phase in zip(plan["phases"], built["phases"]):
        index = json.loads((out / phase["name"] / "index.json").read_text())
        rows = sum(phase["rows"].values())
        assert abs(planned["plan"]["rows"] - rows) <= 0.15 * rows, phase["name"]
        assert planned["plan"]["units"] == index["run"]["units"], phase["name"]
        for name, row in planned["mixture"]["sources"].items():
            drawn = phase["mixture"]["sources"][name]
            assert abs(row["passes"] - drawn["passes"]) < 0.1, (phase["name"], name)
    assert plan["seconds"] > 0 and plan["output_bytes"] > 0
    assert not any(source["tokenized"] for source in plan["sources"])
    # planned again after the build: the sources' stores are read, not sampled again
    again = plan_json(recipe, out)
    counted = document_tokens(corpus)
    for source in again["sources"]:
        assert source["tokenized"] and source["seconds"] == 0, source["name"]
        assert source["tokens"] == available[source["name"]]
        assert source["documents"] == len(counted[source["name"]])
    assert [p["mixture"] for p in again["phases"]] == [p["mixture"] for p in plan["phases"]]
    store = out / "sources" / "notes.bin"
    store.write_bytes(store.read_bytes()[:-8])  # damaged: sampled again
    damaged = {s["name"]: s["tokenized"] for s in plan_json(recipe, out)["sources"]}
    assert damaged == {"austen": True, "kjv": True, "notes": False}


def test_the_plan_warns_as_the_build_does(corpus, tmp_path):
    recipe = write_recipe(
        corpus, '[[phases]]\nname = "many"\nsources = ["notes"]\ntokens = 20_000\n'
    )
    plan = plan_json(recipe, tmp_path / "out")
    built = run(recipe, tmp_path / "out")
    assert plan["warnings"] and plan["warnings"] == built["warnings"]
    text = CliRunner().invoke(
        main, ["plan", "--recipe", str(recipe), str(tmp_path / "o2"), "--workers", "1"]
    )
    assert "warning: phase many: source notes is repeated" in text.output


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--dupe-factor", "2"], "--dupe-factor does not go with --recipe: a phase repeats"),
        (["--max-seq-length", "64"], "set it in the recipe's [build] table or in a phase"),
        (["--target-minutes", "3"], "--target-minutes does not go with --recipe"),
        (["--input-bytes", "1000"], "--input-bytes does not go with --recipe"),
    ],
)
def test_options_the_recipe_says_are_refused(corpus, tmp_path, extra, message):
    recipe = write_recipe(corpus, PHASES)
    result = CliRunner().invoke(
        main, ["plan", "--recipe", str(recipe), str(tmp_path / "out"), *extra]
    )
    assert result.exit_code == 2 and message in result.output


def test_a_bad_recipe_is_one_line_in_the_plan_too(corpus, tmp_path):
    recipe = write_recipe(corpus, '[[phases]]\nname = "p"\nsources = ["austin"]\n')
    result = CliRunner().invoke(main, ["plan", "--recipe", str(recipe), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "recipe.toml: phases[0] (p).sources: no source 'austin' is defined; did you mean " in (
        result.output
    )
    assert not (tmp_path / "out").exists()
