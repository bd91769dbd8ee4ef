"""The excerpt choice: real musicnn embeddings of generated clips, a planted segment found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.embed_job import embed_library
from tagger_gui.core.fewshot.engine import open_library_features, refit_task
from tagger_gui.core.fewshot.excerpt import (
    LONG_TRACK_SECONDS,
    DistilledExcerptProbe,
    ExcerptChoice,
    TagExcerpts,
    best_excerpt,
    excerpt_probe_task,
    fallback_excerpt,
    fit_excerpt_probe,
    format_time,
    open_excerpt_features,
    score_patches,
)
from tagger_gui.core.fewshot.probe import LinearProbe
from tagger_gui.core.tasks import run_task

from .conftest import music_like

SR = 22050
PLANTED = "planted.wav"
# The planted track: music, then 6 s of the "tag" sound at 9-15 s, then music.
PLANT_AT, PLANT_LEN, PLANTED_SECONDS = 9.0, 6.0, 21.0


def _noise_bursts(seconds: float, seed: int) -> np.ndarray:
    """The tag's sound: loud broadband noise bursts, nothing like the chords of music_like."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    gate = (np.mod(t, 0.25) < 0.12).astype(np.float64)
    y = rng.normal(0, 0.35, n) * gate
    return np.clip(y, -0.9, 0.9).astype(np.float32)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path, np.ndarray, list[str]]:
    """6 noise clips (positives), 8 music clips (negatives), the planted track, embedded."""
    root = tmp_path_factory.mktemp("excerpt") / "lib"
    root.mkdir()
    names = []
    for i in range(6):
        sf.write(root / f"pos{i}.wav", _noise_bursts(6.0, seed=100 + i), SR)
        names.append(f"pos{i}.wav")
    for i in range(8):
        sf.write(root / f"neg{i}.wav", music_like(6.0, SR, channels=1, seed=10 + i), SR)
        names.append(f"neg{i}.wav")
    music = music_like(PLANTED_SECONDS, SR, channels=1, seed=42)
    a, b = int(PLANT_AT * SR), int((PLANT_AT + PLANT_LEN) * SR)
    music[a:b] = _noise_bursts(PLANT_LEN, seed=7)
    sf.write(root / PLANTED, music, SR)
    cache_path = root / ".tagger" / "embeddings.h5"
    run_task(embed_library(root, cache_path=cache_path, workers=0))
    return root, cache_path, music, names


def _labels(relpaths: list[str]) -> np.ndarray:
    y = np.full(len(relpaths), -1, dtype=np.int8)
    for i, p in enumerate(relpaths):
        if p.startswith("pos"):
            y[i] = 1
        elif p.startswith("neg"):
            y[i] = 0
    return y


def test_track_vector_is_the_mean_of_its_patches_and_scores_decompose(library):
    _, cache_path, _, _ = library
    with EmbeddingCache.open(cache_path) as cache:
        feats = open_excerpt_features(cache)
        assert feats is not None
        assert feats.backend_key.startswith("musicnn-msd@") and feats.output == "penultimate"
        y = _labels(feats.relpaths)
        probe = fit_excerpt_probe(feats.X, y)
        assert isinstance(probe, LinearProbe)
        track_scores = probe.decision_function(feats.X)
        for i, relpath in enumerate(feats.relpaths):
            starts, patches = cache.load_patches(feats.backend_key, "penultimate", relpath)
            assert len(starts) >= 2
            # patches are stored as float16, the track vector as float32
            np.testing.assert_allclose(patches.mean(axis=0), feats.X[i], rtol=0, atol=2e-3)
            patch_scores = score_patches(probe, patches)
            assert patch_scores.mean() == pytest.approx(float(track_scores[i]), abs=0.02)


