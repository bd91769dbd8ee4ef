"""A weak-label benchmark corpus of real, freely licensed music from Debian's game soundtracks.

Downloads the packages with ``apt-get download`` (no install, no root needed
beyond apt's package lists), unpacks them (``dpkg-deb --fsys-tarfile``),
takes every music file of each package (see ``LAYOUTS``: the package's music folder, files
of at least ``--min-seconds``, minus a short list of jingles) and cuts it into
consecutive, non-overlapping clips of ``--clip-seconds`` (30 s): mono, 22,050
Hz, 16-bit FLAC, tagged (title, album, artist, tracknumber) with mutagen::

    python benchmarks/corpora/debian_game_music.py OUT [--packages P ...]
        [--clip-seconds 30] [--max-clips-per-track 12]

Output (every path relative to ``OUT``):

- ``clips/<package>/<track>/<track>_cNN.flac``: the clips of one track share a
  folder; ``NN`` is the clip's position in the track (clip ``NN`` starts at
  ``NN * clip_seconds``). A final remainder shorter than ``--min-remainder``
  (15 s) is dropped, a longer one is kept as a shorter clip. A track with more
  than ``--max-clips-per-track`` clips keeps that many, evenly spread over the
  whole track (first and last included), so long tracks do not dominate.
- ``labels.csv``: ``path,tag,group`` (one row per clip and tag; paths
  relative to ``OUT/clips``; group = ``<package>/<track>``), for
  ``tagger embed OUT/clips`` then ``tagger eval OUT/labels.csv --root OUT/clips``.
- ``tracks.csv``: one row per track; ``README.md``: what is where and the
  licences; ``clips/<package>/COPYRIGHT``: the package's copyright file.

Tags: ``soundtrack:<game>`` for every clip, plus finer tags where the files
carry them: the Warzone 2100 album (the ``albums/<album>/`` folder and its
``album.json``; the Opus files have no tags), the SuperTux world (the music
folder, see ``SUPERTUX_WORLDS`` in
``tagger_gui/core/demo.py``), the Wesnoth composer (the Vorbis ``composer``
or ``artist`` tag). Finer tags with fewer than ``--min-tracks`` (3) tracks are
left out of ``labels.csv`` (they cannot be evaluated grouped by track).

Re-running skips clips already written (each clip is written to a temporary
name and renamed when complete). The clipping and tagging work on an unpacked
package folder (``build_package``), so they run without network.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf
import soxr
from mutagen.flac import FLAC

# Where each package keeps its music and how its files are described is shared
# with the app's demo library (tagger_gui/core/demo.py).
from tagger_gui.core.demo import (
    LAYOUTS,
    MUSIC_SUFFIXES,
    DemoError,
    fetch_deb,
    music_files,
    slug,
    unpack_deb,
)
from tagger_gui.core.demo import (
    copy_licences as _copy_licences,
)
from tagger_gui.core.demo import describe_music_file as describe
from tagger_gui.core.tasks import run_task

__all__ = ["LAYOUTS", "MUSIC_SUFFIXES", "describe", "music_files", "slug"]

PACKAGES = [
    "warzone2100-music",
    "wesnoth-1.16-music",
    "supertux-data",
    "hedgewars-data",
    "frozen-bubble-data",
]
SAMPLE_RATE = 22050
BLOCK_FRAMES = 1 << 16  # read and write long audio in blocks of this many frames
SILENT_RMS = 1e-4  # a clip quieter than this (-80 dBFS) is not written


@dataclass
class Track:
    """One source music file and what the corpus makes of it."""

    package: str
    source: str  # path inside the unpacked package, forward slashes
    slug: str
    title: str
    album: str
    artist: str
    tracknumber: str
    discnumber: str
    duration: float
    tags: list[str]
    clips: list[str] = field(default_factory=list)  # paths relative to OUT

    @property
    def group(self) -> str:
        return f"{self.package}/{self.slug}"


# ---------------------------------------------------------------- audio


def plan_clips(
    n_samples: int, sr: int, clip_seconds: float, min_remainder: float, max_clips: int | None
) -> list[tuple[int, int, int]]:
    """(clip number, start, stop) in samples: consecutive clips of ``clip_seconds``.

    A final remainder shorter than ``min_remainder`` seconds is dropped; with
    more than ``max_clips`` clips, that many are kept, evenly spread.
    """
    clip = round(clip_seconds * sr)
    n_full = n_samples // clip
    cells = [(i, i * clip, (i + 1) * clip) for i in range(n_full)]
    if n_samples - n_full * clip >= round(min_remainder * sr):
        cells.append((n_full, n_full * clip, n_samples))
    if max_clips and len(cells) > max_clips:
        picks = np.unique(np.linspace(0, len(cells) - 1, max_clips).round().astype(int))
        cells = [cells[i] for i in picks]
    return cells


def decode_mono(path: Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The whole file, downmixed to mono and resampled to ``sr`` (float32), read in blocks."""
    parts = []
    with sf.SoundFile(path) as f:
        stream = soxr.ResampleStream(f.samplerate, sr, 1, dtype="float32", quality="HQ")
        while True:
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            last = len(block) < BLOCK_FRAMES
            parts.append(stream.resample_chunk(block.mean(axis=1), last=last))
            if last:
                break
    return np.concatenate(parts)


