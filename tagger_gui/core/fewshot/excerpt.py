"""Where to start playing a track: the excerpt that scores highest for the current tag.

The tag's main probe (:mod:`.engine`) reads track-level
``musicnn-msd:mean_pool+max_pool`` features projected by a PCA space; those
are not stored per patch, so the main probe cannot score a track's parts.
The cache does store the ``penultimate`` (200-d) and ``taggram`` outputs per
patch, and every clip-level vector in the cache is the *mean of the track's
patch vectors* (:meth:`~tagger_gui.core.cache.EmbeddingCache.write_batch`;
the patch copies are float16, so the identity holds to about 1e-4 relative,
measured on the benchmark corpus). A linear model on that mean splits
exactly into patch contributions::

    w . mean_p(x_p) + b  ==  mean_p(w . x_p + b)

so a small companion model, linear in the track-level ``penultimate``
vectors, gives every patch a log-odds whose mean over the track *is* the
track's score under that model. The patch with the highest log-odds is the
part of the track that pushes its score up the most: the part to play first.

The companion is fitted one of two ways:

* :class:`DistilledExcerptProbe` (recommended): a ridge regression of the
  *main probe's* log-odds of every library track on the ``penultimate``
  vectors. It explains the main probe's proposal (Spearman 0.97-1.00 with the
  main scores on the benchmark corpus, docs/player.md) rather than re-learning
  the tag from a handful of labels.
* :func:`fit_excerpt_probe` with ``y`` only: a :class:`~.probe.LinearProbe` on
  the labels (positives, negatives, unlabeled as weak negatives, like the
  main probe), for when no main scores are at hand (Spearman 0.80-0.95).

Typical use (the fit once per refit, the choice once per track)::

    feats = open_excerpt_features(cache, lib.relpaths)        # once per project
    probe = fit_excerpt_probe(feats.X, y, scores=result.scores)  # after each refit
    choice = best_excerpt(cache_path, feats.backend_key, relpath, probe, tag="calm")
    player.seek(choice.start_s); status.setText(choice.describe())

or, fitting lazily on the first track asked for (on whichever thread asks)::

    excerpts = TagExcerpts(feats, y.copy(), tag="calm", scores=result.scores)
    choice = excerpts(relpath, duration=d)

Nothing here imports Qt; :func:`best_excerpt` given a cache *path* opens its
own reader, so it can run on any thread.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.errors import CacheError
from tagger_gui.core.fewshot.features import DEFAULT_FEATURES, FeatureSpec, resolve
from tagger_gui.core.fewshot.probe import POSITIVE, LinearProbe

__all__ = [
    "EXCERPT_OUTPUTS",
    "LONG_TRACK_SECONDS",
    "DistilledExcerptProbe",
    "ExcerptChoice",
    "ExcerptFeatures",
    "TagExcerpts",
    "best_excerpt",
    "excerpt_probe_task",
    "fallback_excerpt",
    "fit_excerpt_probe",
    "format_time",
    "open_excerpt_features",
    "score_patches",
]

#: Patch outputs an excerpt probe may read, best first. ``penultimate`` is the
#: last hidden layer (what the tag heads of musicnn read); ``taggram`` is a
#: 50-d squashed summary of it, a fallback for backends without the former.
EXCERPT_OUTPUTS = ("penultimate", "taggram")

#: The main probe's set-up (engine.DEFAULT_PROBE) on raw, unprojected vectors:
#: the penultimate units have very different scales, so they are standardised
#: (the main probe does not, because its PCA components already carry a scale).
EXCERPT_PROBE = {"C": 0.1, "unlabeled_weight": 0.05, "max_unlabeled": 1000, "standardize": True}

#: Without excerpt scores, tracks longer than this start in the middle.
LONG_TRACK_SECONDS = 60.0

BEST, START, MIDDLE, GIVEN = "best", "start", "middle", "given"


def format_time(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour), rounded down to the second."""
    total = max(0, math.floor(seconds + 1e-6))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class ExcerptChoice:
    """Where playback starts and why.

    Attributes
    ----------
    start_s : float
        Start position, seconds.
    kind : str
        ``"best"`` (the best-scoring patch), ``"start"`` (0 s), ``"middle"``
        (a long track without scores) or ``"given"`` (the caller's position).
    reason : str
        Plain words for the user, e.g. ``"the part that scores highest for calm"``.
    patch_starts, patch_scores : np.ndarray
        ``(P,)`` start (s) and log-odds of every patch; empty without scores.
    patch_seconds : float
        Length of one patch (0 without scores).
    """

    start_s: float
    kind: str
    reason: str
    patch_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    patch_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    patch_seconds: float = 0.0

    @property
    def span(self) -> tuple[float, float] | None:
        """``(start, end)`` seconds of the chosen patch, or None when no patch was chosen."""
        if self.kind != BEST:
            return None
        return self.start_s, self.start_s + self.patch_seconds

    def describe(self) -> str:
        """The status line: ``"Started at 1:24, the part that scores highest for calm."``.

        Without a reason: ``"Started at 1:24."``.
        """
        where = f"Started at {format_time(self.start_s)}"
        return f"{where}, {self.reason}." if self.reason else f"{where}."


