"""`mlmprep report`: one self-contained page whose plots all load in a real browser."""

import base64
import io
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib", reason="matplotlib (mlmprep[report]) is not installed")
from PIL import Image

from mlmprep.cli.main import main

from .helpers import SAMPLE_DIR, run_build

PLOTS = 7
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    run_build([SAMPLE_DIR], directory / "a", shard_size=300, bin_size=32)
    run_build([SAMPLE_DIR], directory / "b", shard_size=300, seed=7)
    page = directory / "report.html"
    result = CliRunner().invoke(
        main, ["report", str(directory / "a"), "--compare", str(directory / "b"), "-o", str(page)]
    )
    assert result.exit_code == 0, result.output
    return page


def test_the_page_is_self_contained_with_every_plot_embedded(report):
    text = report.read_text()
    assert "<script" not in text and "<link" not in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == PLOTS
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert image.format == "PNG" and image.width > 600  # two builds side by side
    assert "nsp_random_fraction" in text and text.count("/a</th>") == 1


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_every_plot_loads_in_headless_chromium(report, tmp_path):
    checked = tmp_path / "checked.html"
    probe = (
        "<script>window.onload=()=>{const i=[...document.images];"
        "document.title=i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length}</script>"
    )
    checked.write_text(report.read_text().replace("</body>", probe + "</body>"))
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            checked.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"<title>{PLOTS}/{PLOTS}</title>" in done.stdout, done.stderr[-500:]


def test_label_statistics_are_shown_only_where_their_objective_is(report, tmp_path):
    """Before, an --objective none build was listed with an NSP fraction of 0.0."""
    run_build([SAMPLE_DIR], tmp_path / "none", objective="none")
    run_build([SAMPLE_DIR], tmp_path / "none2", objective="none", seed=3)
    nsp = report.parent / "a"
    mixed, plain = tmp_path / "mixed.html", tmp_path / "plain.html"
    for first, second, page in (
        (nsp, tmp_path / "none", mixed),
        (tmp_path / "none", tmp_path / "none2", plain),
    ):
        result = CliRunner().invoke(
            main, ["report", str(first), "--compare", str(second), "-o", str(page)]
        )
        assert result.exit_code == 0, result.output
    row = re.search(
        r"<tr><td>nsp_random_fraction</td><td>([^<]*)</td><td>([^<]*)</td></tr>", mixed.read_text()
    )
    assert row and float(row.group(1)) > 0.3 and row.group(2) == "n/a"
    assert "nsp_random_fraction" not in plain.read_text() and "sop_swapped" not in plain.read_text()
