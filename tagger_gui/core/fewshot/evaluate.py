"""The few-shot protocol of Ma & Lerch (2024) on any labeled set (``tagger eval``).

For each seed the files are split by group (a track, and where known its
album, never on both sides), or by the dataset's own split. Then for each K:

- ``paper``: for every tag, K positive files are drawn from the training
  side (from K different groups where possible); the union of these draws is
  the labeled training set, and each tag's probe is fitted one-vs-rest on
  it (multi-label: a file drawn for one tag is a positive or negative for
  every other tag too).
- ``newtag``: the single "new tag" setting of the app: K positives of the
  tag plus ``neg_ratio`` x K random files without it.

The rest of the training side is *unlabeled* (weak negatives for probes that
use them); test files are never seen in training. Probes are scored on all
test files: ROC-AUC and average precision (PR-AUC) per tag, macro-averaged,
mean +- std over seeds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tagger_gui.core.fewshot.datasets import LabeledSet
from tagger_gui.core.fewshot.probe import UNLABELED, LinearProbe

ALL = 0  # K = 0 stands for "all training files"
PROTOCOLS = ("paper", "newtag")
IGNORED = -2  # label code of test files: neither labeled nor unlabeled


def k_name(k: int) -> str:
    return "all" if k == ALL else str(k)


@dataclass
class EvalProgress:
    done: int
    total: int
    what: str


@dataclass
class EvalResult:
    """Every per-tag figure, and their summaries.

    ``records`` has one dict per (feature, variant, protocol, K, seed, tag)
    with ``auc`` and ``ap``; :meth:`summary` gives macro means +- std.
    """

    dataset: str
    tags: list[str]
    settings: dict
    records: list[dict] = field(default_factory=list)

    def summary(self) -> list[dict]:
        """Macro ROC-AUC/AP per (feature, variant, protocol, K): mean and std over seeds."""
        keyed: dict[tuple, dict[int, list[tuple[float, float]]]] = {}
        for r in self.records:
            key = (r["feature"], r["variant"], r["protocol"], r["k"])
            keyed.setdefault(key, {}).setdefault(r["seed"], []).append((r["auc"], r["ap"]))
        rows = []
        for (feat, variant, protocol, k), seeds in keyed.items():
            per_seed = np.array([np.nanmean(v, axis=0) for v in seeds.values()])
            rows.append(
                {
                    "feature": feat,
                    "variant": variant,
                    "protocol": protocol,
                    "k": k_name(k),
                    "auc_mean": float(per_seed[:, 0].mean()),
                    "auc_std": float(per_seed[:, 0].std()),
                    "ap_mean": float(per_seed[:, 1].mean()),
                    "ap_std": float(per_seed[:, 1].std()),
                    "seeds": len(per_seed),
                }
            )
        return rows

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "tags": self.tags,
            "settings": self.settings,
            "summary": self.summary(),
            "records": self.records,
        }


def grouped_split(
    data: LabeledSet, rng: np.random.Generator, *, test_fraction: float = 0.3, tries: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows, whole groups on one side, every tag on both sides.

    Uses the dataset's own split when it has one (its valid part is left out).
    """
    if data.split is not None:
        return np.flatnonzero(data.split == "train"), np.flatnonzero(data.split == "test")
    group_ids = np.unique(data.groups)
    best = None
    for _ in range(tries):
        perm = rng.permutation(group_ids)
        test_groups = perm[: max(1, round(test_fraction * len(perm)))]
        is_test = np.isin(data.groups, test_groups)
        # every tag needs a positive group on each side
        ok = all(
            data.Y[is_test, j].any() and data.Y[~is_test, j].any() for j in range(len(data.tags))
        )
        if ok:
            return np.flatnonzero(~is_test), np.flatnonzero(is_test)
        best = is_test
    raise ValueError(
        f"no grouped split in {tries} tries puts every tag on both sides "
        f"(last try: {int(best.sum())} test files); use fewer tags or more groups"
    )


