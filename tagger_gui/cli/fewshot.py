"""``tagger eval`` and ``tagger simulate``: few-shot evaluation on labeled data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tagger_gui.cli.progress import drive
from tagger_gui.core.errors import TaggerError

EVAL_EPILOG = """\
datasets:
  a CSV with a header path,tag[,group]: one row per (file, tag); paths relative
  to --root (default: the CSV's folder); group = album/track id (default: the
  file's folder). Or a MagnaTagATune folder (annotations_final.csv + mp3
  folders): top-50 tags, split by folder (0-b train, c valid, d-f test).

examples:
  tagger embed corpus/ --backend musicnn-msd --backend handcrafted
  tagger eval corpus/labels.csv --features musicnn-msd:mean_pool+max_pool \\
      --features handcrafted --out results/
  tagger eval ~/data/mtat --features musicnn-mtt --k 1 5 20 all --seeds 3
  tagger eval labels.csv --probe plain:unlabeled_weight=0 --probe weak:unlabeled_weight=0.05
"""


def _k_value(text: str) -> int:
    if text == "all":
        return 0
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("K is a positive number or 'all'")
    return value


def _probe_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value`` -> (name, LinearProbe parameters)."""
    from tagger_gui.core.fewshot.probe import LinearProbe

    name, _, rest = text.partition(":")
    known = LinearProbe().get_params()
    params: dict = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected key=value with key in {', '.join(sorted(known))}"
            )
        params[key] = {"true": True, "false": False}.get(value.lower(), None)
        if params[key] is None:
            params[key] = float(value) if "." in value or "e" in value else int(value)
    return name or "default", params


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the evaluation commands to the ``tagger`` parser's subcommands."""
    from tagger_gui.core.fewshot.features import DEFAULT_FEATURES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("dataset", type=Path, metavar="DATASET", help="labels CSV or MTT folder")
    common.add_argument("--root", type=Path, help="audio root of a CSV (default: its folder)")
    common.add_argument("--cache", type=Path, help="embedding cache (default: ROOT/.tagger/...)")
    common.add_argument("--seeds", type=int, default=5, help="random splits/draws (default 5)")
    common.add_argument(
        "--out", type=Path, default=Path("tagger-results"), help="output folder (JSON, MD, PNG)"
    )
    common.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="few-shot evaluation of the probe on labeled data (Ma & Lerch protocol)",
        description="Macro ROC-AUC and AP of the linear probe trained on K positives "
        "per tag, on a grouped test split, mean +- std over seeds.",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument(
        "--features",
        action="append",
        metavar="SPEC",
        help=f"backend:output+output[,backend...]; repeat to compare (default {DEFAULT_FEATURES})",
    )
    ev.add_argument(
        "--k",
        nargs="+",
        type=_k_value,
        default=[1, 2, 5, 10, 20, 0],
        metavar="K",
        help="positives per tag (default 1 2 5 10 20 all)",
    )
    ev.add_argument(
        "--protocol",
        nargs="+",
        choices=["paper", "newtag"],
        default=["paper", "newtag"],
        help="paper: K per tag, all tags one-vs-rest; newtag: K positives + 5K negatives",
    )
    ev.add_argument(
        "--pca",
        nargs="+",
        type=int,
        default=None,
        metavar="N",
        help="probe spaces to compare: the top N principal components of the standardised "
        "features (0 = no reduction); default: the app's (256)",
    )
    ev.add_argument(
        "--probe",
        action="append",
        type=_probe_variant,
        metavar="NAME:KEY=VALUE,...",
        help="probe set-up(s) to compare, as changes to the app's default, "
        "e.g. strong:C=1 noweak:unlabeled_weight=0",
    )
    ev.set_defaults(func=cmd_eval)

    sim = sub.add_parser(
        "simulate",
        parents=[common],
        help="simulate review sessions: does active learning beat random review?",
        description="For each tag: start from K0 positives, review BATCH tracks per round "
        "chosen by each strategy, refit; test AP on a fixed held-out side and positives found.",
    )
    sim.add_argument("--features", default=None, metavar="SPEC", help="feature choice")
    sim.add_argument("--k0", type=int, default=5, help="starting positives (default 5)")
    sim.add_argument("--batch", type=int, default=10, help="labels per round (default 10)")
    sim.add_argument("--budget", type=int, default=100, help="labels reviewed (default 100)")
    sim.add_argument(
        "--strategies",
        nargs="+",
        default=["top", "uncertain", "diverse", "random"],
        choices=["top", "uncertain", "diverse", "random"],
    )
    sim.add_argument(
        "--pca",
        type=int,
        default=None,
        metavar="N",
        help="principal components of the probe space (default: the app's, 256; 0 = none)",
    )
    sim.add_argument("--probe", type=_probe_variant, default=("default", {}), metavar="KEY=VALUE")
    sim.set_defaults(func=cmd_simulate)


