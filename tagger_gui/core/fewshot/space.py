"""The probe's input space: standardised features, optionally reduced by PCA.

Fitted once per library and feature choice (unsupervised: no labels), then
every refit and rescoring works in it. Reducing 1,506 musicnn dimensions to
a few hundred principal components keeps the probe's fit data in the CPU
cache and makes rescoring a 1,000,000-track library read 6x fewer bytes;
docs/results.md shows what it does to quality.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

_BLOCK = 65536


class FeatureSpace(TransformerMixin, BaseEstimator):
    """Standardise, then project on the top principal components.

    Parameters
    ----------
    n_components : int or None
        Principal components kept; None keeps every (standardised) dimension.
    whiten : bool
        Scale each component to unit variance.
    max_fit_rows : int
        Rows sampled from the library to fit the statistics.
    random_state : int or None
    """

    def __init__(
        self,
        *,
        n_components: int | None = 256,
        whiten: bool = False,
        max_fit_rows: int = 10_000,
        random_state=0,
    ):
        self.n_components = n_components
        self.whiten = whiten
        self.max_fit_rows = max_fit_rows
        self.random_state = random_state

    def fit(self, X: np.ndarray, y=None) -> FeatureSpace:
        rng = np.random.default_rng(self.random_state)
        rows = (
            np.sort(rng.choice(len(X), self.max_fit_rows, replace=False))
            if len(X) > self.max_fit_rows
            else np.arange(len(X))
        )
        # One BLAS thread: the fit runs beside the GUI, the library sync and
        # the embedding job. On the 2-vCPU VM under load, numpy's eigh of the
        # 1,506 x 1,506 covariance took 5 s with one OpenBLAS thread and 20-27 s
        # with two (the second spins waiting for a busy core), and the spinning
        # thread took the CPU from the GUI thread.
        with threadpool_limits(1):
            return self._fit(X, rows)

    def _fit(self, X: np.ndarray, rows: np.ndarray) -> FeatureSpace:
        from sklearn.decomposition import PCA

        Z = np.asarray(X[rows], dtype=np.float64)
        self.mean_ = Z.mean(axis=0)
        scale = Z.std(axis=0)
        scale[scale < 1e-8] = 1.0
        self.scale_ = scale
        Z -= self.mean_
        Z /= scale
        k = self.n_components
        if not k or k >= min(Z.shape):
            components = np.eye(X.shape[1])
            variance = Z.var(axis=0)
        else:
            pca = PCA(k, svd_solver="covariance_eigh", random_state=self.random_state).fit(Z)
            components = pca.components_
            variance = pca.explained_variance_
            self.explained_variance_ratio_ = pca.explained_variance_ratio_
        if self.whiten:
            components = components / np.sqrt(np.maximum(variance, 1e-12))[:, None]
        # fold standardisation into one affine map: out = X @ W + b
        self.W_ = (components / scale).T.astype(np.float32)
        self.b_ = (-(self.mean_ / scale) @ components.T).astype(np.float32)
        self.n_features_in_ = X.shape[1]
        self.n_components_ = self.W_.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``X`` in the space, float32, computed in blocks (no float64 copy of X)."""
        check_is_fitted(self, "W_")
        out = np.empty((len(X), self.n_components_), dtype=np.float32)
        for lo in range(0, len(X), _BLOCK):
            block = np.asarray(X[lo : lo + _BLOCK], dtype=np.float32)
            np.matmul(block, self.W_, out=out[lo : lo + len(block)])
        out += self.b_
        return out
