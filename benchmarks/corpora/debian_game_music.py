"""Real, freely licensed music from Debian's game soundtrack packages.

Downloads the packages with ``apt-get download`` (no install, no root needed
beyond apt's list), unpacks them with ``dpkg-deb -x`` and links every music
file (at least ``--min-seconds`` long, so sound effects are left out) into
``OUT/<package>/<path inside the package>``.

    python benchmarks/corpora/debian_game_music.py OUT [--packages P ...]

The music keeps its own licences (see each package's copyright file, copied
next to the music as ``OUT/<package>/COPYRIGHT``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

PACKAGES = [
    "warzone2100-music",
    "wesnoth-1.16-music",
    "supertux-data",
    "hedgewars-data",
    "frozen-bubble-data",
]
MUSIC_SUFFIXES = {".ogg", ".opus", ".mp3", ".flac", ".wav"}


def fetch(package: str, downloads: Path) -> Path:
    """The package's .deb in ``downloads``, fetched with apt-get if missing."""
    downloads.mkdir(parents=True, exist_ok=True)
    found = sorted(downloads.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=downloads, check=True)
        found = sorted(downloads.glob(f"{package}_*.deb"))
    return found[-1]


def build(out: Path, packages: list[str], *, min_seconds: float = 20.0) -> list[Path]:
    """Unpack ``packages`` and link their music files under ``out``."""
    out = out.resolve()
    files: list[Path] = []
    for package in packages:
        deb = fetch(package, out / ".debs")
        unpacked = out / ".unpacked" / package
        if not unpacked.exists():
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
                shutil.move(tmp, unpacked)
        target_root = out / package
        for src in sorted(unpacked.rglob("*")):
            if src.suffix.lower() not in MUSIC_SUFFIXES or not src.is_file():
                continue
            try:
                if sf.info(src).duration < min_seconds:
                    continue
            except sf.LibsndfileError:
                continue
            dst = target_root / src.relative_to(unpacked / "usr" / "share")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(src)
            files.append(dst)
        for copyright_file in unpacked.glob("usr/share/doc/*/copyright"):
            shutil.copyfile(copyright_file, target_root / "COPYRIGHT")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--packages", nargs="+", default=PACKAGES, choices=PACKAGES)
    parser.add_argument("--min-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    files = build(args.out, args.packages, min_seconds=args.min_seconds)
    total = sum(sf.info(f).duration for f in files)
    print(f"{len(files)} music files, {total / 3600:.2f} h, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
