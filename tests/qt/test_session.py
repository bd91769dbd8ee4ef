"""A scripted session through the app: open, embed, tag, label, rank, undo, export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tagger_gui.cli import main as tagger
from tagger_gui.qt.main_window import MainWindow
from tagger_gui.qt.session import ReviewSession, features_for
from tagger_gui.qt.tag_model import PredictedCountRole
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

        # label five queue items positive from the keyboard; the ranking updates
        panel.queue.setFocus()
        with qtbot.waitSignal(panel.scoresChanged, timeout=60_000):
            for _ in range(5):
                qtbot.keyClick(panel.queue, Qt.Key.Key_Y)
        qtbot.waitUntil(lambda: len(window.project.labels("bright").track_id) == 5, timeout=10_000)
        labeled = set(window.project.labels("bright").track_id.tolist())
        assert not labeled & set(panel.queue_track_ids())

        def scores_shown() -> int:
            proxy = window.track_proxy
            return sum(bool(proxy.index(r, Column.SCORE).data()) for r in range(proxy.rowCount()))

        qtbot.waitUntil(lambda: scores_shown() == 12, timeout=30_000)
        qtbot.waitUntil(lambda: not panel.is_busy, timeout=60_000)
        assert "5 positives" in panel.quality_text()
        # the tags panel counts the positives and the tracks predicted positive
        row = window.tag_model.row_of(tag.id)
        assert window.tag_model.counts(tag.id)["positive"] == 5
        predicted = window.tag_model.index(row).data(PredictedCountRole)
        assert predicted == panel.result.quality.n_above and predicted >= 5

        # Ctrl+Z and Ctrl+Shift+Z with the panel focused go through the window once
        qtbot.keyClick(panel.queue, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: len(window.project.labels("bright").track_id) == 4, timeout=10_000)
        assert int((panel.labels() == 1).sum()) == 4
        shift_ctrl = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        qtbot.keyClick(panel.queue, Qt.Key.Key_Z, shift_ctrl)
        qtbot.waitUntil(lambda: len(window.project.labels("bright").track_id) == 5, timeout=10_000)
        window.undo()  # from the Edit menu: one label fewer, the panel follows
        qtbot.waitUntil(lambda: int((panel.labels() == 1).sum()) == 4, timeout=10_000)

        # File > Export tags…: the dialog writes the CSV with the CLI's code
        dialog = window.export_tags()
        out = tmp_path / "labels.csv"
        dialog.path_edit.setText(str(out))
        with qtbot.waitSignal(dialog.exported, timeout=60_000):
            dialog.export_button.click()
        dialog.close()
        with open(out, encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.reader(line for line in fh if not line.startswith("#"))]
        assert rows[0][:3] == ["path", "tag", "decision"]
        assert sorted(r[1] for r in rows[1:]) == ["bright"] * 4
        assert {r[2] for r in rows[1:]} == {"positive"}
        exported = {r[0] for r in rows[1:]}
        assert exported == {
            window.project.track(int(t)).relpath
            for t in window.project.labels("bright").track_id.tolist()
        }

        # and the CLI reads the same project once the window has let it go
        window.close_project()
        cli = tmp_path / "cli.csv"
        assert tagger(["export", str(root), "-o", str(cli)]) == 0
        with open(cli, encoding="utf-8", newline="") as fh:
            cli_rows = [r for r in csv.reader(line for line in fh if not line.startswith("#"))]
        assert cli_rows == rows
        assert np.all([r[0].endswith(".flac") for r in rows[1:]])
        assert not messages, messages
    finally:
        window.close()


def _library(root: Path, albums: int = 4, per_album: int = 3, seed: int = 0) -> None:
    for album in range(albums):
        for i in range(per_album):
            write_audio(root / f"album {album}" / f"t{i}.flac", 3, seed=seed + album * 10 + i)


@pytest.fixture
def make_session(qtbot):
    """``make_session(**session_options) -> (window, session)``: a window on the small
    backend with its review session; windows are closed at the end."""
    windows: list[MainWindow] = []

    def make(**options) -> tuple[MainWindow, ReviewSession]:
        window = MainWindow(backends=["handcrafted"], workers=0, show_message=lambda t, m: None)
        qtbot.addWidget(window)
        windows.append(window)
        return window, ReviewSession(window, **options)

    yield make
    for window in windows:
        window.close()


def open_embedded(qtbot, window: MainWindow, session: ReviewSession, root: Path) -> None:
    """Open ``root`` and wait until it is embedded and the review panel is in."""
    with qtbot.waitSignal(window.embedding_finished, timeout=120_000):
        window.open_folder(root)
    qtbot.waitUntil(lambda: session.panel is not None, timeout=60_000)


def test_labeling_starts_before_the_embedding_ends(qtbot, make_session, tmp_path: Path):
    # half the library embedded by an earlier run, then six new files
    root = tmp_path / "Music"
    _library(root, albums=2)
    assert (
        tagger(["embed", str(root), "--backend", "handcrafted", "--workers", "0", "--quiet"]) == 0
    )
    _library(tmp_path / "more", albums=2, seed=100)
    (tmp_path / "more").rename(root / "more")
    window, session = make_session()
    sizes: list[int] = []
    window.embedding_finished.connect(
        lambda _r: sizes.append(
            -1 if session.panel is None else len(session.panel.library.relpaths)
        )
    )
    window.open_folder(root)
    # the panel comes from the earlier run's cache, with the 6 tracks it has
    qtbot.waitUntil(lambda: session.panel is not None, timeout=60_000)
    first = len(session.panel.library.relpaths)
    window.new_tag("bright")
    qtbot.waitUntil(lambda: session.panel.tag == "bright", timeout=10_000)
    session.panel.label_rows([0, 1], "positive")
    qtbot.waitUntil(lambda: bool(sizes), timeout=120_000)
    # when the job ends, the panel ranks all 12 and keeps the labels
    qtbot.waitUntil(lambda: len(session.panel.library.relpaths) == 12, timeout=60_000)
    assert first == 6
    assert int((session.panel.labels() == 1).sum()) == 2
    qtbot.waitUntil(lambda: not session.panel.is_busy, timeout=60_000)
    assert session.panel.result is not None and len(session.panel.result.scores) == 12


def test_reopening_restores_the_review_position(qtbot, make_session, tmp_path: Path):
    root = tmp_path / "Music"
    _library(root)
    window, session = make_session()
    open_embedded(qtbot, window, session, root)
    window.new_tag("bright")
    panel = session.panel
    qtbot.waitUntil(lambda: panel.tag == "bright", timeout=10_000)
    panel.set_strategy("uncertain")
    panel.label_rows([0], "positive")
    qtbot.waitUntil(lambda: panel.result is not None and not panel.is_busy, timeout=60_000)
    panel.next_track()
    panel.next_track()
    chosen = panel.current_track_id()
    assert chosen >= 0 and chosen != panel.queue_track_ids()[0]
    window.close_project()  # the position is written on the way out

    open_embedded(qtbot, window, session, root)
    panel = session.panel
    assert window.current_tag.name == "bright"
    qtbot.waitUntil(lambda: panel.result is not None and not panel.is_busy, timeout=60_000)
    assert panel.strategy == "uncertain"
    assert panel.current_track_id() == chosen


def test_rename_and_delete_tags_from_the_window(qtbot, make_session, tmp_path: Path):
    root = tmp_path / "Music"
    _library(root, albums=1)
    window, session = make_session()
    open_embedded(qtbot, window, session, root)
    window.new_tag("brigt")
    session.panel.label_rows([0], "positive")
    renamed = window.rename_tag("bright")
    assert renamed is not None and renamed.name == "bright"
    assert [t.name for t in window.tag_model.tags()] == ["bright"]
    qtbot.waitUntil(lambda: session.panel.tag == "bright", timeout=10_000)
    assert len(window.project.labels("bright").track_id) == 1
    # a clash is refused in plain words, nothing changes
    window.new_tag("other")
    assert window.rename_tag("bright") is None
    assert window.current_tag.name == "other"

    window.select_tag("bright")
    assert window.delete_tag(confirm=False)
    assert [t.name for t in window.tag_model.tags()] == ["other"]
    assert window.current_tag is None and session.panel.tag is None
    window.undo()  # the tag and its label come back
    assert [t.name for t in window.tag_model.tags()] == ["bright", "other"]
    assert len(window.project.labels("bright").track_id) == 1


def test_label_rows_found_with_the_search_from_the_library_table(
    qtbot, make_session, tmp_path: Path
):
    root = tmp_path / "Music"
    _library(root)
    window, session = make_session(with_player=False)
    open_embedded(qtbot, window, session, root)
    window.new_tag("album two")
    window.search_edit.setText("album 2/")
    qtbot.waitUntil(lambda: window.track_proxy.rowCount() == 3, timeout=10_000)
    window.track_view.selectAll()
    ids = window.selected_track_ids()
    assert len(ids) == 3
    with qtbot.waitSignal(session.panel.refitFinished, timeout=60_000):
        assert window.label_tracks(ids, "positive")  # what the context menu does
    assert set(window.project.labels("album two").track_id.tolist()) == set(ids)
    assert not set(ids) & set(session.panel.queue_track_ids())
    assert window.tag_model.counts(window.current_tag.id)["positive"] == 3
    window.undo()  # one undo step for the three
    assert len(window.project.labels("album two").track_id) == 0