def write_clip(dst: Path, y: np.ndarray, sr: int, tags: dict[str, str]) -> None:
    """Write ``y`` as 16-bit mono FLAC in blocks, tag it, and move it into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    y = np.clip(y, -1.0, 1.0)
    with sf.SoundFile(tmp, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for i in range(0, len(y), BLOCK_FRAMES):
            f.write(y[i : i + BLOCK_FRAMES])
    flac = FLAC(tmp)
    for key, value in tags.items():
        if value:
            flac[key] = value
    flac.save()
    os.replace(tmp, dst)


# ---------------------------------------------------------------- building


def build_package(
    package: str,
    unpacked: Path,
    out: Path,
    *,
    clip_seconds: float = 30.0,
    max_clips: int | None = 12,
    min_seconds: float = 20.0,
    min_remainder: float = 15.0,
    sr: int = SAMPLE_RATE,
    log=print,
) -> list[Track]:
    """Cut the music of one unpacked package into tagged clips under ``out/clips/<package>``.

    ``unpacked`` is the package's root as ``dpkg-deb -x`` leaves it. Clips
    that exist are not written again; a track is decoded only when one of its
    clips is missing. Returns the tracks with their clips and tags.
    """
    out = Path(out)
    files = music_files(package, unpacked, min_seconds=min_seconds)
    slugs = Counter(slug(PurePosixPath(rel).stem) for _, rel in files)
    tracks: list[Track] = []
    for number, (src, rel) in enumerate(files, 1):
        relp = PurePosixPath(rel)
        name = slug(relp.stem)
        if slugs[name] > 1:  # the same file name in two folders
            name = slug(f"{relp.parent.as_posix()}-{relp.stem}")
        info = sf.info(src)
        meta = describe(package, src, relp, info.duration)
        track = Track(
            package=package,
            source=src.relative_to(unpacked).as_posix(),
            slug=name,
            tracknumber=meta.pop("tracknumber") or str(number),
            **meta,
        )
        expected = round(info.frames * sr / info.samplerate)
        cells = plan_clips(expected, sr, clip_seconds, min_remainder, max_clips)
        folder = out / "clips" / package / name
        wanted = [(c, a, b, folder / f"{name}_c{c:02d}.flac") for c, a, b in cells]
        missing = [w for w in wanted if not w[3].exists() and not _silent_marker(w[3]).exists()]
        if missing:
            y = decode_mono(src, sr)
            for c, a, b, dst in missing:
                clip = y[a : min(b, len(y))]
                if len(clip) == 0 or float(np.sqrt(np.mean(clip.astype(np.float64) ** 2))) < (
                    SILENT_RMS
                ):
                    log(f"  silent, not written: {dst.relative_to(out)}")
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    _silent_marker(dst).touch()
                    continue
                write_clip(dst, clip, sr, _clip_tags(track, package, c, a / sr, len(clip) / sr))
        track.clips = [w[3].relative_to(out).as_posix() for w in wanted if w[3].exists()]
        tracks.append(track)
    return tracks


def _silent_marker(dst: Path) -> Path:
    return dst.with_name(dst.name + ".silent")


def _clip_tags(track: Track, package: str, n: int, start: float, seconds: float) -> dict:
    return {
        "title": track.title,
        "album": track.album,
        "artist": track.artist,
        "tracknumber": track.tracknumber,
        "discnumber": track.discnumber,
        "comment": f"{package}: {track.source}, clip {n} ({start:.0f}-{start + seconds:.0f} s)",
    }


def tag_table(tracks: Iterable[Track], *, min_tracks: int = 3) -> tuple[dict, dict]:
    """({tag: (clips, tracks)} kept, {tag: (clips, tracks)} dropped).

    Soundtrack tags are always kept; a finer tag needs ``min_tracks`` tracks.
    """
    clips: Counter = Counter()
    n_tracks: Counter = Counter()
    for t in tracks:
        if not t.clips:
            continue
        for tag in t.tags:
            clips[tag] += len(t.clips)
            n_tracks[tag] += 1
    kept, dropped = {}, {}
    for tag in sorted(clips):
        coarse = tag.startswith("soundtrack:")
        (kept if coarse or n_tracks[tag] >= min_tracks else dropped)[tag] = (
            clips[tag],
            n_tracks[tag],
        )
    return kept, dropped


def write_tables(out: Path, tracks: list[Track], *, min_tracks: int = 3) -> tuple[dict, dict]:
    """Write ``labels.csv`` and ``tracks.csv``; returns ``tag_table``'s result."""
    kept, dropped = tag_table(tracks, min_tracks=min_tracks)
    # paths relative to clips/, the folder `tagger embed` analyses (its cache keys)
    rows = sorted(
        (clip.removeprefix("clips/"), tag, t.group)
        for t in tracks
        for clip in t.clips
        for tag in t.tags
        if tag in kept
    )
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "tag", "group"])
        w.writerows(rows)
    with open(out / "tracks.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["group", "package", "source", "title", "album", "artist", "duration", "clips"])
        for t in tracks:
            duration = f"{t.duration:.1f}"
            w.writerow(
                [t.group, t.package, t.source, t.title, t.album, t.artist, duration, len(t.clips)]
            )
    return kept, dropped


def fetch(package: str, downloads: Path) -> Path:
    """The package's .deb in ``downloads``, fetched with apt-get if missing."""
    return run_task(fetch_deb(package, downloads))


def unpack(package: str, out: Path, downloads: Path) -> tuple[Path, Path]:
    """(unpacked root, .deb) of ``package``, unpacked under ``out/.unpacked`` once."""
    deb = fetch(package, downloads)
    return run_task(unpack_deb(deb, out / ".unpacked" / package)), deb


def copy_licences(package: str, unpacked: Path, out: Path) -> None:
    _copy_licences(unpacked, out / "clips" / package)


def build_corpus(
    out: Path,
    packages: list[str],
    *,
    downloads: Path | None = None,
    min_tracks: int = 3,
    log=print,
    **clip_options,
) -> tuple[list[Track], dict, dict]:
    """Download, unpack and cut ``packages``; write the tables and README under ``out``."""
    out = Path(out).resolve()
    downloads = Path(downloads) if downloads else out / ".debs"
    tracks: list[Track] = []
    debs = {}
    for package in packages:
        unpacked, deb = unpack(package, out, downloads)
        debs[package] = deb.name
        log(f"{package}: cutting clips")
        tracks += build_package(package, unpacked, out, log=log, **clip_options)
        copy_licences(package, unpacked, out)
    kept, dropped = write_tables(out, tracks, min_tracks=min_tracks)
    write_readme(out, tracks, kept, dropped, debs, min_tracks=min_tracks, **clip_options)
    return tracks, kept, dropped


def summary(tracks: list[Track], kept: dict, dropped: dict, clip_seconds: float) -> str:
    """A plain-text summary: per package, then the tag table."""
    lines = [f"{'package':<22} {'tracks':>6} {'clips':>6} {'hours':>6} {'source h':>8}"]
    for package in dict.fromkeys(t.package for t in tracks):
        ts = [t for t in tracks if t.package == package and t.clips]
        clips = sum(len(t.clips) for t in ts)
        lines.append(
            f"{package:<22} {len(ts):>6} {clips:>6} {_clip_hours(ts, clip_seconds):>6.2f} "
            f"{sum(t.duration for t in ts) / 3600:>8.2f}"
        )
    used = [t for t in tracks if t.clips]
    lines.append(
        f"{'total':<22} {len(used):>6} {sum(len(t.clips) for t in used):>6} "
        f"{_clip_hours(used, clip_seconds):>6.2f} {sum(t.duration for t in used) / 3600:>8.2f}"
    )
    lines += ["", f"{'tag':<44} {'clips':>6} {'tracks':>6}"]
    lines += [f"{tag:<44} {c:>6} {n:>6}" for tag, (c, n) in kept.items()]
    if dropped:
        lines += ["", "dropped (fewer tracks than --min-tracks, not in labels.csv):"]
        lines += [f"  {tag:<42} {c:>6} {n:>6}" for tag, (c, n) in dropped.items()]
    return "\n".join(lines)


def _clip_hours(tracks: list[Track], clip_seconds: float) -> float:
    """Hours of clip audio: full clips plus the exact length of each last, shorter clip."""
    total = 0.0
    for t in tracks:
        for clip in t.clips:
            n = int(clip.rsplit("_c", 1)[1].split(".")[0])
            total += min(clip_seconds, t.duration - n * clip_seconds)
    return total / 3600


def write_readme(
    out: Path,
    tracks: list[Track],
    kept: dict,
    dropped: dict,
    debs: dict,
    *,
    min_tracks: int,
    clip_seconds: float = 30.0,
    max_clips: int | None = 12,
    min_seconds: float = 20.0,
    min_remainder: float = 15.0,
    **_,
) -> None:
    licences = "\n".join(
        f"| {p} | `{debs[p]}` | {LAYOUTS[p].licence} | `clips/{p}/COPYRIGHT` |" for p in debs
    )
    text = f"""# Debian game music: a weak-label benchmark corpus

Built by `benchmarks/corpora/debian_game_music.py` (tagger_gui) from Debian's
game packages. Each music file (at least {min_seconds:g} s; sound effects and
jingles left out) is cut into consecutive {clip_seconds:g}-s clips (mono, {SAMPLE_RATE}
Hz, 16-bit FLAC; a last part shorter than {min_remainder:g} s dropped; at most
{max_clips} clips per track, evenly spread). Clips of one track share a folder.

- `labels.csv`: `path,tag,group`, paths relative to `clips/`, group =
  `<package>/<track>`. Tags: `soundtrack:*` for every clip; finer tags
  (`warzone-album:*`, `supertux-world:*`, `wesnoth-composer:*`) where at least
  {min_tracks} tracks carry them.
- `tracks.csv`: every track, its source file, title, album, artist, duration, clips.
- `clips/`: the audio; each clip carries title, album, artist and tracknumber tags.

```
{summary(tracks, kept, dropped, clip_seconds)}
```

## Licences

The music keeps the licence it has in Debian: a free licence that allows
redistribution of modified copies (these clips) under the same terms, with
attribution. The package's copyright file is the authoritative statement.

| package | .deb | licence of the music | copyright file |
|---|---|---|---|
{licences}
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def build(out: Path, packages: list[str], *, min_seconds: float = 20.0) -> list[Path]:
    """Link the whole music files of ``packages`` under ``out/<package>/`` (no clips).

    The corpus of whole tracks that ``benchmarks/embed_speed.py`` times.
    """
    out = Path(out).resolve()
    files: list[Path] = []
    for package in packages:
        unpacked, _ = unpack(package, out, out / ".debs")
        for src, _rel in music_files(package, unpacked, min_seconds=min_seconds):
            dst = out / package / src.relative_to(unpacked / "usr" / "share")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(src)
            files.append(dst)
        for copyright_file in unpacked.glob("usr/share/doc/*/copyright"):
            shutil.copyfile(copyright_file, out / package / "COPYRIGHT")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--packages", nargs="+", default=PACKAGES, choices=PACKAGES)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument(
        "--max-clips-per-track", type=int, default=12, help="0 for no limit (default 12)"
    )
    parser.add_argument(
        "--min-seconds", type=float, default=20.0, help="shorter files are left out"
    )
    parser.add_argument("--min-remainder", type=float, default=15.0)
    parser.add_argument("--min-tracks", type=int, default=3, help="for a finer tag to be kept")
    parser.add_argument("--debs", type=Path, help="where the .deb files are (default OUT/.debs)")
    args = parser.parse_args(argv)
    options = dict(
        clip_seconds=args.clip_seconds,
        max_clips=args.max_clips_per_track or None,
        min_seconds=args.min_seconds,
        min_remainder=args.min_remainder,
    )
    try:
        tracks, kept, dropped = build_corpus(
            args.out, args.packages, downloads=args.debs, min_tracks=args.min_tracks, **options
        )
    except DemoError as exc:  # no apt, no network, unknown package: said in plain words
        print(f"debian_game_music: {exc}", file=sys.stderr)
        return 1
    print()
    print(summary(tracks, kept, dropped, args.clip_seconds))
    print(f"\nlabels: {args.out / 'labels.csv'}  tracks: {args.out / 'tracks.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
