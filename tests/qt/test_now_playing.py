"""The now-playing widget: real files decoded in a real worker pool, played through PortAudio.

Playback uses the real PortAudio stream (the ALSA null device in CI, see
tests/qt/test_player.py and scripts/ci_system.sh); the no-device tests use a
real PortAudio failure (a device number that does not exist) or a player
factory raising what sounddevice raises without a device.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, QSettings, Qt

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.embed_job import embed_library
from tagger_gui.core.fewshot.excerpt import ExcerptChoice, TagExcerpts, open_excerpt_features
from tagger_gui.core.tasks import run_task
from tagger_gui.qt.now_playing import VOLUME_KEY, NowPlayingWidget
from tagger_gui.qt.player import Player

from ..conftest import music_like, write_audio
from ..test_excerpt import SR, _noise_bursts
from .test_player import needs_audio, sounddevice_or_skip

LOAD_MS = 60_000  # the first decode imports librosa (numba compiles on a fresh venv)


@pytest.fixture
def make_widget(qtbot, worker_pool):
    made: list[NowPlayingWidget] = []

    def make(**kwargs) -> NowPlayingWidget:
        widget = NowPlayingWidget(worker_pool, **kwargs)
        qtbot.addWidget(widget)
        widget.resize(500, 260)
        made.append(widget)
        return widget

    yield make
    for widget in made:
        widget.shutdown()


@pytest.fixture
def track(tmp_path: Path) -> Path:
    return write_audio(tmp_path / "Some Artist - Song.flac", 4.0, seed=5)


def _load(qtbot, widget: NowPlayingWidget, path: Path, **kwargs) -> None:
    with qtbot.waitSignal(widget.trackLoaded, timeout=LOAD_MS) as blocker:
        widget.set_track(str(path), **kwargs)
    assert blocker.args == [str(path)]


@needs_audio
def test_plays_from_the_given_start_after_decoding_in_the_pool(qtbot, make_widget, track):
    widget = make_widget()
    errors = []
    widget.errorOccurred.connect(errors.append)
    with qtbot.waitSignal(widget.trackLoaded, timeout=LOAD_MS):
        widget.set_track(str(track), start_s=2.5, title="Song")
        assert widget.is_loading() and widget.excerpt_label.text() == "Loading…"
    assert widget.title_label.text() == "Song"
    assert widget.duration() == pytest.approx(4.0, abs=1e-3)
    assert widget.excerpt_label.text() == "Started at 0:02."
    qtbot.waitUntil(lambda: widget.state() == "playing", timeout=3000)
    qtbot.waitUntil(lambda: widget.position() > 2.6, timeout=3000)
    assert widget.position() >= 2.5  # it started at 2.5 s, not at 0
    assert widget.view.position() >= 2.5
    assert widget.time_label.text().endswith("/ 0:04")
    assert widget.play_button.text() == "Pause"

    qtbot.mouseClick(widget.play_button, Qt.MouseButton.LeftButton)  # pause
    assert widget.state() == "paused" and widget.play_button.text() == "Play"
    assert widget.toggle() is True  # Space: play again
    assert widget.toggle() is False  # and pause
    assert widget.state() == "paused"
    paused = widget.position()
    widget.seek_by(-1.0)  # Left arrow
    assert widget.position() == pytest.approx(max(0.0, paused - 1.0), abs=1e-3)
    widget.seek_by(100.0)  # clipped to the end
    assert widget.position() == pytest.approx(4.0, abs=1e-3)
    widget.stop()
    assert widget.position() == 0.0
    assert errors == []


def test_the_excerpt_is_chosen_in_the_pool_and_said(qtbot, make_widget, track):
    widget = make_widget()
    threads = []

    def choose(duration: float) -> ExcerptChoice:
        threads.append((threading.current_thread(), duration))
        return ExcerptChoice(
            1.5,
            "best",
            "the part that scores highest for calm",
            np.array([0.0, 1.5, 3.0]),
            np.array([-1.0, 2.0, 0.5]),
            1.0,
        )

    _load(qtbot, widget, track, excerpt=choose, autoplay=False)
    [(thread, duration)] = threads
    assert thread is not threading.main_thread()  # decoding and scoring off the GUI thread
    assert duration == pytest.approx(4.0, abs=1e-3)
    assert widget.excerpt_label.text() == (
        "Started at 0:01, the part that scores highest for calm."
    )
    assert widget.position() == pytest.approx(1.5, abs=1e-3)
    assert widget.view.highlight() == (1.5, 2.5)
    assert widget.state() == "stopped"  # autoplay=False
    assert widget.title_label.text() == "Some Artist - Song.flac"


def test_a_failing_excerpt_falls_back_and_still_loads(qtbot, make_widget, track):
    widget = make_widget()

    def broken(duration: float) -> ExcerptChoice:
        raise KeyError("calm")

    _load(qtbot, widget, track, excerpt=broken, autoplay=False)
    assert widget.position() == 0.0
    assert widget.excerpt_label.text().startswith("Started at 0:00, the start of the track")
    assert "could not be scored" in widget.excerpt_label.text()


def test_click_on_the_waveform_seeks(qtbot, make_widget, track):
    widget = make_widget()
    widget.show()
    qtbot.waitExposed(widget)
    _load(qtbot, widget, track, autoplay=False)
    view = widget.view
    qtbot.mouseClick(
        view, Qt.MouseButton.LeftButton, pos=QPoint(int(0.75 * view.width()), view.height() // 2)
    )
    one_pixel = 4.0 / view.width()
    assert widget.position() == pytest.approx(3.0, abs=2 * one_pixel)
    assert view.position() == pytest.approx(widget.position(), abs=1e-6)
    assert widget.time_label.text() == "0:02 / 0:04" or widget.time_label.text() == "0:03 / 0:04"


def test_volume_is_applied_and_remembered(qtbot, make_widget):
    widget = make_widget()
    assert widget.volume_slider.value() == 80  # the default
    widget.volume_slider.setValue(30)
    assert widget.player.volume() == pytest.approx(0.3)
    assert int(QSettings().value(VOLUME_KEY)) == 30
    again = make_widget()
    assert again.volume_slider.value() == 30
    assert again.player.volume() == pytest.approx(0.3)


def test_a_corrupt_file_is_a_plain_message_and_the_widget_keeps_working(
    qtbot, make_widget, track, tmp_path: Path
):
    widget = make_widget()
    bad = tmp_path / "broken song.mp3"
    bad.write_text("this is not audio\n")
    with qtbot.waitSignal(widget.errorOccurred, timeout=LOAD_MS) as blocker:
        widget.set_track(str(bad))
    message = blocker.args[0]
    assert message.startswith("Cannot play broken song.mp3: ")
    assert str(tmp_path) not in message and "Traceback" not in message
    assert widget.message_label.text() == message
    assert widget.loaded_path() is None and widget.view.duration() == 0.0
    assert not widget.is_loading() and widget.toggle() is False

    _load(qtbot, widget, track, autoplay=False)
    assert widget.loaded_path() == str(track)
    assert widget.message_label.isHidden()


def test_the_newest_track_wins(qtbot, make_widget, track, tmp_path: Path):
    widget = make_widget()
    other = write_audio(tmp_path / "other.wav", 2.0, seed=9)
    loaded = []
    widget.trackLoaded.connect(loaded.append)
    with qtbot.waitSignal(widget.trackLoaded, timeout=LOAD_MS):
        widget.set_track(str(track), autoplay=False)
        widget.set_track(str(other), autoplay=False)
    qtbot.wait(200)  # a late result of the first request would arrive here
    assert loaded == [str(other)]
    assert widget.duration() == pytest.approx(2.0, abs=1e-3)


def test_space_while_decoding_cancels_autoplay(qtbot, make_widget, track):
    widget = make_widget()
    with qtbot.waitSignal(widget.trackLoaded, timeout=LOAD_MS):
        widget.set_track(str(track), autoplay=True)
        widget.toggle()  # the user pressed Space before it was decoded: do not start
    qtbot.wait(100)
    assert widget.state() != "playing"


def test_no_device_from_the_player_factory(qtbot, make_widget, track):
    sd = sounddevice_or_skip()

    def no_device(parent):
        raise sd.PortAudioError("Error querying device -1")

    widget = make_widget(player_factory=no_device)
    messages = []
    widget.errorOccurred.connect(messages.append)  # right after construction: still told
    assert widget.player is None and not widget.has_audio_output()
    assert widget.device_message() == "No audio output device: Error querying device -1."
    assert widget.device_label.text().startswith(widget.device_message())
    qtbot.waitUntil(lambda: bool(messages), timeout=1000)
    widget.show()
    qtbot.waitExposed(widget)
    _load(qtbot, widget, track)  # autoplay is asked for, and quietly impossible
    assert not widget.play_button.isEnabled()
    assert widget.toggle() is False and widget.state() == "stopped"
    assert widget.view.duration() == pytest.approx(4.0, abs=1e-3)  # still drawn
    image = widget.view.grab().toImage()
    assert len({image.pixel(x, y) for x in range(0, image.width(), 9) for y in (20, 120)}) > 5
    qtbot.mouseClick(
        widget.view, Qt.MouseButton.LeftButton, pos=QPoint(widget.view.width() // 2, 20)
    )
    assert widget.position() == pytest.approx(2.0, abs=0.05)  # the playhead still moves
    widget.volume_slider.setValue(10)  # no player to apply it to: nothing breaks
    assert messages == ["No audio output device: Error querying device -1."]  # said once


def test_no_device_from_a_real_portaudio_failure_is_said_once(qtbot, make_widget, track):
    sounddevice_or_skip()
    widget = make_widget(player_factory=lambda parent: Player(parent, device=999))
    messages = []
    widget.errorOccurred.connect(messages.append)
    _load(qtbot, widget, track)
    _load(qtbot, widget, track)
    assert messages == ["No audio output device: Error querying device 999."]
    assert not widget.has_audio_output() and not widget.play_button.isEnabled()
    assert widget.toggle() is False and widget.state() == "stopped"
    assert widget.duration() == pytest.approx(4.0, abs=1e-3)  # decoded at the file's rate
    widget.seek(1.0)
    assert widget.position() == pytest.approx(1.0, abs=1e-3)


@pytest.fixture(scope="module")
def embedded_library(tmp_path_factory):
    """3 noise clips (the tag), 3 music clips, and a music track with noise at 6-12 s, embedded."""
    root = tmp_path_factory.mktemp("now_playing") / "lib"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"pos{i}.wav", _noise_bursts(6.0, seed=200 + i), SR)
        sf.write(root / f"neg{i}.wav", music_like(6.0, SR, channels=1, seed=20 + i), SR)
    planted = music_like(15.0, SR, channels=1, seed=43)
    planted[6 * SR : 12 * SR] = _noise_bursts(6.0, seed=8)
    sf.write(root / "planted.wav", planted, SR)
    run_task(embed_library(root, cache_path=root / ".tagger" / "embeddings.h5", workers=0))
    return root


def test_starts_at_the_best_scoring_excerpt_for_the_tag(qtbot, make_widget, embedded_library):
    root = embedded_library
    with EmbeddingCache.open(root / ".tagger" / "embeddings.h5") as cache:
        feats = open_excerpt_features(cache)
    y = np.array(
        [1 if p.startswith("pos") else 0 if p.startswith("neg") else -1 for p in feats.relpaths]
    )
    excerpts = TagExcerpts(feats, y, tag="noisy")
    widget = make_widget()
    _load(
        qtbot,
        widget,
        root / "planted.wav",
        autoplay=False,
        excerpt=lambda duration: excerpts("planted.wav", duration=duration),
    )
    choice = widget.choice()
    assert choice.kind == "best"
    assert 5.9 <= widget.position() <= 9.0  # the patch at 5.984 s or the one at 8.976 s
    assert widget.position() == pytest.approx(choice.start_s, abs=1e-3)
    assert widget.excerpt_label.text() in (
        "Started at 0:05, the part that scores highest for noisy.",
        "Started at 0:08, the part that scores highest for noisy.",
    )
    assert widget.view.highlight() == (choice.start_s, choice.start_s + 3.0)
