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

The plot (score histogram and AP history) is rendered off the GUI thread:
:func:`~tagger_gui.core.fewshot.quality_view.plot_task` draws a matplotlib
``Figure`` of its own on an Agg canvas in the worker pool (newest request
wins) and returns an RGBA picture; the GUI thread only shows it as a pixmap
(:class:`PlotView`) and draws the threshold line over it with QPainter, so
neither a refit nor a slider step runs matplotlib on the GUI thread (a full
draw took 0.2-1.4 s there on a loaded 2-vCPU machine). The picture is
rendered again when its data, size, device pixel ratio or palette change
(debounced: a burst of refits or resizes renders once), and only while the
panel is visible.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
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
    MIN_PLOT_SIZE,
    THRESHOLD_COLOUR,
    ApHistory,
    PlotImage,
    PlotStyle,
    ThresholdBasis,
    ThresholdFigures,
    figure_rows,
    figures_from_report,
    headline,
    plot_task,
    threshold_task,
)
from .worker import LatestOnly, WorkerPool, describe_error

__all__ = ["PlotView", "QualityPanel"]

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
#: Height of the plot in logical pixels.
_PLOT_HEIGHT = 180


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
    plot_delay_ms : int, optional
        Debounce of the plot's rendering: a burst of refits (quick labels) or of
        resizes renders once, after its last (a render costs 0.1-0.5 s of CPU,
        which the GUI thread shares on a small machine).
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
        plot_delay_ms: int = 300,
    ) -> None:
        super().__init__(parent)
        self._lib = lib
        self._tag: str | None = None
        self._result: RefitResult | None = None
        self._basis: ThresholdBasis | None = None
        self._figures: ThresholdFigures | None = None
        self._history = ApHistory()
        self._dragging_plot = False
        self._plot_data: tuple[np.ndarray, np.ndarray] | None = None  # scores, labels
        self._plot_stale = True

        # the first request of a refit fits a probe: it must not be cancelled by
        # slider moves, so it has its own queue
        self._basis_jobs = LatestOnly(pool, delay_ms=0, parent=self)
        self._basis_jobs.result.connect(self._on_basis)
        self._basis_jobs.error.connect(self._on_error)
        self._figure_jobs = LatestOnly(pool, delay_ms=delay_ms, parent=self)
        self._figure_jobs.result.connect(self._on_figures)
        self._figure_jobs.error.connect(self._on_error)
        self._plot_jobs = LatestOnly(pool, delay_ms=plot_delay_ms, parent=self)
        self._plot_jobs.result.connect(self._on_plot)
        self._plot_jobs.error.connect(self._on_plot_error)

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
        layout.addWidget(self.plot)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _build_plot(self) -> None:
        self.plot = PlotView()
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.plot.setFixedHeight(_PLOT_HEIGHT)
        self.plot.setToolTip(
            "Left: how many unlabeled tracks get each score (log scale), your 'yes' (green) "
            "and 'no' (red) labels as ticks at the bottom, the threshold as the orange line; "
            "click or drag to move it. Right: ranking quality (AP) on albums held out, with "
            "its 95% interval, as you label more."
        )
        self.plot.set_threshold(self.threshold)
        self.plot.pressed.connect(self._on_plot_press)
        self.plot.dragged.connect(self._on_plot_drag)
        self.plot.released.connect(self._on_plot_release)
        self.plot.resized.connect(self._on_plot_resized)

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
        """True while threshold figures or the plot are pending or being computed."""
        return self._basis_jobs.is_busy or self._figure_jobs.is_busy or self._plot_jobs.is_busy

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
        self._history.add(tag, result.quality)

        report = result.quality
        if report is not None and abs(report.threshold - self.threshold) < 1e-9:
            self._figures = figures_from_report(report)
        else:
            self._figures = None
        self._show_words()
        self._plot_data = (result.scores, labels)
        self._request_plot()

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
        self._plot_data = None
        self._request_plot()

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
        self._plot_jobs.cancel()
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
        self.plot.set_threshold(self.threshold)
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
    def _on_error(self, exc: BaseException, what: str = "compute the quality figures") -> None:
        message = f"Could not {what}: {describe_error(exc)}"
        self.status_label.setText(message)
        self.errorOccurred.emit(message)

    @Slot(object)
    def _on_plot_error(self, exc: BaseException) -> None:
        self._on_error(exc, "draw the quality plot")

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

    def _plot_style(self) -> PlotStyle:
        # the app's palette, so the plot sits in a light or a dark theme
        palette = self.palette()
        return PlotStyle(
            face=palette.color(QPalette.ColorRole.Window).name(),
            base=palette.color(QPalette.ColorRole.Base).name(),
            text=palette.color(QPalette.ColorRole.WindowText).name(),
        )

    def _request_plot(self, *, now: bool = False) -> None:
        """Render the plot of the data shown now in the pool (debounced; the newest wins)."""
        if not self.plot.isVisible():
            self._plot_stale = True  # rendered when shown (_on_plot_resized)
            return
        self._plot_stale = False
        scores, labels = self._plot_data if self._plot_data is not None else (None, None)
        history = self._history.arrays()  # fresh arrays: the task owns them
        size = self.plot.size()
        width, height = size.width(), size.height()
        scale = self.plot.devicePixelRatioF()
        style = self._plot_style()
        self._plot_jobs.submit(
            lambda: plot_task(
                scores, labels, history, width=width, height=height, scale=scale, style=style
            )
        )
        if now:
            self._plot_jobs.flush()

    def _plot_outdated(self) -> bool:
        """Whether the picture shown was rendered for another size or pixel ratio."""
        image = self.plot.image
        if image is None:
            return False  # the first picture is on its way
        size = self.plot.size()
        wanted = (max(size.width(), MIN_PLOT_SIZE[0]), max(size.height(), MIN_PLOT_SIZE[1]))
        return image.size != wanted or image.scale != self.plot.devicePixelRatioF()

    @Slot()
    def _on_plot_resized(self) -> None:
        if self._plot_stale:
            self._request_plot(now=True)  # shown with a picture to make: at once
        elif self._plot_outdated():
            self._request_plot()  # debounced: a window drag resizes many times

    @Slot(object)
    def _on_plot(self, image: PlotImage) -> None:
        self.plot.set_image(image)
        if self._plot_outdated() and not self._plot_jobs.is_busy:
            self._request_plot()  # resized while it was rendered

    @Slot(float)
    def _on_plot_press(self, score: float) -> None:
        self._dragging_plot = True
        self.slider.setSliderDown(True)  # a drag: one thresholdChanged at the release
        self.slider.setValue(_step_of(score))

    @Slot(float)
    def _on_plot_drag(self, score: float) -> None:
        if self._dragging_plot:
            self.slider.setValue(_step_of(score))

    @Slot()
    def _on_plot_release(self) -> None:
        if self._dragging_plot:
            self._dragging_plot = False
            self.slider.setSliderDown(False)
            self._flush_threshold()


