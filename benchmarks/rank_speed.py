"""Refit + rescoring speed of the live probe, and of the quality readout.

    python benchmarks/rank_speed.py [--sizes 100000 1000000] [--dim 1506]

For each library size (synthetic float32 vectors; one subprocess per size so
memory figures do not mix), a labeling session is replayed: 5 positives,
then one label at a time up to 50 (a third of them negatives). After each
label the probe is refitted and the whole library rescored and ranked
(`top` 50), as the app does. Printed: median and p90 of that step, the
quality readout (grouped CV + bootstrap) at 50 labels, and peak memory over
the feature matrix. The probe is the app's (engine.DEFAULT_PROBE on
256 principal components). The baseline, measured in the same run at the smallest
size, is the textbook pipeline: StandardScaler + LogisticRegression
(balanced) on a standardised copy of the library, then predict_proba.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import psutil


def synthetic_library(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` x ``dim`` float32 vectors with 2 % positives along a hidden direction."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, dim), dtype=np.float32)
    step = 50_000
    for lo in range(0, n, step):
        X[lo : lo + step] = rng.standard_normal((min(step, n - lo), dim), dtype=np.float32)
    truth = rng.random(n) < 0.02
    direction = rng.standard_normal(dim).astype(np.float32)
    X[truth] += 0.15 * direction
    X *= 0.5
    X += 1.0  # not centred: the probe has to standardise
    return X, truth


class PeakRSS:
    """Samples this process's RSS every 5 ms in a thread."""

    def __init__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def session_labels(truth: np.ndarray, rng: np.random.Generator, n_labels: int = 50):
    """Label events: 5 positives first, then alternating positives/negatives (1 in 3 negative)."""
    pos = rng.permutation(np.flatnonzero(truth))
    neg = rng.permutation(np.flatnonzero(~truth))
    events = [(int(p), 1) for p in pos[:5]]
    pi, ni = 5, 0
    while len(events) < n_labels:
        if len(events) % 3 == 0:
            events.append((int(neg[ni]), 0))
            ni += 1
        else:
            events.append((int(pos[pi]), 1))
            pi += 1
    return events


def worker(n: int, dim: int, components: int, baseline: bool) -> dict:
    from tagger_gui.core.fewshot.engine import DEFAULT_PROBE
    from tagger_gui.core.fewshot.probe import LinearProbe
    from tagger_gui.core.fewshot.quality import assess
    from tagger_gui.core.fewshot.ranking import audit_order, rank_top
    from tagger_gui.core.fewshot.space import FeatureSpace

    rss0 = psutil.Process().memory_info().rss
    t = time.perf_counter()
    X_raw, truth = synthetic_library(n, dim)
    make_s = time.perf_counter() - t
    rss_x = psutil.Process().memory_info().rss
    # once per library and feature choice (when the project opens)
    with PeakRSS() as peak_space:
        t = time.perf_counter()
        space = FeatureSpace(n_components=components).fit(X_raw)
        space_fit_s = time.perf_counter() - t
        t = time.perf_counter()
        X = space.transform(X_raw) if components else X_raw
        space_transform_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    events = session_labels(truth, rng)
    groups = np.arange(n) // 10  # albums of 10 tracks
    y = np.full(n, -1, dtype=np.int8)
    steps = []
    with PeakRSS() as peak:
        for i, (row, value) in enumerate(events):
            y[row] = value
            if i < 4:
                continue
            t = time.perf_counter()
            probe = LinearProbe(random_state=i, **DEFAULT_PROBE).fit(X, y)
            scores = probe.predict_proba(X)[:, 1]
            rank_top(scores, y != -1, n=50)
            steps.append(time.perf_counter() - t)
        # the quality readout at 50 labels, 15 of them a uniform audit sample
        order = audit_order(n, "bench")
        y_q = y.copy()
        y_q[order[:15]] = truth[order[:15]]
        quality = []
        for _ in range(3):
            t = time.perf_counter()
            assess(
                X,
                y_q,
                groups,
                scores,
                audit_rows=order[:15],
                previous_scores=scores,
                probe_params=DEFAULT_PROBE,
            )
            quality.append(time.perf_counter() - t)
    out = {
        "n": n,
        "dim": dim,
        "matrix_mb": X_raw.nbytes / 2**20,
        "components": components,
        "make_seconds": make_s,
        "space_fit_seconds": space_fit_s,
        "space_transform_seconds": space_transform_s,
        "refit_rescore_median_ms": 1000 * statistics.median(steps),
        "refit_rescore_p90_ms": 1000 * float(np.quantile(steps, 0.9)),
        "refit_rescore_max_ms": 1000 * max(steps),
        "quality_median_ms": 1000 * statistics.median(quality),
        "peak_over_start_mb": (max(peak.peak, peak_space.peak) - rss0) / 2**20,
        "peak_over_matrix_ratio": (max(peak.peak, peak_space.peak) - rss0) / X_raw.nbytes,
        "working_mb_beyond_matrix": (peak.peak - rss_x) / 2**20,
    }
    if baseline:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        times = []
        with PeakRSS() as peak_b:
            for _ in range(3):
                t = time.perf_counter()
                scaler = StandardScaler().fit(X_raw)
                Z = scaler.transform(X_raw)
                lab = y != -1
                model = LogisticRegression(class_weight="balanced", max_iter=300)
                model.fit(Z[lab], y[lab])
                model.predict_proba(Z)
                del Z
                times.append(time.perf_counter() - t)
        out["baseline_median_ms"] = 1000 * statistics.median(times)
        out["baseline_peak_over_matrix_ratio"] = (peak_b.peak - rss0) / X_raw.nbytes
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1506)
    parser.add_argument(
        "--components", type=int, default=256, help="PCA components of the probe's space (0: none)"
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dim, args.components, args.baseline)))
        return 0
    print(
        f"refit + rescore + rank after each label; {args.dim}-dim float32; "
        f"{psutil.cpu_count()} CPUs"
    )
    results = []
    for i, n in enumerate(args.sizes):
        cmd = [sys.executable, __file__, "--worker", str(n), "--dim", str(args.dim)]
        cmd += ["--components", str(args.components)]
        if i == 0:
            cmd.append("--baseline")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"n={n:>9,}  matrix {r['matrix_mb']:7.0f} MB  refit+rescore median "
            f"{r['refit_rescore_median_ms']:7.1f} ms (p90 {r['refit_rescore_p90_ms']:.1f}, "
            f"max {r['refit_rescore_max_ms']:.1f})  quality readout "
            f"{r['quality_median_ms']:6.0f} ms  peak memory {r['peak_over_matrix_ratio']:.2f}x "
            "the matrix"
        )
        print(
            f"{'':13s}once per library: feature space fit {r['space_fit_seconds']:.1f} s, "
            f"projection {r['space_transform_seconds']:.1f} s "
            f"({args.components or 'no'} components)"
        )
        if "baseline_median_ms" in r:
            print(
                f"{'':13s}baseline (StandardScaler + LogisticRegression on a standardised "
                f"copy): {r['baseline_median_ms']:.0f} ms, peak memory "
                f"{r['baseline_peak_over_matrix_ratio']:.2f}x; ours is "
                f"{r['baseline_median_ms'] / r['refit_rescore_median_ms']:.1f}x faster"
            )
    out = "benchmarks/out/rank_speed.json"
    import pathlib

    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out).write_text(json.dumps(results, indent=1))
    print(f"(figures in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
