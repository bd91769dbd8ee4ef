"""The "now playing" widget: one track's title, waveform + mel view, transport and volume.

:class:`NowPlayingWidget` decodes a track in the :class:`~tagger_gui.qt.worker.WorkerPool`
(through :class:`~tagger_gui.qt.worker.LatestOnly`: when the user moves on
quickly, only the newest track is decoded and shown, and decoding never runs
on the GUI thread), draws it, and plays it through a :class:`~tagger_gui.qt.player.Player`
from where it should start: usually the excerpt that scores highest for the
current tag (:func:`~tagger_gui.core.fewshot.excerpt.best_excerpt`, computed in
the same pool task), so the expert hears why the track was proposed. A line
under the view says where playback started and why.

Keys are not handled here: the review panel owns Space and the arrows and
calls :meth:`NowPlayingWidget.toggle` and :meth:`NowPlayingWidget.seek_by`.

Failures are plain messages and the widget keeps working: a file that will
not decode ("Cannot play <file>: <reason>"), and no audio output ("No audio
output device: <reason>", said once; the transport is disabled but tracks are
still decoded and drawn, and clicking still moves the playhead).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSlider,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tagger_gui.core.errors import AudioError
from tagger_gui.core.fewshot.excerpt import ExcerptChoice, fallback_excerpt, format_time
from tagger_gui.core.playback import PreparedTrack, prepare_track_task
from tagger_gui.qt.player import Player
from tagger_gui.qt.waveform import WaveformView
from tagger_gui.qt.worker import LatestOnly, WorkerPool, describe_error

__all__ = ["LoadedTrack", "NowPlayingWidget"]

logger = logging.getLogger(__name__)

#: QSettings key of the volume (0-100).
VOLUME_KEY = "player/volume"
DEFAULT_VOLUME = 80
# Envelope buckets computed in the pool (the view scales them to its width).
_ENVELOPE_BUCKETS = 2000

#: What :meth:`NowPlayingWidget.set_track` accepts as ``excerpt``: a choice made
#: already, or a function of the decoded duration (seconds) run in the pool.
ExcerptSource = ExcerptChoice | Callable[[float], ExcerptChoice] | None


@dataclass
class LoadedTrack:
    """What the pool task hands back: the decoded track and where to start."""

    path: str
    track: PreparedTrack
    choice: ExcerptChoice


def _load_task(
    path: str, sr: int | None, start_s: float, excerpt: ExcerptSource
) -> Generator[str, None, LoadedTrack]:
    """Decode and draw ``path``, then choose the start (all in a pool thread)."""
    track = yield from prepare_track_task(path, sr=sr, n_buckets=_ENVELOPE_BUCKETS)
    duration = track.audio.duration
    if isinstance(excerpt, ExcerptChoice):
        choice = excerpt
    elif excerpt is not None:
        yield "choosing the excerpt"
        try:
            choice = excerpt(duration)
        except Exception as exc:  # a missing score must not stop playback
            logger.warning("no excerpt for %s: %s", path, describe_error(exc), exc_info=exc)
            choice = fallback_excerpt(
                duration, why=f"the excerpts could not be scored: {describe_error(exc)}"
            )
    elif start_s > 0:
        choice = ExcerptChoice(float(start_s), "given", "")
    else:
        choice = ExcerptChoice(0.0, "start", "the start of the track")
    return LoadedTrack(path, track, choice)


def _cannot_play(path: str, exc: BaseException) -> str:
    name = Path(path).name
    reason = exc.reason if isinstance(exc, AudioError) else describe_error(exc)
    return f"Cannot play {name}: {reason.rstrip('.')}."


class NowPlayingWidget(QWidget):
    """Title, waveform + mel spectrogram with a playhead, play/pause, time and volume.

    Parameters
    ----------
    pool : WorkerPool
        Where tracks are decoded (and their excerpt chosen).
    parent : QWidget, optional
    player_factory : callable, optional, keyword-only
        ``player_factory(parent) -> Player``; default :class:`Player`. A
        factory that raises (e.g. ``sounddevice.PortAudioError``) leaves the
        widget without audio output, showing why.

    Signals
    -------
    errorOccurred(str)
        A plain-words message: a file that will not decode, no audio output
        device (said once).
    trackLoaded(str)
        The path of a track now decoded, drawn and positioned at its start.
    stateChanged(str)
        The player's ``"playing"``, ``"paused"`` or ``"stopped"``.
    """

    errorOccurred = Signal(str)
    trackLoaded = Signal(str)
    stateChanged = Signal(str)

    def __init__(
        self,
        pool: WorkerPool,
        parent: QWidget | None = None,
        *,
        player_factory: Callable[[QObject], Player] = Player,
    ) -> None:
        super().__init__(parent)
        self._no_device: str | None = None  # the reason, once audio output failed
        self._path: str | None = None  # the track requested last
        self._loaded: str | None = None  # the track decoded and shown
        self._failed = False  # the requested track would not decode
        self._autoplay = False  # for the request in flight
        self._position = 0.0  # the playhead when there is no player
        self._duration = 0.0
        self._choice: ExcerptChoice | None = None
        self._build()
        self._loader = LatestOnly(pool, delay_ms=0, parent=self)
        self._loader.result.connect(self._on_loaded)
        self._loader.error.connect(self._on_load_error)
        self._player: Player | None = None
        try:
            self._player = player_factory(self)
        except Exception as exc:  # PortAudioError, OSError (no PortAudio library), ...
            # Said after the constructor returns, so a caller connecting
            # errorOccurred right after construction still hears it.
            detail = str(exc).strip() or type(exc).__name__
            self._set_no_device(detail)
            QTimer.singleShot(0, self, lambda: self.errorOccurred.emit(self._device_message()))
        if self._player is not None:
            self._player.deviceError.connect(self._on_device_error)
            self._player.positionChanged.connect(self._on_position)
            self._player.stateChanged.connect(self._on_state)
        self._apply_volume(self.volume_slider.value())
        self._update_transport()

    # -- layout -------------------------------------------------------------------------

    def _build(self) -> None:
        bold = QFont(self.font())
        bold.setBold(True)
        self.title_label = QLabel()
        self.title_label.setFont(bold)
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.view = WaveformView()
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.seekRequested.connect(self.seek)

        # No keyboard focus for the controls: Space and the arrows belong to the
        # review panel (a focused button would eat Space, a slider the arrows).
        self.play_button = QToolButton()
        self.play_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.play_button.setAutoRaise(True)
        self.play_button.clicked.connect(self.toggle)
        self.time_label = QLabel("0:00 / 0:00")
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.volume_slider.setRange(0, 100)
        self.volume_slider.setMaximumWidth(140)
        self.volume_slider.setToolTip("Volume")
        saved = QSettings().value(VOLUME_KEY, DEFAULT_VOLUME)
        try:
            volume = int(saved)
        except (TypeError, ValueError):  # a hand-edited settings file
            volume = DEFAULT_VOLUME
        self.volume_slider.setValue(min(max(volume, 0), 100))
        self.volume_slider.valueChanged.connect(self._on_volume)
        volume_icon = QLabel()
        volume_icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MediaVolume).pixmap(16, 16)
        )

        transport = QHBoxLayout()
        transport.addWidget(self.play_button)
        transport.addWidget(self.time_label)
        transport.addStretch(1)
        transport.addWidget(volume_icon)
        transport.addWidget(self.volume_slider)

        self.excerpt_label = QLabel()  # where playback started and why
        self.excerpt_label.setWordWrap(True)
        self.message_label = QLabel()  # errors, in plain words
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #b00020;")
        self.message_label.hide()
        self.device_label = QLabel()  # no audio output: stays while it lasts
        self.device_label.setWordWrap(True)
        self.device_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.view, 1)
        layout.addLayout(transport)
        layout.addWidget(self.excerpt_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.device_label)

    # -- state --------------------------------------------------------------------------

    @property
    def player(self) -> Player | None:
        """The player, or None when it could not be created."""
        return self._player

    def has_audio_output(self) -> bool:
        """False once opening the audio output failed."""
        return self._player is not None and self._no_device is None

    def device_message(self) -> str | None:
        """``"No audio output device: <reason>."`` once audio output failed, else None."""
        return None if self._no_device is None else self._device_message()

    def current_path(self) -> str | None:
        """The track requested last (decoded or not yet)."""
        return self._path

    def loaded_path(self) -> str | None:
        """The track decoded and shown, or None (while decoding, after an error)."""
        return self._loaded

    def is_loading(self) -> bool:
        """True while the requested track is being decoded."""
        return self._path is not None and self._loaded != self._path and not self._failed

    def choice(self) -> ExcerptChoice | None:
        """Where the shown track started, and why."""
        return self._choice

    def state(self) -> str:
        """``"playing"``, ``"paused"`` or ``"stopped"``."""
        return self._player.state() if self._player is not None else Player.STOPPED

    def position(self) -> float:
        """The playhead, seconds."""
        if self._player is not None and self._loaded is not None:
            return self._player.position()
        return self._position

    def duration(self) -> float:
        """Length of the shown track, seconds (0 without one)."""
        return self._duration if self._loaded is not None else 0.0

    def volume(self) -> float:
        """The volume, 0 to 1."""
        return self.volume_slider.value() / 100

    # -- control ------------------------------------------------------------------------

    def set_track(
        self,
        path: str | os.PathLike,
        *,
        start_s: float = 0.0,
        autoplay: bool = True,
        title: str = "",
        excerpt: ExcerptSource = None,
    ) -> None:
        """Show and (with ``autoplay``) play ``path`` once it is decoded in the pool.

        Parameters
        ----------
        path : str or path-like
            The audio file.
        start_s : float, keyword-only
            Where playback starts when ``excerpt`` is None.
        autoplay : bool, keyword-only
            Start playing as soon as it is decoded (no-op without audio output).
        title : str, keyword-only
            Shown above the view; default the file name.
        excerpt : ExcerptChoice or callable, optional, keyword-only
            Where to start and why. A callable is called in the pool with the
            decoded duration, e.g. ``lambda d: best_excerpt(cache_path, key,
            relpath, probe, tag=tag, duration=d)`` (pass the cache *path*: it
            runs on a pool thread). It wins over ``start_s``.

        Notes
        -----
        The newest call wins: a track still decoding when another is asked
        for is dropped. Playback of the previous track stops at once.
        """
        path = os.fspath(path)
        self._path = path
        self._loaded = None
        self._failed = False
        self._choice = None
        self._autoplay = bool(autoplay)
        self._position = 0.0
        self._duration = 0.0
        if self._player is not None:
            self._player.stop()
        self.view.clear()
        self.title_label.setText(title or Path(path).name)
        self.excerpt_label.setText("Loading…")
        self._clear_message()
        self._update_time()
        self._update_transport()
        sr = self._device_rate()
        start = float(start_s)
        self._loader.submit(lambda: _load_task(path, sr, start, excerpt))

    def clear(self) -> None:
        """Show no track (and drop one still decoding)."""
        self._loader.cancel()
        if self._player is not None:
            self._player.stop()
        self._path = self._loaded = None
        self._choice = None
        self._position = self._duration = 0.0
        self.view.clear()
        self.title_label.clear()
        self.excerpt_label.clear()
        self._clear_message()
        self._update_time()
        self._update_transport()

    @Slot()
    def toggle(self) -> bool:
        """Play or pause (the Space key). While decoding, flips whether it will autoplay.

        Returns
        -------
        bool
            True if playing (or going to play) afterwards.
        """
        if self.is_loading():
            self._autoplay = not self._autoplay
            return self._autoplay and self.has_audio_output()
        if self._loaded is None or not self.has_audio_output():
            return False
        self._player.toggle()
        return self._player.state() == Player.PLAYING

    def play(self) -> bool:
        """Play the shown track; False without one or without audio output."""
        if self._loaded is None or not self.has_audio_output():
            return False
        return self._player.play()

    def pause(self) -> None:
        """Pause; the playhead stays."""
        if self._player is not None:
            self._player.pause()

    @Slot(float)
    def seek(self, seconds: float) -> None:
        """Move the playhead to ``seconds`` (clipped to the track), playing or not."""
        if self._loaded is None:
            return
        seconds = min(max(float(seconds), 0.0), self._duration)
        if self._player is not None:
            self._player.seek(seconds)
        else:
            self._on_position(seconds)

    @Slot(float)
    def seek_by(self, seconds: float) -> None:
        """Move the playhead by ``seconds`` (negative: back), e.g. 5 s for the arrows."""
        self.seek(self.position() + float(seconds))

    @Slot()
    def stop(self) -> None:
        """Stop and go back to the start of the track."""
        if self._player is not None:
            self._player.stop()
        else:
            self._on_position(0.0)

    def shutdown(self) -> None:
        """Drop the track decoding and release the audio device (before the pool shuts down)."""
        self._loader.cancel()
        if self._player is not None:
            self._player.close()

    # -- slots --------------------------------------------------------------------------

    @Slot(object)
    def _on_loaded(self, loaded: LoadedTrack) -> None:
        if loaded.path != self._path:
            return  # cleared, or another track asked for, since
        track, choice = loaded.track, loaded.choice
        duration = track.audio.duration
        start = min(max(choice.start_s, 0.0), duration)
        if start >= duration:
            start = 0.0  # a start past the end (a stale score) would play nothing
        self._loaded = loaded.path
        self._choice = choice
        self._duration = duration
        self.view.set_track(track.mins, track.maxs, track.mel_db, duration)
        self.view.set_highlight(choice.span)
        self.excerpt_label.setText(choice.describe())
        if self._player is not None:
            self._player.set_audio(track.audio)
            self._player.seek(start)
        else:
            self._on_position(start)
        self._update_time()
        self._update_transport()
        if self._autoplay:
            self.play()
        self.trackLoaded.emit(loaded.path)

    @Slot(object)
    def _on_load_error(self, exc: BaseException) -> None:
        path = self._path or ""
        self._loaded = None
        self._failed = True
        self.view.clear()
        self.excerpt_label.clear()
        self._update_time()
        self._update_transport()
        self._show_message(_cannot_play(getattr(exc, "path", None) or path, exc))

    @Slot(str)
    def _on_device_error(self, detail: str) -> None:
        if self._no_device is not None:
            return  # said once
        self._set_no_device(detail)
        self.errorOccurred.emit(self._device_message())

    def _set_no_device(self, detail: str) -> None:
        self._no_device = detail
        self.device_label.setText(self._device_message() + " Tracks are shown but cannot be heard.")
        self.device_label.show()
        if self._player is not None:
            self._player.stop()
        self._update_transport()

    def _device_message(self) -> str:
        return f"No audio output device: {(self._no_device or '').rstrip('.')}."

    @Slot(float)
    def _on_position(self, seconds: float) -> None:
        self._position = float(seconds)
        self.view.set_position(seconds)
        self._update_time()

    @Slot(str)
    def _on_state(self, state: str) -> None:
        self._update_transport()
        self.stateChanged.emit(state)

    @Slot(int)
    def _on_volume(self, value: int) -> None:
        self._apply_volume(value)
        QSettings().setValue(VOLUME_KEY, int(value))

    # -- helpers ------------------------------------------------------------------------

    def _device_rate(self) -> int | None:
        """The output's rate to decode at; None (the file's own) without audio output."""
        if not self.has_audio_output():
            return None
        return self._player.device_samplerate()  # a failure reaches _on_device_error

    def _apply_volume(self, value: int) -> None:
        if self._player is not None:
            self._player.set_volume(value / 100)

    def _update_time(self) -> None:
        position = self.position() if self._loaded is not None else 0.0
        self.time_label.setText(f"{format_time(position)} / {format_time(self.duration())}")

    def _update_transport(self) -> None:
        playing = self.state() == Player.PLAYING
        icon = (
            QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        )
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.setToolTip("Pause (Space)" if playing else "Play (Space)")
        self.play_button.setEnabled(self.has_audio_output() and self._path is not None)

    def _show_message(self, message: str) -> None:
        self.message_label.setText(message)
        self.message_label.show()
        self.errorOccurred.emit(message)

    def _clear_message(self) -> None:
        self.message_label.clear()
        self.message_label.hide()
