"""Playback of a decoded track through PortAudio (sounddevice).

:class:`Player` owns one ``sounddevice.OutputStream`` whose callback (on
PortAudio's thread) copies the next frames of the buffer, scaled by the
volume. Everything else runs on the main thread: a QTimer polls the position
and emits :attr:`Player.positionChanged`, and notices the end of the track.

The position is the audio being *heard*, not the audio handed to the device:
it advances with a monotonic clock from the moment playback starts, capped
by the frames the callback has delivered. Devices pull audio ahead of time
(their buffer), and virtual devices without a clock (the ALSA ``null`` PCM
that CI uses) pull it as fast as the CPU allows; counting delivered frames
would make the playhead run ahead there. Pausing rewinds the read position to
the heard position, so nothing buffered is skipped.

No audio device (or no PortAudio library) is not fatal: :attr:`Player.error`
carries a plain message, and the rest of the app keeps working.
"""

from __future__ import annotations

import threading
import time
from types import ModuleType

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from tagger_gui.core.errors import AudioError
from tagger_gui.core.playback import PlaybackAudio, load_for_playback

__all__ = ["Player"]

STOPPED = "stopped"
PLAYING = "playing"
PAUSED = "paused"


def _sounddevice() -> ModuleType:
    """Import sounddevice (it raises OSError when PortAudio is not installed)."""
    import sounddevice

    return sounddevice


