"""What the quality panel shows, computed without Qt.

The panel (:mod:`tagger_gui.qt.quality_panel`) answers a librarian's three
questions after each label: *can I trust the tracks above the threshold?*,
*is it getting better?*, and *how many are still to find?* This module holds
the numbers behind those answers so they can be tested without a display:

- :func:`threshold_basis` / :func:`figures_at` / :func:`threshold_task`:
  the figures that depend on the threshold (tracks above it, audit precision
  and recall with Wilson intervals), re-computed for a new threshold
  **without refitting the tag's probe**. The audit sample is scored once by
  a probe fitted without it, exactly as :func:`.quality.assess` does, so at
  the refit's threshold the figures equal the refit's report; after that a
  new threshold costs a binary search.
- :func:`score_histogram`: the plot's main panel. A histogram of the scores
  of the *unlabeled* tracks on a log count axis, with the labeled positives
  and negatives as rug ticks and the threshold as a vertical line. Chosen
  because it shows at a glance what no single number does: whether the
  scores separate into two humps (a usable tag) or pile up in one (not yet),
  how many tracks a threshold would take (the area right of the line; a log
  axis, since a tag usually holds a few percent of a library and the linear
  plot would show only the negative hump), and whether the labeled examples
  sit where the probe puts them (a positive tick far left is a surprise
  worth listening to).
- :class:`ApHistory`: the plot's small second panel, the out-of-fold average
  precision (with its bootstrap interval as a band) against the number of
  labels, over the refits of one tag. It answers "is labeling still paying
  off?": a line that has flattened with a narrow band says more labels of
  the same kind will not change much. A precision/recall curve from the
  audit sample was considered and left out: with the tens of audit labels a
  librarian gives, its steps are mostly noise, and the precision at the
  chosen threshold (with its interval) is already in the figures.
- :func:`headline` / :func:`figure_rows`: the words. A verdict first
  ("Good: about 85% of the tracks above the threshold are right (70-93%)"),
  judged on the interval, not only the estimate, so a handful of audit
  tracks gives "too uncertain to say"; every figure with its interval and a
  tooltip; a figure that cannot be given says why ("too few labels to say",
  "label audit tracks to know"); an out-of-fold figure computed with
  unlabeled tracks standing in for negatives says "at least".
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from tagger_gui.core.fewshot.probe import NEGATIVE, POSITIVE, UNLABELED, LinearProbe
from tagger_gui.core.fewshot.quality import _HELD_OUT, QualityReport, wilson
from tagger_gui.core.fewshot.ranking import audit_order, audit_prefix

__all__ = [
    "MAX_CI_WIDTH",
    "MIN_LABELS",
    "MIN_PLOT_SIZE",
    "ApHistory",
    "FigureRow",
    "Headline",
    "PlotImage",
    "PlotStyle",
    "ScoreHistogram",
    "ThresholdBasis",
    "ThresholdFigures",
    "figure_rows",
    "figures_at",
    "figures_from_report",
    "headline",
    "plot_task",
    "render_plot",
    "score_histogram",
    "threshold_basis",
    "threshold_task",
]

_NAN_PAIR = (float("nan"), float("nan"))


# -- threshold-dependent figures -------------------------------------------------------


@dataclass(frozen=True)
class ThresholdBasis:
    """What the threshold-dependent figures of one refit are computed from.

    Attributes
    ----------
    snapshot : str
        The refit's label snapshot (:func:`.engine.label_snapshot`) the basis belongs to.
    sorted_scores : ndarray
        Every track's score, ascending (for counting tracks above a threshold).
    sorted_unlabeled : ndarray
        The unlabeled tracks' scores, ascending.
    audit_scores : ndarray
        The audit sample's scores by a probe fitted without the audit tracks
        (empty when there is no audit sample or no positive outside it).
    audit_truth : ndarray of bool
        Whether each audit track is labeled positive (aligned with ``audit_scores``).
    audit_size : int
        Tracks in the audit sample (also when ``audit_scores`` is empty).
    """

    snapshot: str
    sorted_scores: np.ndarray
    sorted_unlabeled: np.ndarray
    audit_scores: np.ndarray
    audit_truth: np.ndarray
    audit_size: int

    @property
    def n_tracks(self) -> int:
        """Tracks in the library."""
        return len(self.sorted_scores)


@dataclass(frozen=True)
class ThresholdFigures:
    """The figures of one tag at one threshold.

    ``precision`` is the share of audit tracks above the threshold that are
    positives; ``recall`` the share of audit positives that are above it.
    Both are NaN (with NaN intervals) when their denominator is zero.
    ``new_positives_above`` estimates the positives among the *unlabeled*
    tracks above the threshold (their count times the precision).
    ``complete`` is False for the partial figures :func:`figures_from_report`
    gives before :func:`figures_at` has run.
    """

    threshold: float
    n_tracks: int
    n_above: int
    n_unlabeled_above: int
    audit_size: int = 0
    audit_above: int = 0
    audit_positive_above: int = 0
    audit_positives: int = 0
    precision: float = float("nan")
    precision_ci: tuple[float, float] = _NAN_PAIR
    recall: float = float("nan")
    recall_ci: tuple[float, float] = _NAN_PAIR
    new_positives_above: float = float("nan")
    new_positives_above_ci: tuple[float, float] = _NAN_PAIR
    complete: bool = True


def threshold_basis(
    X: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
    *,
    tag: str,
    snapshot: str = "",
    probe_params: dict | None = None,
    random_state: int = 0,
) -> ThresholdBasis:
    """Score the audit sample once, as :func:`.quality.assess` does, for any threshold.

    Parameters
    ----------
    X : ndarray (n_tracks, dim)
        The library in the probe's space.
    y : ndarray (n_tracks,)
        The labels the refit used: 1 positive, 0 negative, -1 unlabeled.
    scores : ndarray (n_tracks,)
        The refit's probabilities for every track.
    tag : str
        The tag's name (it fixes the audit order, :func:`.ranking.audit_order`).
    snapshot : str, optional
        The refit's label snapshot, kept to tell which refit the basis is for.
    probe_params : dict, optional
        The refit's probe parameters; defaults to the engine's
        (:data:`.engine.DEFAULT_PROBE`), which is what ``refit_task`` uses.
    random_state : int, optional
        As in :func:`.quality.assess`.

    Returns
    -------
    ThresholdBasis

    Raises
    ------
    ValueError
        If ``X``, ``y`` and ``scores`` do not have one entry per track.
    """
    from tagger_gui.core.fewshot.engine import DEFAULT_PROBE

    y = np.asarray(y)
    scores = np.asarray(scores)  # its own dtype: compared as the engine compares it
    if not (len(X) == len(y) == len(scores)):
        raise ValueError(
            f"threshold_basis: X, labels and scores differ in length "
            f"({len(X)}, {len(y)}, {len(scores)} tracks)"
        )
    labeled = y != UNLABELED
    audit_rows = audit_prefix(audit_order(len(y), tag), labeled)
    audit_scores = np.array([], dtype=np.float64)
    audit_truth = np.array([], dtype=bool)
    if len(audit_rows):
        y_fit = y.copy()
        y_fit[audit_rows] = _HELD_OUT
        if (y_fit == POSITIVE).any():
            params = {**DEFAULT_PROBE, **(probe_params or {})}
            probe = LinearProbe(**{"random_state": random_state, **params})
            audit_scores = probe.fit(X, y_fit).predict_proba(X[audit_rows])[:, 1]
            audit_truth = y[audit_rows] == POSITIVE
    return ThresholdBasis(
        snapshot=snapshot,
        sorted_scores=np.sort(scores),
        sorted_unlabeled=np.sort(scores[~labeled]),
        audit_scores=np.asarray(audit_scores, dtype=np.float64),
        audit_truth=np.asarray(audit_truth, dtype=bool),
        audit_size=len(audit_rows),
    )


def _count_at_or_above(sorted_values: np.ndarray, threshold: float) -> int:
    # NumPy compares a float32 array with a Python float in float32, so the engine's
    # ``scores >= threshold`` does; search with the threshold in the array's dtype
    t = np.asarray(threshold, dtype=sorted_values.dtype)
    return int(len(sorted_values) - np.searchsorted(sorted_values, t, side="left"))


def figures_at(basis: ThresholdBasis, threshold: float) -> ThresholdFigures:
    """The threshold-dependent figures at ``threshold`` (a track counts when score >= it).

    Parameters
    ----------
    basis : ThresholdBasis
        From :func:`threshold_basis`.
    threshold : float
        The decision threshold, in (0, 1).

    Returns
    -------
    ThresholdFigures
    """
    threshold = float(threshold)
    n_above = _count_at_or_above(basis.sorted_scores, threshold)
    n_unlabeled_above = _count_at_or_above(basis.sorted_unlabeled, threshold)
    audit_above = audit_positive_above = audit_positives = 0
    precision = recall = new_above = float("nan")
    precision_ci = recall_ci = new_above_ci = _NAN_PAIR
    if len(basis.audit_scores):
        above = basis.audit_scores >= threshold
        truth = basis.audit_truth
        audit_above = int(above.sum())
        audit_positive_above = int((above & truth).sum())
        audit_positives = int(truth.sum())
        if audit_above:
            precision = audit_positive_above / audit_above
            precision_ci = wilson(audit_positive_above, audit_above)
            new_above = precision * n_unlabeled_above
            new_above_ci = (
                precision_ci[0] * n_unlabeled_above,
                precision_ci[1] * n_unlabeled_above,
            )
        if audit_positives:
            recall = audit_positive_above / audit_positives
            recall_ci = wilson(audit_positive_above, audit_positives)
    return ThresholdFigures(
        threshold=threshold,
        n_tracks=basis.n_tracks,
        n_above=n_above,
        n_unlabeled_above=n_unlabeled_above,
        audit_size=basis.audit_size,
        audit_above=audit_above,
        audit_positive_above=audit_positive_above,
        audit_positives=audit_positives,
        precision=precision,
        precision_ci=precision_ci,
        recall=recall,
        recall_ci=recall_ci,
        new_positives_above=new_above,
        new_positives_above_ci=new_above_ci,
    )


def threshold_task(
    threshold: float,
    *,
    basis: ThresholdBasis | None = None,
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    tag: str = "",
    snapshot: str = "",
    probe_params: dict | None = None,
) -> Generator[str, None, tuple[ThresholdBasis, ThresholdFigures]]:
    """Re-assess the threshold-dependent figures at ``threshold``; a generator task.

    Give either a ``basis`` from an earlier run (cheap: no probe is fitted),
    or the refit's ``X``, ``y``, ``scores`` and ``tag`` to build one first
    (one probe fit). Yields ``"audit scored"`` after building the basis, so
    a newer request can stop it there, then returns ``(basis, figures)`` so
    the caller keeps the basis for the next threshold.

    Raises
    ------
    ValueError
        If neither a basis nor ``X``, ``y`` and ``scores`` are given.
    """
    if basis is None:
        if X is None or y is None or scores is None:
            raise ValueError("threshold_task needs a basis, or X, y and scores to build one")
        basis = threshold_basis(X, y, scores, tag=tag, snapshot=snapshot, probe_params=probe_params)
        yield "audit scored"
    return basis, figures_at(basis, threshold)


# -- the score histogram ---------------------------------------------------------------


@dataclass(frozen=True)
class ScoreHistogram:
    """The scores of one refit, binned for the plot.

    Attributes
    ----------
    edges : ndarray (n_bins + 1,)
        Shared bin edges over [0, 1].
    unlabeled : ndarray (n_bins,)
        Unlabeled tracks per bin.
    positive : ndarray (n_bins,)
        Labeled positives per bin.
    negative : ndarray (n_bins,)
        Labeled negatives per bin.
    positive_scores, negative_scores : ndarray
        The labeled tracks' scores (for rug ticks); at most ``max_rug`` each,
        a stratified subsample beyond that (one tick per pixel is plenty).
    """

    edges: np.ndarray
    unlabeled: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    positive_scores: np.ndarray
    negative_scores: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        """The bins' centres."""
        return (self.edges[:-1] + self.edges[1:]) / 2