def fallback_excerpt(
    duration: float | None, *, why: str, tag: str | None = None, start_s: float | None = None
) -> ExcerptChoice:
    """The start when no patch can be scored.

    Parameters
    ----------
    duration : float or None
        Track length, seconds (None: unknown, start at 0).
    why : str
        Why there is no score, in plain words (``"no tag chosen yet"``).
    tag : str, optional, keyword-only
        With no tag the track starts at 0 s whatever its length.
    start_s : float, optional, keyword-only
        The caller's own start position; wins over the rule below.

    Notes
    -----
    With a tag but no scores, a track longer than :data:`LONG_TRACK_SECONDS`
    starts in its middle: long pieces often open with a quiet or unrelated
    intro, and the middle is more likely to be the body of the piece (the
    embedding job itself samples section centres of long tracks). Without a
    tag there is nothing to explain, so the track plays from its start like in
    any player; short tracks also start at 0, where most of them is heard
    anyway.
    """
    if start_s is not None:
        return ExcerptChoice(float(start_s), GIVEN, why)
    if tag and duration is not None and duration > LONG_TRACK_SECONDS:
        middle = float(math.floor(duration / 2))
        return ExcerptChoice(middle, MIDDLE, f"the middle of the track ({why})")
    return ExcerptChoice(0.0, START, f"the start of the track ({why})")


@dataclass
class ExcerptFeatures:
    """Track-level vectors of one patch output, aligned with a list of tracks.

    Attributes
    ----------
    cache_path : Path
        The cache they came from (:func:`best_excerpt` reads patches there).
    backend_key : str
        e.g. ``"musicnn-msd@1"``.
    output : str
        The patch output (``"penultimate"``).
    relpaths : list of str
        Row order of ``X`` (the caller's, e.g. ``LibraryFeatures.relpaths``).
    X : np.ndarray
        ``(n, dim)`` float32, the mean of each track's patch vectors.
    """

    cache_path: Path
    backend_key: str
    output: str
    relpaths: list[str]
    X: np.ndarray


def _excerpt_source(cache: EmbeddingCache, features: str | FeatureSpec) -> tuple[str, str] | None:
    """``(backend key, patch output)`` to score excerpts with, or None."""
    spec = FeatureSpec.parse(features) if isinstance(features, str) else features
    keys = [key for key, _, _ in resolve(cache, spec)]
    # Prefer the backend the main probe reads; any other stored backend after it.
    keys += [k for k in cache.backends() if k not in keys]
    for key in keys:
        stored = cache.backend_info(key).get("patch_outputs", ())
        for output in EXCERPT_OUTPUTS:
            if output in stored:
                return key, output
    return None


