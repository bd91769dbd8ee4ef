"""The linear probe: estimator rules, weak negatives, folding, saving."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tagger_gui.core.fewshot.probe import LinearProbe

from .fewshot_data import synthetic_set


@pytest.fixture(scope="module")
def data():
    return synthetic_set()


def _labels(Y, j, pos, neg=()):
    y = np.full(len(Y), -1, dtype=np.int8)
    y[list(pos)] = 1
    y[list(neg)] = 0
    return y


def test_five_positives_and_no_negatives_rank_the_library(data):
    labeled, X = data
    Y = labeled.Y[:, 0]
    pos = np.flatnonzero(Y)[:5]
    probe = LinearProbe(random_state=0).fit(X, _labels(Y, 0, pos))
    scores = probe.decision_function(X)
    rest = np.setdiff1d(np.arange(len(Y)), pos)
    assert roc_auc_score(Y[rest], scores[rest]) > 0.8
    assert probe.n_positive_ == 5 and probe.n_negative_ == 0
    assert probe.n_unlabeled_used_ == min(1000, len(Y) - 5)


def test_folded_weights_equal_the_standardised_model(data):
    labeled, X = data
    Y = labeled.Y[:, 1]
    y = _labels(Y, 1, np.flatnonzero(Y)[:8], np.flatnonzero(~Y)[:20])
    probe = LinearProbe(unlabeled_weight=0.0, balance=False, C=0.5).fit(X, y)
    rows = np.flatnonzero(y >= 0)
    # the same fit by hand in standardised space (statistics over all rows read)
    Z = X.astype(np.float64)
    mean, std = Z.mean(axis=0), Z.std(axis=0)
    ref = LogisticRegression(C=0.5, max_iter=300, tol=1e-4).fit(
        (Z[rows] - mean) / std, y[rows], sample_weight=np.ones(len(rows))
    )
    expected = ref.decision_function((Z - mean) / std)
    np.testing.assert_allclose(probe.decision_function(X), expected, rtol=1e-3, atol=1e-3)


def test_estimator_rules(data):
    labeled, X = data
    probe = LinearProbe(C=0.3, random_state=1)
    assert not hasattr(probe, "weights_")
    twin = clone(probe)
    assert twin.get_params() == probe.get_params()
    y = _labels(labeled.Y[:, 0], 0, np.flatnonzero(labeled.Y[:, 0])[:5])
    assert probe.fit(X, y) is probe
    np.testing.assert_array_equal(
        probe.decision_function(X), clone(probe).fit(X, y).decision_function(X)
    )
    assert probe.predict_proba(X[:3]).shape == (3, 2)
    np.testing.assert_allclose(probe.predict_proba(X[:3]).sum(axis=1), 1.0)


def test_balance_makes_the_weak_side_weigh_as_much_as_the_positives():
    probe = LinearProbe(unlabeled_weight=0.05, max_unlabeled=100, balance=True, random_state=0)
    y = np.full(500, -1)
    y[:5] = 1
    y[5:15] = 0
    rows, target, weight = probe._training_rows(y)
    assert len(rows) == 5 + 10 + 100
    assert weight[target == 1].sum() == pytest.approx(weight[target == 0].sum())
    # an explicit negative still weighs 20x a weak one
    assert weight[5] / weight[-1] == pytest.approx(20)


def test_needs_positives_and_some_negatives():
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="positive"):
        LinearProbe().fit(X, np.full(20, -1))
    y = np.full(20, -2)
    y[:3] = 1
    with pytest.raises(ValueError, match="negatives"):
        LinearProbe().fit(X, y)


def test_saved_probe_scores_the_same_and_keeps_its_provenance(data):
    labeled, X = data
    y = _labels(labeled.Y[:, 2], 2, np.flatnonzero(labeled.Y[:, 2])[:5])
    probe = LinearProbe(C=0.2, random_state=3).fit(X, y)
    meta = {"features": "musicnn-msd@1:mean_pool", "labels": "abc123"}
    loaded, got = LinearProbe.from_bytes(probe.to_bytes(meta))
    assert got == meta
    assert loaded.C == 0.2
    np.testing.assert_array_equal(loaded.decision_function(X), probe.decision_function(X))


def test_saved_probe_of_another_format_is_refused(data):
    import io
    import json

    labeled, X = data
    y = _labels(labeled.Y[:, 0], 0, np.flatnonzero(labeled.Y[:, 0])[:5])
    raw = LinearProbe().fit(X, y).to_bytes()
    with np.load(io.BytesIO(raw)) as npz:
        arrays = dict(npz)
    header = json.loads(str(arrays["header"]))
    header["format"] = 99
    arrays["header"] = np.asarray(json.dumps(header))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="format 99"):
        LinearProbe.from_bytes(buf.getvalue())


def test_scoring_in_blocks_matches_one_product(monkeypatch, data):
    from tagger_gui.core.fewshot import probe as probe_mod

    labeled, X = data
    y = _labels(labeled.Y[:, 0], 0, np.flatnonzero(labeled.Y[:, 0])[:5])
    probe = LinearProbe(random_state=0).fit(X, y)
    whole = probe.decision_function(X)
    monkeypatch.setattr(probe_mod, "_SCORE_BLOCK", 7)
    np.testing.assert_allclose(probe.decision_function(X), whole, rtol=1e-6, atol=1e-5)


def test_feature_space_folds_standardisation_and_pca(data):
    from sklearn.decomposition import PCA

    from tagger_gui.core.fewshot.space import FeatureSpace

    _, X = data
    space = FeatureSpace(n_components=5).fit(X)
    P = space.transform(X)
    assert P.shape == (len(X), 5) and P.dtype == np.float32
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    ref = PCA(5, svd_solver="full").fit_transform(Z)
    # components are defined up to sign
    for j in range(5):
        c = np.corrcoef(P[:, j], ref[:, j])[0, 1]
        assert abs(abs(c) - 1) < 1e-4
    assert np.all(np.diff(P.var(axis=0)) <= 1e-3)  # ordered by variance
    white = FeatureSpace(n_components=5, whiten=True).fit_transform(X)
    np.testing.assert_allclose(white.std(axis=0), 1.0, rtol=0.02)
    full = FeatureSpace(n_components=None).fit_transform(X)
    np.testing.assert_allclose(full, Z, rtol=1e-4, atol=1e-4)


def test_feature_space_samples_large_libraries(data):
    from tagger_gui.core.fewshot.space import FeatureSpace

    _, X = data
    a = FeatureSpace(n_components=4, max_fit_rows=100, random_state=0).fit(X)
    b = FeatureSpace(n_components=4, max_fit_rows=100, random_state=1).fit(X)
    assert not np.allclose(a.mean_, b.mean_)  # fitted on different samples
    # a sample of 100 rows: within 4 standard errors of the full mean
    assert np.all(np.abs(a.mean_ - X.mean(axis=0)) < 4 * X.std(axis=0) / 10)


def test_without_standardisation_only_the_mean_is_removed(data):
    labeled, X = data
    y = _labels(labeled.Y[:, 0], 0, np.flatnonzero(labeled.Y[:, 0])[:5])
    probe = LinearProbe(standardize=False, random_state=0).fit(X, y)
    np.testing.assert_array_equal(probe.scale_, 1.0)
    np.testing.assert_allclose(probe.mean_, X.astype(np.float64).mean(axis=0), rtol=1e-6)
    scaled = LinearProbe(standardize=True, random_state=0).fit(X, y)
    assert not np.allclose(scaled.scale_, 1.0)
    loaded, _ = LinearProbe.from_bytes(probe.to_bytes())
    assert loaded.standardize is False
