"""Which tracks to review next: ``top``, ``uncertain``, ``diverse`` and ``audit``.

Every strategy returns a :class:`Ranking`: row indices into the library's
feature matrix, best first, each with a reason a librarian can read.
Labeled rows are never proposed again.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("top", "uncertain", "diverse", "audit")


@dataclass
class Ranking:
    """An ordered review list."""

    strategy: str
    rows: np.ndarray
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.rows)


def _candidates(labeled: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.asarray(labeled, dtype=bool))


def _best(keys: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """``rows`` ordered by ascending ``keys``, the first ``n`` only (argpartition first)."""
    if n < len(rows):
        part = np.argpartition(keys, n - 1)[:n]
        rows, keys = rows[part], keys[part]
    return rows[np.argsort(keys, kind="stable")]


def rank_top(scores: np.ndarray, labeled: np.ndarray, *, n: int = 50) -> Ranking:
    """Highest score first: find more positives fast."""
    cand = _candidates(labeled)
    rows = _best(-scores[cand], cand, n)
    return Ranking("top", rows, [f"score {scores[r]:.2f}: among the highest" for r in rows])


def rank_uncertain(
    scores: np.ndarray, labeled: np.ndarray, *, threshold: float = 0.5, n: int = 50
) -> Ranking:
    """Closest to the decision threshold first: the labels that teach the probe most."""
    cand = _candidates(labeled)
    rows = _best(np.abs(scores[cand] - threshold), cand, n)
    return Ranking(
        "uncertain",
        rows,
        [f"score {scores[r]:.2f}: the probe is unsure (threshold {threshold:.2f})" for r in rows],
    )


def rank_diverse(
    scores: np.ndarray,
    labeled: np.ndarray,
    X: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    threshold: float = 0.5,
    n: int = 10,
    pool: int = 200,
    redundancy: float = 0.5,
    max_per_group: int = 1,
) -> Ranking:
    """A batch that is both promising and spread out.

    Candidates are the ``pool`` best by score and by uncertainty (half each).
    They are picked greedily by relevance minus ``redundancy`` times the
    largest cosine similarity (of centred features) to what is already in
    the batch (maximal marginal relevance), and at most ``max_per_group``
    per group (album) as long as other groups are left.
    """
    cand = _candidates(labeled)
    if len(cand) == 0:
        return Ranking("diverse", cand, [])
    half = max(1, pool // 2)
    top = _best(-scores[cand], cand, half)
    unsure = _best(np.abs(scores[cand] - threshold), cand, half)
    pool_rows = np.unique(np.concatenate([top, unsure]))
    # relevance: high score or near the threshold both count, on a 0..1 scale
    s = scores[pool_rows].astype(np.float64)
    relevance = np.maximum(s, 1.0 - 2.0 * np.abs(s - threshold))
    Z = np.asarray(X[pool_rows], dtype=np.float64)
    Z -= Z.mean(axis=0)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True) + 1e-12
    sim = Z @ Z.T
    chosen: list[int] = []
    max_sim = np.full(len(pool_rows), -1.0)
    used = np.zeros(len(pool_rows), dtype=bool)
    per_group: dict[int, int] = {}
    g = None if groups is None else np.asarray(groups)[pool_rows]
    reasons = []
    while len(chosen) < min(n, len(pool_rows)):
        value = relevance - redundancy * np.clip(max_sim, 0, None)
        value[used] = -np.inf
        if g is not None:
            full = np.array([per_group.get(int(x), 0) >= max_per_group for x in g])
            if not np.all(full | used):
                value[full] = -np.inf
        i = int(np.argmax(value))
        used[i] = True
        chosen.append(i)
        if g is not None:
            per_group[int(g[i])] = per_group.get(int(g[i]), 0) + 1
        near = max_sim[i]
        reasons.append(
            f"score {s[i]:.2f}; "
            + (
                "first of the batch"
                if len(chosen) == 1
                else f"unlike the batch so far (max similarity {max(near, 0):.2f})"
            )
        )
        max_sim = np.maximum(max_sim, sim[i])
    return Ranking("diverse", pool_rows[chosen], reasons)


def audit_order(n_tracks: int, tag: str, *, salt: str = "tagger-audit-1") -> np.ndarray:
    """A fixed uniform random order of the library for ``tag``'s audit sample.

    It depends only on the tag name and the library size, never on scores or
    labels, so the labeled prefix of this order is a uniform random sample.
    The array is cached (read-only): every refit asks for it twice, and a
    permutation of a 1,000,000-track library is not free.
    """
    return _audit_order(n_tracks, tag, salt)


@functools.lru_cache(maxsize=8)
def _audit_order(n_tracks: int, tag: str, salt: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(f"{salt}:{tag}".encode(), digest_size=8).digest())
    order = np.random.default_rng(seed).permutation(n_tracks)
    order.flags.writeable = False
    return order


def audit_prefix(order: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """Rows of the audit sample: the longest prefix of ``order`` that is all labeled."""
    lab = np.asarray(labeled, dtype=bool)[order]
    first_gap = int(np.argmin(lab)) if not lab.all() else len(lab)
    return order[:first_gap]


def rank_audit(order: np.ndarray, labeled: np.ndarray, *, n: int = 20) -> Ranking:
    """The next tracks of the audit order not yet labeled.

    Label them in this order: the audit sample is the labeled prefix, so a
    skipped track stops it growing.
    """
    lab = np.asarray(labeled, dtype=bool)
    rest = order[~lab[order]][:n]
    start = len(audit_prefix(order, lab))
    return Ranking(
        "audit",
        rest,
        [
            f"audit sample #{start + i + 1}: uniform random, estimates precision without bias"
            for i in range(len(rest))
        ],
    )


def rank(
    strategy: str,
    scores: np.ndarray,
    labeled: np.ndarray,
    *,
    X: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    tag: str = "",
    threshold: float = 0.5,
    n: int = 50,
) -> Ranking:
    """Dispatch to the strategy called ``strategy`` (one of :data:`STRATEGIES`)."""
    if strategy == "top":
        return rank_top(scores, labeled, n=n)
    if strategy == "uncertain":
        return rank_uncertain(scores, labeled, threshold=threshold, n=n)
    if strategy == "diverse":
        if X is None:
            raise ValueError("the diverse strategy needs the feature matrix X")
        return rank_diverse(scores, labeled, X, groups=groups, threshold=threshold, n=n)
    if strategy == "audit":
        return rank_audit(audit_order(len(scores), tag), labeled, n=n)
    raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