def _bin_counts(scores: np.ndarray, n_bins: int) -> np.ndarray:
    # bincount of the bin index: faster than np.histogram, same bins (last edge closed)
    idx = np.minimum((np.clip(scores, 0.0, 1.0) * n_bins).astype(np.int64), n_bins - 1)
    return np.bincount(idx, minlength=n_bins)


def _thin(values: np.ndarray, max_n: int) -> np.ndarray:
    if len(values) <= max_n:
        return np.sort(values)
    return np.sort(values)[np.linspace(0, len(values) - 1, max_n).round().astype(np.int64)]


def score_histogram(
    scores: np.ndarray, labels: np.ndarray, *, n_bins: int = 40, max_rug: int = 400
) -> ScoreHistogram:
    """Bin the scores of unlabeled, positive and negative tracks on shared bins over [0, 1].

    Parameters
    ----------
    scores : ndarray (n_tracks,)
        Probabilities of the tag.
    labels : ndarray (n_tracks,)
        1 positive, 0 negative, -1 unlabeled (as ``ReviewPanel.labels()``).
    n_bins : int, optional
        Bins of equal width over [0, 1].
    max_rug : int, optional
        Most rug ticks kept per class.

    Returns
    -------
    ScoreHistogram

    Raises
    ------
    ValueError
        If scores and labels differ in length, or ``n_bins`` < 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if len(scores) != len(labels):
        raise ValueError(
            f"score_histogram: {len(scores)} scores but {len(labels)} labels (one per track)"
        )
    if n_bins < 1:
        raise ValueError(f"score_histogram: n_bins must be at least 1, not {n_bins}")
    pos, neg = labels == POSITIVE, labels == NEGATIVE
    unl = ~(pos | neg)
    return ScoreHistogram(
        edges=np.linspace(0.0, 1.0, n_bins + 1),
        unlabeled=_bin_counts(scores[unl], n_bins),
        positive=_bin_counts(scores[pos], n_bins),
        negative=_bin_counts(scores[neg], n_bins),
        positive_scores=_thin(scores[pos], max_rug),
        negative_scores=_thin(scores[neg], max_rug),
    )


# -- the AP history ----------------------------------------------------------------------


@dataclass
class ApHistory:
    """Out-of-fold AP over the refits of one tag, against the number of labels.

    A refit with as many labels as the last point replaces it (a threshold
    change or an undo followed by a redo would otherwise stack points on one
    x); refits without out-of-fold figures are not plotted. :meth:`reset` when
    the tag changes.
    """

    tag: str | None = None
    n_labels: list[int] = field(default_factory=list)
    ap: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    lower_bound: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.n_labels)

    def reset(self, tag: str | None = None) -> None:
        """Forget every point; the history now belongs to ``tag``."""
        self.tag = tag
        for values in (self.n_labels, self.ap, self.low, self.high, self.lower_bound):
            values.clear()

    def add(self, tag: str, report: QualityReport | None) -> bool:
        """Add the point of one refit of ``tag``; a new tag resets the history first.

        Returns
        -------
        bool
            True if the history changed (a point added or replaced, or a reset).
        """
        changed = False
        if tag != self.tag:
            self.reset(tag)
            changed = True
        if report is None or not report.cv_folds or np.isnan(report.cv_ap):
            return changed
        n = report.n_positive + report.n_negative
        point = (n, float(report.cv_ap), *map(float, report.cv_ap_ci), bool(report.cv_lower_bound))
        columns = (self.n_labels, self.ap, self.low, self.high, self.lower_bound)
        if self.n_labels and self.n_labels[-1] == n:
            last = tuple(col[-1] for col in columns)
            if np.array_equal(np.array(last, float), np.array(point, float), equal_nan=True):
                return changed
            for col in columns:
                col.pop()
        for col, v in zip(columns, point, strict=True):
            col.append(v)
        return True

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(n_labels, ap, low, high)`` as float arrays (NaN where an interval is unknown)."""
        return (
            np.asarray(self.n_labels, dtype=np.float64),
            np.asarray(self.ap, dtype=np.float64),
            np.asarray(self.low, dtype=np.float64),
            np.asarray(self.high, dtype=np.float64),
        )


