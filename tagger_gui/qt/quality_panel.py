"""QualityPanel: how far a tag's probe can be trusted, in plain words and one small plot.

The panel shows the last refit of one tag (a
:class:`~tagger_gui.core.fewshot.engine.RefitResult`): a one-sentence verdict
(:func:`~tagger_gui.core.fewshot.quality_view.headline`), a grid of figures,
each with its interval and a tooltip saying what it means
(:func:`~tagger_gui.core.fewshot.quality_view.figure_rows`), a threshold
slider, and a plot of the score histogram and the out-of-fold AP over the
labels so far (why these two: see :mod:`tagger_gui.core.fewshot.quality_view`).

Nothing heavy runs on the GUI thread. After each refit the audit sample is
scored once in the worker pool (one probe fit,
:func:`~tagger_gui.core.fewshot.quality_view.threshold_task`); moving the
slider then re-computes the threshold-dependent figures from that basis,
also in the pool, newest request winning (:class:`~tagger_gui.qt.worker.LatestOnly`).
Until the first basis of a refit arrives, the figures are the refit report's
own (they are at the refit's threshold).

The plot is a matplotlib ``Figure`` on a ``FigureCanvasQTAgg`` (no pyplot,
so no global state); the histogram and the history are redrawn only when
their data change; the threshold line is blitted over the last full draw, so
dragging it does not redraw the figure.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.fewshot.engine import LibraryFeatures, RefitResult
from ..core.fewshot.quality import QualityReport
from ..core.fewshot.quality_view import (
    ApHistory,
    ScoreHistogram,
    ThresholdBasis,
    ThresholdFigures,
    figure_rows,
    figures_from_report,
    headline,
    score_histogram,
    threshold_task,
)
from .worker import LatestOnly, WorkerPool, describe_error

__all__ = ["QualityPanel"]

#: Slider steps: thresholds 0.01 to 0.99 by 0.01.
_STEPS = 100
#: Colours of the headline by verdict (dark enough on a light and a dark theme's base).
_LEVEL_COLOURS = {
    "none": "palette(text)",
    "few": "#a15c00",
    "uncertain": "#a15c00",
    "good": "#1b7a2f",
    "fair": "#6b6b00",
    "weak": "#b3261e",
}
_POSITIVE = "#1b7a2f"
_NEGATIVE = "#b3261e"
_UNLABELED = "#8a8a8a"
_THRESHOLD = "#d07000"
#: Share of the histogram's height under a count of 1, where the label rugs are drawn.
_RUG_STRIP = 0.18


def _count_label(value: float, _pos: int) -> str:
    """Plain tick labels of the log count axis: 1, 10, 100, 1k, 10k."""
    if value < 1:
        return ""
    return f"{value / 1000:.0f}k" if value >= 1000 else f"{value:.0f}"


def _step_of(threshold: float) -> int:
    """The slider step of a threshold (0.01 steps, clipped to 0.01-0.99)."""
    return int(np.rint(np.clip(float(threshold), 0.01, 0.99) * _STEPS))


class QualityPanel(QWidget):
    """The quality readout of one tag: verdict, figures, threshold slider, plot.

    Parameters
    ----------
    lib : LibraryFeatures
        The library in the probe's space (the audit probe is fitted on it).
    pool : WorkerPool
        Where the threshold-dependent figures are computed.
    parent : QWidget, optional
        The Qt parent.
    delay_ms : int, optional
        Debounce of the figure requests while the slider moves.
    signal_delay_ms : int, optional
        Debounce of :attr:`thresholdChanged` while the slider is dragged
        (releasing the slider emits at once).

    Signals
    -------
    thresholdChanged(float)
        The user moved the threshold (slider or a click on the plot); debounced.
        :meth:`set_threshold` does not emit it, so two-way wiring cannot loop.
    figuresChanged(object)
        New :class:`~tagger_gui.core.fewshot.quality_view.ThresholdFigures` shown.
    errorOccurred(str)
        A background computation failed (plain-words message).
    """

    thresholdChanged = Signal(float)
    figuresChanged = Signal(object)
    errorOccurred = Signal(str)

    def __init__(
        self,
        lib: LibraryFeatures,
        pool: WorkerPool,
        *,
        parent: QWidget | None = None,
        delay_ms: int = 40,
        signal_delay_ms: int = 250,
    ) -> None:
        super().__init__(parent)
        self._lib = lib
        self._tag: str | None = None
        self._result: RefitResult | None = None
        self._basis: ThresholdBasis | None = None
        self._figures: ThresholdFigures | None = None
        self._history = ApHistory()
        self._dragging_plot = False

        # the first request of a refit fits a probe: it must not be cancelled by
        # slider moves, so it has its own queue
        self._basis_jobs = LatestOnly(pool, delay_ms=0, parent=self)
        self._basis_jobs.result.connect(self._on_basis)
        self._basis_jobs.error.connect(self._on_error)
        self._figure_jobs = LatestOnly(pool, delay_ms=delay_ms, parent=self)
        self._figure_jobs.result.connect(self._on_figures)
        self._figure_jobs.error.connect(self._on_error)

        self._emit_timer = QTimer(self)
        self._emit_timer.setSingleShot(True)
        self._emit_timer.setInterval(int(signal_delay_ms))
        self._emit_timer.timeout.connect(self._emit_threshold)

        self._build()
        self.clear()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.headline_label = QLabel()
        self.headline_label.setWordWrap(True)
        font = self.headline_label.font()
        font.setBold(True)
        self.headline_label.setFont(font)
        self.headline_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, _STEPS - 1)
        self.slider.setValue(_STEPS // 2)
        self.slider.setPageStep(5)
        self.slider.setToolTip(
            "The score above which a track is given the tag. Higher: fewer tracks, more of "
            "them right; lower: more tracks, more mistakes."
        )
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(self._flush_threshold)
        self.threshold_label = QLabel()
        self.threshold_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("0.00 "))
        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("Threshold"))
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.threshold_label)

        self._grid = QGridLayout()
        self._grid.setHorizontalSpacing(10)
        self._grid.setVerticalSpacing(2)
        self._grid.setColumnStretch(1, 1)
        self._name_labels: dict[str, QLabel] = {}
        self._value_labels: dict[str, QLabel] = {}
        for i, row in enumerate(figure_rows(_EMPTY_REPORT)):
            name, value = QLabel(row.name), QLabel()
            name.setToolTip(row.tooltip)
            value.setToolTip(row.tooltip)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._grid.addWidget(name, i, 0, Qt.AlignmentFlag.AlignTop)
            self._grid.addWidget(value, i, 1)
            self._name_labels[row.key] = name
            self._value_labels[row.key] = value

        self._build_plot()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.headline_label)
        layout.addLayout(self._grid)
        layout.addLayout(slider_row)
        layout.addWidget(self.canvas)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _build_plot(self) -> None:
        # no layout engine: constrained layout re-measures every text on every draw
        # (it doubled the draw time); margins are fixed in points instead (_place_axes)
        self.figure = Figure(figsize=(4.0, 1.9), dpi=100)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(180)
        self.canvas.setToolTip(
            "Left: how many unlabeled tracks get each score (log scale), your 'yes' (green) "
            "and 'no' (red) labels as ticks at the bottom, the threshold as the orange line; "
            "click or drag to move it. Right: ranking quality (AP) on albums held out, with "
            "its 95% interval, as you label more."
        )
        self._background = None  # the last full draw without the threshold, for blitting
        self._gridspec = self.figure.add_gridspec(1, 2, width_ratios=(2.3, 1))
        self.hist_ax = self.figure.add_subplot(self._gridspec[0, 0])
        self.history_ax = self.figure.add_subplot(self._gridspec[0, 1])
        # the artists are made once and updated in place: clearing an axes rebuilds
        # its ticks, which cost more than drawing them
        with matplotlib.rc_context(self._plot_style()):
            self._build_histogram_axes()
            self._build_history_axes()
        self._place_axes()
        self.canvas.mpl_connect("resize_event", self._place_axes)
        self.canvas.mpl_connect("draw_event", self._on_draw)
        self.canvas.mpl_connect("button_press_event", self._on_plot_press)
        self.canvas.mpl_connect("motion_notify_event", self._on_plot_motion)
        self.canvas.mpl_connect("button_release_event", self._on_plot_release)

    # -- public state ---------------------------------------------------------------------

    @property
    def tag(self) -> str | None:
        """The tag shown, or None."""
        return self._tag

    @property
    def threshold(self) -> float:
        """The threshold of the slider, 0.01 to 0.99."""
        return self.slider.value() / _STEPS

    @property
    def figures(self) -> ThresholdFigures | None:
        """The threshold-dependent figures shown now (``complete`` False: the report's own)."""
        return self._figures

    @property
    def report(self) -> QualityReport | None:
        """The quality report of the refit shown, or None."""
        return None if self._result is None else self._result.quality

    @property
    def history(self) -> ApHistory:
        """The out-of-fold AP over the refits of the current tag (do not modify)."""
        return self._history

    @property
    def is_busy(self) -> bool:
        """True while threshold figures are pending or being computed."""
        return self._basis_jobs.is_busy or self._figure_jobs.is_busy

    def headline_text(self) -> str:
        """The verdict shown."""
        return self.headline_label.text()

    def figure_text(self, key: str) -> str:
        """The value shown for figure ``key`` (see :func:`.quality_view.figure_rows`)."""
        return self._value_labels[key].text()

    # -- slots ----------------------------------------------------------------------------

    def set_library(self, lib: LibraryFeatures) -> None:
        """Use ``lib`` from now on (more tracks embedded); the next result redraws."""
        self._basis_jobs.cancel()
        self._figure_jobs.cancel()
        self._lib = lib
        self._basis = None

    @Slot(str, object, object)
    def set_result(self, tag: str, result: RefitResult, labels: np.ndarray) -> None:
        """Show a refit of ``tag``; a new tag starts a new AP history.

        Parameters
        ----------
        tag : str
            The tag's name.
        result : RefitResult
            The refit to show (its ``quality`` may be None: then only the
            threshold figures and the histogram are shown).
        labels : ndarray
            The labels the refit used, per library row: 1, 0, -1 (as
            ``ReviewPanel.labels()``); copied.

        Raises
        ------
        ValueError
            If ``labels`` or the result's scores do not have one entry per library track.
        """
        n = len(self._lib.X)
        labels = np.array(labels, copy=True)
        if len(labels) != n or len(result.scores) != n:
            raise ValueError(
                f"QualityPanel.set_result: the library has {n} tracks, but {len(labels)} labels "
                f"and {len(result.scores)} scores were given"
            )
        if tag != self._tag:
            self._basis = None
        self._tag = tag
        self._result = result
        self.status_label.clear()
        history_changed = self._history.add(tag, result.quality)

        report = result.quality
        if report is not None and abs(report.threshold - self.threshold) < 1e-9:
            self._figures = figures_from_report(report)
        else:
            self._figures = None
        self._show_words()
        self._draw_histogram(score_histogram(result.scores, labels))
        if history_changed:
            self._draw_history()

        if self._basis is not None and self._basis.snapshot == result.snapshot:
            self._request_figures()
            return
        self._basis = None
        self._figure_jobs.cancel()
        X, scores, threshold, snapshot = self._lib.X, result.scores, self.threshold, result.snapshot
        self._basis_jobs.submit(
            lambda: threshold_task(
                threshold, X=X, y=labels, scores=scores, tag=tag, snapshot=snapshot
            )
        )

    @Slot()
    def clear(self, message: str = "") -> None:
        """Show nothing but ``message``; forget the tag, its figures and its AP history.

        Parameters
        ----------
        message : str, optional
            Plain words for the headline (e.g. why there is no estimate yet).
        """
        self._basis_jobs.cancel()
        self._figure_jobs.cancel()
        self._tag = None
        self._result = None
        self._basis = None
        self._figures = None
        self._history.reset()
        self.headline_label.setText(message or headline(None).text)
        self.headline_label.setStyleSheet(f"color: {_LEVEL_COLOURS['none']}")
        for label in self._value_labels.values():
            label.setText("\u2014")
        self.status_label.clear()
        self._update_threshold_label()
        self._draw_histogram(None)
        self._draw_history()

    @Slot(float)
    def set_threshold(self, threshold: float) -> None:
        """Move the threshold (rounded to 0.01, clipped to 0.01-0.99) and re-compute its figures.

        Does not emit :attr:`thresholdChanged` (that signal is for the user's moves).
        """
        value = _step_of(threshold)
        self.slider.blockSignals(True)
        try:
            self.slider.setValue(value)
        finally:
            self.slider.blockSignals(False)
        self._threshold_moved()

    def shutdown(self) -> None:
        """Cancel the pending and running figure requests (the app waits for the pool)."""
        self._basis_jobs.cancel()
        self._figure_jobs.cancel()
        self._emit_timer.stop()

    # -- threshold --------------------------------------------------------------------------

    @Slot(int)
    def _on_slider(self, _value: int) -> None:
        self._threshold_moved()
        self._emit_timer.start()
        if not self.slider.isSliderDown():
            self._flush_threshold()

    @Slot()
    def _flush_threshold(self) -> None:
        if self._emit_timer.isActive():
            self._emit_timer.stop()
            self._emit_threshold()

    @Slot()
    def _emit_threshold(self) -> None:
        self.thresholdChanged.emit(self.threshold)

    def _threshold_moved(self) -> None:
        self._update_threshold_label()
        self._move_threshold_line()
        if self._result is None:
            return
        figures = self._figures
        if figures is not None and abs(figures.threshold - self.threshold) < 1e-9:
            return
        self._request_figures()

    def _update_threshold_label(self) -> None:
        self.threshold_label.setText(f"{self.threshold:.2f}")

    def _request_figures(self) -> None:
        basis = self._basis
        if basis is None:
            return  # the basis of this refit is on its way; its arrival computes the figures
        threshold = self.threshold
        self._figure_jobs.submit(lambda: threshold_task(threshold, basis=basis))

    @Slot(object)
    def _on_basis(self, value: tuple[ThresholdBasis, ThresholdFigures]) -> None:
        basis, _ = value
        if self._result is None or basis.snapshot != self._result.snapshot:
            return  # a refit replaced since
        self._basis = basis
        self._on_figures(value)

    @Slot(object)
    def _on_figures(self, value: tuple[ThresholdBasis, ThresholdFigures]) -> None:
        basis, figures = value
        if basis is not self._basis:
            return
        if abs(figures.threshold - self.threshold) >= 1e-9:
            self._request_figures()  # the slider moved on while it ran
            return
        self._figures = figures
        self._show_words()
        self.figuresChanged.emit(figures)

    @Slot(object)
    def _on_error(self, exc: BaseException) -> None:
        message = f"Could not compute the quality figures: {describe_error(exc)}"
        self.status_label.setText(message)
        self.errorOccurred.emit(message)

    # -- words ----------------------------------------------------------------------------

    def _show_words(self) -> None:
        report = self.report
        figures = self._figures
        if report is None:
            line = headline(None)
            self.headline_label.setText(
                "No quality estimate for this refit." if self._result is not None else line.text
            )
            self.headline_label.setStyleSheet(f"color: {_LEVEL_COLOURS['none']}")
            for label in self._value_labels.values():
                label.setText("\u2014")
            if figures is not None:
                self._value_labels["above"].setText(
                    f"{figures.n_above:,} of {figures.n_tracks:,} tracks"
                )
            return
        pending = figures is None
        if pending:
            figures = figures_from_report(report)
        line = headline(report, figures)
        self.headline_label.setText(line.text)
        self.headline_label.setStyleSheet(f"color: {_LEVEL_COLOURS[line.level]}")
        for row in figure_rows(report, figures):
            text = row.value
            if pending and row.key in ("above", "precision", "recall"):
                text = "\u2026"  # the figures at the slider's threshold are on their way
            self._value_labels[row.key].setText(text)

    # -- plot -----------------------------------------------------------------------------

    def _plot_style(self) -> dict[str, str]:
        # the app's palette, so the plot sits in a light or a dark theme; passed to
        # matplotlib.rc_context while the artists are made, never set globally
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText).name()
        self.figure.set_facecolor(palette.color(QPalette.ColorRole.Window).name())
        return {
            "axes.facecolor": palette.color(QPalette.ColorRole.Base).name(),
            "axes.edgecolor": text,
            "axes.labelcolor": text,
            "text.color": text,
            "xtick.color": text,
            "ytick.color": text,
            "font.size": 7,
            "axes.titlesize": 7,
            "axes.labelsize": 7,
            "axes.titlepad": 2,
            "axes.labelpad": 1,
        }

    def _place_axes(self, _event=None) -> None:
        """Margins in points (room for the tick labels), whatever the canvas's size."""
        self._background = None  # of another size: the next full draw makes a new one
        width, height = self.figure.get_size_inches() * 72
        left, right, bottom, top, gap = 22, 9, 23, 11, 28  # points
        if width <= left + right + gap + 20 or height <= bottom + top + 10:
            return  # too small to draw anything readable: leave the last placement
        self._gridspec.update(
            left=left / width,
            right=1 - right / width,
            bottom=bottom / height,
            top=1 - top / height,
            wspace=gap / ((width - left - right - gap) / 2),  # of the mean axes width
        )
        # GridSpec.update moves the axes of pyplot's figures only
        for ax in (self.hist_ax, self.history_ax):
            ax.set_position(ax.get_subplotspec().get_position(self.figure))

    def _tick_style(self, ax) -> None:
        # tick labels are made lazily at draw time, outside any rc_context: set them here
        text = self.palette().color(QPalette.ColorRole.WindowText).name()
        ax.tick_params(which="both", labelsize=7, colors=text, pad=1)
        ax.tick_params(which="major", length=2)
        ax.tick_params(which="minor", length=1)

    def _build_histogram_axes(self) -> None:
        ax = self.hist_ax
        self._tick_style(ax)
        ax.set_xlim(0, 1)
        ax.set_xlabel("score", fontsize=7, labelpad=1)
        ax.set_title("unlabeled tracks by score", fontsize=7, pad=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=5))
        ax.yaxis.set_major_formatter(FuncFormatter(_count_label))
        # minor ticks of a log axis are many artists for little information
        ax.yaxis.set_minor_locator(NullLocator())
        edges = np.linspace(0, 1, 2)
        self._stairs = ax.stairs(
            [1.0], edges, baseline=0.5, fill=True, color=_UNLABELED, alpha=0.6, lw=0
        )
        xt = ax.get_xaxis_transform()
        # the rugs: "no" labels on the lowest strip, "yes" labels just above them
        self._negative_rug = ax.vlines([], 0.01, 0.08, transform=xt, color=_NEGATIVE, lw=0.8)
        self._positive_rug = ax.vlines([], 0.09, 0.16, transform=xt, color=_POSITIVE, lw=0.8)
        # the threshold's artists are "animated": left out of full draws and blitted on top
        # (_on_draw), so dragging the threshold redraws two artists, not the figure
        self._threshold_line = ax.axvline(self.threshold, color=_THRESHOLD, lw=1.5, animated=True)
        self._threshold_span = Rectangle(
            (self.threshold, 0),
            1 - self.threshold,
            1,
            transform=xt,
            color=_THRESHOLD,
            alpha=0.1,
            lw=0,
            animated=True,
        )
        ax.add_patch(self._threshold_span)
        self._hist_note = ax.text(
            0.5, 0.55, "no scores yet", ha="center", color=_UNLABELED, transform=ax.transAxes
        )

    def _build_history_axes(self) -> None:
        ax = self.history_ax
        self._tick_style(ax)
        ax.set_ylim(0, 1.02)
        ax.set_title("ranking quality (AP)", fontsize=7, pad=2)
        ax.set_xlabel("labels", fontsize=7, labelpad=1)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        (self._ap_line,) = ax.plot([], [], color=_POSITIVE, lw=1.2, marker="o", ms=2.5)
        self._ap_band = None
        self._history_note = ax.text(
            0.5,
            0.5,
            "grows as\nyou label",
            ha="center",
            va="center",
            color=_UNLABELED,
            transform=ax.transAxes,
        )

    def _draw_histogram(self, hist: ScoreHistogram | None) -> None:
        ax = self.hist_ax
        self._hist_note.set_visible(hist is None)
        for artist in (self._stairs, self._negative_rug, self._positive_rug):
            artist.set_visible(hist is not None)
        ax.yaxis.set_visible(hist is not None)
        if hist is not None:
            counts = hist.unlabeled.astype(float)
            top = max(2.0, counts.max() * 2)
            # the bottom strip of the axes (below a count of 1) is kept for the rugs
            bottom = top ** (-_RUG_STRIP / (1 - _RUG_STRIP))
            self._stairs.set_data(np.maximum(counts, bottom), hist.edges, baseline=bottom)
            ax.set_ylim(bottom, top)
            self._negative_rug.set_segments([[(x, 0.01), (x, 0.08)] for x in hist.negative_scores])
            self._positive_rug.set_segments([[(x, 0.09), (x, 0.16)] for x in hist.positive_scores])
        self._invalidate_plot()

    def _draw_history(self) -> None:
        ax = self.history_ax
        n, ap, low, high = self._history.arrays()
        self._history_note.set_visible(len(n) == 0)
        self._ap_line.set_data(n, ap)
        if self._ap_band is not None:
            self._ap_band.remove()
            self._ap_band = None
        band = ~np.isnan(low)
        if band.any():
            x, lo, hi = n[band], low[band], high[band]
            if len(x) == 1:  # one point: its interval as a short bar, not a line of no width
                x, lo, hi = x[0] + np.array([-0.3, 0.3]), np.repeat(lo, 2), np.repeat(hi, 2)
            self._ap_band = ax.fill_between(x, lo, hi, color=_POSITIVE, alpha=0.2, lw=0)
        if len(n) == 0:
            ax.set_xlim(0, 1)
            ax.xaxis.set_visible(False)
        else:
            ax.xaxis.set_visible(True)
            # at least 4 labels wide, so the integer tick locator finds integers to show
            pad = max(0.05 * (n[-1] - n[0]), (4 - (n[-1] - n[0])) / 2, 0.5)
            ax.set_xlim(n[0] - pad, n[-1] + pad)
        self._invalidate_plot()

    def _move_threshold_line(self) -> None:
        t = self.threshold
        self._threshold_line.set_xdata([t, t])
        self._threshold_span.set_x(t)
        self._threshold_span.set_width(1 - t)
        if self._background is None:
            self.canvas.draw_idle()  # a full draw is due anyway; it draws them too
            return
        self.canvas.restore_region(self._background)
        self._draw_threshold_artists()
        self.canvas.blit(self.figure.bbox)

    def _draw_threshold_artists(self) -> None:
        self.figure.draw_artist(self._threshold_span)
        self.figure.draw_artist(self._threshold_line)

    def _invalidate_plot(self) -> None:
        self._background = None
        self.canvas.draw_idle()

    def _on_draw(self, _event) -> None:
        # after every full draw: keep the picture without the threshold, then add it
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        self._draw_threshold_artists()

    def _on_plot_press(self, event) -> None:
        if event.inaxes is self.hist_ax and event.button == 1 and event.xdata is not None:
            self._dragging_plot = True
            self.slider.setSliderDown(True)  # a drag: one thresholdChanged at the release
            self.slider.setValue(_step_of(event.xdata))

    def _on_plot_motion(self, event) -> None:
        if self._dragging_plot and event.inaxes is self.hist_ax and event.xdata is not None:
            self.slider.setValue(_step_of(event.xdata))

    def _on_plot_release(self, _event) -> None:
        if self._dragging_plot:
            self._dragging_plot = False
            self.slider.setSliderDown(False)
            self._flush_threshold()


_EMPTY_REPORT = QualityReport(n_positive=0, n_negative=0, n_tracks=0, threshold=0.5, n_above=0)