def open_excerpt_features(
    cache: EmbeddingCache,
    relpaths: Sequence[str] | None = None,
    *,
    features: str | FeatureSpec = DEFAULT_FEATURES,
) -> ExcerptFeatures | None:
    """Load the track-level vectors an excerpt probe is fitted on (once per project).

    Parameters
    ----------
    cache : EmbeddingCache
    relpaths : sequence of str, optional
        Rows wanted, in this order (pass ``LibraryFeatures.relpaths`` so the
        tag's label vector fits both probes). Default: every track of the backend.
    features : str or FeatureSpec, keyword-only
        The main probe's feature choice; its first backend that stores
        :data:`EXCERPT_OUTPUTS` per patch is used, else any stored backend that does.

    Returns
    -------
    ExcerptFeatures or None
        None when no backend in the cache stores patch vectors (then
        playback starts by :func:`fallback_excerpt`).

    Raises
    ------
    CacheError
        A requested track is not embedded by that backend.
    """
    source = _excerpt_source(cache, features)
    if source is None:
        return None
    key, output = source
    paths, X = cache.load(key, output)
    if relpaths is not None:
        index = {p: i for i, p in enumerate(paths)}
        try:
            rows = np.fromiter((index[p] for p in relpaths), dtype=np.int64, count=len(relpaths))
        except KeyError as exc:
            raise CacheError(f"{exc.args[0]!r} has no {key} embedding yet") from None
        paths, X = list(relpaths), X[rows]
    return ExcerptFeatures(Path(cache.path), key, output, list(paths), X)


class DistilledExcerptProbe(BaseEstimator):
    """A linear model of the main probe's log-odds on track-level patch-output vectors.

    Ridge regression (scikit-learn's ``Ridge``) on standardised vectors, the
    standardisation folded into :attr:`weights_` and :attr:`bias_` afterwards,
    so that :meth:`decision_function` is ``X @ weights_ + bias_`` on raw
    vectors: applied to patch vectors, the patch scores average to the track's.

    Parameters
    ----------
    alpha : float
        Ridge penalty, on standardised inputs.
    max_rows : int
        At most this many tracks are used for the fit (a seeded sample): the
        fit then costs a few tens of ms however large the library.
    random_state : int or None
        Seeds that sample.
    """

    def __init__(self, *, alpha: float = 10.0, max_rows: int = 20000, random_state=0):
        self.alpha = alpha
        self.max_rows = max_rows
        self.random_state = random_state

    def fit(self, X: np.ndarray, log_odds: np.ndarray) -> DistilledExcerptProbe:
        """Fit ``log_odds`` (the main probe's, one per row of ``X``)."""
        from sklearn.linear_model import Ridge

        X = np.asarray(X)
        target = np.asarray(log_odds, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or len(X) != len(target):
            raise ValueError(f"X {X.shape} and log_odds {target.shape} do not match")
        keep = np.flatnonzero(np.isfinite(target))
        if len(keep) > self.max_rows:
            rng = np.random.default_rng(self.random_state)
            keep = np.sort(rng.choice(keep, self.max_rows, replace=False))
        if len(keep) < 2:
            raise ValueError("a distilled excerpt probe needs at least two scored tracks")
        Z = np.asarray(X[keep], dtype=np.float64)
        mean = Z.mean(axis=0)
        scale = Z.std(axis=0)
        scale[scale < 1e-8] = 1.0
        Z -= mean
        Z /= scale
        model = Ridge(alpha=self.alpha).fit(Z, target[keep])
        w = model.coef_ / scale
        self.weights_ = w.astype(np.float32)
        self.bias_ = float(model.intercept_ - mean @ w)
        self.n_features_in_ = X.shape[1]
        self.r2_ = float(model.score(Z, target[keep]))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Predicted log-odds per row of ``X`` (raw vectors), float32."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; the probe reads {self.n_features_in_}")
        return (X @ self.weights_ + np.float32(self.bias_)).astype(np.float32)