class Player(QObject):
    """Play, pause, seek and set the volume of one track.

    Parameters
    ----------
    parent : QObject, optional
    device : int or str, optional
        PortAudio output device; None for the default one.
    poll_ms : int
        How often the position is polled while playing.

    Signals
    -------
    positionChanged(float)
        Heard position in seconds (while playing, and after a seek or stop).
    stateChanged(str)
        ``"playing"``, ``"paused"`` or ``"stopped"``.
    error(str)
        A plain-words message: no audio device, a file that will not decode.
    deviceError(str)
        The reason alone (e.g. ``"Error querying device -1"``), each time the
        output device or the PortAudio library fails; emitted just before the
        matching ``error``, for callers that word the message themselves.
    """

    positionChanged = Signal(float)
    stateChanged = Signal(str)
    error = Signal(str)
    deviceError = Signal(str)

    STOPPED = STOPPED
    PLAYING = PLAYING
    PAUSED = PAUSED

    def __init__(
        self, parent: QObject | None = None, *, device: int | str | None = None, poll_ms: int = 30
    ) -> None:
        super().__init__(parent)
        self._device = device
        self._lock = threading.Lock()
        self._samples = np.zeros((0, 1), dtype=np.float32)
        self._sr = 44100
        self._read = 0  # next frame the callback copies (shared with the callback)
        self._volume = 1.0
        self._ended = False  # the callback reached the end of the buffer
        self._anchor_frame = 0  # heard position when the clock was anchored
        self._anchor_time: float | None = None  # monotonic time of the anchor, while playing
        self._paused_frame = 0
        self._state = STOPPED
        self._stream = None
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)

    # ------------------------------------------------------------------ audio

    def device_samplerate(self) -> int | None:
        """Default rate of the output device, or None (and ``error``) without one."""
        try:
            sd = _sounddevice()
            info = sd.query_devices(self._device, kind="output")
            return int(info["default_samplerate"])
        except Exception as exc:  # any failure (no library, no device) means no audio output
            self._report_no_device(exc)
            return None

    def load(self, path: str, *, start: float = 0.0) -> bool:
        """Decode ``path`` at the device's rate and make it the current track.

        Parameters
        ----------
        path : str
        start : float, keyword-only
            Where playback will start (e.g. the best-scoring excerpt).

        Returns
        -------
        bool
            False (and ``error`` emitted) when the file cannot be decoded.
            Without an audio device the track is still loaded at its own rate.
        """
        sr = self.device_samplerate()
        try:
            audio = load_for_playback(path, sr=sr)
        except AudioError as exc:
            self.error.emit(f"Cannot play {exc.path}: {exc.reason}.")
            return False
        self.set_audio(audio.samples, audio.sr)
        self.seek(start)
        return True

    def set_audio(self, samples: np.ndarray | PlaybackAudio, sr: int | None = None) -> None:
        """Make ``samples`` (``(frames,)`` or ``(frames, channels)``) the current track.

        Stops playback; the position goes to 0.
        """
        if isinstance(samples, PlaybackAudio):
            samples, sr = samples.samples, samples.sr
        if sr is None or sr <= 0:
            raise ValueError(f"sr must be a positive rate, not {sr!r}")
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        self.stop()
        self._close_stream()
        with self._lock:
            self._samples = np.ascontiguousarray(data)
            self._sr = int(sr)
            self._read = 0
            self._ended = False
        self._paused_frame = 0
        self.positionChanged.emit(0.0)

    # ------------------------------------------------------------------ state

    def state(self) -> str:
        """``"playing"``, ``"paused"`` or ``"stopped"``."""
        return self._state

    def duration(self) -> float:
        """Length of the current track, seconds."""
        return len(self._samples) / self._sr

    def volume(self) -> float:
        """Gain applied to the samples, 0 to 1."""
        return self._volume

    def set_volume(self, volume: float) -> None:
        """Set the gain (clipped to 0..1); takes effect at the next callback."""
        self._volume = float(min(max(volume, 0.0), 1.0))

    def position(self) -> float:
        """Heard position, seconds."""
        return self._heard_frame() / self._sr

    def _heard_frame(self) -> int:
        if self._anchor_time is None:
            return self._paused_frame
        elapsed = round((time.monotonic() - self._anchor_time) * self._sr)
        with self._lock:
            delivered = self._read
        return min(self._anchor_frame + elapsed, delivered, len(self._samples))

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    # --------------------------------------------------------------- controls

    def play(self) -> bool:
        """Start or resume playback; False (and ``error``) without an audio device."""
        if self._state == PLAYING:
            return True
        if len(self._samples) == 0:
            return False
        frame = self._paused_frame
        if frame >= len(self._samples):
            frame = 0  # played to the end: start again
        if not self._start_stream(frame):
            return False
        self._timer.start()
        self._set_state(PLAYING)
        return True

    def pause(self) -> None:
        """Pause; the position stays where it is."""
        if self._state != PLAYING:
            return
        self._halt()
        self._set_state(PAUSED)
        self.positionChanged.emit(self.position())

    def toggle(self) -> None:
        """Play if paused or stopped, else pause (the Space key)."""
        if self._state == PLAYING:
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        """Stop and go back to the start."""
        if self._state == PLAYING:
            self._halt()
        self._paused_frame = 0
        with self._lock:
            self._read = 0
        if self._state != STOPPED:
            self._set_state(STOPPED)
            self.positionChanged.emit(0.0)

    def seek(self, seconds: float) -> None:
        """Go to ``seconds`` (clipped to the track), playing or not."""
        frame = round(min(max(seconds, 0.0), self.duration()) * self._sr)
        if self._state == PLAYING:
            with self._lock:
                self._read = frame
                self._ended = False
                self._anchor_frame = frame
                self._anchor_time = time.monotonic()
            stream = self._stream
            if stream is not None and not stream.active:
                # The callback had already stopped the stream at the end.
                self._start_stream(frame)
        else:
            self._paused_frame = frame
        self.positionChanged.emit(frame / self._sr)

    def close(self) -> None:
        """Stop and release the audio device (call on quit)."""
        self.stop()
        self._close_stream()

    # ----------------------------------------------------------------- stream

    def _report_no_device(self, exc: BaseException) -> None:
        detail = str(exc).strip() or type(exc).__name__
        self.deviceError.emit(detail)
        self.error.emit(f"No audio output available, so tracks cannot be played ({detail}).")

    def _start_stream(self, frame: int) -> bool:
        try:
            sd = _sounddevice()
            stream = self._stream
            if stream is not None and (
                stream.samplerate != self._sr or stream.channels != self._samples.shape[1]
            ):
                self._close_stream()
                stream = None
            if stream is None:
                stream = sd.OutputStream(
                    samplerate=self._sr,
                    channels=self._samples.shape[1],
                    dtype="float32",
                    device=self._device,
                    callback=self._callback,
                )
                self._stream = stream
            elif not stream.stopped:
                stream.abort()  # finished by CallbackStop: must be stopped to restart
            with self._lock:
                self._read = frame
                self._ended = False
                self._anchor_frame = frame
                self._anchor_time = time.monotonic()
            stream.start()
        except Exception as exc:  # PortAudioError, OSError (no PortAudio library), ...
            self._anchor_time = None
            self._paused_frame = frame
            self._close_stream()
            self._report_no_device(exc)
            return False
        return True

    def _halt(self) -> None:
        """Stop the stream, keep the heard position as the paused position."""
        frame = self._heard_frame()
        self._timer.stop()
        if self._stream is not None:
            try:
                self._stream.abort()
            except Exception as exc:  # the device went away
                self._report_no_device(exc)
                self._close_stream()
        self._anchor_time = None
        self._paused_frame = frame
        with self._lock:
            self._read = frame  # resume from what was heard, not what was buffered

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # the device is gone: nothing left to release
                pass

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """PortAudio's callback: the next ``frames`` of the track, scaled by the volume.

        Runs on PortAudio's thread; it only copies under a short lock. At the
        end of the track it pads with silence and stops the stream.
        """
        with self._lock:
            start = self._read
            chunk = self._samples[start : start + frames]
            self._read = start + len(chunk)
            n = len(chunk)
            at_end = self._read >= len(self._samples)
            if at_end:
                self._ended = True
        volume = self._volume
        if volume == 1.0:
            outdata[:n] = chunk
        else:
            np.multiply(chunk, np.float32(volume), out=outdata[:n])
        if n < frames:
            outdata[n:] = 0.0
        if at_end:
            raise _sounddevice().CallbackStop

    def _poll(self) -> None:
        if self._state != PLAYING:
            return
        frame = self._heard_frame()
        self.positionChanged.emit(frame / self._sr)
        with self._lock:
            ended = self._ended
        if ended and frame >= len(self._samples):
            self._halt()
            self._paused_frame = len(self._samples)
            self._set_state(STOPPED)
