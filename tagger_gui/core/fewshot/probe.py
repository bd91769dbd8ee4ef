"""The linear probe: one standardised logistic regression per tag (Ma & Lerch 2024).

Labels are coded ``1`` (positive), ``0`` (negative) and ``-1`` (unlabeled).
Unlabeled tracks are used as *weak* negatives: a random sample of them with
a small sample weight, as in Google's Perch agile-modeling workflow, so that
five positives and no negatives already give a ranking.

The standardisation is folded into the weights after fitting, so scoring a
library reads the raw float32 matrix once (no standardised copy: memory
stays at the feature matrix itself).
"""

from __future__ import annotations

import io
import json

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

POSITIVE, NEGATIVE, UNLABELED = 1, 0, -1

#: Version of the bytes written by :meth:`LinearProbe.to_bytes`.
PROBE_FORMAT = 1

# Rows scored per block: bounds the float64 temporaries of a 1,000,000-track scoring.
_SCORE_BLOCK = 65536


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Standardised L2 logistic regression with weak unlabeled negatives.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression, for
        weights normalised so that the positives sum to their count.
    unlabeled_weight : float
        Sample weight of each sampled unlabeled track, relative to an
        explicit negative (before class balancing). 0 ignores unlabeled tracks
        for the fit (they still feed the standardisation statistics).
    max_unlabeled : int
        How many unlabeled tracks are sampled per fit.
    balance : bool
        Give the negative side (explicit plus weak) the same total weight as
        the positives.
    standardize : bool
        Scale each feature to unit variance (over the rows read) before the
        fit. Turn it off for inputs that already have a meaningful scale, such
        as principal components (:class:`~.space.FeatureSpace`): scaling every
        component to unit variance would blow up the noisy low-variance ones.
    max_iter : int
        L-BFGS iterations.
    random_state : int, RandomState or None
        Seeds the unlabeled sample.
    """

    def __init__(
        self,
        *,
        C: float = 0.1,
        unlabeled_weight: float = 0.05,
        max_unlabeled: int = 1000,
        balance: bool = True,
        standardize: bool = True,
        max_iter: int = 300,
        random_state=None,
    ):
        self.C = C
        self.unlabeled_weight = unlabeled_weight
        self.max_unlabeled = max_unlabeled
        self.balance = balance
        self.standardize = standardize
        self.max_iter = max_iter
        self.random_state = random_state

    def _training_rows(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(
            self.random_state
            if not isinstance(self.random_state, np.random.RandomState)
            else self.random_state.randint(2**31)
        )
        pos = np.flatnonzero(y == POSITIVE)
        neg = np.flatnonzero(y == NEGATIVE)
        unl = np.flatnonzero(y == UNLABELED)
        if len(unl) > self.max_unlabeled:
            unl = np.sort(rng.choice(unl, self.max_unlabeled, replace=False))
        rows = np.concatenate([pos, neg, unl])
        target = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(unl))])
        weight = np.concatenate(
            [np.ones(len(pos)), np.ones(len(neg)), np.full(len(unl), self.unlabeled_weight)]
        )
        negative_mass = weight[len(pos) :].sum()
        if len(pos) == 0:
            raise ValueError("a probe needs at least one positive example")
        if negative_mass <= 0:
            raise ValueError(
                "a probe needs negatives: explicit ones, or unlabeled tracks with "
                "unlabeled_weight > 0"
            )
        if self.balance:
            weight[len(pos) :] *= len(pos) / negative_mass
        return rows, target, weight

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearProbe:
        """Fit on the rows of ``X`` labeled in ``y`` (1, 0, or -1 for unlabeled).

        ``X`` may be the whole library: only the labeled rows and a sample of
        the unlabeled ones are read.
        """
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X {X.shape} and y {y.shape} do not match")
        rows, target, weight = self._training_rows(y)
        Z = np.asarray(X[rows], dtype=np.float64)
        mean = Z.mean(axis=0)
        if self.standardize:
            scale = Z.std(axis=0)
            scale[scale < 1e-8] = 1.0
        else:
            scale = np.ones(Z.shape[1])
        Z -= mean
        Z /= scale
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=1e-4)
        # The fit data is small: one BLAS thread is several times faster here than
        # two fighting over it (measured on a 2-vCPU machine, benchmarks/rank_speed.py).
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(Z, target, sample_weight=weight)
        self.mean_ = mean
        self.scale_ = scale
        self.coef_ = model.coef_[0].copy()
        self.intercept_ = float(model.intercept_[0])
        self._fold()
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        self.n_positive_ = int((y == POSITIVE).sum())
        self.n_negative_ = int((y == NEGATIVE).sum())
        self.n_unlabeled_used_ = int(len(rows) - self.n_positive_ - self.n_negative_)
        self.n_iter_ = int(model.n_iter_[0])
        return self

    def _fold(self) -> None:
        w = self.coef_ / self.scale_
        self.weights_ = w.astype(np.float32)
        self.bias_ = float(self.intercept_ - self.mean_ @ w)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds per row of ``X`` (raw, unstandardised features), float32."""
        check_is_fitted(self, "weights_")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the probe {self.n_features_in_}")
        out = np.empty(len(X), dtype=np.float32)
        for lo in range(0, len(X), _SCORE_BLOCK):
            block = X[lo : lo + _SCORE_BLOCK]
            np.dot(block, self.weights_, out=out[lo : lo + len(block)])
        out += self.bias_
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X).astype(np.float64)))
        return np.stack([1 - p, p], axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)

    # -- saving ----------------------------------------------------------------------

    def to_bytes(self, meta: dict | None = None) -> bytes:
        """The fitted probe as bytes (npz, no pickle), with ``meta`` stored beside it.

        Save the backend, version, feature choice and label snapshot in
        ``meta`` so a loaded probe can be checked against the data it meets.
        """
        check_is_fitted(self, "weights_")
        header = {
            "format": PROBE_FORMAT,
            "params": self.get_params(),
            "n_positive": self.n_positive_,
            "n_negative": self.n_negative_,
            "meta": meta or {},
        }
        header["params"]["random_state"] = (
            self.random_state if isinstance(self.random_state, int | None) else None
        )
        buf = io.BytesIO()
        np.savez(
            buf,
            header=np.asarray(json.dumps(header)),
            mean=self.mean_,
            scale=self.scale_,
            coef=self.coef_,
            intercept=np.asarray(self.intercept_),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[LinearProbe, dict]:
        """Load what :meth:`to_bytes` wrote; returns ``(probe, meta)``."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(str(npz["header"]))
            if header.get("format") != PROBE_FORMAT:
                raise ValueError(
                    f"saved probe has format {header.get('format')}, this version "
                    f"reads {PROBE_FORMAT}; refit the tag"
                )
            probe = cls(**header["params"])
            probe.mean_ = npz["mean"]
            probe.scale_ = npz["scale"]
            probe.coef_ = npz["coef"]
            probe.intercept_ = float(npz["intercept"])
        probe._fold()
        probe.classes_ = np.array([0, 1])
        probe.n_features_in_ = len(probe.coef_)
        probe.n_positive_ = header["n_positive"]
        probe.n_negative_ = header["n_negative"]
        return probe, header["meta"]
