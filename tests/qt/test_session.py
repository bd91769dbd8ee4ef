"""A scripted session through the app: open, embed, tag, label, rank, undo, export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from tagger_gui.cli import main as tagger
from tagger_gui.qt.main_window import MainWindow
from tagger_gui.qt.session import ReviewSession, features_for
from tagger_gui.qt.track_model import Column

from ..conftest import write_audio


def test_features_follow_the_embedded_backends():
    assert features_for(["musicnn-msd"]).startswith("musicnn-msd:")
    assert features_for(["handcrafted"]) == "handcrafted"


def test_open_embed_label_rank_undo_export(qtbot, tmp_path: Path):
    root = tmp_path / "Music"
    for album in range(4):
        for i in range(3):
            write_audio(root / f"album {album}" / f"t{i}.flac", 3, seed=album * 10 + i)
    messages: list[tuple[str, str]] = []
    window = MainWindow(
        backends=["handcrafted"], workers=0, show_message=lambda t, m: messages.append((t, m))
    )
    qtbot.addWidget(window)
    session = ReviewSession(window)
    try:
        with qtbot.waitSignal(window.embedding_finished, timeout=120_000):
            assert window.open_folder(root)
        qtbot.waitUntil(lambda: session.panel is not None, timeout=60_000)
        panel = session.panel
        assert window.review_area.isVisible() or not window.isVisible()

        tag = window.new_tag("bright")
        assert tag is not None and window.current_tag.name == "bright"
        qtbot.waitUntil(lambda: panel.tag == "bright", timeout=10_000)

        # label three queue items positive from the keyboard; the ranking updates
        panel.queue.setFocus()
        with qtbot.waitSignal(panel.scoresChanged, timeout=60_000):
            for _ in range(3):
                qtbot.keyClick(panel.queue, Qt.Key.Key_Y)
        qtbot.waitUntil(lambda: len(window.project.labels("bright").track_id) == 3, timeout=10_000)
        labeled = set(window.project.labels("bright").track_id.tolist())
        assert not labeled & set(panel.queue_track_ids())

        def scores_shown() -> int:
            proxy = window.track_proxy
            return sum(bool(proxy.index(r, Column.SCORE).data()) for r in range(proxy.rowCount()))

        qtbot.waitUntil(lambda: scores_shown() == 12, timeout=30_000)
        assert "3 positives" in panel.quality_box.toPlainText()

        # undo through the window's Edit menu: one label fewer, the panel follows
        window.undo()
        qtbot.waitUntil(lambda: len(window.project.labels("bright").track_id) == 2, timeout=10_000)

        # the CLI export reads the same project once the window has let it go
        window.close_project()
        out = tmp_path / "labels.csv"
        assert tagger(["export", str(root), "-o", str(out)]) == 0
        with open(out, encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.reader(line for line in fh if not line.startswith("#"))]
        assert rows[0][:3] == ["path", "tag", "decision"]
        assert sorted(r[1] for r in rows[1:]) == ["bright", "bright"]
        assert {r[2] for r in rows[1:]} == {"positive"}
        assert np.all([r[0].endswith(".flac") for r in rows[1:]])
        assert not messages, messages
    finally:
        window.close()
