"""QualityPanel over real refits: verdict and figures, the threshold slider, the AP history."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent

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


@pytest.fixture
def panel(qtbot, library, worker_pool) -> Iterator[QualityPanel]:
    lib, _ = library
    panel = QualityPanel(lib, worker_pool)
    qtbot.addWidget(panel)
    panel.resize(400, 520)
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
    qtbot.wait(50)  # lets the full draw that set_result asked for run
    before = panel.figures
    emitted: list[float] = []
    panel.thresholdChanged.connect(emitted.append)
    full_draws: list[object] = []
    panel.canvas.mpl_connect("draw_event", full_draws.append)
    with qtbot.waitSignal(panel.figuresChanged, timeout=WAIT_MS) as blocker:
        panel.slider.setValue(80)  # as a keyboard step or a click on the groove does
    settle(qtbot, panel)
    qtbot.wait(50)  # a full draw, had one been requested, would run in this time
    assert full_draws == []  # the threshold line was blitted over the last full draw
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


def test_a_click_on_the_histogram_moves_the_threshold(qtbot, panel, first):
    y, result = first
    panel.set_result(TAG, result, y)
    settle(qtbot, panel)
    emitted: list[float] = []
    panel.thresholdChanged.connect(emitted.append)
    panel.canvas.draw()
    ax = panel.hist_ax
    _, ymid = ax.transAxes.transform((0.5, 0.5))
    x, _ = ax.transData.transform((0.7, 1.0))
    MouseEvent("button_press_event", panel.canvas, x, ymid, button=1)._process()
    x2, _ = ax.transData.transform((0.25, 1.0))
    MouseEvent("motion_notify_event", panel.canvas, x2, ymid, button=1)._process()
    assert emitted == []
    MouseEvent("button_release_event", panel.canvas, x2, ymid, button=1)._process()
    assert emitted == [pytest.approx(0.25, abs=0.011)]
    assert panel.threshold == emitted[0]
    assert panel._threshold_line.get_xdata()[0] == panel.threshold
    settle(qtbot, panel)
    assert panel.figures.threshold == panel.threshold


def test_the_history_grows_with_refits_of_a_tag_and_restarts_with_another(qtbot, panel, library):
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
    lines = panel.history_ax.get_lines()
    assert len(lines) == 1 and len(lines[0].get_xdata()) == 3

    y1 = labels_for(Y, 1, audit=20, positives=8, negatives=8)
    panel.set_result("tag1", refit(lib, y1, tag="tag1"), y1)
    settle(qtbot, panel)
    assert panel.history.tag == "tag1" and len(panel.history) == 1
    assert len(panel.history_ax.get_lines()[0].get_xdata()) == 1


def test_few_labels_say_so_and_clear_forgets_everything(qtbot, panel, library):
    lib, Y = library
    y = labels_for(Y, 0, audit=0, positives=3, negatives=1)
    panel.set_result(TAG, refit(lib, y), y)
    settle(qtbot, panel)
    assert panel.headline_text().startswith("Too few labels yet: label at least 5 positives")
    assert panel.figure_text("precision") == "label audit tracks to know"
    panel.clear("Label a track that has the tag to start.")
    assert panel.headline_text() == "Label a track that has the tag to start."
    assert set(shown(panel).values()) == {"\u2014"}
    assert panel.tag is None and len(panel.history) == 0 and not panel.is_busy


def test_labels_of_another_library_are_refused(panel, first):
    _, result = first
    with pytest.raises(ValueError, match="the library has 400 tracks, but 3 labels"):
        panel.set_result(TAG, result, np.zeros(3, dtype=np.int8))
