"""The docs' code blocks run as a reader would paste them: every page in reading order,
in one fresh directory holding only the repository's sample (`mlmprep/data/sample`) and
its copy `corpus/`, as the guide says. A block marked `<!-- tested -->` runs: Python in
one namespace per page, console blocks command by command with their printed output
compared line for line (timings excepted), sh blocks command by command. A block marked
`<!-- tested: NAME -->` is a file the later blocks use, written as shown. Every console
and sh block of the pages below is either run or marked `<!-- not run: why -->`."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
READING_ORDER = [ROOT / "README.md", *(ROOT / "docs" / f for f in ("guide.md", "training.md"))]
PAGES = READING_ORDER + sorted(set((ROOT / "docs").glob("*.md")) - set(READING_ORDER))
FENCE = r"```(\w+)\n(.*?)```"
BLOCK = re.compile(r"<!-- (tested|not run)(?::\s*([^>]*?))?\s*-->\n" + FENCE, re.DOTALL)
ANY_BLOCK = re.compile(r"(?:<!-- [^>]*-->\n)?" + FENCE, re.DOTALL)
MARKED_KINDS = ("console", "sh")  # blocks of commands: each is run or says why not
# what differs between two runs of the same command
TIMING_LINES = ("speed:", "temp disk:")
TIMING_KEYS = {"seconds", "mb_per_s", "instances_per_s", "peak_spill_bytes", "storage_retries"}


def run_blocks(page: Path) -> list[tuple[str, str, str]]:
    """(file, kind, code) of the blocks marked to run or to be written."""
    return [(name, kind, code) for mark, name, kind, code in BLOCK.findall(_text(page))
            if mark == "tested"]  # fmt: skip


def unmarked_command_blocks(page: Path) -> list[str]:
    """The first line of each console or sh block that is neither run nor says why not."""
    return [
        f"{page.name}: {code.splitlines()[0] if code else ''}"
        for match in ANY_BLOCK.finditer(_text(page))
        for kind, code in [match.groups()]
        if kind in MARKED_KINDS and not match.group(0).startswith("<!-- ")
    ]


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def same_output(got: str, expected: str) -> bool:
    """Equal line for line, except a timing line's figures and a JSON object's timings."""
    got_lines, expected_lines = got.rstrip("\n").split("\n"), expected.rstrip("\n").split("\n")
    if len(got_lines) != len(expected_lines):
        return False
    return all(_same_line(g, e) for g, e in zip(got_lines, expected_lines))


def _same_line(got: str, expected: str) -> bool:
    if expected.startswith(TIMING_LINES):
        return got.split(":", 1)[0] == expected.split(":", 1)[0]
    if expected.startswith("{"):
        return _without_timings(json.loads(got)) == _without_timings(json.loads(expected))
    return got == expected


def _without_timings(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key not in TIMING_KEYS}


def run_command(line: str, cwd: Path) -> str:
    """One `mlmprep ...` line, as the installed script runs it; its stdout."""
    args = shlex.split(line, comments=True)
    assert args[0] == "mlmprep", line
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mlmprep")), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, f"{line}\n{done.stderr}"
    return done.stdout


def run_console(block: str, cwd: Path) -> None:
    """Each `$ command` runs; the lines up to the next one are its expected output."""
    for command in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
        line, _, expected = command.partition("\n")
        got = run_command(line, cwd)
        assert same_output(got, expected), f"{line}\n--- printed:\n{got}--- shown:\n{expected}"


def run_sh(block: str, cwd: Path) -> None:
    """Each command runs: a line that is not a comment, with the lines a backslash
    continues it onto."""
    for line in block.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            run_command(line, cwd)


@pytest.fixture
def fresh_directory(tmp_path, monkeypatch) -> Path:
    """What a reader starts from: the repository's sample, and `corpus/` copied from it."""
    directory = tmp_path / "reader"
    (directory / "mlmprep" / "data").mkdir(parents=True)
    (directory / "mlmprep" / "data" / "sample").symlink_to(SAMPLE_DIR)
    shutil.copytree(SAMPLE_DIR, directory / "corpus")
    monkeypatch.chdir(directory)
    return directory


def test_every_page_runs_in_reading_order_in_one_fresh_directory(fresh_directory):
    for page in PAGES:
        namespace: dict = {}
        for file, kind, code in run_blocks(page):
            if file:
                (fresh_directory / file).write_text(code, encoding="utf-8")
            elif kind == "python":
                exec(compile(code, f"{page.name} block", "exec"), namespace)
            elif kind == "console":
                run_console(code, fresh_directory)
            else:
                run_sh(code, fresh_directory)


def test_every_command_block_runs_or_says_why_not():
    assert [line for page in PAGES for line in unmarked_command_blocks(page)] == []
    assert sum(len(run_blocks(p)) for p in PAGES) >= 20


def test_timings_are_the_only_figures_let_go():
    shown = "documents: 37 used\nspeed:     0.43 MB/s (0.7 s)"
    assert same_output("documents: 37 used\nspeed:     9.99 MB/s (0.1 s)\n", shown)
    assert not same_output("documents: 36 used\nspeed:     0.43 MB/s (0.7 s)\n", shown)
    assert not same_output("documents: 37 used\n", shown)
    summary = {"documents": 37, "seconds": 0.7}
    assert same_output(json.dumps({**summary, "seconds": 2.0}), json.dumps(summary))
    assert not same_output(json.dumps({**summary, "documents": 3}), json.dumps(summary))