# -- the plot, rendered off the GUI thread ---------------------------------------------

#: Colours of the plot (the headline's verdict colours, dark enough on light and dark themes).
POSITIVE_COLOUR = "#1b7a2f"
NEGATIVE_COLOUR = "#b3261e"
UNLABELED_COLOUR = "#8a8a8a"
THRESHOLD_COLOUR = "#d07000"
#: Share of the histogram's height under a count of 1, where the label rugs are drawn.
_RUG_STRIP = 0.18
#: Margins of the plot in points (room for the tick labels), whatever its size.
_MARGINS = {"left": 22, "right": 9, "bottom": 23, "top": 11, "gap": 28}
#: Width of the histogram against the AP history.
_WIDTH_RATIO = 2.3
#: Font size of every text in the plot, in points.
_FONT_SIZE = 7
#: Smallest plot rendered, in logical pixels (a narrower widget shows it clipped).
MIN_PLOT_SIZE = (120, 60)
#: Renders take turns: matplotlib promises no more than "one figure per thread", and on a
#: 2-vCPU machine two renders at once only slow each other and the GUI thread down.
_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True)
class PlotStyle:
    """The theme's colours the plot is drawn in (hex strings such as ``"#ffffff"``).

    Attributes
    ----------
    face : str
        Around the axes (the window's background).
    base : str
        Inside the axes (the background of views and text fields).
    text : str
        Text, ticks and the axes' frames.
    """

    face: str = "#efefef"
    base: str = "#ffffff"
    text: str = "#000000"