@pytest.mark.parametrize("distilled", [False, True], ids=["label-fit", "distilled"])
def test_the_planted_segment_is_where_playback_starts(library, distilled):
    _, cache_path, _, _ = library
    with EmbeddingCache.open(cache_path) as cache:
        lib = open_library_features(cache, n_components=8)
        feats = open_excerpt_features(cache, lib.relpaths)
    y = _labels(lib.relpaths)
    scores = None
    if distilled:
        result = run_task(refit_task(lib, y, tag="noisy", strategies=(), with_quality=False))
        scores = result.scores
    probe = run_task(excerpt_probe_task(feats, y, scores=scores))
    assert isinstance(probe, DistilledExcerptProbe if distilled else LinearProbe)

    choice = best_excerpt(cache_path, feats.backend_key, PLANTED, probe, tag="noisy")
    assert choice.kind == "best"
    # musicnn patches are 187 frames of 256 samples at 16 kHz: 2.992 s apart
    assert choice.patch_seconds == 3.0
    assert PLANT_AT - 0.1 <= choice.start_s <= PLANT_AT + PLANT_LEN - 2.9
    assert choice.span == (choice.start_s, choice.start_s + 3.0)
    assert len(choice.patch_starts) == len(choice.patch_scores) == 7
    ends = choice.patch_starts + 2.992
    inside = (choice.patch_starts >= PLANT_AT - 0.1) & (ends <= PLANT_AT + PLANT_LEN + 0.1)
    assert inside.sum() == 2
    # every planted patch outscores every music patch of the same track
    assert choice.patch_scores[inside].min() > choice.patch_scores[~inside].max()
    assert choice.describe() in (
        "Started at 0:08, the part that scores highest for noisy.",  # the patch at 8.976 s
        "Started at 0:11, the part that scores highest for noisy.",  # the patch at 11.968 s
    )


def test_distilled_probe_follows_the_main_scores(library):
    _, cache_path, _, _ = library
    with EmbeddingCache.open(cache_path) as cache:
        lib = open_library_features(cache, n_components=8)
        feats = open_excerpt_features(cache, lib.relpaths)
    y = _labels(lib.relpaths)
    result = run_task(refit_task(lib, y, tag="noisy", strategies=(), with_quality=False))
    probe = fit_excerpt_probe(feats.X, y, scores=result.scores)
    main = np.log(result.scores / (1 - result.scores))
    mimic = probe.decision_function(feats.X)
    assert np.corrcoef(main, mimic)[0, 1] > 0.9
    assert probe.r2_ > 0.8


def test_tag_excerpts_fits_once_on_the_calling_thread(library):
    from concurrent.futures import ThreadPoolExecutor

    _, cache_path, _, _ = library
    with EmbeddingCache.open(cache_path) as cache:
        feats = open_excerpt_features(cache)
    y = _labels(feats.relpaths)
    excerpts = TagExcerpts(feats, y, tag="noisy")
    y[:] = -1  # the caller's labels change later: the choice keeps the copy it was given
    with ThreadPoolExecutor(2) as pool:
        choices = list(pool.map(lambda _: excerpts(PLANTED, duration=PLANTED_SECONDS), range(4)))
    assert {c.start_s for c in choices} == {choices[0].start_s}
    assert choices[0].kind == "best" and PLANT_AT - 0.1 <= choices[0].start_s < PLANT_AT + 3.1
    assert excerpts.probe is excerpts.probe  # fitted once
    no_tag = TagExcerpts(feats, y, tag=None)(PLANTED)
    assert no_tag.kind == "start" and no_tag.reason == "the start of the track (no tag chosen yet)"
    no_patches = TagExcerpts(None, y, tag="noisy")(PLANTED, duration=90.0)
    assert no_patches.kind == "middle" and "no per-excerpt vectors" in no_patches.reason


def test_a_track_embedded_after_the_reader_opened_is_found(library, tmp_path: Path):
    import shutil

    root = tmp_path / "lib"
    shutil.copytree(library[0], root)
    cache_path = root / ".tagger" / "embeddings.h5"
    with EmbeddingCache.open(cache_path) as cache:
        feats = open_excerpt_features(cache)
    excerpts = TagExcerpts(feats, _labels(feats.relpaths), tag="noisy")
    assert excerpts("late.wav").kind == "start"  # not embedded yet: the fallback
    late = music_like(12.0, SR, channels=1, seed=77)
    late[3 * SR : 9 * SR] = _noise_bursts(6.0, seed=9)
    sf.write(root / "late.wav", late, SR)
    run_task(embed_library(root, cache_path=cache_path, workers=0))
    choice = excerpts("late.wav")  # no reader was left open to block the job, and it is found
    assert choice.kind == "best" and 2.9 <= choice.start_s <= 6.1


