"""A synthetic 100,000-track project for the desktop-app benchmarks.

    python benchmarks/_synthetic_project.py [--tracks 100000] [--out DIR] [--force]

Builds, once (reused when complete), under ``benchmarks/out/`` (gitignored):

``library/``
    ``Artist NNNN/Album NN/NN Title.flac``: real FLAC files of digital
    silence (8 kHz mono, 2-6 minutes long so the Duration column is
    plausible; about 3-8 KB each because FLAC stores silence as constant
    subframes), with title / artist / album / genre Vorbis comments. They
    are written as bytes from a few encoded templates (libsndfile encodes
    one per length, the comment block is built here), which is what makes
    100,000 files take a minute rather than an hour.
``library/.tagger/project.sqlite``
    Filled by the store's own sync path (:meth:`Project.sync_library`: scan,
    mutagen tags, fingerprint, batched inserts), exactly as the app does on
    first open.
``library/.tagger/embeddings.h5``
    One ``musicnn-msd`` row per file, registered with the real backend's
    metadata (name, version, outputs, params, tag names) and written through
    :meth:`EmbeddingCache.write_batch` with each file's real size and mtime,
    so :func:`embed_library` finds every file up to date and the app opens
    the cache as it would a real one. Every track has 10 patches of
    ``mean_pool`` / ``max_pool`` (753 each), ``penultimate`` (200) and
    ``taggram`` (50) float32 outputs; the cache stores the clip means
    (float32) and the per-patch ``penultimate`` and ``taggram`` (float16),
    as for a real run. The vectors are ReLU'd Gaussian noise around one
    centre per album plus 20 hidden "tag" directions, so a probe has
    something to find and albums are correlated as in real libraries.

A ``.complete`` marker (with the parameters) is written last; a partial
build (killed half way) is rebuilt from scratch.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "benchmarks" / "out" / "synthetic_project"
DEFAULT_TRACKS = 100_000
TRACKS_PER_ALBUM = 10
ALBUMS_PER_ARTIST = 4
PATCHES = 10
N_TAGS = 20
_GENRES = ("Rock", "Jazz", "Electronic", "Classical", "Hip-Hop", "Folk", "Ambient", "Pop")
_WORDS = (
    "blue night river song lost light city dream fire rain heart road moon "
    "stone glass silver winter summer echo shadow ocean"
).split()
_SR = 8000
_FORMAT = 1  # bump when the layout changes: old builds are rebuilt


def _flac_template(seconds: int) -> tuple[bytes, bytes]:
    """``(streaminfo block body, audio frames)`` of ``seconds`` of 8 kHz silence."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(seconds * _SR, dtype=np.int16), _SR, format="FLAC", subtype="PCM_16")
    data = buf.getvalue()
    if data[:4] != b"fLaC":
        raise RuntimeError("libsndfile did not write a FLAC stream")
    pos, streaminfo = 4, None
    while True:
        header = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if header & 0x7F == 0:
            streaminfo = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if header & 0x80:
            break
    if streaminfo is None:
        raise RuntimeError("no STREAMINFO block in libsndfile's FLAC")
    return streaminfo, data[pos:]


def _vorbis_comment(fields: dict[str, str]) -> bytes:
    vendor = b"tagger_gui benchmark"
    out = [struct.pack("<I", len(vendor)), vendor, struct.pack("<I", len(fields))]
    for key, value in fields.items():
        entry = f"{key.upper()}={value}".encode()
        out += [struct.pack("<I", len(entry)), entry]
    return b"".join(out)


def _flac_bytes(template: tuple[bytes, bytes], fields: dict[str, str]) -> bytes:
    streaminfo, frames = template
    comment = _vorbis_comment(fields)
    return b"".join(
        (
            b"fLaC",
            bytes([0x00]) + len(streaminfo).to_bytes(3, "big"),
            streaminfo,
            bytes([0x84]) + len(comment).to_bytes(3, "big"),  # type 4, last block
            comment,
            frames,
        )
    )


def _track_fields(i: int) -> tuple[str, dict[str, str]]:
    """Relative path and tags of track ``i``."""
    album_i = i // TRACKS_PER_ALBUM
    artist_i = album_i // ALBUMS_PER_ARTIST
    n = i % TRACKS_PER_ALBUM + 1
    w = _WORDS
    title = f"{w[i % len(w)].title()} {w[(i // 7) % len(w)]} {i}"
    artist = f"Artist {artist_i:04d}"
    album = f"Album {album_i % ALBUMS_PER_ARTIST + 1:02d} of {artist}"
    relpath = f"{artist}/Album {album_i % ALBUMS_PER_ARTIST + 1:02d}/{n:02d} {title}.flac"
    genre = _GENRES[artist_i % len(_GENRES)]
    return relpath, {"title": title, "artist": artist, "album": album, "genre": genre}


def _write_library(root: Path, n_tracks: int) -> float:
    t = time.perf_counter()
    templates = [_flac_template(s) for s in (120, 150, 180, 210, 240, 300, 360)]
    made: set[Path] = set()
    for i in range(n_tracks):
        relpath, fields = _track_fields(i)
        path = root / relpath
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(_flac_bytes(templates[(i * 7919) % len(templates)], fields))
    return time.perf_counter() - t


