"""QualityPanel over real refits: verdict and figures, threshold slider, plot, AP history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from tagger_gui.core.fewshot import quality_view
from tagger_gui.core.fewshot.engine import LibraryFeatures, RefitResult, refit_task
from tagger_gui.core.fewshot.quality_view import (
    figure_rows,
    figures_at,
    headline,
    threshold_basis,
)
from tagger_gui.core.fewshot.ranking import audit_order
from tagger_gui.core.fewshot.space import FeatureSpace
from tagger_gui.core.tasks import run_task
from tagger_gui.qt.quality_panel import QualityPanel

from ..fewshot_data import synthetic_set

TAG = "tag0"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def library() -> tuple[LibraryFeatures, np.ndarray]:
    data, X = synthetic_set(n_groups=80, seed=11)
    space = FeatureSpace(n_components=16).fit(X)
    lib = LibraryFeatures(data.relpaths, space.transform(X), data.groups, "synthetic", space)
    return lib, data.Y


def labels_for(Y: np.ndarray, tag: int, *, audit: int, positives: int, negatives: int):
    """Labels of one tag as a librarian gives them: audit tracks first, then yes and no."""
    truth = Y[:, tag]
    y = np.full(len(truth), -1, dtype=np.int8)
    rows = audit_order(len(y), f"tag{tag}")[:audit]
    y[rows] = truth[rows]
    y[np.flatnonzero(truth)[:positives]] = 1
    y[np.flatnonzero(~truth)[:negatives]] = 0
    return y


def refit(lib: LibraryFeatures, y: np.ndarray, tag: str = TAG, **kwargs) -> RefitResult:
    return run_task(refit_task(lib, y, tag=tag, **kwargs))


@pytest.fixture(scope="module")
def first(library) -> tuple[np.ndarray, RefitResult]:
    lib, Y = library
    y = labels_for(Y, 0, audit=40, positives=10, negatives=10)
    return y, refit(lib, y)


@pytest.fixture
def basis_threads(monkeypatch) -> list[tuple[bool, str]]:
    """Each threshold task the panel runs: (whether it built a basis, the thread it ran in)."""
    calls: list[tuple[bool, str]] = []

    def recorded(*args, **kwargs):
        calls.append((kwargs.get("basis") is None, threading.current_thread().name))
        return (yield from quality_view.threshold_task(*args, **kwargs))

    # the real task, run by the panel, observed from inside the worker thread
    monkeypatch.setattr("tagger_gui.qt.quality_panel.threshold_task", recorded)
    return calls


@dataclass
class PlotCall:
    """One plot the panel rendered: in which thread, of what."""

    thread: str
    has_scores: bool
    history_points: int
    width: int


@pytest.fixture
def plot_calls(monkeypatch) -> list[PlotCall]:
    """Each plot task the panel runs, observed from inside the worker thread."""
    calls: list[PlotCall] = []

    def recorded(scores, labels, history, **kwargs):
        calls.append(
            PlotCall(
                threading.current_thread().name,
                scores is not None,
                len(history[0]),
                kwargs["width"],
            )
        )
        return (yield from quality_view.plot_task(scores, labels, history, **kwargs))

    monkeypatch.setattr("tagger_gui.qt.quality_panel.plot_task", recorded)
    return calls


@pytest.fixture
def panel(qtbot, library, worker_pool) -> Iterator[QualityPanel]:
    lib, _ = library
    panel = QualityPanel(lib, worker_pool)
    qtbot.addWidget(panel)
    panel.resize(400, 520)
    panel.show()  # the plot is rendered only while it is visible
    yield panel
    panel.shutdown()
    worker_pool.wait_for_workers(WAIT_MS)


def settle(qtbot, panel: QualityPanel) -> None:
    qtbot.waitUntil(lambda: not panel.is_busy, timeout=WAIT_MS)


def shown(panel: QualityPanel) -> dict[str, str]:
    return {key: panel.figure_text(key) for key in panel._value_labels}


def test_a_refit_shows_its_verdict_at_once_then_the_full_figures_from_the_pool(
    qtbot, panel, library, first, basis_threads
):
    lib, _ = library
    y, result = first
    report = result.quality
    assert panel.headline_text().startswith("No estimate yet")
    with qtbot.waitSignal(panel.figuresChanged, timeout=WAIT_MS) as blocker:
        panel.set_result(TAG, result, y)
        # at once, from the refit's own report (same threshold): no wait for the pool
        assert panel.headline_text() == headline(report).text
        assert panel.figure_text("labels") == f"{report.n_positive} yes, {report.n_negative} no"
        assert panel.figure_text("recall") == "\u2026"  # not in the report: on its way
    settle(qtbot, panel)
    figures = blocker.args[0]
    assert figures.complete and figures.threshold == 0.5 == panel.threshold
    expected = figures_at(threshold_basis(lib.X, y, result.scores, tag=TAG), 0.5)
    assert figures == expected and panel.figures == expected
    assert (figures.n_above, figures.precision) == (report.n_above, report.precision)
    assert shown(panel) == {row.key: row.value for row in figure_rows(report, figures)}
    assert panel.figure_text("recall").endswith(f"of {figures.audit_positives}")
    # the audit probe was fitted once, in a pool thread
    assert len(basis_threads) == 1 and basis_threads[0][0]
    assert basis_threads[0][1] != threading.main_thread().name
    assert len(panel.history) == 1 and panel.history.ap == [report.cv_ap]


def test_moving_the_slider_recomputes_the_threshold_figures_without_refitting(
    qtbot, panel, first, basis_threads
):
    y, result = first
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    before = panel.figures
    emitted: list[float] = []
    panel.thresholdChanged.connect(emitted.append)
    with qtbot.waitSignal(panel.figuresChanged, timeout=WAIT_MS) as blocker:
        panel.slider.setValue(80)  # as a keyboard step or a click on the groove does
    settle(qtbot, panel)
    after = blocker.args[0]
    assert emitted == [0.8] and panel.threshold_label.text() == "0.80"
    assert after.threshold == 0.8 and after.n_above < before.n_above
    assert after.audit_above <= before.audit_above and after.recall <= before.recall
    assert after.n_above == int((result.scores >= 0.8).sum())
    assert panel.figure_text("above").startswith(f"{after.n_above:,} of")
    # the basis of the refit is reused: one fit in all, the slider's task fits nothing
    assert [built for built, _ in basis_threads] == [True, False]
    assert all(name != threading.main_thread().name for _, name in basis_threads)


def test_dragging_emits_the_threshold_once_and_shows_the_newest_figures(
    qtbot, panel, first, basis_threads
):
    y, result = first
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    emitted: list[float] = []
    panel.thresholdChanged.connect(emitted.append)
    panel.slider.setSliderDown(True)
    for value in (55, 62, 70, 77, 31):
        panel.slider.setValue(value)
    assert emitted == []  # debounced while the slider is held
    assert panel.threshold_label.text() == "0.31"
    panel.slider.setSliderDown(False)  # the release
    assert emitted == [0.31]
    settle(qtbot, panel)
    assert panel.figures.threshold == 0.31
    # the refit's basis, then the burst debounced into one request that fits nothing
    assert [built for built, _ in basis_threads] == [True, False]


def test_set_threshold_recomputes_without_emitting(qtbot, panel, first):
    y, result = first
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    emitted: list[float] = []
    panel.thresholdChanged.connect(emitted.append)
    with qtbot.waitSignal(panel.figuresChanged, timeout=WAIT_MS) as blocker:
        panel.set_threshold(0.234)
    assert blocker.args[0].threshold == 0.23 == panel.threshold
    panel.set_threshold(5.0)
    assert panel.threshold == 0.99
    settle(qtbot, panel)
    assert emitted == [] and panel.figures.threshold == 0.99


def orange_columns(panel: QualityPanel) -> list[int]:
    """The columns of the grabbed plot where the threshold's orange line is painted."""
    image = panel.plot.grab().toImage()
    _, top, _, bottom = panel.plot.image.hist_box
    y = int((top + bottom) / 2)
    scale = image.devicePixelRatio()
    orange = QColor(quality_view.THRESHOLD_COLOUR)
    return [
        int(x / scale)
        for x in range(image.width())
        if _close(image.pixelColor(x, int(y * scale)), orange)
    ]