class PlotView(QWidget):
    """A rendered :class:`.quality_view.PlotImage` with the threshold drawn on top.

    The picture is made in a worker thread; this widget only paints it and
    draws the threshold line (and the shaded area above it) with QPainter, so
    moving the threshold costs a repaint of a pixmap, not a matplotlib draw.

    Signals
    -------
    pressed(float)
        The left button went down on the histogram, at this score.
    dragged(float)
        The mouse moved with the button down, to this score (clipped to 0-1).
    released()
        The button came up after a press on the histogram.
    resized()
        The size, the device pixel ratio or the palette changed, or the widget was shown:
        the picture may need rendering again.
    """

    pressed = Signal(float)
    dragged = Signal(float)
    released = Signal()
    resized = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: PlotImage | None = None
        self._pixmap: QPixmap | None = None
        self._threshold = 0.5
        self._dragging = False
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    @property
    def image(self) -> PlotImage | None:
        """The picture shown, or None before the first arrives."""
        return self._image

    @property
    def threshold(self) -> float:
        """The threshold drawn."""
        return self._threshold

    def set_image(self, image: PlotImage) -> None:
        """Show ``image`` (its pixels are copied into a pixmap)."""
        rgba = np.ascontiguousarray(image.rgba)
        height, width = rgba.shape[:2]
        qimage = QImage(rgba.data, width, height, rgba.strides[0], QImage.Format.Format_RGBA8888)
        qimage.setDevicePixelRatio(image.scale)
        self._pixmap = QPixmap.fromImage(qimage)  # a copy: the numpy buffer may go
        self._image = image
        self.update()

    def set_threshold(self, threshold: float) -> None:
        """Draw the threshold at ``threshold``."""
        self._threshold = float(threshold)
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Window))
        image = self._image
        if image is None or self._pixmap is None:
            return
        painter.drawPixmap(0, 0, self._pixmap)
        _, top, right, bottom = image.hist_box
        x = image.x_of(self._threshold)
        colour = QColor(THRESHOLD_COLOUR)
        shade = QColor(colour)
        shade.setAlphaF(0.1)
        painter.fillRect(QRectF(x, top, right - x, bottom - top), shade)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, 1.5))
        painter.drawLine(QPointF(x, top), QPointF(x, bottom))
        painter.end()

    def mousePressEvent(self, event) -> None:
        image = self._image
        pos = event.position()
        if (
            event.button() == Qt.MouseButton.LeftButton
            and image is not None
            and image.in_histogram(pos.x(), pos.y())
        ):
            self._dragging = True
            self.pressed.emit(image.score_at(pos.x()))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._dragging and self._image is not None:
            self.dragged.emit(self._image.score_at(event.position().x()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._dragging and event.button() == Qt.MouseButton.LeftButton:
            self._dragging = False
            self.released.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.resized.emit()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.resized.emit()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.DevicePixelRatioChange:  # moved to another screen
            self.resized.emit()
        return super().event(event)


_EMPTY_REPORT = QualityReport(n_positive=0, n_negative=0, n_tracks=0, threshold=0.5, n_above=0)