@dataclass(frozen=True)
class PlotImage:
    """A rendered plot and where its histogram lies, to draw and click the threshold on.

    Attributes
    ----------
    rgba : ndarray (height * scale, width * scale, 4) of uint8
        The picture in device pixels, rows top to bottom, RGBA.
    scale : float
        Device pixels per logical pixel (the screen's device pixel ratio).
    hist_box : tuple of float
        ``(left, top, right, bottom)`` of the histogram's axes in logical
        pixels from the picture's top-left corner.
    xlim : tuple of float
        The scores at the histogram's left and right edges.
    """

    rgba: np.ndarray
    scale: float
    hist_box: tuple[float, float, float, float]
    xlim: tuple[float, float] = (0.0, 1.0)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in logical pixels."""
        height, width = self.rgba.shape[:2]
        return round(width / self.scale), round(height / self.scale)

    def x_of(self, score: float) -> float:
        """The logical x of ``score`` on the histogram."""
        left, _, right, _ = self.hist_box
        low, high = self.xlim
        return left + (float(score) - low) / (high - low) * (right - left)

    def score_at(self, x: float) -> float:
        """The score at logical x on the histogram, clipped to its x limits."""
        left, _, right, _ = self.hist_box
        low, high = self.xlim
        if right <= left:
            return low
        return float(np.clip(low + (float(x) - left) / (right - left) * (high - low), low, high))

    def in_histogram(self, x: float, y: float) -> bool:
        """Whether the logical point ``(x, y)`` lies on the histogram's axes."""
        left, top, right, bottom = self.hist_box
        return left <= x <= right and top <= y <= bottom


