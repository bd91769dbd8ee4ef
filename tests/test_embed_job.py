"""The embedding job end to end: real files, real models, a real cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.audio import AnalysisPolicy, load_excerpts
from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.embed_job import EmbedProgress, embed_library
from tagger_gui.core.embeddings import load_backend
from tagger_gui.core.library import LibraryFile, ScanProblem, scan_library
from tagger_gui.core.tasks import run_task

from .conftest import write_audio

GOOD = {"long track.wav", "Album/b.flac", "Album/short.ogg", "Björk – Jóga 日本語.mp3"}
BAD = {"not really.mp3", "empty.wav"}


def run(root: Path, cache: Path, **kwargs):
    kwargs.setdefault("workers", 0)
    return run_task(embed_library(root, cache_path=cache, **kwargs))


def test_scan_finds_audio_in_sorted_order_and_skips_our_folder(small_library: Path):
    (small_library / ".tagger").mkdir()
    write_audio(small_library / ".tagger" / "hidden.wav", 1)
    found = list(scan_library(small_library))
    rel = [f.relpath for f in found]
    assert set(rel) == GOOD | BAD
    assert all(isinstance(f, LibraryFile) for f in found)
    # stable order: a folder's files by name, then its sub-folders
    assert rel == [
        "Björk – Jóga 日本語.mp3",
        "empty.wav",
        "long track.wav",
        "not really.mp3",
        "Album/b.flac",
        "Album/short.ogg",
    ]


def test_scan_reports_broken_symlink(small_library: Path):
    os.symlink(small_library / "gone.wav", small_library / "dangling.wav")
    problems = [p for p in scan_library(small_library) if isinstance(p, ScanProblem)]
    assert [p.relpath for p in problems] == ["dangling.wav"]
    assert "broken symbolic link" in problems[0].reason


def test_embed_library_first_run_then_incremental(small_library: Path, tmp_path: Path):
    cache_path = tmp_path / "cache.h5"
    progress: list[EmbedProgress] = []
    report = run_task(
        embed_library(small_library, cache_path=cache_path, workers=0), progress.append
    )
    assert report.embedded == len(GOOD)
    assert {r for r, _ in report.failed} == BAD
    reasons = dict(report.failed)
    assert (
        "not a readable audio file" in reasons["not really.mp3"]
        or "audio" in reasons["not really.mp3"]
    )
    assert report.short == ["Album/short.ogg"]
    assert report.audio_seconds == pytest.approx(30 + 8 + 1.5 + 6, rel=0.02)
    assert progress[-1].done == progress[-1].total == len(GOOD | BAD)

    with EmbeddingCache.open(cache_path) as cache:
        assert cache.verify() == []
        key = "musicnn-msd@" + load_backend("musicnn-msd").version
        assert cache.backends() == [key]
        table = cache.tracks(key)
        by_path = dict(zip(table.relpath, table.n_patches, strict=True))
        assert set(by_path) == GOOD
        assert by_path["long track.wav"] == 10  # 40 s -> 10 excerpts of 3 s
        assert by_path["Album/short.ogg"] == 1  # repeat-padded to one patch
        _relpaths, x = cache.load(key, ["mean_pool", "max_pool"])
        assert x.shape == (4, 1506) and np.isfinite(x).all()
        starts, patches = cache.load_patches(key, "taggram", "long track.wav")
        assert patches.shape == (10, 50)
        assert np.all(np.diff(starts) > 3.0) and starts[0] > 0  # spread over the track
        assert {r for r, _ in cache.failures()} == BAD

    # second run: nothing to do, failures not retried
    again = run(small_library, cache_path)
    assert again.embedded == 0 and again.unchanged == len(GOOD)
    assert again.failed == [] and again.skipped_failed == len(BAD)

    # a changed file is analysed again; a deleted one is pruned
    write_audio(small_library / "Album" / "b.flac", 9, seed=22)
    (small_library / "long track.wav").unlink()
    third = run(small_library, cache_path, prune=True)
    assert third.embedded == 1 and third.pruned == 1
    with EmbeddingCache.open(cache_path) as cache:
        table = cache.tracks(cache.backends()[0])
        assert set(table.relpath) == GOOD - {"long track.wav"}
        assert cache.verify() == []


def test_job_vectors_equal_the_backend_on_the_same_audio(small_library: Path, tmp_path: Path):
    """The batching across tracks must not change any number."""
    cache_path = tmp_path / "c.h5"
    run(small_library, cache_path, batch_patches=7)
    backend = load_backend("musicnn-msd")
    for relpath in ["long track.wav", "Album/b.flac"]:
        decoded = load_excerpts(small_library / relpath, 16000, policy=AnalysisPolicy())
        expected = np.concatenate(
            [backend.embed_audio(seg, 16000)["penultimate"] for seg in decoded.segments]
        )
        with EmbeddingCache.open(cache_path) as cache:
            _, got = cache.load_patches(cache.backends()[0], "penultimate", relpath)
        # stored as float16 at patch level
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)


def test_worker_processes_give_the_same_result(small_library: Path, tmp_path: Path):
    a = run(small_library, tmp_path / "a.h5", workers=0)
    b = run(small_library, tmp_path / "b.h5", workers=2)
    assert a.embedded == b.embedded and sorted(a.failed) == sorted(b.failed)
    with EmbeddingCache.open(tmp_path / "a.h5") as ca, EmbeddingCache.open(tmp_path / "b.h5") as cb:
        key = ca.backends()[0]
        ra, xa = ca.load(key, "penultimate")
        rb, xb = cb.load(key, "penultimate")
    order = np.argsort(rb)
    assert list(np.asarray(rb)[order]) == sorted(ra)
    np.testing.assert_allclose(xb[order], xa[np.argsort(ra)], rtol=1e-5, atol=1e-5)


def test_second_backend_keeps_the_first(small_library: Path, tmp_path: Path):
    cache_path = tmp_path / "c.h5"
    run(small_library, cache_path)
    report = run(small_library, cache_path, backends=["handcrafted"])
    assert report.embedded == len(GOOD)
    with EmbeddingCache.open(cache_path) as cache:
        names = sorted(k.split("@")[0] for k in cache.backends())
        assert names == ["handcrafted", "musicnn-msd"]
        for key in cache.backends():
            assert len(cache.tracks(key).relpath) == len(GOOD)


def test_stopping_keeps_committed_batches_and_resumes(tmp_path: Path):
    root = tmp_path / "lib"
    for i in range(12):
        write_audio(root / f"t{i:02d}.flac", 3.5, seed=i)
    cache_path = tmp_path / "c.h5"
    task = embed_library(root, cache_path=cache_path, workers=0, batch_patches=2)
    seen = 0
    for p in task:
        if p.embedded >= 6:
            break
        seen += 1
    task.close()  # as the GUI's cancel button does
    with EmbeddingCache.open(cache_path) as cache:
        assert cache.verify() == []
        n_saved = len(cache.tracks(cache.backends()[0]).relpath)
    assert 4 <= n_saved <= 6
    report = run(root, cache_path)
    assert report.unchanged == n_saved and report.embedded == 12 - n_saved
