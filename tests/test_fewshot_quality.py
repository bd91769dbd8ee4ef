"""Quality readouts: metrics, intervals, grouped out-of-fold scores, audit estimates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tagger_gui.core.fewshot.probe import LinearProbe
from tagger_gui.core.fewshot.quality import (
    assess,
    bootstrap_ci,
    default_groups,
    fast_ap,
    fast_auc,
    out_of_fold,
    ranking_stability,
    wilson,
)
from tagger_gui.core.fewshot.ranking import audit_order, audit_prefix

from .fewshot_data import synthetic_set


def test_fast_metrics_equal_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(3, 200))
        y = rng.random(n) < 0.3
        if y.all() or not y.any():
            continue
        s = np.round(rng.random(n), 1)
        assert fast_ap(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert fast_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(fast_auc(np.ones(3, bool), np.arange(3.0)))


def test_wilson_interval():
    lo, hi = wilson(8, 10)
    assert lo < 0.8 < hi and 0.4 < lo < 0.55 and 0.9 < hi < 0.97
    assert all(np.isnan(wilson(0, 0)))


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_data():
    rng = np.random.default_rng(0)

    def width(n_groups):
        groups = np.repeat(np.arange(n_groups), 4)
        y = rng.random(len(groups)) < 0.3
        s = y + rng.normal(scale=0.8, size=len(y))
        ci = bootstrap_ci(y, s, groups, n_boot=300)
        assert ci["auc"][0] <= fast_auc(y, s) <= ci["auc"][1]
        return ci["auc"][1] - ci["auc"][0]

    assert width(200) < width(10)


def test_out_of_fold_never_scores_a_group_with_its_own_model():
    data, X = synthetic_set(seed=2)
    y = np.full(len(X), -1, dtype=np.int8)
    pos = np.flatnonzero(data.Y[:, 0])[:12]
    y[pos] = 1
    cv = out_of_fold(X, y, data.groups, n_folds=3)
    assert cv is not None and cv.unlabeled_as_negative
    assert cv.y_true.sum() == 12
    # refit by hand: with the group of a positive in training, its score would rise;
    # out-of-fold scores of positives must be below their in-sample scores on average
    insample = LinearProbe(random_state=0).fit(X, y).decision_function(X[pos])
    assert cv.scores[: len(pos)].mean() < insample.mean()


def test_out_of_fold_needs_two_groups_of_positives():
    data, X = synthetic_set(seed=3)
    y = np.full(len(X), -1, dtype=np.int8)
    y[data.groups == data.groups[np.flatnonzero(data.Y[:, 0])[0]]] = 1
    assert out_of_fold(X, y, data.groups) is None


def test_assess_with_five_labels_and_an_audit_sample():
    data, X = synthetic_set(n_groups=100, seed=4)
    truth = data.Y[:, 0]
    y = np.full(len(X), -1, dtype=np.int8)
    first = np.flatnonzero(truth)
    y[first[:: max(1, len(first) // 5)][:5]] = 1
    order = audit_order(len(X), "tag0")
    y[order[:60]] = truth[order[:60]].astype(np.int8)
    labeled = y != -1
    audit = audit_prefix(order, labeled)
    assert len(audit) >= 60
    probe = LinearProbe(random_state=0).fit(X, y)
    scores = probe.predict_proba(X)[:, 1]
    rep = assess(X, y, data.groups, scores, threshold=0.5, audit_rows=audit, n_boot=100)
    assert rep.n_positive == int((y == 1).sum())
    assert 0.5 < rep.cv_auc <= 1 and rep.cv_auc_ci[0] <= rep.cv_auc <= rep.cv_auc_ci[1]
    assert rep.audit_size == len(audit)
    assert rep.precision_ci[0] <= rep.precision <= rep.precision_ci[1]
    true_prev = truth.mean()
    assert rep.prevalence_ci[0] <= true_prev <= rep.prevalence_ci[1]
    remaining_true = truth.sum() - (y == 1).sum()
    assert rep.positives_remaining_ci[0] <= remaining_true <= rep.positives_remaining_ci[1]
    text = "\n".join(rep.lines())
    assert "out-of-fold AP" in text and "audit" in text


def test_assess_says_what_is_missing_without_audit_or_groups():
    data, X = synthetic_set(seed=5)
    y = np.full(len(X), -1, dtype=np.int8)
    g0 = data.groups[np.flatnonzero(data.Y[:, 1])[0]]
    y[(data.groups == g0) & data.Y[:, 1]] = 1
    scores = LinearProbe().fit(X, y).predict_proba(X)[:, 1]
    rep = assess(X, y, data.groups, scores, previous_scores=scores)
    assert rep.cv_folds == 0 and np.isnan(rep.precision)
    assert any("two albums" in n for n in rep.notes)
    assert any("audit" in n for n in rep.notes)
    assert rep.stability == 1.0


def test_ranking_stability():
    rng = np.random.default_rng(0)
    s = rng.random(1000)
    labeled = np.zeros(1000, bool)
    assert ranking_stability(s, s, labeled) == 1.0
    assert ranking_stability(s, -s, labeled) == 0.0


def test_default_groups_by_album_then_folder():
    rel = ["a/1.mp3", "a/2.mp3", "b/3.mp3", "c/4.mp3"]
    g = default_groups(rel, albums=["X", "", "", "X"], artists=["p", "", "", "p"])
    assert g[0] == g[3] and g[1] != g[0] and g[1] != g[2]