def _sync(root: Path) -> tuple[float, int]:
    from tagger_gui.core.project.store import Project
    from tagger_gui.core.tasks import run_task

    t = time.perf_counter()
    project = Project.create(None, root)
    try:
        report = run_task(project.sync_library())
        count = project.track_count()[0]
    finally:
        project.close()
    if report.problems:
        raise RuntimeError(f"sync problems: {report.problems[:3]}")
    return time.perf_counter() - t, count


def _write_cache(root: Path, n_tracks: int, seed: int, batch: int = 500) -> float:
    from tagger_gui.core.cache import EmbeddedTrack, EmbeddingCache, default_cache_path
    from tagger_gui.core.embed_job import _key
    from tagger_gui.core.embeddings import load_backend
    from tagger_gui.core.library import LibraryFile, scan_library

    t = time.perf_counter()
    backend = load_backend("musicnn-msd")  # metadata only: the model is loaded lazily
    files = [f for f in scan_library(root) if isinstance(f, LibraryFile)]
    if len(files) != n_tracks:
        raise RuntimeError(f"{root}: {len(files)} files, expected {n_tracks}")
    outputs = dict(backend.outputs)
    rng = np.random.default_rng(seed)
    n_albums = -(-n_tracks // TRACKS_PER_ALBUM)
    # per-output album centres and tag directions, small enough to keep in memory
    centres = {
        o: rng.gamma(2.0, 0.05, (n_albums, d)).astype(np.float32) for o, d in outputs.items()
    }
    tag_dirs = {o: rng.standard_normal((N_TAGS, d)).astype(np.float32) for o, d in outputs.items()}
    track_tags = (rng.random((n_tracks, N_TAGS)) < 0.05).astype(np.float32)
    index = {_track_fields(i)[0]: i for i in range(n_tracks)}
    path = default_cache_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddingCache.open(path, mode="a", library_root=root) as cache:
        key = _key(backend)
        cache.register_backend(
            key,
            name=backend.name,
            version=backend.version,
            outputs=outputs,
            params=dict(backend.params),
            tag_names=dict(backend.tag_names),
        )
        for lo in range(0, len(files), batch):
            chunk = files[lo : lo + batch]
            ids = np.array([index[f.relpath] for f in chunk])
            albums = ids // TRACKS_PER_ALBUM
            records = []
            per_output = {}
            for o, d in outputs.items():
                base = centres[o][albums] + 0.08 * (track_tags[ids] @ tag_dirs[o])
                noise = rng.standard_normal((len(chunk), PATCHES, d), dtype=np.float32)
                patches = base[:, None, :] + 0.05 * noise
                np.maximum(patches, 0.0, out=patches)
                if o == "taggram":
                    patches = np.minimum(patches, 1.0)
                per_output[o] = patches
            for j, f in enumerate(chunk):
                duration = 120.0 + (int(ids[j]) * 7919) % 7 * 30.0
                starts = (np.arange(PATCHES) + 0.5) * duration / PATCHES - 1.5
                records.append(
                    EmbeddedTrack(
                        relpath=f.relpath,
                        size=f.size,
                        mtime_ns=f.mtime_ns,
                        duration=duration,
                        short=False,
                        starts=starts.astype(np.float32),
                        patches={o: per_output[o][j] for o in outputs},
                    )
                )
            cache.write_batch(key, records)
    return time.perf_counter() - t


def out_dir(n_tracks: int = DEFAULT_TRACKS) -> Path:
    """Where the project of ``n_tracks`` tracks is built."""
    return (
        DEFAULT_OUT
        if n_tracks == DEFAULT_TRACKS
        else DEFAULT_OUT.with_name(f"synthetic_{n_tracks}")
    )


def build(out: Path = DEFAULT_OUT, *, n_tracks: int = DEFAULT_TRACKS, force: bool = False) -> Path:
    """Build the synthetic project (or reuse a complete one); returns the library folder.

    Parameters
    ----------
    out : Path
        Where it goes (default ``benchmarks/out/synthetic_project``).
    n_tracks : int, keyword-only
    force : bool, keyword-only
        Rebuild even when a complete build is there.
    """
    root = out / "library"
    marker = out / ".complete"
    params = {"format": _FORMAT, "tracks": n_tracks}
    if not force and marker.exists():
        try:
            if json.loads(marker.read_text()).get("params") == params:
                return root
        except (OSError, ValueError):
            pass
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    timings = {"files": _write_library(root, n_tracks)}
    print(f"  {n_tracks} files written in {timings['files']:.0f} s", flush=True)
    timings["sync"], count = _sync(root)
    print(f"  project synced ({count} tracks) in {timings['sync']:.0f} s", flush=True)
    if count != n_tracks:
        raise RuntimeError(f"the sync found {count} tracks, expected {n_tracks}")
    timings["cache"] = _write_cache(root, n_tracks, seed=0)
    print(f"  embeddings cache written in {timings['cache']:.0f} s", flush=True)
    marker.write_text(json.dumps({"params": params, "seconds": timings}))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=DEFAULT_TRACKS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or out_dir(args.tracks)
    t = time.perf_counter()
    root = build(out, n_tracks=args.tracks, force=args.force)
    size = sum(f.stat().st_size for f in (root / ".tagger").iterdir() if f.is_file())
    print(f"{root}: ready ({time.perf_counter() - t:.0f} s; project + cache {size / 2**20:.0f} MB)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