def load_dataset(args: argparse.Namespace):
    """The labeled set named on the command line, and its audio root."""
    from tagger_gui.core.fewshot.datasets import read_magnatagatune, read_tag_csv

    if args.dataset.is_dir():
        return read_magnatagatune(args.dataset)
    root = args.root or args.dataset.parent
    return read_tag_csv(args.dataset, root)


def load_matrices(data, specs: list[str], cache_path: Path | None):
    """Feature matrices for ``data`` (files that failed to decode are dropped, with a note)."""
    import numpy as np

    from tagger_gui.core.cache import EmbeddingCache, default_cache_path
    from tagger_gui.core.fewshot.features import FeatureSpec, load_features, resolve

    path = cache_path or default_cache_path(data.root)
    if not Path(path).exists():
        raise TaggerError(f"{path}: no embedding cache; run `tagger embed {data.root}` first")
    matrices = {}
    with EmbeddingCache.open(path, mode="r") as cache:
        failed = {rel for rel, _ in cache.failures()}
        keep = np.ones(len(data.relpaths), dtype=bool)
        for spec_text in specs:
            spec = FeatureSpec.parse(spec_text)
            for key, _, _ in resolve(cache, spec):
                have = set(cache.tracks(key).relpath)
                missing = [r for r in data.relpaths if r not in have]
                not_failed = [r for r in missing if r not in failed]
                if not_failed:
                    raise TaggerError(
                        f"{len(not_failed)} of {len(data.relpaths)} files have no {key} "
                        f"embedding (e.g. {not_failed[0]}); run `tagger embed {data.root} "
                        f"--backend {key.split('@')[0]}`"
                    )
                keep &= np.array([r in have for r in data.relpaths])
        if not keep.all():
            print(
                f"note: {int((~keep).sum())} files could not be decoded and are left out "
                "(see `tagger embeddings info`)",
                file=sys.stderr,
            )
            data = data.subset(np.flatnonzero(keep))
        for spec_text in specs:
            _, X = load_features(cache, spec_text, data.relpaths)
            matrices[str(FeatureSpec.parse(spec_text))] = X
    return data, matrices


def with_spaces(matrices: dict, components: list[int]) -> dict:
    """Each matrix in each probe space (standardised, or the top N principal components)."""
    from tagger_gui.core.fewshot.space import FeatureSpace

    out = {}
    for name, X in matrices.items():
        for n in components:
            space = FeatureSpace(n_components=n or None)
            Z = space.fit_transform(X)
            reduced = hasattr(space, "explained_variance_ratio_")
            out[f"{name} pca{space.n_components_}" if reduced else name] = Z
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    from tagger_gui.core.fewshot.engine import DEFAULT_COMPONENTS, DEFAULT_PROBE
    from tagger_gui.core.fewshot.evaluate import few_shot_eval, markdown_table, write_report
    from tagger_gui.core.fewshot.features import DEFAULT_FEATURES

    data = load_dataset(args)
    data, matrices = load_matrices(data, args.features or [DEFAULT_FEATURES], args.cache)
    matrices = with_spaces(matrices, args.pca or [DEFAULT_COMPONENTS])
    print(data.summary())
    task = few_shot_eval(
        data,
        matrices,
        ks=args.k,
        seeds=args.seeds,
        protocols=args.protocol,
        variants={
            name: {**DEFAULT_PROBE, **params} for name, params in (args.probe or [("default", {})])
        },
    )
    result = drive(task, desc="evaluating", quiet=args.quiet)
    paths = write_report(result, args.out)
    print()
    print(markdown_table(result))
    print(f"\nWrote {', '.join(str(p) for p in paths.values())}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from tagger_gui.core.fewshot.engine import DEFAULT_COMPONENTS, DEFAULT_PROBE
    from tagger_gui.core.fewshot.features import DEFAULT_FEATURES
    from tagger_gui.core.fewshot.simulate import simulate, write_report

    spec = args.features or DEFAULT_FEATURES
    data = load_dataset(args)
    data, matrices = load_matrices(data, [spec], args.cache)
    print(data.summary())
    matrices = with_spaces(matrices, [DEFAULT_COMPONENTS if args.pca is None else args.pca])
    ((feature, X),) = matrices.items()
    params = {**DEFAULT_PROBE, **args.probe[1]}
    task = simulate(
        data,
        X,
        feature=feature,
        strategies=args.strategies,
        k0=args.k0,
        batch=args.batch,
        budget=args.budget,
        seeds=args.seeds,
        probe_params=params,
    )
    result = drive(task, desc="simulating", quiet=args.quiet)
    paths = write_report(result, args.out)
    print()
    print(paths["md"].read_text(encoding="utf-8"))
    print(f"Wrote {', '.join(str(p) for p in paths.values())}")
    return 0
