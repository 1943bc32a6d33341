"""The docs' code blocks marked `<!-- tested -->` run here, on the bundled sample, in
the order they appear: Python blocks in one namespace per page, console blocks command
by command with their printed output compared line for line."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import SAMPLE_DIR, run_build

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"<!-- tested(?:: (\S+))? -->\n```(python|console|\w+)\n(.*?)```", re.DOTALL)


def marked_blocks(page: Path) -> list[tuple[str, str, str]]:
    """(file, kind, code): a block marked `<!-- tested: NAME -->` is a file the later
    blocks use, written as shown; the others are python or console blocks to run."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory laid out as the docs assume: the sample at mlmprep/data/sample, a
    static build in out/ and a dynamic one in out-dyn/."""
    directory = tmp_path_factory.mktemp("docs")
    (directory / "mlmprep" / "data").mkdir(parents=True)
    (directory / "mlmprep" / "data" / "sample").symlink_to(SAMPLE_DIR)
    run_build([SAMPLE_DIR], directory / "out")
    run_build([SAMPLE_DIR], directory / "out-dyn", masking="dynamic")
    return directory


def run_console(block: str, cwd: Path) -> None:
    """Each `$ command` runs; the lines up to the next one are its expected output."""
    commands = re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]
    for command in commands:
        line, _, expected = command.partition("\n")
        args = shlex.split(line)
        assert args[0] == "mlmprep", line
        done = subprocess.run(
            [str(Path(sys.executable).with_name("mlmprep")), *args[1:]],  # the installed script
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        assert done.stdout.rstrip("\n") == expected.rstrip("\n"), line


@pytest.mark.parametrize("page", [p for p in PAGES if marked_blocks(p)], ids=lambda p: p.name)
def test_the_marked_blocks_run_as_shown(page, workspace, tmp_path, monkeypatch):
    own = tmp_path / "workspace"  # each page starts from the same files
    shutil.copytree(workspace, own, symlinks=True)
    monkeypatch.chdir(own)
    namespace: dict = {}
    for file, kind, code in marked_blocks(page):
        if file:
            (own / file).write_text(code, encoding="utf-8")
        elif kind == "python":
            exec(compile(code, f"{page.name} block", "exec"), namespace)
        else:
            run_console(code, own)


def test_some_blocks_are_marked():
    assert sum(len(marked_blocks(p)) for p in PAGES) >= 8
