"""Does active learning earn its keep? (``tagger simulate``)

For each tag and seed the files are split by group into a *pool*, offered
for review, and a fixed *test* side that is never offered. The simulated
librarian starts from ``k0`` positives, then reviews ``batch`` tracks per
round chosen by a strategy (the oracle's labels are the dataset's), and the
probe is refitted. Two curves per strategy:

1. classifier quality (AP, ROC-AUC) on the fixed test side: AP on the
   remaining pool would be biased, since a strategy that finds positives
   first empties the pool of easy positives;
2. positives found per label reviewed: what the librarian feels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagger_gui.core.fewshot.datasets import LabeledSet
from tagger_gui.core.fewshot.evaluate import IGNORED, draw_positives, grouped_split
from tagger_gui.core.fewshot.probe import UNLABELED, LinearProbe
from tagger_gui.core.fewshot.quality import fast_ap, fast_auc
from tagger_gui.core.fewshot.ranking import rank_diverse, rank_top, rank_uncertain

SIM_STRATEGIES = ("top", "uncertain", "diverse", "random")


@dataclass
class SimProgress:
    done: int
    total: int
    what: str


@dataclass
class SimResult:
    """Per (strategy, tag, seed, step) figures; :meth:`curves` averages them."""

    dataset: str
    feature: str
    settings: dict
    records: list[dict] = field(default_factory=list)
    ceilings: list[dict] = field(default_factory=list)

    def curves(self) -> dict[str, dict[str, list[float]]]:
        """Mean over tags and seeds per strategy: labels, AP, AUC, recall of positives."""
        out = {}
        for strategy in self.settings["strategies"]:
            recs = [r for r in self.records if r["strategy"] == strategy]
            steps = sorted({r["labels"] for r in recs})
            cur = {"labels": steps, "ap": [], "auc": [], "found_fraction": [], "found": []}
            for s in steps:
                at = [r for r in recs if r["labels"] == s]
                cur["ap"].append(float(np.nanmean([r["ap"] for r in at])))
                cur["auc"].append(float(np.nanmean([r["auc"] for r in at])))
                cur["found"].append(float(np.mean([r["found"] for r in at])))
                cur["found_fraction"].append(
                    float(np.mean([r["found"] / max(1, r["pool_positives"]) for r in at]))
                )
            out[strategy] = cur
        return out

    def labels_to_target(self, *, relative: float = 0.9) -> dict[str, float]:
        """Median labels reviewed until test AP reaches ``relative`` x the tag's ceiling AP.

        The ceiling is the AP of a probe fitted on the whole pool, labeled.
        A run that never gets there counts as infinite (so the median can be).
        """
        ceiling = {(c["tag"], c["seed"]): c["ap"] for c in self.ceilings}
        out = {}
        for strategy in self.settings["strategies"]:
            needed = []
            runs: dict[tuple, list[dict]] = {}
            for r in self.records:
                if r["strategy"] == strategy:
                    runs.setdefault((r["tag"], r["seed"]), []).append(r)
            for key, recs in runs.items():
                target = relative * ceiling[key]
                hit = [
                    r["labels"]
                    for r in sorted(recs, key=lambda r: r["labels"])
                    if r["ap"] >= target
                ]
                needed.append(hit[0] if hit else np.inf)
            out[strategy] = float(np.median(needed)) if needed else float("nan")
        return out

    def at_labels(self, n: int) -> dict[str, dict[str, float]]:
        """Figures of each strategy after ``n`` reviewed labels (the nearest step at or below)."""
        out = {}
        for strategy, cur in self.curves().items():
            i = max(j for j, s in enumerate(cur["labels"]) if s <= n)
            out[strategy] = {
                k: cur[k][i] for k in ("labels", "ap", "auc", "found", "found_fraction")
            }
        return out

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "feature": self.feature,
            "settings": self.settings,
            "curves": self.curves(),
            "labels_to_90pct_ceiling_ap": self.labels_to_target(),
            "records": self.records,
            "ceilings": self.ceilings,
        }


def simulate(
    data: LabeledSet,
    X: np.ndarray,
    *,
    feature: str = "",
    strategies: Sequence[str] = SIM_STRATEGIES,
    k0: int = 5,
    batch: int = 10,
    budget: int = 100,
    seeds: int = 3,
    probe_params: Mapping | None = None,
    test_fraction: float = 0.3,
) -> Generator[SimProgress, None, SimResult]:
    """Simulate review sessions; a generator task returning a :class:`SimResult`."""
    for s in strategies:
        if s not in SIM_STRATEGIES:
            raise ValueError(f"unknown strategy {s!r} (known: {', '.join(SIM_STRATEGIES)})")
    params = dict(probe_params or {})
    result = SimResult(
        data.name,
        feature,
        {
            "strategies": list(strategies),
            "k0": k0,
            "batch": batch,
            "budget": budget,
            "seeds": seeds,
            "probe": params,
            "test_fraction": test_fraction,
        },
    )
    n_tags = len(data.tags)
    total = seeds * n_tags * len(strategies)
    done = 0
    started = time.perf_counter()
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        pool, test = grouped_split(data, rng, test_fraction=test_fraction)
        for j, tag in enumerate(data.tags):
            truth = data.Y[:, j]
            pool_pos = pool[truth[pool]]
            start = draw_positives(pool_pos, data.groups[pool_pos], k0, rng)
            full = np.full(len(truth), IGNORED, dtype=np.int8)
            full[pool] = truth[pool]
            ceiling = LinearProbe(**{"random_state": seed, **params}).fit(X, full)
            result.ceilings.append(
                {
                    "tag": tag,
                    "seed": seed,
                    "ap": fast_ap(truth[test], ceiling.decision_function(X[test])),
                }
            )
            for strategy in strategies:
                result.records.extend(
                    _one_session(
                        X,
                        truth,
                        pool,
                        test,
                        start,
                        data.groups,
                        strategy,
                        batch=batch,
                        budget=budget,
                        params=params,
                        seed=seed,
                        tag=tag,
                    )
                )
                done += 1
                yield SimProgress(done, total, f"{tag} {strategy} seed {seed}")
    result.settings["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _one_session(
    X, truth, pool, test, start, groups, strategy, *, batch, budget, params, seed, tag
) -> list[dict]:
    rng = np.random.default_rng([seed, 7])
    y = np.full(len(truth), IGNORED, dtype=np.int8)
    y[pool] = UNLABELED
    y[start] = 1
    not_offered = np.ones(len(truth), dtype=bool)
    not_offered[pool] = False
    not_offered[start] = True
    pool_positives = int(truth[pool].sum()) - len(start)
    records = []
    reviewed = found = 0
    while True:
        probe = LinearProbe(**{"random_state": seed, **params}).fit(X, y)
        s_test = probe.decision_function(X[test])
        records.append(
            {
                "strategy": strategy,
                "tag": tag,
                "seed": seed,
                "labels": reviewed,
                "found": found,
                "pool_positives": pool_positives,
                "ap": fast_ap(truth[test], s_test),
                "auc": fast_auc(truth[test], s_test),
            }
        )
        if reviewed >= budget or not_offered.all():
            return records
        n = min(batch, budget - reviewed)
        if strategy == "random":
            pick = rng.permutation(np.flatnonzero(~not_offered))[:n]
        else:
            scores = probe.predict_proba(X)[:, 1]
            if strategy == "top":
                pick = rank_top(scores, not_offered, n=n).rows
            elif strategy == "uncertain":
                pick = rank_uncertain(scores, not_offered, n=n).rows
            else:
                pick = rank_diverse(scores, not_offered, X, groups=groups, n=n).rows
        y[pick] = truth[pick]
        not_offered[pick] = True
        reviewed += len(pick)
        found += int(truth[pick].sum())


def plot(result: SimResult, path: str | Path) -> None:
    """Test AP and fraction of positives found against labels reviewed, per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for strategy, cur in result.curves().items():
        axes[0].plot(cur["labels"], cur["ap"], marker="o", ms=3, label=strategy)
        axes[1].plot(cur["labels"], cur["auc"], marker="o", ms=3, label=strategy)
        axes[2].plot(cur["labels"], cur["found_fraction"], marker="o", ms=3, label=strategy)
    titles = (
        "AP on the fixed test side",
        "ROC-AUC on the fixed test side",
        "share of the pool's positives found",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel(f"labels reviewed after {result.settings['k0']} starting positives")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{result.dataset}: active-learning simulation ({result.feature})")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: SimResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``simulate.json``, ``simulate.md`` and ``simulate.png`` into ``out_dir``."""
    from tagger_gui import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"simulate.{k}" for k in ("json", "md", "png")}
    payload = {"format": 1, "tagger_version": __version__, **result.to_json()}
    paths["json"].write_text(json.dumps(payload, indent=1), encoding="utf-8")
    budget = result.settings["budget"]
    mark = min(50, budget)
    at = result.at_labels(mark)
    needed = result.labels_to_target()
    base = at.get("random", {}).get("found", float("nan"))
    lines = [
        f"# Active-learning simulation: {result.dataset}",
        "",
        f"Feature {result.feature}; start {result.settings['k0']} positives, rounds of "
        f"{result.settings['batch']}, {result.settings['seeds']} seeds, every tag.",
        "",
        f"| strategy | test AP at {mark} | test ROC-AUC at {mark} | positives found at {mark} "
        "| share of pool positives | vs random | labels to 90 % of ceiling AP (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy, f in at.items():
        ratio = f["found"] / base if base and not np.isnan(base) else float("nan")
        lines.append(
            f"| {strategy} | {f['ap']:.3f} | {f['auc']:.3f} | {f['found']:.1f} | "
            f"{f['found_fraction']:.1%} | {ratio:.2f}x | {needed[strategy]:.0f} |"
        )
    paths["md"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(result, paths["png"])
    return paths