def _close(a: QColor, b: QColor, tol: int = 40) -> bool:
    return all(abs(u - v) <= tol for u, v in zip(a.getRgb()[:3], b.getRgb()[:3], strict=True))


def test_the_plot_is_rendered_in_the_pool_and_a_slider_move_only_repaints_it(
    qtbot, plot_calls, panel, first
):
    y, result = first
    settle(qtbot, panel)
    empty = panel.plot.image
    assert empty is not None and plot_calls[-1].has_scores is False
    del plot_calls[:]
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    image = panel.plot.image
    assert image is not empty and not np.array_equal(image.rgba, empty.rgba)
    assert len(plot_calls) == 1 and plot_calls[0].has_scores
    assert plot_calls[0].thread != threading.main_thread().name
    assert plot_calls[0].history_points == 1
    # the picture fills the widget, in device pixels
    scale = panel.plot.devicePixelRatioF()
    width, height = panel.plot.width(), panel.plot.height()
    assert image.size == (width, height) and image.rgba.shape[:2] == (
        round(height * scale),
        round(width * scale),
    )
    x = orange_columns(panel)
    assert x and abs(np.mean(x) - image.x_of(0.5)) <= 2

    panel.slider.setValue(80)
    settle(qtbot, panel)
    assert plot_calls[1:] == []  # no re-rendering: the line is painted over the picture
    assert panel.plot.image is image and panel.plot.threshold == 0.8
    x = orange_columns(panel)
    assert x and abs(np.mean(x) - image.x_of(0.8)) <= 2


