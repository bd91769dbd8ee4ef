"""The live refit loop of one tag, on synthetic vectors and on a real cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger_gui.cli import main
from tagger_gui.core.cache import EmbeddingCache, default_cache_path
from tagger_gui.core.fewshot.engine import (
    LibraryFeatures,
    label_snapshot,
    open_library_features,
    refit_task,
)
from tagger_gui.core.fewshot.probe import LinearProbe
from tagger_gui.core.fewshot.space import FeatureSpace
from tagger_gui.core.tasks import run_task

from .conftest import write_audio
from .fewshot_data import synthetic_set


@pytest.fixture(scope="module")
def lib() -> tuple[LibraryFeatures, np.ndarray]:
    data, X = synthetic_set(n_groups=80, seed=11)
    space = FeatureSpace(n_components=16).fit(X)
    return (
        LibraryFeatures(data.relpaths, space.transform(X), data.groups, "synthetic", space),
        data.Y[:, 0],
    )


def test_refit_ranks_unlabeled_tracks_and_assesses(lib):
    features, truth = lib
    y = np.full(len(truth), -1, dtype=np.int8)
    y[np.flatnonzero(truth)[::3][:6]] = 1
    task = refit_task(features, y, tag="tag0", n=20)
    stages = []
    result = run_task(task, stages.append)
    assert stages == ["fitted", "scored", "ranked", "assessed"]
    assert set(result.rankings) == {"top", "uncertain", "diverse", "audit"}
    for ranking in result.rankings.values():
        assert not (y[ranking.rows] != -1).any()
        assert len(ranking.reasons) == len(ranking.rows)
    top = result.rankings["top"].rows
    # the top of the ranking is far richer in positives than the library (48 %)
    assert truth[top].mean() >= 0.9 > truth.mean() + 0.3
    assert result.quality is not None and result.quality.n_positive == 6
    assert result.scores.dtype == np.float32 and len(result.scores) == len(truth)
    assert result.snapshot == label_snapshot(y)
    probe, meta = LinearProbe.from_bytes(result.probe_bytes("synthetic"))
    assert meta["labels"] == result.snapshot and meta["features"] == "synthetic"
    np.testing.assert_allclose(
        probe.predict_proba(features.X)[:, 1], result.scores, rtol=1e-5, atol=1e-6
    )


def test_a_refit_can_be_abandoned_between_steps(lib):
    features, truth = lib
    y = np.full(len(truth), -1, dtype=np.int8)
    y[np.flatnonzero(truth)[:5]] = 1
    task = refit_task(features, y, tag="tag0")
    assert next(task) == "fitted"
    task.close()  # a newer refit replaces this one: no error, nothing left running
    with pytest.raises(StopIteration):
        next(task)


def test_snapshot_changes_with_any_label():
    y = np.full(10, -1, dtype=np.int8)
    a = label_snapshot(y)
    y[3] = 0
    assert label_snapshot(y) != a


def test_open_library_features_from_a_real_cache(tmp_path: Path):
    root = tmp_path / "lib"
    for i in range(6):
        write_audio(root / f"album {i % 2}" / f"t{i}.flac", 3, seed=i, channels=1)
    assert main(["embed", str(root), "--backend", "handcrafted", "--workers", "0", "--quiet"]) == 0
    with EmbeddingCache.open(default_cache_path(root), mode="r") as cache:
        feats = open_library_features(cache, features="handcrafted", n_components=3)
    assert feats.X.shape == (6, 3)
    assert feats.feature_id.startswith("handcrafted@") and feats.feature_id.endswith("pca3")
    assert len(set(feats.groups.tolist())) == 2  # grouped by folder
    assert feats.rows_of(["album 1/t1.flac"]).tolist() == [feats.relpaths.index("album 1/t1.flac")]
