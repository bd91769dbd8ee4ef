"""The live loop of one tag: refit after a label, rescore, rank, assess.

:func:`open_library_features` loads a library's feature matrix from the
cache and fits its :class:`~.space.FeatureSpace` once; :func:`refit_task`
is the generator task the app runs after every label (it can be stopped
between its steps, so the newest request wins).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.fewshot.features import (
    DEFAULT_FEATURES,
    FeatureSpec,
    feature_id,
    load_features,
)
from tagger_gui.core.fewshot.ranking import STRATEGIES, Ranking, audit_order, audit_prefix, rank

# The probe, the quality readout and the space import scikit-learn and
# scipy.stats (1.5-2 s, more on a busy machine). The app imports this module
# before its window is shown, so they are imported where they are used (in a
# worker thread), not here.
if TYPE_CHECKING:
    from tagger_gui.core.fewshot.probe import LinearProbe
    from tagger_gui.core.fewshot.quality import QualityReport
    from tagger_gui.core.fewshot.space import FeatureSpace

#: Probe set-up the evaluation in docs/results.md chose (see there for the figures).
#: The space already standardised the features and its principal components keep
#: their variances: re-standardising them (whitening) cost 0.23 ROC-AUC there.
DEFAULT_PROBE = {"C": 0.1, "unlabeled_weight": 0.05, "max_unlabeled": 1000, "standardize": False}
DEFAULT_COMPONENTS = 256


@dataclass
class LibraryFeatures:
    """A library's tracks in the probe's space."""

    relpaths: list[str]
    X: np.ndarray
    groups: np.ndarray
    feature_id: str
    space: FeatureSpace
    _index: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def row_index(self) -> dict[str, int]:
        """relpath -> row, built on first use and kept (``relpaths`` must not change)."""
        if self._index is None or len(self._index) != len(self.relpaths):
            self._index = {p: i for i, p in enumerate(self.relpaths)}
        return self._index

    def rows_of(self, relpaths: Sequence[str]) -> np.ndarray:
        index = self.row_index()
        return np.array([index[p] for p in relpaths], dtype=np.int64)


def open_library_features(
    cache: EmbeddingCache,
    *,
    features: str | FeatureSpec = DEFAULT_FEATURES,
    groups: np.ndarray | None = None,
    relpaths: Sequence[str] | None = None,
    n_components: int | None = DEFAULT_COMPONENTS,
) -> LibraryFeatures:
    """Load and project the library's features (once per project and feature choice).

    ``groups`` (album per track, aligned with ``relpaths``) defaults to the folder.
    """
    from tagger_gui.core.fewshot.quality import default_groups
    from tagger_gui.core.fewshot.space import FeatureSpace

    spec = FeatureSpec.parse(features) if isinstance(features, str) else features
    paths, raw = load_features(cache, spec, relpaths)
    space = FeatureSpace(n_components=n_components).fit(raw)
    X = space.transform(raw)
    del raw
    if groups is None:
        groups = default_groups(paths)
    fid = feature_id(cache, spec) + (f" pca{space.n_components_}" if n_components else "")
    return LibraryFeatures(paths, X, np.asarray(groups), fid, space)


def label_snapshot(y: np.ndarray) -> str:
    """A short hash of a label vector: which probe came from which labels."""
    return hashlib.blake2b(
        np.ascontiguousarray(y, dtype=np.int8).tobytes(), digest_size=8
    ).hexdigest()


@dataclass
class RefitResult:
    """What one refit produced."""

    tag: str
    probe: LinearProbe
    scores: np.ndarray
    rankings: dict[str, Ranking]
    quality: QualityReport | None
    snapshot: str
    seconds: dict[str, float] = field(default_factory=dict)

    def probe_bytes(self, feature_id: str) -> bytes:
        """The probe, with the feature choice and label snapshot it came from."""
        return self.probe.to_bytes(
            {
                "tag": self.tag,
                "features": feature_id,
                "labels": self.snapshot,
                "fitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )


def refit_task(
    lib: LibraryFeatures,
    y: np.ndarray,
    *,
    tag: str,
    threshold: float = 0.5,
    strategies: Sequence[str] = STRATEGIES,
    n: int = 50,
    previous_scores: np.ndarray | None = None,
    probe_params: dict | None = None,
    with_quality: bool = True,
) -> Generator[str, None, RefitResult]:
    """Refit ``tag``'s probe on labels ``y`` and rescore/rank/assess; yields its stage names.

    ``y`` holds 1 (positive), 0 (negative) and -1 (unlabeled or skipped) per
    library row. Close the generator to abandon a refit that a newer one
    replaces.
    """
    from tagger_gui.core.fewshot.probe import UNLABELED, LinearProbe
    from tagger_gui.core.fewshot.quality import assess

    params = {**DEFAULT_PROBE, **(probe_params or {})}
    seconds = {}
    t = time.perf_counter()
    probe = LinearProbe(random_state=0, **params).fit(lib.X, y)
    seconds["fit"] = time.perf_counter() - t
    yield "fitted"
    t = time.perf_counter()
    scores = probe.predict_proba(lib.X)[:, 1].astype(np.float32)
    seconds["score"] = time.perf_counter() - t
    yield "scored"
    t = time.perf_counter()
    labeled = y != UNLABELED
    rankings = {
        s: rank(s, scores, labeled, X=lib.X, groups=lib.groups, tag=tag, threshold=threshold, n=n)
        for s in strategies
    }
    seconds["rank"] = time.perf_counter() - t
    yield "ranked"
    quality = None
    if with_quality:
        t = time.perf_counter()
        audit = audit_prefix(audit_order(len(y), tag), labeled)
        quality = assess(
            lib.X,
            y,
            lib.groups,
            scores,
            threshold=threshold,
            audit_rows=audit,
            previous_scores=previous_scores,
            probe_params=params,
        )
        seconds["quality"] = time.perf_counter() - t
        yield "assessed"
    return RefitResult(tag, probe, scores, rankings, quality, label_snapshot(y), seconds)