def test_a_click_on_the_histogram_moves_the_threshold(qtbot, panel, first):
    y, result = first
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    emitted: list[float] = []
    panel.thresholdChanged.connect(emitted.append)
    image = panel.plot.image
    _, top, _, bottom = image.hist_box
    ymid = int((top + bottom) / 2)
    left = Qt.MouseButton.LeftButton
    qtbot.mousePress(panel.plot, left, pos=QPoint(round(image.x_of(0.7)), ymid))
    assert panel.threshold == pytest.approx(0.7, abs=0.011)
    qtbot.mouseMove(panel.plot, QPoint(round(image.x_of(0.25)), ymid))
    assert emitted == []  # a drag: one signal, at the release
    qtbot.mouseRelease(panel.plot, left, pos=QPoint(round(image.x_of(0.25)), ymid))
    assert emitted == [pytest.approx(0.25, abs=0.011)]
    assert panel.threshold == emitted[0] == panel.plot.threshold
    settle(qtbot, panel)
    assert panel.figures.threshold == panel.threshold
    # outside the histogram (on the AP history) a click does nothing
    qtbot.mouseClick(panel.plot, left, pos=QPoint(panel.plot.width() - 30, ymid))
    assert emitted == [panel.threshold]


def test_a_resize_renders_the_plot_again_once_at_the_new_size(qtbot, panel, first, plot_calls):
    y, result = first
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    del plot_calls[:]
    for width in (420, 450, 480):  # a window edge dragged
        panel.resize(width, 520)
    qtbot.waitUntil(lambda: panel.plot.image.size[0] == panel.plot.width(), timeout=WAIT_MS)
    settle(qtbot, panel)
    assert [call.width for call in plot_calls] == [panel.plot.width()]
    assert panel.plot.width() > 400 - 20


def test_the_history_grows_with_refits_of_a_tag_and_restarts_with_another(
    qtbot, panel, library, plot_calls
):
    lib, Y = library
    previous = None
    for k in (6, 10, 14):
        y = labels_for(Y, 0, audit=20, positives=k, negatives=k)
        result = refit(lib, y, previous_scores=previous)
        previous = result.scores
        panel.set_result(TAG, result, y)  # no wait: a refit may replace one still assessed
    settle(qtbot, panel)
    history = panel.history
    assert history.tag == TAG and len(history) == 3
    assert history.n_labels == sorted(history.n_labels) and history.n_labels[0] < 40
    # the figures shown are the last refit's, not a replaced one's
    expected = figures_at(threshold_basis(lib.X, y, result.scores, tag=TAG), panel.threshold)
    assert panel.figures == expected
    assert panel.figure_text("stability") != "after the next refit"
    # the plot shown is the last refit's, with its three points
    assert plot_calls[-1].history_points == 3 and plot_calls[-1].has_scores

    y1 = labels_for(Y, 1, audit=20, positives=8, negatives=8)
    panel.set_result("tag1", refit(lib, y1, tag="tag1"), y1)
    settle(qtbot, panel)
    assert panel.history.tag == "tag1" and len(panel.history) == 1
    assert plot_calls[-1].history_points == 1


def test_few_labels_say_so_and_clear_forgets_everything(qtbot, panel, library, plot_calls):
    lib, Y = library
    y = labels_for(Y, 0, audit=0, positives=3, negatives=1)
    panel.set_result(TAG, refit(lib, y), y)
    settle(qtbot, panel)
    assert panel.headline_text().startswith("Too few labels yet: label at least 5 positives")
    assert panel.figure_text("precision") == "label audit tracks to know"
    panel.clear("Label a track that has the tag to start.")
    assert panel.headline_text() == "Label a track that has the tag to start."
    assert set(shown(panel).values()) == {"\u2014"}
    assert panel.tag is None and len(panel.history) == 0
    settle(qtbot, panel)  # the empty plot is rendered
    assert plot_calls[-1].has_scores is False and plot_calls[-1].history_points == 0


def test_labels_of_another_library_are_refused(panel, first):
    _, result = first
    with pytest.raises(ValueError, match="the library has 400 tracks, but 3 labels"):
        panel.set_result(TAG, result, np.zeros(3, dtype=np.int8))