def _log_odds(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_excerpt_probe(
    X: np.ndarray,
    y: np.ndarray,
    *,
    scores: np.ndarray | None = None,
    probe_params: dict | None = None,
    random_state: int | None = 0,
) -> LinearProbe | DistilledExcerptProbe | None:
    """Fit the companion model that scores patches, on track-level vectors.

    Parameters
    ----------
    X : np.ndarray
        ``(n, dim)`` track-level vectors (:attr:`ExcerptFeatures.X`): each
        row the mean of the track's patch vectors.
    y : np.ndarray
        ``(n,)`` labels 1 / 0 / -1 (unlabeled), as for the main probe.
    scores : np.ndarray, optional, keyword-only
        ``(n,)`` the main probe's probabilities for the same rows
        (``RefitResult.scores``). When given, the model is distilled from them
        (:class:`DistilledExcerptProbe`), so the excerpt explains the main
        probe's proposal; otherwise a :class:`~.probe.LinearProbe` is fitted on ``y``.
    probe_params : dict, optional, keyword-only
        Overrides of :data:`EXCERPT_PROBE` (label fit only).
    random_state : int or None, keyword-only
        Seeds the sample of unlabeled (or, distilled, of all) tracks.

    Returns
    -------
    LinearProbe, DistilledExcerptProbe or None
        None while the tag has no positive (there is nothing to look for yet).
    """
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if not (y == POSITIVE).any():
        return None
    if scores is not None:
        return DistilledExcerptProbe(random_state=random_state).fit(X, _log_odds(scores))
    params = {**EXCERPT_PROBE, **(probe_params or {})}
    return LinearProbe(random_state=random_state, **params).fit(X, y)


def excerpt_probe_task(
    feats: ExcerptFeatures,
    y: np.ndarray,
    *,
    scores: np.ndarray | None = None,
    probe_params: dict | None = None,
) -> Generator[str, None, LinearProbe | DistilledExcerptProbe | None]:
    """:func:`fit_excerpt_probe` as a pool task (yields ``"fitting excerpt probe"``).

    Copy ``y`` (and ``scores``) before submitting: the task reads them on a pool thread.
    """
    yield "fitting excerpt probe"
    return fit_excerpt_probe(feats.X, y, scores=scores, probe_params=probe_params)


def score_patches(
    probe: LinearProbe | DistilledExcerptProbe, patch_vectors: np.ndarray
) -> np.ndarray:
    """Log-odds of every patch; their mean is the probe's log-odds of the track.

    Parameters
    ----------
    probe : LinearProbe or DistilledExcerptProbe
        Fitted on the track-level vectors of the same output.
    patch_vectors : np.ndarray
        ``(P, dim)`` from ``EmbeddingCache.load_patches``.

    Returns
    -------
    np.ndarray
        ``(P,)`` float32.
    """
    return probe.decision_function(np.asarray(patch_vectors, dtype=np.float32))


def best_excerpt(
    cache: EmbeddingCache | str | os.PathLike,
    backend_key: str | None,
    relpath: str,
    probe: LinearProbe | DistilledExcerptProbe | None,
    *,
    tag: str | None = None,
    output: str = EXCERPT_OUTPUTS[0],
    duration: float | None = None,
) -> ExcerptChoice:
    """Choose where to start playing ``relpath``: its best-scoring patch for ``tag``.

    Parameters
    ----------
    cache : EmbeddingCache, str or path-like
        An open cache, or its path (then a reader is opened and closed here,
        which makes the call safe on any thread).
    backend_key : str or None
        The excerpt backend (:attr:`ExcerptFeatures.backend_key`); None when
        the cache has no patch vectors.
    relpath : str
        The track, relative to the library root.
    probe : LinearProbe, DistilledExcerptProbe or None
        From :func:`fit_excerpt_probe`; None while there is no tag or no positive.
    tag : str, optional, keyword-only
        Named in the reason.
    output : str, keyword-only
        The patch output the probe was fitted on.
    duration : float, optional, keyword-only
        Track length, for the fallback rule when the cache does not say.

    Returns
    -------
    ExcerptChoice
        Never raises for a missing track, backend or score: the reason says
        why playback starts at the start (or the middle) instead.
    """
    if not tag:
        return fallback_excerpt(duration, why="no tag chosen yet")
    if backend_key is None:
        return fallback_excerpt(
            duration, why="the embeddings have no per-excerpt vectors to score", tag=tag
        )
    if probe is None:
        return fallback_excerpt(duration, why=f"no positive example of {tag} yet", tag=tag)
    own = not isinstance(cache, EmbeddingCache)
    try:
        handle = EmbeddingCache.open(cache, "r") if own else cache
    except CacheError:
        return fallback_excerpt(duration, why="the embedding cache cannot be read", tag=tag)
    try:
        try:
            try:
                starts, vectors = handle.load_patches(backend_key, output, relpath)
            except CacheError:
                # An open reader sees the cache as it was when it was opened:
                # the embedding job may have added the track since.
                if own or not handle.refresh():
                    raise
                starts, vectors = handle.load_patches(backend_key, output, relpath)
            params = handle.backend_info(backend_key).get("params", {})
        except CacheError:
            return fallback_excerpt(duration, why="the track is not embedded yet", tag=tag)
        if duration is None:
            table = handle.tracks(backend_key)
            try:
                duration = float(table.duration[table.relpath.index(relpath)])
            except ValueError:
                duration = None
    finally:
        if own:
            handle.close()
    if len(starts) < 2:
        # One patch is the whole (short, repeat-padded) track: nothing to choose.
        return fallback_excerpt(duration, why="the track is a single excerpt", tag=tag)
    scores = score_patches(probe, vectors)
    finite = np.isfinite(scores)
    if not finite.any():
        return fallback_excerpt(duration, why="its excerpts have no valid score", tag=tag)
    best = int(np.argmax(np.where(finite, scores, -np.inf)))  # ties: the earliest
    return ExcerptChoice(
        float(starts[best]),
        BEST,
        f"the part that scores highest for {tag}",
        np.asarray(starts, dtype=np.float32),
        scores,
        float(params.get("patch_seconds", 0.0)),
    )


class TagExcerpts:
    """The excerpt choice for one tag and one refit: fits once, on first use, then chooses.

    Make a new one after every refit (labels or main scores changed) and call
    it per track; the companion probe is fitted at the first call (a few ms
    to ~100 ms), on whatever thread makes it (a lock keeps it to one fit), so
    a widget can call it from its decoding task and the GUI thread never fits.

    Parameters
    ----------
    feats : ExcerptFeatures or None
        From :func:`open_excerpt_features` (None: no patch vectors, every
        choice is the fallback).
    y : np.ndarray
        The tag's labels per ``feats.relpaths`` row (copied here).
    tag : str or None
        The tag's name (None: no tag, playback starts at 0).
    scores : np.ndarray, optional
        The main probe's probabilities per row (``RefitResult.scores``); when
        given the companion is distilled from them (recommended).
    """

    def __init__(
        self,
        feats: ExcerptFeatures | None,
        y: np.ndarray | None,
        *,
        tag: str | None,
        scores: np.ndarray | None = None,
    ) -> None:
        self.feats = feats
        self.tag = tag
        self._y = None if y is None else np.array(y, copy=True)
        self._scores = None if scores is None else np.array(scores, copy=True)
        self._lock = threading.Lock()
        self._fitted = False
        self._probe: LinearProbe | DistilledExcerptProbe | None = None

    @property
    def probe(self) -> LinearProbe | DistilledExcerptProbe | None:
        """The companion probe (fitted now if it was not yet); None without a positive."""
        with self._lock:
            if not self._fitted:
                if self.feats is not None and self.tag and self._y is not None:
                    self._probe = fit_excerpt_probe(self.feats.X, self._y, scores=self._scores)
                self._fitted = True
            return self._probe

    def __call__(self, relpath: str, *, duration: float | None = None) -> ExcerptChoice:
        """Where to start ``relpath`` (see :func:`best_excerpt`)."""
        if self.feats is None:
            return best_excerpt("", None, relpath, None, tag=self.tag, duration=duration)
        probe = self.probe
        if not self.tag or probe is None:  # no need to open the cache
            return best_excerpt("", "", relpath, probe, tag=self.tag, duration=duration)
        # A reader opened per call (~40 ms on a 1,000-track cache), not one kept
        # open: HDF5 refuses the embedding job's write open while a reader of
        # this process holds the file.
        return best_excerpt(
            self.feats.cache_path,
            self.feats.backend_key,
            relpath,
            probe,
            tag=self.tag,
            output=self.feats.output,
            duration=duration,
        )
