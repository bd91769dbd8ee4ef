"""MainWindow end to end on real clips: open, sync, embed, tags, undo, lock, geometry, cancel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtWidgets import QLabel

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.embed_job import EmbedProgress
from tagger_gui.core.project import Project
from tagger_gui.qt.main_window import (
    GEOMETRY_KEY,
    MainWindow,
    NewTagDialog,
    default_workers,
    describe_embed_progress,
)
from tagger_gui.qt.start_page import RECENT_KEY, recent_projects
from tagger_gui.qt.track_model import POSITIVE, Column, LabelRole, ScoreRole

from ..conftest import write_audio

# An upper bound, not a speed check: the first handcrafted embedding in a fresh
# venv compiles librosa's numba functions (it exceeded 30 s once in CI).
EMBED_TIMEOUT_MS = 180_000


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "Music"
    for i, name in enumerate(("alpha.wav", "beta.flac", "gamma.ogg")):
        write_audio(root / name, 3, seed=i + 1)
    return root


@pytest.fixture
def messages() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def make_window(qtbot, messages) -> Iterator[Callable[..., MainWindow]]:
    """Windows embedding with the small backend in the background thread; closed at the end."""
    windows: list[MainWindow] = []

    def make(**kwargs) -> MainWindow:
        kwargs.setdefault("backends", ["handcrafted"])
        kwargs.setdefault("workers", 0)
        kwargs.setdefault("show_message", lambda title, text: messages.append((title, text)))
        window = MainWindow(**kwargs)
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()  # cancels and waits for the jobs, closes the project


def open_and_embed(qtbot, window: MainWindow, folder: Path):
    with qtbot.waitSignal(window.embedding_finished, timeout=EMBED_TIMEOUT_MS) as blocker:
        assert window.open_folder(folder)
    return blocker.args[0]


def titles(window: MainWindow) -> list[str]:
    proxy = window.track_proxy
    return sorted(proxy.index(r, Column.TITLE).data() for r in range(proxy.rowCount()))


def test_open_embed_new_tag_undo_redo(qtbot, make_window, library, messages):
    window = make_window()
    assert window.pages.currentWidget() is window.start_page
    report = open_and_embed(qtbot, window, library)

    assert report is not None and report.embedded == 3 and not report.failed
    assert window.pages.currentWidget() is window.workspace
    assert window.job is None and window.job_widget.isHidden()
    assert titles(window) == ["alpha.wav", "beta.flac", "gamma.ogg"]
    with EmbeddingCache.open(window.project.cache_path, mode="r") as cache:
        (key,) = cache.backends()
        assert len(cache.tracks(key)) == 3
    assert recent_projects() == [str(library)]
    assert not window.undo_action.isEnabled() and window.undo_action.text() == "Undo"

    # the search box filters the table (after its short debounce)
    qtbot.keyClicks(window.search_edit, "gam")
    qtbot.waitUntil(lambda: window.track_proxy.rowCount() == 1)
    window.search_edit.clear()
    qtbot.waitUntil(lambda: window.track_proxy.rowCount() == 3)

    with qtbot.waitSignal(window.current_tag_changed) as changed:
        tag = window.new_tag("calm")  # the button's code path, name given
    assert tag is not None and changed.args[0].name == "calm"
    child = window.new_tag("ambient", parent="calm")
    assert child is not None and child.parent_id == tag.id
    assert [t.name for t in window.tag_model.tags()] == ["calm", "ambient"]
    assert window.current_tag.name == "ambient"
    assert window.project.get_state("current_tag") == "ambient"
    assert window.undo_action.isEnabled() and "ambient" in window.undo_action.text()

    with qtbot.waitSignal(window.project_changed):
        window.undo_action.trigger()
    assert [t.name for t in window.tag_model.tags()] == ["calm"]
    assert window.current_tag is None
    assert "ambient" in window.redo_action.text() and window.redo_action.isEnabled()
    window.redo_action.trigger()
    assert [t.name for t in window.tag_model.tags()] == ["calm", "ambient"]
    assert "ambient" in window.undo_action.text()

    # a duplicate name is refused in plain words, nothing created
    assert window.new_tag("Calm") is None
    assert messages and "calm" in messages[-1][1].lower()
    assert len(window.tag_model.tags()) == 2


def test_current_tag_and_labels_restored_on_reopen(qtbot, make_window, library):
    window = make_window()
    open_and_embed(qtbot, window, library)
    window.new_tag("calm")
    window.new_tag("loud")
    window.select_tag("calm")
    project = window.project
    ids = project.tracks().id
    project.set_labels("calm", ids[:2].tolist(), "positive")
    window.refresh()
    assert window.tag_model.counts(window.current_tag.id)["positive"] == 2
    labels = [window.track_proxy.index(r, Column.LABEL).data() for r in range(3)]
    assert sum("positive" in (text or "") for text in labels) == 2
    window.close()

    again = make_window()
    open_and_embed(qtbot, again, library)
    assert again.current_tag is not None and again.current_tag.name == "calm"
    assert again.tag_view.currentIndex().row() == 0


def test_second_window_gets_open_elsewhere(qtbot, make_window, library, messages):
    first = make_window()
    open_and_embed(qtbot, first, library)
    second = make_window()
    assert not second.open_folder(library)
    assert second.project is None and second.job is None
    assert second.pages.currentWidget() is second.start_page
    assert messages and "open elsewhere" in messages[-1][1]
    label = second.start_page.findChild(QLabel, "start_message")
    assert "open elsewhere" in label.text() and not label.isHidden()
    # the first window still works
    assert first.new_tag("calm") is not None


def test_geometry_round_trips_through_qsettings(qtbot, make_window):
    window = make_window()
    window.show()
    window.resize(640, 470)
    qtbot.waitUntil(lambda: window.size() == QSize(640, 470))
    window.close()
    assert QSettings().value(GEOMETRY_KEY) is not None
    again = make_window()
    assert again.size() == QSize(640, 470)


def test_cancel_during_embedding_leaves_the_app_usable(qtbot, make_window, tmp_path, messages):
    root = tmp_path / "Bigger"
    for i in range(8):
        write_audio(root / f"track {i}.wav", 6, seed=i)
    window = make_window()
    seen: list[EmbedProgress] = []

    def cancel_at_first(progress: EmbedProgress) -> None:
        seen.append(progress)
        if len(seen) == 1:
            window.cancel_button.click()

    window.embedding_progress.connect(cancel_at_first)
    with qtbot.waitSignal(window.embedding_finished, timeout=EMBED_TIMEOUT_MS) as blocker:
        assert window.open_folder(root)
    assert blocker.args[0] is None  # cancelled, not finished
    assert window.job is None and window.job_widget.isHidden()
    assert "cancelled" in window.statusBar().currentMessage()
    assert not messages  # a cancel is not an error
    assert window.track_proxy.rowCount() == 8
    assert window.new_tag("calm") is not None
    window.undo()
    assert window.tag_model.rowCount() == 0


def test_start_page_recent_project_opens(qtbot, make_window, library):
    first = make_window()
    open_and_embed(qtbot, first, library)
    first.close()
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    recent = window.start_page.recent_list
    assert window.start_page.recent() == [str(library)]
    with qtbot.waitSignal(window.embedding_finished, timeout=EMBED_TIMEOUT_MS):
        rect = recent.visualItemRect(recent.item(0))
        qtbot.mouseClick(recent.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.pages.currentWidget() is window.workspace
    assert Path(window.project.library_root) == library


def test_project_error_is_shown_and_app_stays_on_start_page(make_window, tmp_path, messages):
    window = make_window()
    assert not window.open_folder(tmp_path / "nowhere")
    assert window.pages.currentWidget() is window.start_page
    assert messages and "nowhere" in messages[-1][1]


def test_new_tag_dialog_values(qtbot, library):
    project = Project.create(None, library)
    try:
        project.create_tag("jazz")
        dialog = NewTagDialog(project.tags())
        qtbot.addWidget(dialog)
    finally:
        project.close()
    assert not dialog._ok.isEnabled()  # no name yet
    dialog.name_edit.setText("  bebop ")
    dialog.parent_box.setCurrentIndex(1)
    assert dialog._ok.isEnabled()
    assert dialog.values() == ("bebop", "jazz")


def test_progress_text_and_workers(monkeypatch):
    p = EmbedProgress(10, 40, 10, 0, 1, audio_seconds=300.0, elapsed=10.0)
    text = describe_embed_progress(p)
    assert "10/40" in text and "30× realtime" in text and "0:30 left" in text
    assert "1 failed" in text
    monkeypatch.setenv("TAGGER_GUI_WORKERS", "0")
    assert default_workers() == 0
    monkeypatch.delenv("TAGGER_GUI_WORKERS")
    assert default_workers() >= 1


def test_sorting_starts_in_table_order(qtbot, make_window, library):
    window = make_window()
    open_and_embed(qtbot, window, library)
    assert window.track_model.sort_column() == -1
    window.track_view.sortByColumn(Column.TITLE, Qt.SortOrder.DescendingOrder)
    first = window.track_proxy.index(0, Column.TITLE).data()
    assert first == "gamma.ogg"
    assert QSettings().value(RECENT_KEY) is not None


def test_close_during_embedding_stops_the_job_and_releases_the_project(
    qtbot, make_window, tmp_path
):
    root = tmp_path / "Closing"
    for i in range(8):
        write_audio(root / f"track {i}.wav", 6, seed=i)
    window = make_window()
    with qtbot.waitSignal(window.embedding_progress, timeout=EMBED_TIMEOUT_MS):
        assert window.open_folder(root)
    assert window.job is not None
    window.close()  # cancels, waits, closes the project
    assert window.pool.is_shut_down and window.pool.active_thread_count() == 0
    assert window.project is None
    Project.open(root).close()  # the lock was released


def test_review_widget_goes_in_the_review_area(qtbot, make_window):
    window = make_window()
    window.show()
    assert window.review_area.isHidden()  # no empty column before the panel comes
    first, second = QLabel("one"), QLabel("two")
    window.set_review_widget(first)
    window.set_review_widget(second)
    assert not window.review_area.isHidden()
    assert second.parent() is window.review_area and first.parent() is None
    first.deleteLater()


def test_help_self_test_runs_in_the_pool_and_reports(qtbot, make_window):
    window = make_window()
    worker = window.self_test()
    assert not window.self_test_action.isEnabled()  # one at a time
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    report = window.last_self_test
    assert report is not None
    assert "PASS backend musicnn-msd" in report and "PASS worker process" in report
    assert "PASS main window: this one, running" in report
    assert report.splitlines()[-1] == "self-test: all checks passed"
    assert window.self_test_action.isEnabled()


def test_a_label_touches_only_its_row_and_a_quiet_sync_keeps_the_table(qtbot, make_window, library):
    window = make_window()
    open_and_embed(qtbot, window, library)
    window.new_tag("calm")
    model = window.track_model
    model.set_scores(model.table.id, [0.3, 0.2, 0.1])  # what a refit shows
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    changed, layouts, resets = [], [], []
    model.dataChanged.connect(
        lambda tl, br, _roles: changed.append((tl.column(), tl.row(), br.row()))
    )
    model.layoutChanged.connect(lambda *_: layouts.append(1))
    model.modelReset.connect(lambda: resets.append(1))

    first = model.track_id(0)
    assert window.label_tracks([first], "positive")  # no review panel: the window writes
    assert changed == [(Column.LABEL, 0, 0)]  # not the score column, not the other rows
    assert layouts == [] and resets == []  # sorted by score: nothing moves
    assert model.index(0, Column.SCORE).data(ScoreRole) == pytest.approx(0.3)

    changed.clear()
    with qtbot.waitSignal(window.embedding_finished, timeout=EMBED_TIMEOUT_MS):
        with qtbot.waitSignal(window.library_synced) as synced:
            window._start_sync()  # what opening the project does; nothing changed on disk
    report = synced.args[0]
    assert report.unchanged == 3 and not (report.added or report.updated or report.missing)
    assert resets == [] and changed == [] and model.rowCount() == 3

    write_audio(library / "delta.wav", 3, seed=9)
    with qtbot.waitSignal(window.embedding_finished, timeout=EMBED_TIMEOUT_MS):
        with qtbot.waitSignal(window.library_synced):
            window._start_sync()
    assert resets == [1] and model.rowCount() == 4
    assert model.track_id(0) == first  # still sorted by score, scores and labels kept
    assert model.index(0, Column.LABEL).data(LabelRole) == POSITIVE