def _count_label(value: float, _pos: int) -> str:
    """Plain tick labels of the log count axis: 1, 10, 100, 1k, 10k."""
    if value < 1:
        return ""
    return f"{value / 1000:.0f}k" if value >= 1000 else f"{value:.0f}"


def _style_axes(ax, style: PlotStyle) -> None:
    # every style is set on the artists: rcParams are global, and this runs in worker threads
    ax.set_facecolor(style.base)
    for spine in ax.spines.values():
        spine.set_edgecolor(style.text)
        spine.set_linewidth(0.8)
    ax.tick_params(which="both", labelsize=_FONT_SIZE, colors=style.text, pad=1)
    ax.tick_params(which="major", length=2, width=0.8)
    ax.tick_params(which="minor", length=1)


def _label_axes(ax, title: str, xlabel: str, style: PlotStyle) -> None:
    ax.set_title(title, fontsize=_FONT_SIZE, pad=2, color=style.text)
    ax.set_xlabel(xlabel, fontsize=_FONT_SIZE, labelpad=1, color=style.text)


def _draw_histogram(ax, hist: ScoreHistogram | None, style: PlotStyle) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    _style_axes(ax, style)
    _label_axes(ax, "unlabeled tracks by score", "score", style)
    ax.set_xlim(0, 1)
    if hist is None:
        ax.yaxis.set_visible(False)
        ax.text(
            0.5,
            0.55,
            "no scores yet",
            ha="center",
            color=UNLABELED_COLOUR,
            fontsize=_FONT_SIZE,
            transform=ax.transAxes,
        )
        return
    counts = hist.unlabeled.astype(float)
    top = max(2.0, counts.max() * 2)
    # the bottom strip of the axes (below a count of 1) is kept for the rugs
    bottom = top ** (-_RUG_STRIP / (1 - _RUG_STRIP))
    ax.set_yscale("log")
    ax.stairs(
        np.maximum(counts, bottom),
        hist.edges,
        baseline=bottom,
        fill=True,
        color=UNLABELED_COLOUR,
        alpha=0.6,
        lw=0,
    )
    ax.set_ylim(bottom, top)
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=5))
    ax.yaxis.set_major_formatter(FuncFormatter(_count_label))
    ax.yaxis.set_minor_locator(NullLocator())  # many artists for little information
    xt = ax.get_xaxis_transform()
    # the rugs: "no" labels on the lowest strip, "yes" labels just above them
    ax.vlines(hist.negative_scores, 0.01, 0.08, transform=xt, color=NEGATIVE_COLOUR, lw=0.8)
    ax.vlines(hist.positive_scores, 0.09, 0.16, transform=xt, color=POSITIVE_COLOUR, lw=0.8)


def _draw_history(ax, history: tuple[np.ndarray, ...], style: PlotStyle) -> None:
    from matplotlib.ticker import MaxNLocator

    _style_axes(ax, style)
    _label_axes(ax, "ranking quality (AP)", "labels", style)
    ax.set_ylim(0, 1.02)
    n, ap, low, high = (np.asarray(a, dtype=np.float64) for a in history)
    if len(n) == 0:
        ax.set_xlim(0, 1)
        ax.xaxis.set_visible(False)
        ax.text(
            0.5,
            0.5,
            "grows as\nyou label",
            ha="center",
            va="center",
            color=UNLABELED_COLOUR,
            fontsize=_FONT_SIZE,
            transform=ax.transAxes,
        )
        return
    band = ~np.isnan(low)
    if band.any():
        x, lo, hi = n[band], low[band], high[band]
        if len(x) == 1:  # one point: its interval as a short bar, not a line of no width
            x, lo, hi = x[0] + np.array([-0.3, 0.3]), np.repeat(lo, 2), np.repeat(hi, 2)
        ax.fill_between(x, lo, hi, color=POSITIVE_COLOUR, alpha=0.2, lw=0)
    ax.plot(n, ap, color=POSITIVE_COLOUR, lw=1.2, marker="o", ms=2.5)
    # at least 4 labels wide, so the integer tick locator finds integers to show
    pad = max(0.05 * (n[-1] - n[0]), (4 - (n[-1] - n[0])) / 2, 0.5)
    ax.set_xlim(n[0] - pad, n[-1] + pad)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))


