"""Peak memory of `tagger embed` on a library of many files (default 10,000).

    python benchmarks/embed_memory.py [--files 10000] [--dir DIR]

Writes N distinct short music-like FLAC files (3.5 s, 22.05 kHz, in folders of
500) once into DIR (default benchmarks/out/many_files), then runs a real
``tagger embed`` into a fresh cache while sampling the resident memory of the
process and its workers every 50 ms, and then opens the cache and loads every
clip vector, as the app will. Prints the peak RSS of each step.
The target is a peak under 1.5 GB for 10,000 files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from _measure import run_with_peak_rss  # noqa: E402
from conftest import music_like  # noqa: E402


def make_library(root: Path, n: int) -> None:
    done = root / f".complete-{n}"
    if done.exists():
        return
    for i in range(n):
        path = root / f"folder {i // 500:03d}" / f"track {i:05d}.flac"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, music_like(3.5, 22050, 1, seed=i), 22050, subtype="PCM_16")
    done.touch()


LOAD_ALL = """
import sys
from tagger_gui.core.cache import EmbeddingCache
with EmbeddingCache.open(sys.argv[1]) as c:
    key = c.backends()[0]
    rel, x = c.load(key, ["mean_pool", "max_pool"])
    print(len(rel), x.shape)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=REPO / "benchmarks" / "out" / "many_files")
    args = parser.parse_args(argv)
    t = time.perf_counter()
    make_library(args.dir, args.files)
    print(f"library: {args.files} files in {args.dir} (made in {time.perf_counter() - t:.0f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.h5"
        embed = [sys.executable, "-m", "tagger_gui", "embed", str(args.dir), "--cache", str(cache)]
        mb, sec, out = run_with_peak_rss([*embed, "--quiet"])
        speed = [line.strip() for line in out.splitlines() if "speed" in line]
        print(
            f"tagger embed: peak RSS {mb:.0f} MB (process + workers), {sec:.0f} s; "
            f"{speed[0] if speed else ''}"
        )
        print(f"cache size: {cache.stat().st_size / 2**20:.0f} MB")
        mb2, sec2, out2 = run_with_peak_rss([sys.executable, "-c", LOAD_ALL, str(cache)])
        print(
            f"open cache + load all clip vectors ({out2.strip()}): peak RSS {mb2:.0f} MB, "
            f"{sec2:.1f} s"
        )
        mb3, sec3, _ = run_with_peak_rss([*embed, "--quiet"])
        print(f"second run (nothing to do): peak RSS {mb3:.0f} MB, {sec3:.1f} s")
    print(f"target: peak under 1536 MB -> {'met' if max(mb, mb2, mb3) < 1536 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
