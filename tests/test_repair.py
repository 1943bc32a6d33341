"""A damaged build: every command says so in one line, validate says how to repair, and
a rerun of the build writes exactly the damaged shards again, byte-identical."""

import hashlib

from click.testing import CliRunner

from mlmprep.cli.main import main

from .helpers import SAMPLE_DIR, shard_hashes

BUILD = ["build", str(SAMPLE_DIR), "--shard-size", "200", "-q"]


def test_a_rerun_rewrites_exactly_the_damaged_shards(tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:]]).exit_code == 0
    clean = shard_hashes(out)
    shards = sorted(out.glob("*.parquet"))
    assert len(shards) >= 4
    shards[1].unlink()
    shards[2].write_bytes(shards[2].read_bytes()[:1000])
    untouched = {p.name: p.stat().st_mtime_ns for p in (shards[0], shards[3])}

    validated = CliRunner().invoke(main, ["validate", str(out)])
    assert validated.exit_code == 1
    assert "to repair: run the same `mlmprep build` command again" in validated.stderr
    for command in (["stats", str(out)], ["report", str(out), "-o", str(tmp_path / "r.html")],
                    ["export", str(out), str(tmp_path / "x"), "--format", "mds"]):  # fmt: skip
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"Error: {shards[1]}: missing;"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output

    rerun = CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:]])
    assert rerun.exit_code == 0, rerun.output
    assert f"repaired: {shards[1].name}, {shards[2].name}" in rerun.stdout
    assert shard_hashes(out) == clean
    assert {p.name: p.stat().st_mtime_ns for p in (shards[0], shards[3])} == untouched
    assert not (out / ".mlmprep-work").exists()
    assert CliRunner().invoke(main, ["validate", str(out)]).exit_code == 0


def test_verify_finds_a_shard_changed_in_place(tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:]]).exit_code == 0
    shard = sorted(out.glob("*.parquet"))[0]
    clean = hashlib.sha256(shard.read_bytes()).hexdigest()
    data = bytearray(shard.read_bytes())
    data[200] ^= 0xFF  # same size: only a checksum sees it
    shard.write_bytes(bytes(data))
    plain = CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:]])
    assert "nothing to do" in plain.stdout
    verified = CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:], "--verify"])
    assert verified.exit_code == 0 and f"repaired: {shard.name}" in verified.stdout
    assert hashlib.sha256(shard.read_bytes()).hexdigest() == clean


def test_a_shard_damaged_inside_is_named_and_the_advised_command_repairs_it(tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:]]).exit_code == 0
    clean = shard_hashes(out)
    shard = sorted(out.glob("*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)  # same size, pages that do not decode
    shard.write_bytes(bytes(data))
    for command in (["stats", str(out)], ["show", str(out), "-n", "701"],
                    ["report", str(out), "-o", str(tmp_path / "r.html")],
                    ["export", str(out), str(tmp_path / "x"), "--format", "mds"]):  # fmt: skip
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"Error: {shard}: unreadable ("), result.stderr
        assert f"`mlmprep validate {out}` lists the damage" in result.stderr
        assert "again with --verify to repair it" in result.stderr
        assert result.stderr.count("\n") == 1 and "resume" not in result.stderr

    validated = CliRunner().invoke(main, ["validate", str(out)])
    advice = "to repair: run the same `mlmprep build` command again with --verify"
    assert validated.exit_code == 1 and advice in validated.stderr
    repaired = CliRunner().invoke(main, [*BUILD[:2], str(out), *BUILD[2:], "--verify"])
    assert repaired.exit_code == 0 and f"repaired: {shard.name}" in repaired.stdout
    assert shard_hashes(out) == clean
    assert CliRunner().invoke(main, ["validate", str(out)]).exit_code == 0