def render_plot(
    hist: ScoreHistogram | None,
    history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    width: int,
    height: int,
    scale: float = 1.0,
    style: PlotStyle | None = None,
) -> PlotImage:
    """Draw the score histogram and the AP history into an RGBA picture, without Qt.

    Each call makes its own matplotlib ``Figure`` on an Agg canvas (no
    pyplot, no rcParams changed), so it may run in a worker thread; calls
    from several threads take turns (a lock). The threshold is left out: the panel draws it over the
    picture, so moving it does not re-render.

    Parameters
    ----------
    hist : ScoreHistogram or None
        The scores to plot (None: an empty histogram saying "no scores yet").
    history : tuple of ndarray
        ``(n_labels, ap, low, high)`` as :meth:`ApHistory.arrays` gives them.
    width, height : int
        The picture's size in logical pixels (at least :data:`MIN_PLOT_SIZE`).
    scale : float, optional
        Device pixels per logical pixel; the picture has ``scale`` times as
        many pixels each way and its text stays the same size in points.
    style : PlotStyle, optional
        The theme's colours.

    Returns
    -------
    PlotImage

    Raises
    ------
    ValueError
        If ``scale`` is not positive or ``history``'s arrays differ in length.
    """
    if not scale > 0:
        raise ValueError(f"render_plot: scale must be positive, not {scale}")
    if len({len(a) for a in history}) > 1:
        raise ValueError(
            "render_plot: the history's arrays differ in length: "
            + ", ".join(str(len(a)) for a in history)
        )
    style = style or PlotStyle()
    width, height = max(int(width), MIN_PLOT_SIZE[0]), max(int(height), MIN_PLOT_SIZE[1])
    with _RENDER_LOCK:
        return _render(hist, history, width, height, float(scale), style)


def _render(hist, history, width: int, height: int, scale: float, style: PlotStyle) -> PlotImage:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # 100 dots per inch at scale 1: the figure is width x height logical pixels, and
    # a point is the same share of it at any scale
    dpi = 100.0 * scale
    figure = Figure(figsize=(width / 100, height / 100), dpi=dpi, facecolor=style.face)
    canvas = FigureCanvasAgg(figure)
    # no layout engine: constrained layout re-measures every text on every draw (it
    # doubled the draw time); the margins are fixed in points instead
    w_pt, h_pt = width * 0.72, height * 0.72
    m = _MARGINS
    axes_w = w_pt - m["left"] - m["right"] - m["gap"]
    hist_w = axes_w * _WIDTH_RATIO / (_WIDTH_RATIO + 1)
    axes_h = h_pt - m["bottom"] - m["top"]
    hist_ax = figure.add_axes((m["left"] / w_pt, m["bottom"] / h_pt, hist_w / w_pt, axes_h / h_pt))
    history_ax = figure.add_axes(
        (
            (m["left"] + hist_w + m["gap"]) / w_pt,
            m["bottom"] / h_pt,
            (axes_w - hist_w) / w_pt,
            axes_h / h_pt,
        )
    )
    _draw_histogram(hist_ax, hist, style)
    _draw_history(history_ax, history, style)
    canvas.draw()
    rgba = np.array(canvas.buffer_rgba(), dtype=np.uint8, copy=True)
    x0, y0, x1, y1 = hist_ax.bbox.extents  # device pixels, origin bottom-left
    rows = rgba.shape[0]
    box = tuple(float(v) / scale for v in (x0, rows - y1, x1, rows - y0))
    xlim = tuple(float(v) for v in hist_ax.get_xlim())
    return PlotImage(rgba=rgba, scale=scale, hist_box=box, xlim=xlim)


def plot_task(
    scores: np.ndarray | None,
    labels: np.ndarray | None,
    history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    width: int,
    height: int,
    scale: float = 1.0,
    style: PlotStyle | None = None,
) -> Generator[str, None, PlotImage]:
    """Bin the scores (:func:`score_histogram`) and render the plot; a generator task.

    Give ``scores`` and ``labels`` of one refit, or neither for an empty
    histogram. Yields ``"binned"`` between the two steps, so a newer request
    can stop it there; returns the :func:`render_plot` picture.
    """
    hist = None if scores is None else score_histogram(scores, labels)
    yield "binned"
    return render_plot(hist, history, width=width, height=height, scale=scale, style=style)


# -- words ---------------------------------------------------------------------------------

