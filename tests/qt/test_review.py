"""ReviewPanel over a real project of real clips: keys label, refits run live in the pool."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from tagger_gui.core.embed_job import embed_library
from tagger_gui.core.fewshot.engine import LibraryFeatures, refit_task
from tagger_gui.core.fewshot.probe import LinearProbe
from tagger_gui.core.project import Project
from tagger_gui.core.tasks import run_task
from tagger_gui.core.usecases.predicting import label_vector, project_features
from tagger_gui.qt.now_playing import NowPlayingWidget
from tagger_gui.qt.review import AUTOPLAY_KEY, ReasonRole, ReviewPanel

from ..conftest import write_audio
from .test_player import needs_audio

TAG = "calm"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve short real clips in four album folders, embedded once (handcrafted features)."""
    root = tmp_path_factory.mktemp("review") / "music"
    for i in range(12):
        write_audio(root / f"album{i % 4}" / f"track{i:02d}.wav", 1.5, seed=i, channels=1)
    run_task(embed_library(root, backends=["handcrafted"], workers=0))
    return root


@pytest.fixture
def project(library: Path, tmp_path: Path) -> Iterator[Project]:
    """A fresh project over the embedded library, with the tag ``calm``."""
    project = Project.create(tmp_path / "project", library)
    run_task(project.sync_library())
    project.create_tag(TAG)
    yield project
    project.close()


@pytest.fixture
def lib(project: Project) -> LibraryFeatures:
    return project_features(project, features="handcrafted")


@pytest.fixture
def panel(qtbot, project, lib, worker_pool) -> Iterator[ReviewPanel]:
    panel = ReviewPanel(project, lib, worker_pool)
    qtbot.addWidget(panel)
    panel.set_tag(TAG)
    yield panel
    panel.shutdown()
    worker_pool.wait_for_workers(WAIT_MS)


def settle(qtbot, panel: ReviewPanel) -> None:
    """Wait until no refit is pending or running (its result has then been shown)."""
    qtbot.waitUntil(lambda: not panel.is_busy, timeout=WAIT_MS)


