"""How the probe's defaults were chosen: a grid of set-ups under the few-shot protocol.

    python benchmarks/probe_grid.py LABELS.csv --root AUDIO_ROOT [--seeds 5] [--k 5 20]

Loads every feature choice once, then compares probe set-ups (feature
choice, PCA space, C, weak-negative weight, class balance) with
``tagger_gui.core.fewshot.evaluate.few_shot_eval`` on the same grouped
splits and draws. Prints one markdown table per protocol and writes the
JSON to benchmarks/out/probe_grid.json. `tagger eval` gives the same
figures for any single set-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tagger_gui.core.cache import EmbeddingCache, default_cache_path
from tagger_gui.core.fewshot.datasets import read_tag_csv
from tagger_gui.core.fewshot.evaluate import few_shot_eval
from tagger_gui.core.fewshot.features import load_features
from tagger_gui.core.fewshot.space import FeatureSpace
from tagger_gui.core.tasks import run_task

FEATURES = {
    "msd mean+max": "musicnn-msd:mean_pool+max_pool",
    "mtt mean+max": "musicnn-mtt:mean_pool+max_pool",
    "msd+mtt mean+max": "musicnn-msd:mean_pool+max_pool,musicnn-mtt:mean_pool+max_pool",
    "msd penultimate": "musicnn-msd:penultimate",
    "msd taggram": "musicnn-msd:taggram",
    "vgg-msd pool5": "vgg-msd:pool5",
    "handcrafted": "handcrafted",
    "msd+mtt+handcrafted": "musicnn-msd:mean_pool+max_pool,musicnn-mtt:mean_pool+max_pool,"
    "handcrafted",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--k", nargs="+", type=int, default=[5, 20])
    parser.add_argument("--features", nargs="+", default=list(FEATURES))
    parser.add_argument("--pca", nargs="+", type=int, default=[0])
    parser.add_argument("--C", nargs="+", type=float, default=[0.1])
    parser.add_argument("--unlabeled-weight", nargs="+", type=float, default=[0.0])
    parser.add_argument("--balance", nargs="+", choices=["yes", "no"], default=["yes"])
    parser.add_argument(
        "--standardize",
        nargs="+",
        choices=["yes", "no"],
        default=["no"],
        help="re-standardise the space's columns inside the probe (yes whitens PCA spaces)",
    )
    parser.add_argument("--protocol", nargs="+", default=["paper", "newtag"])
    args = parser.parse_args(argv)

    data = read_tag_csv(args.labels, args.root)
    print(data.summary())
    cache_path = args.cache or default_cache_path(args.root)
    matrices = {}
    with EmbeddingCache.open(cache_path, mode="r") as cache:
        for name in args.features:
            _, X = load_features(cache, FEATURES.get(name, name), data.relpaths)
            for n in args.pca:
                key = f"{name} pca{n}" if n else name
                matrices[key] = FeatureSpace(n_components=n or None).fit_transform(X)
    variants = {}
    for c in args.C:
        for w in args.unlabeled_weight:
            for b in args.balance:
                for st in args.standardize:
                    variants[f"C={c:g} w={w:g} bal={b} std={st}"] = {
                        "C": c,
                        "unlabeled_weight": w,
                        "balance": b == "yes",
                        "standardize": st == "yes",
                    }
    t = time.perf_counter()
    result = run_task(
        few_shot_eval(
            data, matrices, ks=args.k, seeds=args.seeds, protocols=args.protocol, variants=variants
        )
    )
    print(f"\n{len(result.records)} probe fits in {time.perf_counter() - t:.0f} s\n")
    rows = result.summary()
    for protocol in args.protocol:
        print(f"### {protocol} protocol: macro ROC-AUC / AP, mean over {args.seeds} seeds\n")
        print("| feature | probe | " + " | ".join(f"K={k}" for k in args.k) + " |")
        print("|---|---|" + "---|" * len(args.k))
        cells: dict[tuple, dict] = {}
        for r in rows:
            if r["protocol"] == protocol:
                cells.setdefault((r["feature"], r["variant"]), {})[r["k"]] = r
        for (feat, var), by_k in cells.items():
            text = " | ".join(
                f"{by_k[str(k)]['auc_mean']:.3f} / {by_k[str(k)]['ap_mean']:.3f}" for k in args.k
            )
            print(f"| {feat} | {var} | {text} |")
        print()
    out = Path("benchmarks/out/probe_grid.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