#: Below this many positives or negatives, the panel says "too few labels" instead of a verdict.
MIN_LABELS = 5
#: An interval wider than this (in precision) is "too uncertain to say".
MAX_CI_WIDTH = 0.5


@dataclass(frozen=True)
class Headline:
    """The panel's one-sentence verdict.

    ``level`` is one of ``"none"`` (nothing to judge yet), ``"few"`` (too few
    labels), ``"uncertain"``, ``"good"``, ``"fair"``, ``"weak"``; the panel
    colours the sentence by it.
    """

    level: str
    text: str


@dataclass(frozen=True)
class FigureRow:
    """One line of the figures grid: a name, its value in words, and what it means."""

    key: str
    name: str
    value: str
    tooltip: str


def figures_from_report(report: QualityReport) -> ThresholdFigures:
    """The threshold-dependent figures a refit's report already holds (at its threshold).

    Recall and the unlabeled tracks above the threshold are not in the report:
    they are NaN / -1 here, and ``complete`` is False, until
    :func:`figures_at` has run.
    """
    return ThresholdFigures(
        threshold=float(report.threshold),
        n_tracks=report.n_tracks,
        n_above=report.n_above,
        n_unlabeled_above=-1,
        audit_size=report.audit_size,
        audit_above=report.audit_above,
        audit_positive_above=report.audit_positive_above,
        precision=report.precision,
        precision_ci=report.precision_ci,
        complete=False,
    )


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _pct_range(pair: tuple[float, float]) -> str:
    return f"{100 * pair[0]:.0f}\u2013{100 * pair[1]:.0f}%"


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _ci(pair: tuple[float, float], fmt=lambda v: f"{v:.2f}") -> str:
    return "" if np.isnan(pair[0]) else f" ({fmt(pair[0])}\u2013{fmt(pair[1])})"


def headline(report: QualityReport | None, figures: ThresholdFigures | None = None) -> Headline:
    """The verdict in plain words, most useful figure first, with its interval.

    Parameters
    ----------
    report : QualityReport or None
        The last refit's report (None: no refit yet).
    figures : ThresholdFigures, optional
        Figures at the panel's threshold; by default the report's own.

    Returns
    -------
    Headline
    """
    if report is None:
        return Headline("none", "No estimate yet: label a few tracks that have the tag.")
    if figures is None:
        figures = figures_from_report(report)
    if report.n_positive == 0:
        return Headline("none", "No positives yet: label a few tracks that have the tag.")
    if report.n_positive < MIN_LABELS or report.n_negative < MIN_LABELS:
        return Headline(
            "few",
            f"Too few labels yet: label at least {MIN_LABELS} positives and {MIN_LABELS} "
            f"negatives (now {report.n_positive} and {report.n_negative}).",
        )
    if figures.audit_above and not np.isnan(figures.precision):
        lo, hi = figures.precision_ci
        p = figures.precision
        basis = f"{figures.audit_positive_above} of {figures.audit_above} audit tracks"
        if hi - lo > MAX_CI_WIDTH:
            return Headline(
                "uncertain",
                f"Too uncertain to say: between {_pct(lo)} and {_pct(hi)} of the tracks above "
                f"the threshold are right ({basis}). Label more audit tracks.",
            )
        level = "good" if p >= 0.8 and lo >= 0.6 else "fair" if p >= 0.6 else "weak"
        word = {"good": "Good", "fair": "Fair", "weak": "Weak"}[level]
        return Headline(
            level,
            f"{word}: about {_pct(p)} of the tracks above the threshold are right "
            f"({_pct_range((lo, hi))}, from {basis}).",
        )
    if figures.audit_size and not figures.audit_above and figures.complete:
        return Headline(
            "uncertain",
            "Precision unknown: no audit track scores above the threshold. "
            "Lower the threshold, or label more audit tracks.",
        )
    if not report.cv_folds or np.isnan(report.cv_ap):
        return Headline(
            "few",
            "Too few labels to say: the positives must come from at least two albums or folders.",
        )
    ap, (lo, hi) = report.cv_ap, report.cv_ap_ci
    if np.isnan(lo):
        level = "uncertain"
    else:
        level = "good" if lo >= 0.7 else "fair" if ap >= 0.5 else "weak"
    word = {"uncertain": "Unclear", "good": "Promising", "fair": "Fair", "weak": "Weak"}[level]
    bound = "at least " if report.cv_lower_bound else ""
    return Headline(
        level,
        f"{word}: ranking quality {bound}{ap:.2f}{_ci((lo, hi))} on albums held out. "
        "Label audit tracks to learn how many above the threshold are right.",
    )


def _stability_words(value: float) -> str:
    if value >= 0.8:
        return "settled"
    if value >= 0.5:
        return "still moving"
    return "changing a lot"


