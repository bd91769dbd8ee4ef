"""Review strategies: top, uncertain, diverse, audit."""

from __future__ import annotations

import numpy as np
import pytest

from tagger_gui.core.fewshot.ranking import (
    audit_order,
    audit_prefix,
    rank,
    rank_audit,
    rank_diverse,
    rank_top,
    rank_uncertain,
)


def test_top_is_highest_unlabeled_first():
    scores = np.array([0.1, 0.9, 0.8, 0.95, 0.3])
    labeled = np.array([False, False, False, True, False])
    r = rank_top(scores, labeled, n=3)
    assert r.rows.tolist() == [1, 2, 4]
    assert len(r.reasons) == 3 and "0.90" in r.reasons[0]


def test_uncertain_is_closest_to_the_threshold():
    scores = np.array([0.1, 0.45, 0.9, 0.58, 0.5])
    labeled = np.array([False, False, False, False, True])
    assert rank_uncertain(scores, labeled, threshold=0.5, n=2).rows.tolist() == [1, 3]
    assert rank_uncertain(scores, labeled, threshold=0.9, n=1).rows.tolist() == [2]


def test_top_on_a_large_library_uses_partial_sort_correctly():
    rng = np.random.default_rng(0)
    scores = rng.random(100_000)
    labeled = rng.random(100_000) < 0.1
    r = rank_top(scores, labeled, n=20)
    expected = np.flatnonzero(~labeled)[np.argsort(-scores[~labeled])[:20]]
    assert r.rows.tolist() == expected.tolist()


def test_diverse_avoids_near_duplicates_and_one_album():
    rng = np.random.default_rng(1)
    # 30 near-identical high scorers from album 0, and varied good ones elsewhere
    base = rng.normal(size=16)
    dupes = base + rng.normal(scale=0.01, size=(30, 16))
    others = rng.normal(size=(70, 16))
    X = np.vstack([dupes, others]).astype(np.float32)
    scores = np.r_[np.full(30, 0.99), rng.uniform(0.5, 0.9, 70)]
    groups = np.r_[np.zeros(30, int), np.arange(1, 71)]
    labeled = np.zeros(100, dtype=bool)
    top = rank_top(scores, labeled, n=10)
    assert (top.rows < 30).sum() == 10  # the naive batch is all duplicates
    div = rank_diverse(scores, labeled, X, groups=groups, n=10)
    assert len(div.rows) == 10 and len(set(div.rows.tolist())) == 10
    assert (div.rows < 30).sum() == 1  # one of the album, then the spread
    assert not labeled[div.rows].any()


def test_diverse_allows_a_group_again_once_every_group_is_used():
    X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    scores = np.linspace(0.9, 0.6, 6)
    groups = np.array([0, 0, 0, 1, 1, 1])
    div = rank_diverse(scores, np.zeros(6, bool), X, groups=groups, n=4)
    assert len(div.rows) == 4
    assert set(groups[div.rows[:2]].tolist()) == {0, 1}


def test_audit_order_is_fixed_per_tag_and_uniform():
    a = audit_order(1000, "brass band")
    assert a.tolist() == audit_order(1000, "brass band").tolist()
    assert a.tolist() != audit_order(1000, "sea shanty").tolist()
    assert sorted(a.tolist()) == list(range(1000))
    # a uniform permutation: the first 100 spread over the whole library
    assert 300 < a[:100].mean() < 700


def test_audit_sample_is_the_labeled_prefix():
    order = audit_order(50, "x")
    labeled = np.zeros(50, bool)
    labeled[order[:7]] = True
    labeled[order[9]] = True  # labeled, but after a gap: not in the sample yet
    assert audit_prefix(order, labeled).tolist() == order[:7].tolist()
    nxt = rank_audit(order, labeled, n=3)
    assert nxt.rows.tolist() == [order[7], order[8], order[10]]
    assert "#8" in nxt.reasons[0]


def test_dispatch_and_unknown_strategy():
    scores = np.array([0.2, 0.7, 0.4])
    labeled = np.zeros(3, bool)
    assert rank("top", scores, labeled, n=1).rows.tolist() == [1]
    assert len(rank("audit", scores, labeled, tag="t", n=3)) == 3
    with pytest.raises(ValueError, match="needs the feature matrix"):
        rank("diverse", scores, labeled)
    with pytest.raises(ValueError, match="unknown strategy"):
        rank("best", scores, labeled)
