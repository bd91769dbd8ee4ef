"""How fast `tagger embed` is, stage by stage, on a folder of real music.

    python benchmarks/embed_speed.py [MUSIC_DIR] [--backend NAME ...] [--tf-venv DIR]

Without MUSIC_DIR it builds a corpus of real game soundtracks from Debian
(warzone2100-music + frozen-bubble-data, see corpora/debian_game_music.py).

It prints, per backend, with the default analysis policy (10 excerpts of 3 s
for long tracks), in x-realtime of *analysed* audio:

* decode: reading, downmixing and resampling the excerpts (one process);
* features: the backend's model input (log-mel for musicnn);
* model: inference in batches;
* end to end: a real ``tagger embed`` run (worker processes + batched model +
  cache writes) into a fresh cache, with files/s and the peak RSS of the
  process tree.

With ``--tf-venv DIR`` (a venv with tensorflow-cpu 2.15.1, librosa and
``musicnn`` 0.1.0) it also runs the original musicnn on TensorFlow over the
same excerpts in the same run, and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _measure import run_with_peak_rss  # noqa: E402

from tagger_gui.core.audio import AnalysisPolicy, load_excerpts  # noqa: E402
from tagger_gui.core.embed_job import DEFAULT_BATCH_PATCHES  # noqa: E402
from tagger_gui.core.embeddings import load_backend  # noqa: E402
from tagger_gui.core.errors import AudioError  # noqa: E402
from tagger_gui.core.library import LibraryFile, scan_library  # noqa: E402

TF_MODEL = {
    "musicnn-msd": "MSD_musicnn",
    "musicnn-mtt": "MTT_musicnn",
    "vgg-msd": "MSD_vgg",
    "vgg-mtt": "MTT_vgg",
}


def stage_times(files: list[LibraryFile], backend_name: str, policy: AnalysisPolicy) -> dict:
    backend = load_backend(backend_name)
    sr = backend.sample_rate
    t = time.perf_counter()
    decoded = []
    for f in files:
        try:
            decoded.append(load_excerpts(f.path, sr, policy=policy))
        except AudioError as exc:
            print(f"  skipped: {exc}")
    t_decode = time.perf_counter() - t
    audio = sum(len(s) for d in decoded for s in d.segments) / sr

    backend.features(decoded[0].segments[0], sr)  # imports librosa outside the timing
    t = time.perf_counter()
    feats = [backend.features(s, sr) for d in decoded for s in d.segments]
    t_features = time.perf_counter() - t
    x = np.concatenate(feats)

    backend.infer(x[:DEFAULT_BATCH_PATCHES])  # build the model outside the timing
    t = time.perf_counter()
    for i in range(0, len(x), DEFAULT_BATCH_PATCHES):
        backend.infer(x[i : i + DEFAULT_BATCH_PATCHES])
    t_model = time.perf_counter() - t
    return {
        "audio_seconds": audio,
        "patches": len(x),
        "decode_x": audio / t_decode,
        "features_x": audio / t_features,
        "model_x": audio / t_model,
        "model_ms_per_patch": 1000 * t_model / len(x),
    }


def end_to_end(root: Path, backend_name: str, workers: int | None) -> dict:
    """A real `tagger embed` process; peak RSS summed over it and its workers."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.h5"
        cmd = [
            sys.executable,
            "-m",
            "tagger_gui",
            "embed",
            str(root),
            "--cache",
            str(cache),
            "--backend",
            backend_name,
            "--quiet",
        ]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        peak_mb, seconds, out = run_with_peak_rss(cmd)
    stats = {}
    for line in out.splitlines():
        if "realtime" in line and "speed" in line:
            stats["reported"] = line.strip()
    return {"seconds": seconds, "peak_rss_mb": peak_mb, "stdout": out, **stats}