def figure_rows(report: QualityReport, figures: ThresholdFigures | None = None) -> list[FigureRow]:
    """The figures grid: each figure in words, with its interval and a tooltip.

    Parameters
    ----------
    report : QualityReport
        The last refit's report.
    figures : ThresholdFigures, optional
        Figures at the panel's threshold; by default the report's own.

    Returns
    -------
    list of FigureRow
        Keys: ``labels``, ``ap``, ``auc``, ``above``, ``precision``,
        ``recall``, ``remaining``, ``stability``; always all eight, a figure
        that cannot be given yet says why.
    """
    if figures is None:
        figures = figures_from_report(report)
    few = "too few labels to say"
    no_audit = "label audit tracks to know"
    rows = [
        FigureRow(
            "labels",
            "Labeled",
            f"{report.n_positive} yes, {report.n_negative} no",
            "Tracks you labeled for this tag (skips do not count).",
        )
    ]
    bound = "at least " if report.cv_lower_bound else ""
    lb_note = (
        " Too few 'no' labels: random unlabeled tracks stood in as negatives, so this is a "
        "lower bound (some of them have the tag)."
        if report.cv_lower_bound
        else ""
    )
    folds = f" {report.cv_folds} folds." if report.cv_folds else ""
    for key, name, value, ci, tip in (
        (
            "ap",
            "Ranking quality (AP)",
            report.cv_ap,
            report.cv_ap_ci,
            "Average precision of the ranking on labeled tracks of albums the probe did not "
            "see (out-of-fold), from 0 to 1; 1 means every positive ranks above every "
            "negative. In brackets: a 95% interval (bootstrap over albums).",
        ),
        (
            "auc",
            "ROC-AUC",
            report.cv_auc,
            report.cv_auc_ci,
            "Chance that a positive scores above a negative, on albums held out; 0.5 is "
            "guessing, 1 is perfect. In brackets: a 95% interval.",
        ),
    ):
        text = few if not report.cv_folds or np.isnan(value) else f"{bound}{value:.2f}{_ci(ci)}"
        rows.append(FigureRow(key, name, text, tip + folds + lb_note))
    share = f" ({100 * figures.n_above / figures.n_tracks:.1f}%)" if figures.n_tracks else ""
    rows.append(
        FigureRow(
            "above",
            "Above the threshold",
            f"{_num(figures.n_above)} of {_num(figures.n_tracks)} tracks{share}",
            "Tracks whose score is at or above the threshold: those the tag would be given "
            f"to at {figures.threshold:.2f}.",
        )
    )
    if not figures.audit_size:
        precision = no_audit
    elif not figures.audit_above:
        precision = "no audit track above the threshold"
    else:
        precision = (
            f"{_pct(figures.precision)} ({_pct_range(figures.precision_ci)}), "
            f"{figures.audit_positive_above} of {figures.audit_above}"
        )
    rows.append(
        FigureRow(
            "precision",
            "Correct above it",
            precision,
            "Of the audit tracks (a uniform random sample you labeled) that score above the "
            "threshold, the share that have the tag, scored by a probe that did not see them; "
            "in brackets a 95% Wilson interval. Few audit tracks above the threshold mean a "
            "wide interval.",
        )
    )
    if not figures.complete and np.isnan(figures.recall):
        recall = "\u2026"
    elif not figures.audit_size:
        recall = no_audit
    elif not figures.audit_positives:
        recall = "no positive in the audit sample yet"
    else:
        recall = (
            f"{_pct(figures.recall)} ({_pct_range(figures.recall_ci)}), "
            f"{figures.audit_positive_above} of {figures.audit_positives}"
        )
    rows.append(
        FigureRow(
            "recall",
            "Share of tag caught",
            recall,
            "Of the positives in the audit sample, the share that score above the threshold: "
            "roughly how much of the tag a threshold this high catches. 95% Wilson interval.",
        )
    )
    if not report.audit_size or np.isnan(report.positives_remaining):
        remaining = no_audit
    else:
        remaining = f"about {_num(report.positives_remaining)}" + _ci(
            report.positives_remaining_ci, _num
        )
    rows.append(
        FigureRow(
            "remaining",
            "Still to find",
            remaining,
            "Positives not labeled yet, estimated from the share of positives in the audit "
            "sample times the library size, minus those you labeled. 95% interval.",
        )
    )
    if np.isnan(report.stability):
        stability = "after the next refit"
    else:
        stability = f"{report.stability:.2f}, {_stability_words(report.stability)}"
    rows.append(
        FigureRow(
            "stability",
            "Ranking stability",
            stability,
            "Overlap of the top 50 unlabeled tracks with the previous refit's (1 = unchanged). "
            "A settled ranking means the last labels changed little.",
        )
    )
    return rows