def press(qtbot, panel: ReviewPanel, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(panel.queue, key, modifier)


def labeled_ids(project: Project, value: str = "positive") -> set[int]:
    return {t for t, v in project.labels(TAG).as_dict().items() if v == value}


def test_keys_label_the_queue_and_the_refit_shows_its_result(qtbot, panel, project, lib):
    assert panel.queue.count() == 12  # no positive yet: the audit order
    checked = []

    def check_queue(_result) -> None:
        # every time a result is shown, no labeled (or skipped) track is proposed
        store = set(project.labels(TAG).as_dict())
        checked.append(set(panel.queue_track_ids()) & store)

    panel.refitFinished.connect(check_queue)
    picked = []
    for _ in range(3):
        picked.append(panel.current_track_id())
        with qtbot.waitSignal(panel.scoresChanged, timeout=WAIT_MS) as blocker:
            press(qtbot, panel, Qt.Key.Key_Y)
            # committed before the panel shows it done
            assert picked[-1] in labeled_ids(project)
            assert picked[-1] not in panel.queue_track_ids()
    settle(qtbot, panel)
    assert labeled_ids(project) == set(picked)
    assert checked and all(not overlap for overlap in checked)
    assert not set(panel.queue_track_ids()) & set(picked)
    assert panel.queue.count() == 9
    text = panel.quality_text()
    assert "3 positives, 0 negatives labeled" in text
    track_ids, scores = blocker.args
    assert len(track_ids) == len(scores) == 12
    assert set(track_ids.tolist()) == set(project.track_ids_for_relpaths(lib.relpaths).tolist())
    # the queue's first track shows large, with its score and reason
    row = panel.queue.item(0)
    assert panel.title_label.text() and panel.reason_label.text() == row.data(ReasonRole)
    # the score is said once: in the reason when it has it, else on its own line
    shown = panel.score_label.text() or panel.reason_label.text()
    assert shown.startswith("score ") and shown.count("score ") == 1
    # the probe was saved with the labels it came from
    saved = project.load_probe(TAG)
    assert saved is not None and saved.meta["labels"] == project.label_snapshot(TAG)
    probe, meta = LinearProbe.from_bytes(saved.blob)
    assert probe.n_positive_ == 3 and meta["features"] == lib.feature_id


def test_a_burst_of_labels_refits_less_often_and_ends_on_all_labels(
    qtbot, panel, project, lib, monkeypatch
):
    threads = []

    def recorded_refit(*args, **kwargs):
        threads.append(threading.current_thread())  # runs at the generator's first step
        return (yield from refit_task(*args, **kwargs))

    monkeypatch.setattr("tagger_gui.qt.review.refit_task", recorded_refit)
    results = []
    panel.refitFinished.connect(results.append)
    for _ in range(5):
        press(qtbot, panel, Qt.Key.Key_Y)
    assert len(labeled_ids(project)) == 5
    settle(qtbot, panel)
    assert 1 <= len(results) < 5
    assert threads and threading.main_thread() not in threads
    y = label_vector(project, TAG, lib)
    assert (y == 1).sum() == 5 and np.array_equal(panel.labels(), y)
    direct = run_task(refit_task(lib, y, tag=TAG, threshold=panel.threshold))
    np.testing.assert_allclose(results[-1].scores, direct.scores, rtol=1e-5, atol=1e-6)
    assert "5 positives" in panel.quality_text()


def test_undo_redo_and_bulk_labels(qtbot, panel, project):
    first = panel.current_track_id()
    press(qtbot, panel, Qt.Key.Key_Y)
    second = panel.current_track_id()
    press(qtbot, panel, Qt.Key.Key_Y)
    settle(qtbot, panel)
    assert labeled_ids(project) == {first, second}

    with qtbot.waitSignal(panel.labelsChanged, timeout=WAIT_MS):
        press(qtbot, panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert labeled_ids(project) == {first}
    settle(qtbot, panel)
    assert second in panel.queue_track_ids()  # proposed again
    assert "1 positives" in panel.quality_text()

    press(
        qtbot,
        panel,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert labeled_ids(project) == {first, second}
    settle(qtbot, panel)

    # a multi-selection rejected at once is one undo step
    panel.queue.clearSelection()
    for i in range(3):
        panel.queue.item(i).setSelected(True)
    chosen = set(panel.queue_track_ids()[:3])
    press(qtbot, panel, Qt.Key.Key_N)
    assert labeled_ids(project, "negative") == chosen
    assert not chosen & set(panel.queue_track_ids())
    settle(qtbot, panel)
    assert "2 positives, 3 negatives labeled" in panel.quality_text()
    project.undo()
    assert not labeled_ids(project, "negative")


def test_strategy_keys_navigation_skip_and_threshold(qtbot, panel, project):
    press(qtbot, panel, Qt.Key.Key_Y)
    settle(qtbot, panel)
    press(qtbot, panel, Qt.Key.Key_4)
    assert panel.strategy == "audit"
    reasons = [panel.queue.item(i).data(ReasonRole) for i in range(panel.queue.count())]
    assert reasons and all(r.startswith("audit sample") for r in reasons)
    press(qtbot, panel, Qt.Key.Key_1)
    assert panel.strategy == "top"
    assert "among the highest" in panel.queue.item(0).data(ReasonRole)

    start = panel.queue.currentRow()
    press(qtbot, panel, Qt.Key.Key_J)
    press(qtbot, panel, Qt.Key.Key_J)
    press(qtbot, panel, Qt.Key.Key_K)
    assert panel.queue.currentRow() == start + 1
    skipped = panel.current_track_id()
    press(qtbot, panel, Qt.Key.Key_S)
    assert labeled_ids(project, "skip") == {skipped}
    settle(qtbot, panel)
    assert skipped not in panel.queue_track_ids()

    with qtbot.waitSignal(panel.refitFinished, timeout=WAIT_MS) as blocker:
        panel.set_threshold(0.3)
    assert blocker.args[0].quality.threshold == pytest.approx(0.3)
    assert "above 0.30" in panel.quality_text()
    settle(qtbot, panel)


@needs_audio
def test_space_plays_the_current_track_and_the_arrows_seek(qtbot, project, lib, worker_pool):
    QSettings().setValue(AUTOPLAY_KEY, False)  # tracks load as they become current, silent
    now_playing = NowPlayingWidget(worker_pool)
    panel = ReviewPanel(project, lib, worker_pool, now_playing=now_playing)
    qtbot.addWidget(panel)
    try:
        with qtbot.waitSignal(now_playing.trackLoaded, timeout=60_000) as loaded:
            panel.set_tag(TAG)
        first = str(project.library_root / lib.relpaths[panel.queue_rows()[0]])
        assert loaded.args == [first] and now_playing.state() != "playing"
        press(qtbot, panel, Qt.Key.Key_Space)
        assert now_playing.state() == "playing"
        press(qtbot, panel, Qt.Key.Key_Space)
        assert now_playing.state() == "paused"
        press(qtbot, panel, Qt.Key.Key_Right)
        assert now_playing.position() > 0.5  # 5 s on, clamped to the 1.5-s clip
        press(qtbot, panel, Qt.Key.Key_Left)
        assert now_playing.position() == pytest.approx(0.0, abs=0.05)
        # the next track is decoded in the pool when it becomes current
        with qtbot.waitSignal(now_playing.trackLoaded, timeout=WAIT_MS) as loaded:
            press(qtbot, panel, Qt.Key.Key_J)
        assert loaded.args == [str(project.library_root / lib.relpaths[panel.queue_rows()[1]])]
        # without patch vectors (handcrafted), playback starts at the beginning, and says so
        assert now_playing.choice() is not None and now_playing.choice().start_s == 0.0
    finally:
        panel.shutdown()
        worker_pool.wait_for_workers(WAIT_MS)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB file system (tmpfs); needs root and the right to mount."""
    mnt = tmp_path / "small disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_refuses_the_label_in_plain_words_and_the_panel_keeps_working(
    qtbot, library, small_disk, worker_pool
):
    project = Project.create(small_disk / "project", library)
    try:
        run_task(project.sync_library())
        project.create_tag(TAG)
        panel = ReviewPanel(project, project_features(project, features="handcrafted"), worker_pool)
        qtbot.addWidget(panel)
        panel.set_tag(TAG)
        # fill the disk to the last byte
        filler = small_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
        os.close(fd)
        first = panel.current_track_id()
        with qtbot.waitSignal(panel.errorOccurred, timeout=WAIT_MS) as error:
            press(qtbot, panel, Qt.Key.Key_Y)
        assert "disk is full" in error.args[0] and "nothing was changed" in error.args[0]
        assert labeled_ids(project) == set()
        assert panel.current_track_id() == first and first in panel.queue_track_ids()
        # space freed: the same key now works
        filler.unlink()
        press(qtbot, panel, Qt.Key.Key_Y)
        assert labeled_ids(project) == {first}
        settle(qtbot, panel)
        panel.shutdown()
    finally:
        project.close()
