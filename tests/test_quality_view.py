"""The quality panel's numbers without Qt: threshold figures, histogram, AP history, words."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tagger_gui.core.fewshot.engine import DEFAULT_PROBE, LibraryFeatures, refit_task
from tagger_gui.core.fewshot.quality import QualityReport, assess, wilson
from tagger_gui.core.fewshot.quality_view import (
    MIN_LABELS,
    MIN_PLOT_SIZE,
    ApHistory,
    PlotStyle,
    ThresholdBasis,
    figure_rows,
    figures_at,
    figures_from_report,
    headline,
    plot_task,
    render_plot,
    score_histogram,
    threshold_basis,
    threshold_task,
)
from tagger_gui.core.fewshot.ranking import audit_order, audit_prefix
from tagger_gui.core.fewshot.space import FeatureSpace
from tagger_gui.core.tasks import run_task

from .fewshot_data import synthetic_set

TAG = "tag0"


@pytest.fixture(scope="module")
def labeled() -> tuple[LibraryFeatures, np.ndarray, np.ndarray]:
    """A library, its truth for ``TAG``, and labels: 40 audit tracks plus 10 positives."""
    data, X = synthetic_set(n_groups=80, seed=11)
    space = FeatureSpace(n_components=16).fit(X)
    lib = LibraryFeatures(data.relpaths, space.transform(X), data.groups, "synthetic", space)
    truth = data.Y[:, 0]
    y = np.full(len(truth), -1, dtype=np.int8)
    audit = audit_order(len(y), TAG)[:40]
    y[audit] = truth[audit]
    y[np.flatnonzero(truth)[:10]] = 1
    return lib, truth, y


@pytest.fixture(scope="module")
def refit(labeled):
    lib, _, y = labeled
    return run_task(refit_task(lib, y, tag=TAG))


def hand_basis() -> ThresholdBasis:
    """Ten tracks (two labeled), an audit sample of six with known scores and truth."""
    scores = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], dtype=np.float32)
    unlabeled = scores[[0, 1, 2, 3, 4, 5, 7, 9]]
    return ThresholdBasis(
        snapshot="s",
        sorted_scores=np.sort(scores),
        sorted_unlabeled=np.sort(unlabeled),
        audit_scores=np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.1]),
        audit_truth=np.array([True, True, False, True, True, False]),
        audit_size=6,
    )


# -- threshold figures ------------------------------------------------------------------


def test_figures_at_count_by_hand():
    f = figures_at(hand_basis(), 0.65)
    assert (f.n_tracks, f.n_above, f.n_unlabeled_above) == (10, 3, 2)
    # audit tracks at or above 0.65: 0.9 (yes), 0.8 (yes), 0.7 (no)
    assert (f.audit_above, f.audit_positive_above, f.audit_positives) == (3, 2, 4)
    assert f.precision == pytest.approx(2 / 3) and f.precision_ci == wilson(2, 3)
    assert f.recall == pytest.approx(2 / 4) and f.recall_ci == wilson(2, 4)
    assert f.new_positives_above == pytest.approx(2 * 2 / 3)
    assert f.complete


def test_a_score_equal_to_the_threshold_counts_as_above_as_in_the_engine():
    basis = hand_basis()
    scores = basis.sorted_scores
    for t in (0.3, 0.7, 0.05, 0.9, 0.95):
        assert figures_at(basis, t).n_above == int((scores >= t).sum())
    assert figures_at(basis, 0.95).n_above == 0 and figures_at(basis, 0.05).n_above == 10


def test_no_audit_track_above_leaves_precision_unknown_not_zero():
    f = figures_at(hand_basis(), 0.95)
    assert f.audit_above == 0 and np.isnan(f.precision) and np.isnan(f.precision_ci[0])
    assert f.recall == 0.0  # none of the four audit positives is caught: a real zero


def test_figures_at_the_refits_threshold_equal_its_report(labeled, refit):
    lib, _, y = labeled
    report = refit.quality
    assert report.audit_size == 40 and report.audit_above > 0  # the comparison means something
    basis = threshold_basis(lib.X, y, refit.scores, tag=TAG, snapshot=refit.snapshot)
    f = figures_at(basis, report.threshold)
    assert basis.snapshot == refit.snapshot and basis.audit_size == report.audit_size
    assert f.n_above == report.n_above
    assert (f.audit_above, f.audit_positive_above) == (
        report.audit_above,
        report.audit_positive_above,
    )
    assert f.precision == report.precision and f.precision_ci == report.precision_ci


def test_figures_at_another_threshold_equal_a_fresh_assessment(labeled, refit):
    lib, _, y = labeled
    basis = threshold_basis(lib.X, y, refit.scores, tag=TAG)
    audit = audit_prefix(audit_order(len(y), TAG), y != -1)
    for t in (0.2, 0.35, 0.8):
        fresh = assess(
            lib.X,
            y,
            lib.groups,
            refit.scores,
            threshold=t,
            audit_rows=audit,
            probe_params=DEFAULT_PROBE,
            n_boot=10,
        )
        f = figures_at(basis, t)
        assert f.n_above == fresh.n_above
        assert (f.audit_above, f.audit_positive_above) == (
            fresh.audit_above,
            fresh.audit_positive_above,
        )
        assert f.precision == pytest.approx(fresh.precision, nan_ok=True)


def test_a_higher_threshold_takes_fewer_tracks_and_catches_less(labeled, refit):
    lib, _, y = labeled
    basis = threshold_basis(lib.X, y, refit.scores, tag=TAG)
    figs = [figures_at(basis, t) for t in np.linspace(0.01, 0.99, 25)]
    above = [f.n_above for f in figs]
    recall = [f.recall for f in figs]
    assert above == sorted(above, reverse=True) and above[0] > above[-1]
    assert recall == sorted(recall, reverse=True) and recall[0] > recall[-1]


def test_without_an_audit_sample_precision_and_recall_are_unknown(labeled, refit):
    lib, truth, _ = labeled
    y = np.full(len(truth), -1, dtype=np.int8)
    first = audit_order(len(y), TAG)[0]
    y[[r for r in np.flatnonzero(truth)[:8] if r != first]] = 1  # never the first audit track
    basis = threshold_basis(lib.X, y, refit.scores, tag=TAG)
    f = figures_at(basis, 0.5)
    assert basis.audit_size == 0 and f.audit_size == 0
    assert np.isnan(f.precision) and np.isnan(f.recall)
    assert f.n_above == int((refit.scores >= 0.5).sum())


def test_threshold_task_fits_once_then_reuses_its_basis(labeled, refit):
    lib, _, y = labeled
    stages: list[str] = []
    basis, first = run_task(
        threshold_task(0.4, X=lib.X, y=y, scores=refit.scores, tag=TAG), stages.append
    )
    assert stages == ["audit scored"] and first.threshold == 0.4
    stages.clear()
    same, second = run_task(threshold_task(0.7, basis=basis), stages.append)
    assert stages == [] and same is basis  # no yield: nothing was fitted
    assert second == figures_at(basis, 0.7) and second.n_above < first.n_above


def test_threshold_task_and_basis_refuse_bad_input(labeled):
    lib, _, y = labeled
    with pytest.raises(ValueError, match="needs a basis"):
        run_task(threshold_task(0.5))
    with pytest.raises(ValueError, match=r"differ in length \(400, 400, 3 tracks\)"):
        threshold_basis(lib.X, y, np.zeros(3), tag=TAG)


# -- histogram --------------------------------------------------------------------------


def test_score_histogram_bins_each_kind_on_shared_edges():
    scores = np.array([0.0, 0.05, 0.12, 0.5, 0.99, 1.0, 0.55, 0.51])
    labels = np.array([-1, -1, 0, -1, 1, -1, 1, 0])
    h = score_histogram(scores, labels, n_bins=10)
    np.testing.assert_allclose(h.edges, np.linspace(0, 1, 11))
    assert h.unlabeled.tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]  # 1.0 in the last bin
    assert h.positive.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert h.negative.tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert h.positive_scores.tolist() == [0.55, 0.99]
    assert h.negative_scores.tolist() == [0.12, 0.51]
    np.testing.assert_allclose(h.centres[:2], [0.05, 0.15])


def test_score_histogram_agrees_with_numpy_and_thins_the_rugs():
    rng = np.random.default_rng(1)
    scores = rng.random(5000).astype(np.float32)
    labels = rng.choice([-1, 0, 1], size=5000, p=[0.8, 0.1, 0.1])
    h = score_histogram(scores, labels, n_bins=40, max_rug=50)
    for kind, counts in ((-1, h.unlabeled), (0, h.negative), (1, h.positive)):
        ref, _ = np.histogram(scores[labels == kind], bins=h.edges)
        assert counts.tolist() == ref.tolist()
    assert len(h.positive_scores) == 50
    pos = scores[labels == 1]
    assert h.positive_scores[0] == pos.min() and h.positive_scores[-1] == pos.max()


def test_score_histogram_refuses_mismatched_input():
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        score_histogram(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="n_bins"):
        score_histogram(np.zeros(3), np.zeros(3), n_bins=0)


# -- AP history -------------------------------------------------------------------------


def report(n_pos: int, n_neg: int, ap: float, ci=(0.5, 0.9), folds: int = 3) -> QualityReport:
    return QualityReport(
        n_positive=n_pos,
        n_negative=n_neg,
        n_tracks=100,
        threshold=0.5,
        n_above=10,
        cv_ap=ap,
        cv_ap_ci=ci,
        cv_folds=folds,
    )


def test_ap_history_grows_replaces_same_label_count_and_resets_on_a_new_tag():
    h = ApHistory()
    assert h.add("calm", report(5, 5, 0.6))
    assert h.add("calm", report(6, 5, 0.7))
    assert not h.add("calm", report(6, 5, 0.7))  # the same point: nothing to redraw
    assert h.add("calm", report(6, 5, 0.72))  # same count (threshold refit): replaced
    assert h.n_labels == [10, 11] and h.ap == [0.6, 0.72]
    assert not h.add("calm", report(2, 0, float("nan"), folds=0))  # no figure: not plotted
    n, ap, lo, hi = h.arrays()
    assert (
        ap.tolist() == [0.6, 0.72]
        and n.tolist() == [10, 11]
        and lo.tolist() == [0.5, 0.5]
        and hi.tolist() == [0.9, 0.9]
    )
    assert h.add("sad", report(5, 5, 0.4))
    assert h.tag == "sad" and h.n_labels == [10] and h.ap == [0.4]
    assert h.add("other", None) and len(h) == 0


# -- words ------------------------------------------------------------------------------


def test_headline_asks_for_labels_until_there_are_enough():
    assert headline(None).level == "none"
    assert headline(report(0, 3, float("nan"), folds=0)).level == "none"
    few = headline(report(3, 1, 0.8))
    assert few.level == "few"
    assert f"at least {MIN_LABELS} positives" in few.text and "(now 3 and 1)" in few.text


def test_headline_judges_precision_with_its_interval():
    base = report(10, 10, 0.8)
    base.audit_size, base.audit_above, base.audit_positive_above = 60, 30, 28
    base.precision, base.precision_ci = 28 / 30, wilson(28, 30)
    good = headline(base)
    assert good.level == "good" and good.text.startswith("Good: about 93%")
    assert "(79\u201398%, from 28 of 30 audit tracks)" in good.text
    base.audit_above, base.audit_positive_above = 3, 2
    base.precision, base.precision_ci = 2 / 3, wilson(2, 3)
    unsure = headline(base)
    assert unsure.level == "uncertain" and unsure.text.startswith("Too uncertain to say")
    base.audit_above, base.audit_positive_above = 40, 10
    base.precision, base.precision_ci = 0.25, wilson(10, 40)
    assert headline(base).level == "weak"


def test_headline_without_audit_falls_back_to_the_ranking_and_says_lower_bound():
    r = report(8, 2, 0.81, ci=(0.72, 0.9))
    r.cv_lower_bound = True
    r.n_negative = MIN_LABELS
    line = headline(r)
    assert line.level == "good"
    assert "at least 0.81 (0.72\u20130.90)" in line.text and "audit" in line.text
    r.cv_folds, r.cv_ap = 0, float("nan")
    assert "two albums" in headline(r).text


def test_figure_rows_say_why_a_figure_is_missing_and_give_intervals(labeled, refit):
    lib, _, y = labeled
    empty = {row.key: row for row in figure_rows(report(1, 0, float("nan"), folds=0))}
    assert list(empty) == [
        "labels",
        "ap",
        "auc",
        "above",
        "precision",
        "recall",
        "remaining",
        "stability",
    ]
    assert empty["ap"].value == "too few labels to say"
    assert empty["precision"].value == "label audit tracks to know"
    assert all(row.tooltip for row in empty.values())

    basis = threshold_basis(lib.X, y, refit.scores, tag=TAG)
    f = figures_at(basis, 0.5)
    rows = {row.key: row.value for row in figure_rows(refit.quality, f)}
    q = refit.quality
    assert rows["labels"] == f"{q.n_positive} yes, {q.n_negative} no"
    assert rows["above"].startswith(f"{f.n_above:,} of {f.n_tracks:,} tracks")
    assert rows["precision"].endswith(f"{f.audit_positive_above} of {f.audit_above}")
    assert "\u2013" in rows["precision"] and "\u2013" in rows["remaining"]
    assert rows["recall"].endswith(f"{f.audit_positive_above} of {f.audit_positives}")
    # before the basis arrives the recall is not known yet, and says so
    partial = {row.key: row.value for row in figure_rows(q, figures_from_report(q))}
    assert partial["recall"] == "\u2026" and partial["precision"] == rows["precision"]


# -- the plot --------------------------------------------------------------------------------


def _history(n: int = 3) -> tuple[np.ndarray, ...]:
    x = np.arange(n, dtype=float) * 10 + 20
    return x, np.linspace(0.5, 0.7, n), np.linspace(0.4, 0.6, n), np.linspace(0.6, 0.8, n)


@pytest.fixture(scope="module")
def hist():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.beta(1, 8, 9000), rng.beta(6, 2, 1000)])
    labels = np.full(len(scores), -1)
    labels[:30], labels[-20:] = 0, 1
    return score_histogram(scores, labels)


def test_render_plot_gives_device_pixels_and_the_histogram_box_in_logical_pixels(hist):
    one = render_plot(hist, _history(), width=440, height=180)
    two = render_plot(hist, _history(), width=440, height=180, scale=2.0)
    assert one.rgba.shape == (180, 440, 4) and one.rgba.dtype == np.uint8
    assert two.rgba.shape == (360, 880, 4) and two.size == one.size == (440, 180)
    # the same layout at any scale: text keeps its size in points
    np.testing.assert_allclose(two.hist_box, one.hist_box, atol=0.5)
    left, top, right, bottom = one.hist_box
    assert 0 < left < right < 440 * 0.75 and 0 < top < bottom < 180
    assert one.xlim == (0.0, 1.0)
    assert one.x_of(0.0) == pytest.approx(left) and one.x_of(1.0) == pytest.approx(right)
    assert one.score_at(one.x_of(0.37)) == pytest.approx(0.37)
    assert one.score_at(-50) == 0.0 and one.score_at(1000) == 1.0
    assert one.in_histogram(one.x_of(0.5), (top + bottom) / 2)
    assert not one.in_histogram(430, (top + bottom) / 2)  # the AP history
    # the theme's background around the axes, the scores' grey inside
    assert tuple(one.rgba[2, 2, :3]) == (0xEF, 0xEF, 0xEF)
    assert (np.abs(one.rgba[..., :3].astype(int) - 185).max(axis=-1) <= 8).sum() > 1000


def test_render_plot_draws_what_it_is_given(hist):
    empty = render_plot(None, _history(0), width=300, height=150)
    full = render_plot(hist, _history(), width=300, height=150)
    dark = render_plot(
        hist, _history(), width=300, height=150, style=PlotStyle("#202020", "#101010", "#ffffff")
    )
    assert not np.array_equal(empty.rgba, full.rgba)
    assert tuple(dark.rgba[2, 2, :3]) == (0x20, 0x20, 0x20)
    # smaller than the minimum: rendered at the minimum
    assert render_plot(None, _history(0), width=10, height=10).size == MIN_PLOT_SIZE


def test_render_plot_is_safe_in_threads_and_leaves_rcparams_alone(hist):
    import matplotlib

    before = dict(matplotlib.rcParams)
    serial = render_plot(hist, _history(), width=320, height=160)
    with ThreadPoolExecutor(max_workers=3) as ex:
        images = list(
            ex.map(lambda _: render_plot(hist, _history(), width=320, height=160), range(6))
        )
    for image in images:
        assert np.array_equal(image.rgba, serial.rgba)
    assert dict(matplotlib.rcParams) == before


def test_plot_task_bins_then_renders_and_refuses_bad_input(hist):
    rng = np.random.default_rng(1)
    scores, labels = rng.random(500), np.full(500, -1)
    task = plot_task(scores, labels, _history(2), width=300, height=150)
    assert next(task) == "binned"
    image = run_task(task)
    assert image.size == (300, 150)
    with pytest.raises(ValueError, match="scale must be positive"):
        render_plot(hist, _history(), width=300, height=150, scale=0)
    with pytest.raises(ValueError, match="differ in length: 3, 2, 3, 3"):
        render_plot(
            hist, (np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3)), width=300, height=150
        )
