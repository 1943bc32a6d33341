"""Windows of a unit are measured in bytes of text: Chinese text (3 bytes a character in
UTF-8) closes windows three times as often as its character count would."""

from mlmprep.core.config import SPLITS, TRAIN, BuildConfig
from mlmprep.core.counts import SplitCounts
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import Source
from mlmprep.pipeline.planning import Unit
from mlmprep.pipeline.units import UnitTask, read_windows
from mlmprep.text.encoders import encoder_for

CJK_SENTENCE = "汉" * 100 + "。"  # 101 characters, 303 bytes in UTF-8
ASCII_SENTENCE = "a" * 100 + "."  # 101 characters, 101 bytes


def _documents_per_window(tmp_path, sentence: str, documents: int, window_size: int) -> list[int]:
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join([sentence] * documents) + "\n", encoding="utf-8")
    config = BuildConfig()
    task = UnitTask(
        Unit(0, (Source(str(path), "text"),), path.stat().st_size),
        config,
        str(tmp_path),
        {"train": 1, "validation": 0},
        window_size,
    )
    counts = {split: SplitCounts() for split in SPLITS}
    windows = read_windows(task, encoder_for(config), InputReport(), counts)
    return [len(window[TRAIN]) for window in windows]


def test_a_window_closes_at_its_size_in_utf8_bytes_of_chinese_text(tmp_path):
    # 303 bytes a document: 909 bytes after three, 1,212 after four, so four a window
    assert _documents_per_window(tmp_path, CJK_SENTENCE, 10, 1000) == [4, 4, 2]


def test_ascii_text_has_as_many_bytes_as_characters(tmp_path):
    # 101 bytes a document: 909 after nine, 1,010 after ten
    assert _documents_per_window(tmp_path, ASCII_SENTENCE, 12, 1000) == [10, 2]
