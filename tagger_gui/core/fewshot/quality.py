"""How good is a tag's probe? Readouts that stay honest with five labels.

- **Out-of-fold AP and ROC-AUC**: the labeled tracks are split into folds by
  group (album, or folder), so tracks of one album never sit on both sides;
  each fold is scored by a probe fitted without it. With too few explicit
  negatives, a random sample of unlabeled tracks stands in for them; the
  figures then treat unlabeled tracks as negatives and are a *lower bound*
  (some of them are positives). Intervals come from a bootstrap over groups.
- **Precision at the threshold** from the audit sample (a uniform random
  sample, see :func:`ranking.audit_order`), scored by a probe fitted without
  the audit tracks; with a Wilson interval.
- **Positives remaining**: the audit prevalence times the library size,
  minus the positives already labeled.
- **Stability**: overlap of the top of the ranking between two refits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest

from tagger_gui.core.fewshot.probe import NEGATIVE, POSITIVE, UNLABELED, LinearProbe

_HELD_OUT = -2


def fast_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fast_ap(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision as scikit-learn defines it (step-wise, ties grouped)."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    # the last index of each run of tied scores
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    tp = tp[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(precision * recall_step))


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``; (nan, nan) when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_ci(
    y: np.ndarray,
    s: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of AP and ROC-AUC, resampling whole groups."""
    rng = np.random.default_rng(random_state)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    aps, aucs = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        yb = y[idx]
        if yb.all() or not yb.any():
            continue
        aps.append(fast_ap(yb, s[idx]))
        aucs.append(fast_auc(yb, s[idx]))
    alpha = (1 - confidence) / 2
    out = {}
    for name, values in (("ap", aps), ("auc", aucs)):
        if len(values) < max(10, n_boot // 4):
            out[name] = (float("nan"), float("nan"))
        else:
            lo, hi = np.quantile(values, [alpha, 1 - alpha])
            out[name] = (float(lo), float(hi))
    return out


@dataclass
class CrossValidation:
    """Out-of-fold scores of the labeled (and stand-in) tracks."""

    rows: np.ndarray
    y_true: np.ndarray
    scores: np.ndarray
    folds: int
    unlabeled_as_negative: bool


def out_of_fold(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    probe_params: dict | None = None,
    n_folds: int = 5,
    min_negatives: int = 10,
    stand_in: int = 200,
    random_state: int = 0,
) -> CrossValidation | None:
    """Grouped cross-validated decision scores of the labeled tracks.

    Returns None when fewer than two groups hold positives (nothing can be
    held out honestly). With fewer than ``min_negatives`` explicit negatives,
    ``stand_in`` random unlabeled tracks are added as negatives.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(random_state)
    y = np.asarray(y)
    pos = np.flatnonzero(y == POSITIVE)
    neg = np.flatnonzero(y == NEGATIVE)
    pos_groups = np.unique(groups[pos])
    if len(pos_groups) < 2:
        return None
    stand_ins = np.array([], dtype=np.int64)
    if len(neg) < min_negatives:
        unl = np.flatnonzero(y == UNLABELED)
        stand_ins = rng.choice(unl, min(stand_in, len(unl)), replace=False)
    rows = np.concatenate([pos, neg, stand_ins])
    y_true = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(stand_ins))]).astype(bool)
    k = int(min(n_folds, len(pos_groups)))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
    scores = np.empty(len(rows), dtype=np.float64)
    for _, held in splitter.split(rows, y_true, groups[rows]):
        y_fold = y.copy()
        y_fold[rows[held]] = _HELD_OUT
        if not (y_fold == POSITIVE).any():
            return None
        probe = LinearProbe(**{"random_state": random_state, **(probe_params or {})})
        probe.fit(X, y_fold)
        scores[held] = probe.decision_function(X[rows[held]])
    return CrossValidation(rows, y_true, scores, k, len(stand_ins) > 0)


@dataclass
class QualityReport:
    """Everything the quality panel shows for one tag after a refit."""

    n_positive: int
    n_negative: int
    n_tracks: int
    threshold: float
    n_above: int
    cv_ap: float = float("nan")
    cv_ap_ci: tuple[float, float] = (float("nan"), float("nan"))
    cv_auc: float = float("nan")
    cv_auc_ci: tuple[float, float] = (float("nan"), float("nan"))
    cv_folds: int = 0
    cv_lower_bound: bool = False
    audit_size: int = 0
    audit_above: int = 0
    audit_positive_above: int = 0
    precision: float = float("nan")
    precision_ci: tuple[float, float] = (float("nan"), float("nan"))
    prevalence: float = float("nan")
    prevalence_ci: tuple[float, float] = (float("nan"), float("nan"))
    positives_remaining: float = float("nan")
    positives_remaining_ci: tuple[float, float] = (float("nan"), float("nan"))
    stability: float = float("nan")
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as short plain-language lines."""

        def ci(pair: tuple[float, float]) -> str:
            return "" if np.isnan(pair[0]) else f" ({pair[0]:.2f}-{pair[1]:.2f})"

        out = [f"{self.n_positive} positives, {self.n_negative} negatives labeled"]
        if self.cv_folds:
            kind = " (unlabeled counted as negatives: a lower bound)" if self.cv_lower_bound else ""
            out.append(
                f"out-of-fold AP {self.cv_ap:.2f}{ci(self.cv_ap_ci)}, ROC-AUC "
                f"{self.cv_auc:.2f}{ci(self.cv_auc_ci)}, {self.cv_folds} grouped folds{kind}"
            )
        out.append(f"{self.n_above} of {self.n_tracks} tracks above {self.threshold:.2f}")
        if self.audit_size:
            out.append(
                f"audit: {self.audit_size} random tracks labeled; precision above the "
                f"threshold {self.precision:.2f}{ci(self.precision_ci)} "
                f"({self.audit_positive_above} of {self.audit_above})"
            )
            out.append(
                f"about {self.positives_remaining:.0f}{ci(self.positives_remaining_ci)} "
                "positives not yet labeled"
            )
        if not np.isnan(self.stability):
            out.append(f"ranking stability (top overlap with the last refit) {self.stability:.2f}")
        return out + self.notes


def ranking_stability(
    previous: np.ndarray, current: np.ndarray, labeled: np.ndarray, *, k: int = 50
) -> float:
    """Jaccard overlap of the unlabeled top-``k`` of two score vectors (1 = unchanged)."""
    cand = np.flatnonzero(~np.asarray(labeled, dtype=bool))
    k = min(k, len(cand))
    if k == 0:
        return float("nan")
    a = set(cand[np.argpartition(-previous[cand], k - 1)[:k]].tolist())
    b = set(cand[np.argpartition(-current[cand], k - 1)[:k]].tolist())
    return len(a & b) / len(a | b)


def assess(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float = 0.5,
    audit_rows: np.ndarray | None = None,
    previous_scores: np.ndarray | None = None,
    probe_params: dict | None = None,
    n_boot: int = 200,
    random_state: int = 0,
) -> QualityReport:
    """The quality readout for one tag.

    Parameters
    ----------
    X : ndarray (n_tracks, dim)
    y : ndarray (n_tracks,)
        1 positive, 0 negative, -1 unlabeled (skips count as unlabeled).
    groups : ndarray (n_tracks,)
        Album (or folder) per track.
    scores : ndarray (n_tracks,)
        The current probe's probabilities for every track.
    threshold : float
        Probability above which a track is predicted to have the tag.
    audit_rows : ndarray, optional
        The audit sample (:func:`ranking.audit_prefix`); all labeled.
    previous_scores : ndarray, optional
        The scores of the previous refit, for the stability figure.
    """
    y = np.asarray(y)
    labeled = y != UNLABELED
    report = QualityReport(
        n_positive=int((y == POSITIVE).sum()),
        n_negative=int((y == NEGATIVE).sum()),
        n_tracks=len(y),
        threshold=threshold,
        n_above=int((scores >= threshold).sum()),
    )
    cv = out_of_fold(X, y, groups, probe_params=probe_params, random_state=random_state)
    if cv is None:
        report.notes.append("out-of-fold figures need positives from at least two albums/folders")
    else:
        report.cv_folds = cv.folds
        report.cv_lower_bound = cv.unlabeled_as_negative
        report.cv_ap = fast_ap(cv.y_true, cv.scores)
        report.cv_auc = fast_auc(cv.y_true, cv.scores)
        cis = bootstrap_ci(
            cv.y_true, cv.scores, groups[cv.rows], n_boot=n_boot, random_state=random_state
        )
        report.cv_ap_ci, report.cv_auc_ci = cis["ap"], cis["auc"]
    if audit_rows is not None and len(audit_rows):
        audit_rows = np.asarray(audit_rows)
        report.audit_size = len(audit_rows)
        y_fit = y.copy()
        y_fit[audit_rows] = _HELD_OUT
        audit_scores = None
        if (y_fit == POSITIVE).any():
            probe = LinearProbe(**{"random_state": random_state, **(probe_params or {})})
            audit_scores = probe.fit(X, y_fit).predict_proba(X[audit_rows])[:, 1]
        truth = y[audit_rows] == POSITIVE
        if audit_scores is not None:
            above = audit_scores >= threshold
            report.audit_above = int(above.sum())
            report.audit_positive_above = int((truth & above).sum())
            if report.audit_above:
                report.precision = report.audit_positive_above / report.audit_above
                report.precision_ci = wilson(report.audit_positive_above, report.audit_above)
            else:
                report.notes.append("no audit track is above the threshold yet")
        k = int(truth.sum())
        report.prevalence = k / len(audit_rows)
        report.prevalence_ci = wilson(k, len(audit_rows))
        # positives outside the audit sample that are not labeled yet
        outside = len(y) - len(audit_rows)
        labeled_pos_outside = report.n_positive - k
        anything_left = bool((~labeled).any())
        est = [
            max(0.0, p * outside - labeled_pos_outside) if anything_left else 0.0
            for p in (report.prevalence, *report.prevalence_ci)
        ]
        report.positives_remaining = est[0]
        report.positives_remaining_ci = (est[1], est[2])
    else:
        report.notes.append("label a few audit tracks for precision and recall estimates")
    if previous_scores is not None:
        report.stability = ranking_stability(previous_scores, scores, labeled)
    return report


def default_groups(
    relpaths: list[str], albums: list[str] | None = None, artists: list[str] | None = None
) -> np.ndarray:
    """Group per track: album (with artist) from the tags, else the folder."""
    keys = []
    for i, rel in enumerate(relpaths):
        album = (albums[i] if albums else "") or ""
        artist = (artists[i] if artists else "") or ""
        keys.append(f"album:{artist}\x1f{album}" if album else f"folder:{rel.rpartition('/')[0]}")
    _, inverse = np.unique(np.array(keys, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)