def test_without_tag_probe_or_patches_playback_starts_by_the_fallback(library):
    _, cache_path, _, _ = library
    with EmbeddingCache.open(cache_path) as cache:
        feats = open_excerpt_features(cache)
        probe = fit_excerpt_probe(feats.X, _labels(feats.relpaths))
        no_tag = best_excerpt(cache, feats.backend_key, PLANTED, probe, tag=None)
        assert (no_tag.kind, no_tag.start_s) == ("start", 0.0)
        assert no_tag.describe() == "Started at 0:00, the start of the track (no tag chosen yet)."
        no_probe = best_excerpt(cache, feats.backend_key, PLANTED, None, tag="noisy")
        assert no_probe.kind == "start" and "no positive example of noisy" in no_probe.reason
        missing = best_excerpt(cache, feats.backend_key, "gone.wav", probe, tag="noisy")
        assert missing.kind == "start" and "not embedded" in missing.reason
        no_patches = best_excerpt(cache, None, PLANTED, probe, tag="noisy", duration=200.0)
        assert (no_patches.kind, no_patches.start_s) == ("middle", 100.0)
        assert no_patches.span is None
    assert fit_excerpt_probe(feats.X, np.full(len(feats.X), -1)) is None  # no positive yet


def test_a_single_patch_track_starts_at_zero(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    sf.write(root / "short.wav", _noise_bursts(2.0, seed=1), SR)
    sf.write(root / "other.wav", music_like(4.0, SR, channels=1, seed=3), SR)
    cache_path = root / ".tagger" / "embeddings.h5"
    run_task(embed_library(root, cache_path=cache_path, workers=0))
    with EmbeddingCache.open(cache_path) as cache:
        feats = open_excerpt_features(cache)
        y = np.array([1 if p == "short.wav" else 0 for p in feats.relpaths])
        probe = fit_excerpt_probe(feats.X, y)
    choice = best_excerpt(cache_path, feats.backend_key, "short.wav", probe, tag="noisy")
    assert choice.kind == "start" and choice.start_s == 0.0
    assert "single excerpt" in choice.reason


def test_a_cache_without_patch_outputs_gives_none(tmp_path: Path):
    path = tmp_path / "c.h5"
    with EmbeddingCache.open(path, "a", library_root=tmp_path) as cache:
        cache.register_backend(
            "handcrafted@1",
            name="handcrafted",
            version="1",
            outputs={"features": 4},
            params={},
            tag_names=[],
            patch_outputs=(),
        )
    with EmbeddingCache.open(path) as cache:
        assert open_excerpt_features(cache, features="handcrafted") is None


def test_fallback_rule_and_time_format():
    assert fallback_excerpt(LONG_TRACK_SECONDS + 1, why="x").start_s == 0.0  # no tag: start
    long = fallback_excerpt(301.0, why="x", tag="calm")
    assert (long.kind, long.start_s) == ("middle", 150.0)
    assert fallback_excerpt(LONG_TRACK_SECONDS, why="x", tag="calm").start_s == 0.0
    given = fallback_excerpt(30.0, why="chosen by you", start_s=12.5)
    assert (given.kind, given.start_s) == ("given", 12.5)
    assert [format_time(s) for s in (0, 59.99, 84.2, 3600, 3725)] == [
        "0:00",
        "0:59",
        "1:24",
        "1:00:00",
        "1:02:05",
    ]
    assert isinstance(long, ExcerptChoice)


def test_distilled_probe_rejects_mismatched_input():
    with pytest.raises(ValueError, match="do not match"):
        DistilledExcerptProbe().fit(np.zeros((3, 2)), np.zeros(4))
    probe = DistilledExcerptProbe().fit(np.eye(3, 2), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reads 2"):
        probe.decision_function(np.zeros((1, 3)))