def tf_baseline(
    tf_venv: Path, files: list[LibraryFile], backend_name: str, policy: AnalysisPolicy
) -> dict:
    """The original musicnn (TensorFlow) on the same excerpts, in a subprocess."""
    jobs = []
    for f in files:
        info = load_excerpts(f.path, 16000, policy=policy)  # same excerpts as ours
        seg_len = [len(s) / 16000 for s in info.segments]
        jobs.append(
            {"path": str(f.path), "excerpts": list(zip(info.starts.tolist(), seg_len, strict=True))}
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"model": TF_MODEL[backend_name], "jobs": jobs}, fh)
    try:
        res = subprocess.run(
            [
                str(tf_venv / "bin" / "python"),
                str(Path(__file__).with_name("_tf_baseline.py")),
                fh.name,
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        )
    finally:
        os.unlink(fh.name)
    if res.returncode != 0:
        raise SystemExit(f"TensorFlow baseline failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("music_dir", nargs="?", type=Path)
    parser.add_argument("--backend", action="append")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--limit", type=int, help="use only the first N files")
    parser.add_argument("--tf-venv", type=Path, help="venv with tensorflow-cpu + musicnn")
    args = parser.parse_args(argv)

    root = args.music_dir
    if root is None:
        from corpora.debian_game_music import build

        root = REPO / "benchmarks" / "out" / "music"
        build(root, ["warzone2100-music", "frozen-bubble-data"])
    files = [f for f in scan_library(root) if isinstance(f, LibraryFile)]
    if args.limit:
        files = files[: args.limit]
        link_root = Path(tempfile.mkdtemp())
        for f in files:
            (link_root / f.relpath).parent.mkdir(parents=True, exist_ok=True)
            (link_root / f.relpath).symlink_to(f.path.resolve())
        root = link_root
    policy = AnalysisPolicy()
    cpu = psutil.cpu_count()
    print(
        f"corpus: {root} ({len(files)} files); {cpu} cores; "
        f"policy: up to {policy.max_patches} excerpts of {policy.patch_seconds:g} s"
    )
    results = {}
    for name in args.backend or ["musicnn-msd"]:
        st = stage_times(files, name, policy)
        e2e = end_to_end(root, name, args.workers)
        row = {
            **st,
            "e2e_x": st["audio_seconds"] / e2e["seconds"],
            "files_per_s": len(files) / e2e["seconds"],
            "peak_rss_mb": e2e["peak_rss_mb"],
            "e2e_seconds": e2e["seconds"],
        }
        print(
            f"\n{name}: {st['audio_seconds'] / 60:.1f} min of audio analysed "
            f"({st['patches']} patches)"
        )
        print(f"  decode      {st['decode_x']:8.0f}x realtime (1 process)")
        print(f"  features    {st['features_x']:8.0f}x realtime (1 process)")
        print(
            f"  model       {st['model_x']:8.0f}x realtime "
            f"({st['model_ms_per_patch']:.1f} ms/patch, batches of {DEFAULT_BATCH_PATCHES})"
        )
        print(
            f"  end to end  {row['e2e_x']:8.0f}x realtime, {row['files_per_s']:.2f} files/s, "
            f"{row['e2e_seconds']:.1f} s incl. start-up; peak RSS {row['peak_rss_mb']:.0f} MB"
        )
        if args.tf_venv and name in TF_MODEL:
            tf = tf_baseline(args.tf_venv, files, name, policy)
            row["tf"] = tf
            print(f"  TensorFlow original ({TF_MODEL[name]}), same excerpts:")
            print(
                f"    model       {st['audio_seconds'] / tf['model_seconds']:8.0f}x realtime"
                f"  -> ours is {row['model_x'] / (st['audio_seconds'] / tf['model_seconds']):.2f}x"
                f" faster"
            )
            print(
                f"    end to end  {st['audio_seconds'] / tf['e2e_seconds']:8.0f}x realtime"
                f"  -> ours is {tf['e2e_seconds'] / row['e2e_seconds']:.2f}x faster"
            )
        results[name] = row
    out = REPO / "benchmarks" / "out" / "embed_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float))
    print(f"\nfigures saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
