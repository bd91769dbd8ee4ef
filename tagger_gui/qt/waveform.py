"""The track view of the player: waveform above, log-mel spectrogram below, a playhead.

The widget only draws what the core computes
(:func:`~tagger_gui.core.playback.waveform_envelope`,
:func:`~tagger_gui.core.playback.mel_image`); a click asks for a seek through
:attr:`WaveformView.seekRequested` and the owner decides what to do with it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from tagger_gui.core.playback import mel_image, waveform_envelope

__all__ = ["WaveformView"]

# Buckets of the envelope; the widget scales them to its width.
_ENVELOPE_BUCKETS = 2000


def _colormap() -> np.ndarray:
    """A dark-blue to yellow lookup table (256 x RGB), like magma/viridis in spirit."""
    x = np.linspace(0.0, 1.0, 256)
    r = np.clip(1.6 * x - 0.2, 0, 1)
    g = np.clip(1.2 * x**1.5, 0, 1)
    b = np.clip(0.35 + 0.9 * x - 1.3 * x**2, 0, 1)
    return (np.stack([r, g, b], axis=1) * 255).astype(np.uint8)


_LUT = _colormap()


class WaveformView(QWidget):
    """Waveform and mel spectrogram of one track with a playhead; click to seek.

    Signals
    -------
    seekRequested(float)
        The time (seconds) under a left click.
    """

    seekRequested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mins = np.zeros(0, dtype=np.float32)
        self._maxs = np.zeros(0, dtype=np.float32)
        self._mel: QImage | None = None
        self._mel_rgb: np.ndarray | None = None  # keeps the QImage's memory alive
        self._duration = 0.0
        self._position = 0.0
        self._highlight: tuple[float, float] | None = None  # e.g. the best-scoring excerpt
        self._background: QPixmap | None = None  # waveform + mel at the current size
        self._background_size = (0, 0)
        self.setMinimumHeight(80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Click to play from there")

    def sizeHint(self) -> QSize:
        return QSize(600, 160)

    # ------------------------------------------------------------------ data

    def set_audio(self, samples: np.ndarray, sr: int) -> None:
        """Compute the envelope and the mel image of ``samples`` and show them."""
        mins, maxs = waveform_envelope(samples, _ENVELOPE_BUCKETS)
        self.set_track(mins, maxs, mel_image(samples, sr), len(samples) / sr)

    def set_track(
        self, mins: np.ndarray, maxs: np.ndarray, mel_db: np.ndarray | None, duration: float
    ) -> None:
        """Show precomputed data (e.g. computed in a worker).

        Parameters
        ----------
        mins, maxs : np.ndarray
            The waveform envelope, one value per bucket.
        mel_db : np.ndarray or None
            ``(n_mels, columns)`` in dB relative to the loudest cell (<= 0).
        duration : float
            Track length, seconds (maps x to time).
        """
        self._mins = np.asarray(mins, dtype=np.float32)
        self._maxs = np.asarray(maxs, dtype=np.float32)
        self._duration = max(float(duration), 0.0)
        self._position = 0.0
        self._highlight = None
        self._mel = self._mel_rgb = None
        if mel_db is not None and np.size(mel_db):
            db = np.asarray(mel_db, dtype=np.float32)
            floor = float(db.min())
            scaled = (db - floor) / (-floor) if floor < 0 else np.zeros_like(db)
            index = np.clip(scaled * 255, 0, 255).astype(np.uint8)[::-1]  # low notes at the bottom
            rgb = np.ascontiguousarray(_LUT[index])
            h, w = index.shape
            self._mel_rgb = rgb
            self._mel = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self._background = None
        self.update()

    def clear(self) -> None:
        """Show nothing."""
        self.set_track(np.zeros(0), np.zeros(0), None, 0.0)

    def duration(self) -> float:
        """Duration of the track shown, seconds."""
        return self._duration

    def position(self) -> float:
        """Where the playhead is, seconds."""
        return self._position

    def highlight(self) -> tuple[float, float] | None:
        """The marked span ``(start, end)`` in seconds, or None."""
        return self._highlight

    def set_highlight(self, span: tuple[float, float] | None) -> None:
        """Shade ``(start, end)`` seconds (the excerpt playback started at); None clears.

        :meth:`set_track` clears it, so set it after the track.
        """
        self._highlight = None if span is None else (float(span[0]), float(span[1]))
        self.update()

    def set_position(self, seconds: float) -> None:
        """Move the playhead (connect ``Player.positionChanged`` here)."""
        self._position = float(seconds)
        self.update()

    # ----------------------------------------------------------------- events

    def time_at(self, x: float) -> float:
        """The time (seconds) at widget x coordinate ``x``."""
        width = max(self.width(), 1)
        return min(max(x / width, 0.0), 1.0) * self._duration

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._duration > 0:
            self.seekRequested.emit(self.time_at(event.position().x()))
            event.accept()
            return
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._background = None
        super().resizeEvent(event)

    def _paint(self, painter: QPainter) -> None:
        w, h = self.width(), self.height()
        if self._background is None or self._background_size != (w, h):
            self._background = self._render_background(w, h)
            self._background_size = (w, h)
        painter.drawPixmap(0, 0, self._background)
        if self._duration > 0 and self._highlight is not None:
            x0, x1 = (t / self._duration * w for t in self._highlight)
            painter.fillRect(QRectF(x0, 0, max(x1 - x0, 1.0), h), QColor(255, 220, 120, 60))
        if self._duration > 0:
            x = self._position / self._duration * w
            painter.setPen(QPen(QColor(255, 80, 80), 2))
            painter.drawLine(QPointF(x, 0), QPointF(x, h))

    def _render_background(self, w: int, h: int) -> QPixmap:
        """Waveform and spectrogram at this size, drawn once (the playhead moves often)."""
        ratio = self.devicePixelRatioF()  # sharp on high-DPI screens
        pixmap = QPixmap(max(round(w * ratio), 1), max(round(h * ratio), 1))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(QColor(24, 26, 32))
        painter = QPainter(pixmap)
        try:
            wave_h = h // 2 if self._mel is not None else h
            if len(self._mins) and w > 0:
                # One vertical line per pixel column, spanning the buckets under it.
                lo = waveform_envelope(self._mins, w)[0]
                hi = waveform_envelope(self._maxs, w)[1]
                mid = wave_h / 2
                painter.setPen(QPen(QColor(110, 180, 255), 1))
                tops = (mid - hi * (mid - 1)).tolist()
                bottoms = (mid - lo * (mid - 1)).tolist()
                painter.drawLines(
                    [QLineF(x + 0.5, tops[x], x + 0.5, bottoms[x]) for x in range(len(tops))]
                )
            if self._mel is not None:
                painter.drawImage(QRectF(0, wave_h, w, h - wave_h), self._mel)
        finally:
            painter.end()
        return pixmap