def draw_positives(
    rows: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """``k`` of ``rows``, one per group from ``k`` different groups where possible.

    ``groups`` is aligned with ``rows``.
    """
    if k == ALL or k >= len(rows):
        return rows
    perm = rng.permutation(len(rows))
    order = rows[perm]
    _, first = np.unique(groups[perm], return_index=True)
    one_per_group = order[np.sort(first)]
    if k <= len(one_per_group):
        return np.sort(one_per_group[:k])
    rest = np.setdiff1d(order, one_per_group, assume_unique=True)
    return np.sort(np.concatenate([one_per_group, rng.permutation(rest)[: k - len(one_per_group)]]))


def _scores(y_true: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    if y_true.all() or not y_true.any():
        return float("nan"), float("nan")
    return float(roc_auc_score(y_true, s)), float(average_precision_score(y_true, s))


def few_shot_eval(
    data: LabeledSet,
    features: Mapping[str, np.ndarray],
    *,
    ks: Sequence[int] = (1, 2, 5, 10, 20, ALL),
    seeds: int = 5,
    protocols: Sequence[str] = ("paper",),
    variants: Mapping[str, dict] | None = None,
    neg_ratio: int = 5,
    test_fraction: float = 0.3,
) -> Generator[EvalProgress, None, EvalResult]:
    """Run the protocol; a generator task yielding progress, returning an :class:`EvalResult`.

    Parameters
    ----------
    data : LabeledSet
    features : mapping of name to ndarray (n_files, dim)
        Feature matrices aligned with ``data.relpaths``.
    ks : K values; 0 means all training files.
    seeds : number of random splits/draws (seed i uses random state i).
    protocols : "paper" and/or "newtag".
    variants : mapping of name to :class:`LinearProbe` parameters
        Probe set-ups to compare; default ``{"default": {}}``.
    """
    variants = dict(variants or {"default": {}})
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"unknown protocol {p!r} (known: {', '.join(PROTOCOLS)})")
    n_tags = len(data.tags)
    result = EvalResult(
        data.name,
        list(data.tags),
        {
            "ks": [k_name(k) for k in ks],
            "seeds": seeds,
            "protocols": list(protocols),
            "variants": variants,
            "neg_ratio": neg_ratio,
            "test_fraction": test_fraction,
            "n_files": len(data.relpaths),
            "n_groups": len(np.unique(data.groups)),
        },
    )
    total = seeds * len(ks) * len(protocols) * len(features) * len(variants)
    done = 0
    started = time.perf_counter()
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        train, test = grouped_split(data, rng, test_fraction=test_fraction)
        for protocol in protocols:
            for k in ks:
                draw_rng = np.random.default_rng([seed, k, PROTOCOLS.index(protocol)])
                # the same labeled draw for every feature and variant (paired comparison)
                labels = _draw_labels(data, train, protocol, k, neg_ratio, draw_rng)
                for feat, X in features.items():
                    for vname, params in variants.items():
                        for j in range(n_tags):
                            y = labels[:, j]
                            probe = LinearProbe(**{"random_state": seed, **params}).fit(X, y)
                            auc, ap = _scores(data.Y[test, j], probe.decision_function(X[test]))
                            result.records.append(
                                {
                                    "feature": feat,
                                    "variant": vname,
                                    "protocol": protocol,
                                    "k": k,
                                    "seed": seed,
                                    "tag": data.tags[j],
                                    "auc": auc,
                                    "ap": ap,
                                    "n_pos": int((y == 1).sum()),
                                    "n_neg": int((y == 0).sum()),
                                }
                            )
                        done += 1
                        yield EvalProgress(
                            done, total, f"{feat} {vname} {protocol} K={k_name(k)} seed {seed}"
                        )
    result.settings["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _draw_labels(
    data: LabeledSet,
    train: np.ndarray,
    protocol: str,
    k: int,
    neg_ratio: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Label codes (n_files, n_tags): 1/0 labeled, -1 unlabeled training side, -2 test."""
    n, n_tags = data.Y.shape
    labels = np.full((n, n_tags), IGNORED, dtype=np.int8)
    labels[train] = UNLABELED
    if k == ALL:
        labels[train] = data.Y[train]
        return labels
    if protocol == "paper":
        chosen = [
            draw_positives(train[data.Y[train, j]], data.groups[train[data.Y[train, j]]], k, rng)
            for j in range(n_tags)
        ]
        union = np.unique(np.concatenate(chosen))
        labels[union] = data.Y[union]
        return labels
    for j in range(n_tags):
        pos_rows = train[data.Y[train, j]]
        pos = draw_positives(pos_rows, data.groups[pos_rows], k, rng)
        neg_rows = train[~data.Y[train, j]]
        neg = rng.choice(neg_rows, min(len(neg_rows), neg_ratio * len(pos)), replace=False)
        labels[pos, j] = 1
        labels[neg, j] = 0
    return labels


# -- reports ------------------------------------------------------------------------


def markdown_table(result: EvalResult) -> str:
    """Macro ROC-AUC / AP (mean +- std over seeds) per feature, variant, protocol and K."""
    rows = result.summary()
    ks = list(dict.fromkeys(r["k"] for r in rows))
    lines = [
        "| protocol | feature | probe | " + " | ".join(f"K={k}" for k in ks) + " |",
        "|---|---|---|" + "---|" * len(ks),
    ]
    by = {}
    for r in rows:
        by.setdefault((r["protocol"], r["feature"], r["variant"]), {})[r["k"]] = r
    for (protocol, feat, variant), cells in by.items():
        text = []
        for k in ks:
            c = cells.get(k)
            text.append(
                ""
                if c is None
                else f"{c['auc_mean']:.3f} / {c['ap_mean']:.3f} "
                f"(±{c['auc_std']:.3f} / ±{c['ap_std']:.3f})"
            )
        lines.append(f"| {protocol} | {feat} | {variant} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def per_tag_table(result: EvalResult, *, feature: str, variant: str, protocol: str) -> str:
    """ROC-AUC / AP per tag (mean over seeds) at each K, for one set-up."""
    cells: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in result.records:
        if (r["feature"], r["variant"], r["protocol"]) == (feature, variant, protocol):
            cells.setdefault((r["tag"], r["k"]), []).append((r["auc"], r["ap"]))
    ks = sorted({k for _, k in cells}, key=lambda k: (k == ALL, k))
    lines = [
        "| tag | " + " | ".join(f"K={k_name(k)}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for tag in result.tags:
        text = []
        for k in ks:
            v = np.nanmean(cells.get((tag, k), [(np.nan, np.nan)]), axis=0)
            text.append(f"{v[0]:.3f} / {v[1]:.3f}")
        lines.append(f"| {tag} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def plot(result: EvalResult, path: str | Path) -> None:
    """Macro ROC-AUC and AP against K, one line per feature/variant, one panel row per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.summary()
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, axes = plt.subplots(
        len(protocols), 2, figsize=(11, 4 * len(protocols)), squeeze=False, layout="constrained"
    )
    for p_i, protocol in enumerate(protocols):
        lines = {}
        for r in rows:
            if r["protocol"] == protocol:
                lines.setdefault((r["feature"], r["variant"]), []).append(r)
        for (feat, variant), pts in lines.items():
            label = feat if len(result.settings["variants"]) == 1 else f"{feat} [{variant}]"
            xs = np.arange(len(pts))
            for m_i, metric in enumerate(("auc", "ap")):
                ax = axes[p_i, m_i]
                ax.errorbar(
                    xs,
                    [q[f"{metric}_mean"] for q in pts],
                    yerr=[q[f"{metric}_std"] for q in pts],
                    marker="o",
                    capsize=3,
                    label=label,
                )
                ax.set_xticks(xs, [q["k"] for q in pts])
        for m_i, metric in enumerate(("macro ROC-AUC", "macro AP (PR-AUC)")):
            ax = axes[p_i, m_i]
            ax.set_xlabel("K (positives per tag)")
            ax.set_ylabel(metric)
            ax.set_title(f"{result.dataset}: {protocol} protocol")
            ax.grid(alpha=0.3)
        axes[p_i, 0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``eval.json``, ``eval.md`` and ``eval.png`` into ``out_dir``."""
    from tagger_gui import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "eval.json", "md": out_dir / "eval.md", "png": out_dir / "eval.png"}
    payload = {"format": 1, "tagger_version": __version__, **result.to_json()}
    paths["json"].write_text(json.dumps(payload, indent=1, allow_nan=True), encoding="utf-8")
    first = result.records[0] if result.records else None
    per_tag = ""
    if first is not None:
        per_tag = (
            f"\n\n## Per tag: {first['feature']}, {first['protocol']} protocol\n\n"
            "ROC-AUC / AP on the test side, mean over seeds.\n\n"
            + per_tag_table(
                result,
                feature=first["feature"],
                variant=first["variant"],
                protocol=first["protocol"],
            )
        )
    paths["md"].write_text(
        f"# Few-shot evaluation: {result.dataset}\n\n"
        "Macro ROC-AUC / AP on the test side, mean (± std) over seeds.\n\n"
        + markdown_table(result)
        + per_tag
        + "\n",
        encoding="utf-8",
    )
    plot(result, paths["png"])
    return paths
