"""The HDF5 embedding cache of one music library.

One file (by default ``<library>/.tagger/embeddings.h5``, see
:func:`default_cache_path`) holds, for every backend ``name@version``, the
clip-level vector of each output, patch-level arrays for a few outputs, the
identity of every embedded file (path relative to the library root, size,
mtime) and the files that failed. ``docs/cache.md`` describes the on-disk
layout, the commit protocol and the crash-safety evidence.

Crash safety and concurrent reading come from HDF5's single-writer /
multiple-reader (SWMR) mode plus a commit record:

* every table is a set of chunked, extendable datasets whose *length is only
  a capacity*; the number of valid rows of each table lives in a small
  ``commit`` dataset (two checksummed slots, written alternately);
* a batch writes its rows past the committed counts, flushes, then writes the
  new counts to the commit record and flushes again. A reader reads the
  commit record first and never looks past it, so a torn batch is never
  visible, and a writer killed at any moment leaves the last commit intact;
* rows are never rewritten: replacing or deleting a row stamps its
  ``deleted_seq`` column with the sequence number of the commit that
  deletes it, which only takes effect once that commit is recorded;
* HDF5 cannot create objects in SWMR mode, so creating the file, adding a
  backend, :meth:`EmbeddingCache.compact` and format migrations build a new
  file under a temporary name and move it into place with ``os.replace``.

Example
-------
>>> with EmbeddingCache.open(path, "a", library_root=root) as cache:  # doctest: +SKIP
...     cache.register_backend(key, name=b.name, version=b.version,
...                            outputs=b.outputs, params=b.params,
...                            tag_names=b.tag_names)
...     to_embed, unchanged = cache.plan(key, files)
...     cache.write_batch(key, records)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tagger_gui import __version__ as APP_VERSION
from tagger_gui.core.errors import CacheError

__all__ = [
    "DEFAULT_PATCH_OUTPUTS",
    "FORMAT_VERSION",
    "EmbeddedTrack",
    "EmbeddingCache",
    "TrackTable",
    "backend_key",
    "default_cache_path",
    "sanity_check",
]

#: Version of the on-disk layout. Bump it (and add a step to ``_MIGRATIONS``)
#: whenever the layout changes.
FORMAT_VERSION = 1
FORMAT_NAME = "tagger_gui.embedding_cache"
DEFAULT_PATCH_OUTPUTS = ("penultimate", "taggram")

CACHE_DIRNAME = ".tagger"
CACHE_FILENAME = "embeddings.h5"

# The 1.10 file format is the oldest that supports SWMR; pinning the upper
# bound too keeps the file readable by any HDF5 >= 1.10 (h5py >= 2.6).
_LIBVER = ("v110", "v110")
_WRITER_CHUNK_CACHE = 4 * 1024 * 1024

# Commit record: two slots of _COMMIT_WIDTH int64, the last one a checksum.
_COMMIT_FIELDS = ("seq", "tracks", "patches", "failures", "string_bytes")
_COMMIT_WIDTH = 8

_TRACK_COLUMNS: dict[str, str] = {
    "path_start": "i8",
    "path_len": "i4",
    "size": "i8",
    "mtime_ns": "i8",
    "duration": "f8",
    "short": "u1",
    "n_patches": "i4",
    "patch_offset": "i8",
    "embedded_at": "f8",
    "clip_hash": "u8",
    "deleted_seq": "i8",
}
_FAILURE_COLUMNS: dict[str, str] = {
    "path_start": "i8",
    "path_len": "i4",
    "reason_start": "i8",
    "reason_len": "i4",
    "size": "i8",
    "mtime_ns": "i8",
    "failed_at": "f8",
    "deleted_seq": "i8",
}
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_NONFINITE = "the embedding has NaN or inf values"


#: Seconds a writer waits for readers of the same process to close the file.
WRITER_OPEN_WAIT_S = 60.0


def default_cache_path(library_root: str | os.PathLike) -> Path:
    """Where the cache of the library at ``library_root`` lives by default.

    That is ``<library_root>/.tagger/embeddings.h5``, or, when the library
    folder is read-only (an archive, a CD image) and has no cache yet,
    ``$XDG_CACHE_HOME/tagger_gui/<folder name>-<hash of its path>/embeddings.h5``.
    The caller may put the cache anywhere else (a faster disk, say).
    """
    local = Path(library_root) / CACHE_DIRNAME / CACHE_FILENAME
    if (
        local.exists()
        or not local.parent.parent.is_dir()
        or os.access(local.parent.parent, os.W_OK)
    ):
        return local
    root = local.parent.parent.resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    digest = hashlib.sha1(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return base / "tagger_gui" / f"{root.name}-{digest}" / CACHE_FILENAME


def backend_key(name: str, version: str) -> str:
    """The cache key of a backend: ``"name@version"``."""
    return f"{name}@{version}"


@dataclass
class EmbeddedTrack:
    """One embedded file, as given to :meth:`EmbeddingCache.write_batch`.

    Attributes
    ----------
    relpath : str
        Path relative to the library root, ``/``-separated.
    size, mtime_ns : int
        ``os.stat`` size and ``st_mtime_ns`` of the file that was embedded.
    duration : float
        Length of the audio in seconds.
    short : bool
        True when the audio was shorter than one patch (repeat-padded).
    starts : ndarray, shape (P,)
        Start time of every patch in seconds.
    patches : dict[str, ndarray]
        ``{output: (P, dim) float32}`` for every output of the backend. The
        clip-level vectors (means over patches) are computed by the cache.
    """

    relpath: str
    size: int
    mtime_ns: int
    duration: float
    short: bool
    starts: np.ndarray
    patches: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(eq=False)
class TrackTable:
    """The live tracks of one backend, as parallel arrays (row order).

    ``row`` is the row of each track in the file's track table; it changes
    when the cache is compacted.
    """

    relpath: list[str]
    size: np.ndarray
    mtime_ns: np.ndarray
    duration: np.ndarray
    n_patches: np.ndarray
    short: np.ndarray
    embedded_at: np.ndarray
    row: np.ndarray

    def __len__(self) -> int:
        return len(self.relpath)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _encode_path(relpath: str) -> bytes:
    # surrogateescape round-trips the undecodable bytes of non-UTF-8 file
    # names that os.fsdecode produces on POSIX.
    return relpath.encode("utf-8", "surrogateescape")


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _normalize_relpath(relpath: str) -> str:
    if not isinstance(relpath, str) or not relpath:
        raise ValueError(f"relpath must be a non-empty string, got {relpath!r}")
    if os.sep != "/":
        relpath = relpath.replace(os.sep, "/")
    if relpath.startswith("/") or (len(relpath) > 1 and relpath[1] == ":"):
        raise ValueError(f"relpath must be relative to the library root, got {relpath!r}")
    return relpath


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
        raise ValueError(f"invalid backend key {key!r} (expected 'name@version', no '/')")
    return key


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _grow(capacity: int, needed: int, chunk: int) -> int:
    return max(needed, capacity + capacity // 4, chunk)


def _commit_row(values: Sequence[int]) -> np.ndarray:
    row = np.zeros(_COMMIT_WIDTH, dtype="<i8")
    row[: len(values)] = values
    row[-1] = zlib.crc32(row[:-1].tobytes())
    return row


def _decode_commit(arr: np.ndarray) -> dict[str, int] | None:
    """The newest valid slot of a commit record, or None if none is valid."""
    best = None
    for slot in np.asarray(arr, dtype="<i8").reshape(2, _COMMIT_WIDTH):
        if int(slot[-1]) != zlib.crc32(slot[:-1].tobytes()):
            continue
        values = dict(zip(_COMMIT_FIELDS, (int(v) for v in slot), strict=False))
        if best is None or values["seq"] > best["seq"]:
            best = values
    return best


def _fsync_path(path: str | os.PathLike, *, directory: bool = False) -> None:
    flags = os.O_RDONLY
    if directory:
        if sys.platform == "win32":  # directories cannot be fsync'd there
            return
        flags |= getattr(os, "O_DIRECTORY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(tmp: str, path: str) -> None:
    """Durably move the finished file ``tmp`` over ``path``."""
    _fsync_path(tmp)
    os.replace(tmp, path)
    _fsync_path(os.path.dirname(os.path.abspath(path)) or ".", directory=True)


# --------------------------------------------------------------------------
# Recovering the superblock after a writer was killed
# --------------------------------------------------------------------------

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum of HDF5 metadata."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M32
    i = 0
    while n > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _M32
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _M32
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _M32
        a = (a - c) & _M32
        a ^= _rot(c, 4)
        c = (c + b) & _M32
        b = (b - a) & _M32
        b ^= _rot(a, 6)
        a = (a + c) & _M32
        c = (c - b) & _M32
        c ^= _rot(b, 8)
        b = (b + a) & _M32
        a = (a - c) & _M32
        a ^= _rot(c, 16)
        c = (c + b) & _M32
        b = (b - a) & _M32
        b ^= _rot(a, 19)
        a = (a + c) & _M32
        c = (c - b) & _M32
        c ^= _rot(b, 4)
        b = (b + a) & _M32
        n -= 12
        i += 12
    if n == 0:
        return c
    tail = data[i : i + n] + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M32
    b = (b + int.from_bytes(tail[4:8], "little")) & _M32
    c = (c + int.from_bytes(tail[8:12], "little")) & _M32
    c ^= b
    c = (c - _rot(b, 14)) & _M32
    a ^= c
    a = (a - _rot(c, 11)) & _M32
    b ^= a
    b = (b - _rot(a, 25)) & _M32
    c ^= b
    c = (c - _rot(b, 16)) & _M32
    a ^= c
    a = (a - _rot(c, 4)) & _M32
    b ^= a
    b = (b - _rot(a, 14)) & _M32
    c ^= b
    c = (c - _rot(b, 24)) & _M32
    return c


def _clear_stale_write_flags(path: str) -> bool:
    """Do what ``h5clear -s --increment=0`` does, for a file no one writes.

    A writer that dies leaves the "open for (SWMR) write" flags set in the
    superblock and HDF5 then refuses every write (and non-SWMR read) open.
    The caller must hold the writer lock, so the flags are known to be stale.
    The end-of-allocation address is raised to the file size (space the dead
    writer allocated must not be handed out again) and the file is extended
    to it if it is shorter. Returns True when the superblock was changed.
    """
    with open(path, "r+b") as fh:
        head = bytearray(fh.read(48))
        if len(head) < 48 or head[:8] != _HDF5_SIGNATURE:
            raise CacheError(f"{path} is not an HDF5 file (no signature at offset 0)")
        version, offset_size = head[8], head[9]
        if version < 2:
            return False  # version 0/1 superblocks have no status flags
        if offset_size != 8:
            raise CacheError(f"{path}: unexpected HDF5 offset size {offset_size}")
        (stored,) = struct.unpack_from("<I", head, 44)
        if _lookup3(bytes(head[:44])) != stored:
            raise CacheError(f"{path}: the HDF5 superblock checksum is wrong; the file is damaged")
        flags = head[11]
        (eoa,) = struct.unpack_from("<Q", head, 28)
        size = os.fstat(fh.fileno()).st_size
        if flags == 0:
            return False
        head[11] = 0
        struct.pack_into("<Q", head, 28, max(eoa, size))
        struct.pack_into("<I", head, 44, _lookup3(bytes(head[:44])))
        if size < eoa:
            fh.truncate(eoa)
        fh.seek(0)
        fh.write(head)
        fh.flush()
        os.fsync(fh.fileno())
    return True


# --------------------------------------------------------------------------
# The writer lock (one writer per cache file, across processes)
# --------------------------------------------------------------------------


class _WriterLock:
    """An advisory lock on ``<cache>.lock``, released by the OS if we die."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CacheError(
                f"{self.path[: -len('.lock')]} is already open for writing by another process"
            ) from None
        except PermissionError:  # msvcrt reports a held lock this way
            os.close(fd)
            raise CacheError(
                f"{self.path[: -len('.lock')]} is already open for writing by another process"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops flock/msvcrt locks
            self._fd = None


# --------------------------------------------------------------------------
# Format versions and migrations
# --------------------------------------------------------------------------

#: ``{from_version: step}``: ``step(f)`` upgrades the open (non-SWMR,
#: read-write) file ``f`` from ``from_version`` to ``from_version + 1``. Steps
#: run on a temporary copy that replaces the cache only when all succeeded.
_MIGRATIONS: dict[int, Callable[[h5py.File], None]] = {}


def _read_format_version(f: h5py.File, path: str) -> int:
    if f.attrs.get("format") != FORMAT_NAME or "format_version" not in f.attrs:
        raise CacheError(f"{path} is not a tagger_gui embedding cache")
    return int(f.attrs["format_version"])


def _check_format_version(version: int, path: str, *, writable: bool) -> None:
    if version > FORMAT_VERSION:
        raise CacheError(
            f"{path} uses cache format version {version}, but this tagger_gui "
            f"({APP_VERSION}) only knows versions up to {FORMAT_VERSION}. It was "
            "written by a newer tagger_gui: upgrade tagger_gui, or delete the file "
            "to rebuild the cache."
        )
    if version < FORMAT_VERSION:
        missing = [v for v in range(version, FORMAT_VERSION) if v not in _MIGRATIONS]
        if missing:
            raise CacheError(
                f"{path} uses cache format version {version}, which this tagger_gui "
                f"cannot upgrade to {FORMAT_VERSION}; delete the file to rebuild the cache."
            )
        if not writable:
            raise CacheError(
                f"{path} uses the older cache format version {version}; open it once "
                f"for writing (mode 'a') to upgrade it to version {FORMAT_VERSION}."
            )


def _migrate(path: str, tmp: str, version: int) -> None:
    shutil.copyfile(path, tmp)
    _clear_stale_write_flags(tmp)
    with h5py.File(tmp, "r+", libver=_LIBVER, locking=False) as f:
        for v in range(version, FORMAT_VERSION):
            _MIGRATIONS[v](f)
            f.attrs["format_version"] = v + 1
        f.attrs["app_version"] = APP_VERSION
    _replace(tmp, path)


# --------------------------------------------------------------------------
# Per-backend state
# --------------------------------------------------------------------------


def _create_backend_group(
    f: h5py.File, key: str, meta: dict[str, Any], counts: dict[str, int] | None = None
) -> h5py.Group:
    """Create the (empty) datasets of one backend in a non-SWMR file."""
    g = f["backends"].create_group(key)
    g.attrs["key"] = key
    g.attrs["name"] = meta["name"]
    g.attrs["version"] = meta["version"]
    g.attrs["outputs"] = json.dumps(meta["outputs"])
    g.attrs["params"] = _canonical_json(meta["params"])
    g.attrs["tag_names"] = _canonical_json(meta["tag_names"])
    g.attrs["patch_outputs"] = json.dumps(list(meta["patch_outputs"]))
    g.attrs["registered_at"] = float(meta.get("registered_at", time.time()))
    counts = counts or dict.fromkeys(_COMMIT_FIELDS, 0)
    commit = np.stack([_commit_row([counts[k] for k in _COMMIT_FIELDS])] * 2)
    g.create_dataset("commit", data=commit)

    def column(path: str, dtype: str, n: int, chunk: int, dim: int | None = None):
        shape = (n,) if dim is None else (n, dim)
        g.create_dataset(
            path,
            shape=shape,
            maxshape=(None,) if dim is None else (None, dim),
            chunks=(chunk,) if dim is None else (chunk, dim),
            dtype=dtype,
        )

    column("strings", "u1", counts["string_bytes"], 65536)
    for name, dtype in _TRACK_COLUMNS.items():
        column(f"tracks/{name}", dtype, counts["tracks"], 8192)
    for name, dtype in _FAILURE_COLUMNS.items():
        column(f"failures/{name}", dtype, counts["failures"], 1024)
    for name, dim in meta["outputs"].items():
        rows = int(np.clip((256 * 1024) // (4 * dim), 16, 8192))
        column(f"clip/{name}", "f4", counts["tracks"], rows, dim)
    column("patches/starts", "f4", counts["patches"], 16384)
    for name in meta["patch_outputs"]:
        dim = meta["outputs"][name]
        rows = int(np.clip((512 * 1024) // (2 * dim), 64, 16384))
        column(f"patches/{name}", "f2", counts["patches"], rows, dim)
    return g


class _Backend:
    """Datasets, committed counts and (lazily) indexes of one backend."""

    def __init__(self, group: h5py.Group):
        self.group = group
        a = group.attrs
        self.key = str(a["key"])
        self.meta = {
            "name": str(a["name"]),
            "version": str(a["version"]),
            "outputs": {k: int(v) for k, v in json.loads(a["outputs"]).items()},
            "params": json.loads(a["params"]),
            "tag_names": json.loads(a["tag_names"]),
            "patch_outputs": tuple(json.loads(a["patch_outputs"])),
            "registered_at": float(a["registered_at"]),
        }
        self.ds: dict[str, h5py.Dataset] = {}
        group.visititems(self._collect)
        self.counts: dict[str, int] = {}
        self._cache: dict[str, Any] = {}
        # Writer-only indexes, built by build_writer_index().
        self.live: dict[str, tuple[int, int, int, int]] = {}  # row, size, mtime, hash
        self.failed: dict[str, tuple[int, int, int]] = {}
        self.hashes: dict[int, str] = {}

    def _collect(self, name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            self.ds[name] = obj

    @property
    def outputs(self) -> dict[str, int]:
        return self.meta["outputs"]

    @property
    def seq(self) -> int:
        return self.counts["seq"]

    def read_commit(self) -> dict[str, int]:
        values = _decode_commit(self.ds["commit"][()])
        if values is None:
            raise CacheError(f"backend {self.key}: no valid commit record")
        return values

    def refresh(self) -> bool:
        """Re-read the commit record (SWMR reader). True when it changed."""
        self.ds["commit"].refresh()
        counts = self.read_commit()
        if counts == self.counts:
            return False
        for ds in self.ds.values():
            ds.refresh()
        self.counts = counts
        self._cache.clear()
        return True

    def set_counts(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self._cache.clear()

    # -- reading --------------------------------------------------------------

    def column(self, table: str, name: str, n: int | None = None) -> np.ndarray:
        if n is None:
            n = self.counts["tracks" if table == "tracks" else "failures"]
        return self.ds[f"{table}/{name}"][:n] if n else np.zeros(0, _dtype_of(table, name))

    def strings(self) -> bytes:
        n = self.counts["string_bytes"]
        return self.ds["strings"][:n].tobytes() if n else b""

    def live_mask(self, deleted: np.ndarray) -> np.ndarray:
        # A row is deleted by the commit whose sequence number it carries; a
        # mark above the committed sequence number belongs to a batch in flight.
        return (deleted == 0) | (deleted > self.seq)

    def table(self) -> TrackTable:
        if "table" not in self._cache:
            cols = {name: self.column("tracks", name) for name in _TRACK_COLUMNS}
            live = np.flatnonzero(self.live_mask(cols["deleted_seq"]))
            blob = self.strings()
            starts, lens = cols["path_start"][live], cols["path_len"][live]
            self._cache["table"] = TrackTable(
                relpath=[
                    _decode_path(blob[s : s + n])
                    for s, n in zip(starts.tolist(), lens.tolist(), strict=True)
                ],
                size=cols["size"][live],
                mtime_ns=cols["mtime_ns"][live],
                duration=cols["duration"][live],
                n_patches=cols["n_patches"][live],
                short=cols["short"][live].astype(bool),
                embedded_at=cols["embedded_at"][live],
                row=live.astype(np.int64),
            )
            for value in vars(self._cache["table"]).values():
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False
            self._cache["patch_offset"] = cols["patch_offset"][live]
        return self._cache["table"]

    def index(self) -> dict[str, int]:
        """relpath -> position in :meth:`table`."""
        if "index" not in self._cache:
            self._cache["index"] = {r: i for i, r in enumerate(self.table().relpath)}
        return self._cache["index"]

    def failure_rows(self) -> list[tuple[str, str, int, int, float, int]]:
        """Live failures: (relpath, reason, size, mtime_ns, failed_at, row)."""
        if "failures" not in self._cache:
            cols = {name: self.column("failures", name) for name in _FAILURE_COLUMNS}
            live = np.flatnonzero(self.live_mask(cols["deleted_seq"]))
            blob = self.strings()
            rows = []
            for i in live.tolist():
                ps, pn = int(cols["path_start"][i]), int(cols["path_len"][i])
                rs, rn = int(cols["reason_start"][i]), int(cols["reason_len"][i])
                rows.append(
                    (
                        _decode_path(blob[ps : ps + pn]),
                        blob[rs : rs + rn].decode("utf-8", "replace"),
                        int(cols["size"][i]),
                        int(cols["mtime_ns"][i]),
                        float(cols["failed_at"][i]),
                        i,
                    )
                )
            self._cache["failures"] = rows
        return self._cache["failures"]

    def build_writer_index(self) -> None:
        table = self.table()
        hashes = self.column("tracks", "clip_hash")[table.row]
        self.live = {
            r: (row, size, mtime, h)
            for r, row, size, mtime, h in zip(
                table.relpath,
                table.row.tolist(),
                table.size.tolist(),
                table.mtime_ns.tolist(),
                hashes.tolist(),
                strict=True,
            )
        }
        self.hashes = dict(zip(hashes.tolist(), table.relpath, strict=True))
        self.failed = {r: (row, size, mtime) for r, _, size, mtime, _, row in self.failure_rows()}


def _dtype_of(table: str, name: str) -> str:
    return (_TRACK_COLUMNS if table == "tracks" else _FAILURE_COLUMNS)[name]


# --------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------


def _locked(method):
    """Run ``method`` under the instance's lock (the app reads from the UI
    thread through the writer thread's instance)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper


class EmbeddingCache:
    """The embedding cache of one music library (one HDF5 file).

    Create instances with :meth:`open`. In mode ``"a"`` the instance is the
    single writer (an OS lock on ``<path>.lock`` keeps other processes out);
    in mode ``"r"`` it reads a consistent snapshot, taken at open and renewed
    by :meth:`refresh`, while a writer in another process appends.

    Within one process, read through the writer's instance while it is open:
    HDF5 shares one open file per process, and h5py serializes access.
    """

    def __init__(self, path: str | os.PathLike, mode: str, library_root=None):
        # Use EmbeddingCache.open(); __init__ only stores its arguments.
        self.path = os.fspath(path)
        self.mode = mode
        self._library_root_arg = None if library_root is None else os.fspath(library_root)
        self._f: h5py.File | None = None
        self._lock: _WriterLock | None = None
        self._backends: dict[str, _Backend] = {}
        self._inode: tuple[int, int] | None = None
        self._broken: str | None = None
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        state = "closed" if self._f is None else self.mode
        return f"<EmbeddingCache {self.path} ({state})>"

    # -- opening and closing ------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        mode: str = "r",
        *,
        library_root: str | os.PathLike | None = None,
    ) -> EmbeddingCache:
        """Open (mode ``"a"``: create if missing) the cache at ``path``.

        Parameters
        ----------
        path : path-like
            The ``.h5`` file, e.g. ``default_cache_path(root)``.
        mode : {"r", "a"}
            ``"r"`` reads (a snapshot, see :meth:`refresh`); ``"a"`` reads and
            writes, creating the file and its directory if missing.
        library_root : path-like, optional, keyword-only
            Recorded in a new file (and at the next rewrite of an existing one).

        Raises
        ------
        CacheError
            Missing file in mode ``"r"``, not a cache, a format version this
            code does not know, damage, or another writer holds the lock.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        cache = cls(path, mode, library_root)
        try:
            if mode == "r":
                cache._open_reader()
            else:
                cache._open_writer()
        except BaseException:
            cache.close()
            raise
        return cache

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @_locked
    def close(self) -> None:
        """Flush, close the file and release the writer lock. Idempotent."""
        try:
            self._close_handle()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    @property
    def closed(self) -> bool:
        return self._f is None

    @property
    def _tmp_path(self) -> str:
        return self.path + ".tmp"

    def _open_reader(self) -> None:
        if not os.path.exists(self.path):
            raise CacheError(f"no embedding cache at {self.path}")
        try:
            f = h5py.File(self.path, "r", libver=_LIBVER, swmr=True, locking=False)
        except OSError as e:
            raise CacheError(f"cannot open the embedding cache {self.path}: {e}") from e
        try:
            _check_format_version(_read_format_version(f, self.path), self.path, writable=False)
        except BaseException:
            f.close()
            raise
        self._attach(f)

    def _open_writer(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._lock = _WriterLock(self.path + ".lock")
        self._lock.acquire()
        # Only the lock holder makes temporary files, so any left is from a
        # writer that died while building one.
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._tmp_path)
        if not os.path.exists(self.path):
            self._create_file()
        version = self._inspect_version()
        _check_format_version(version, self.path, writable=True)
        if version < FORMAT_VERSION:
            _migrate(self.path, self._tmp_path, version)
        self._open_writer_handle()

    def _inspect_version(self) -> int:
        try:
            f = h5py.File(self.path, "r", libver=_LIBVER, swmr=True, locking=False)
        except OSError:
            # Flags left by a non-SWMR writer (another tool) block even SWMR
            # reads; we hold the lock, so they are stale.
            _clear_stale_write_flags(self.path)
            try:
                f = h5py.File(self.path, "r", libver=_LIBVER, swmr=True, locking=False)
            except OSError as e:
                raise CacheError(f"cannot open the embedding cache {self.path}: {e}") from e
        with f:
            return _read_format_version(f, self.path)

    def _create_file(self) -> None:
        tmp = self._tmp_path
        with h5py.File(tmp, "w", libver=_LIBVER, locking=False) as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["library_root"] = self._library_root_arg or ""
            f.attrs["app_version"] = APP_VERSION
            f.attrs["created_at"] = time.time()
            f.create_group("backends")
        _replace(tmp, self.path)

    def _open_writer_handle(self) -> None:
        _clear_stale_write_flags(self.path)
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
        fapl.set_file_locking(False, True)
        cache = list(fapl.get_cache())
        cache[2] = _WRITER_CHUNK_CACHE
        fapl.set_cache(*cache)
        # Opening straight into SWMR-write mode sets both status flags in one
        # superblock write, so SWMR readers can open the file at every moment.
        # HDF5 refuses a write open while a reader of this same process holds the
        # file (the app loads features in another thread); such reads are short.
        deadline = time.monotonic() + WRITER_OPEN_WAIT_S
        while True:
            try:
                fid = h5py.h5f.open(
                    os.fsencode(self.path),
                    h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE,
                    fapl=fapl,
                )
                break
            except OSError as e:
                if "already open for read-only" in str(e) and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise CacheError(f"cannot open the embedding cache {self.path}: {e}") from e
        self._attach(h5py.File(fid))
        # Undo deletion marks of a batch that was in flight when a writer died:
        # the next commit reuses its sequence number.
        for b in self._backends.values():
            for table in ("tracks", "failures"):
                deleted = b.column(table, "deleted_seq")
                stale = np.flatnonzero(deleted > b.seq)
                if len(stale):
                    self._write_marks(b.ds[f"{table}/deleted_seq"], stale, 0)
            b.set_counts(b.counts)
            b.build_writer_index()
        self._f.flush()

    def _attach(self, f: h5py.File) -> None:
        self._f = f
        st = os.fstat(f.id.get_vfd_handle())
        self._inode = (st.st_dev, st.st_ino)
        self._backends = {}
        for key in f["backends"]:
            b = _Backend(f["backends"][key])
            b.set_counts(b.read_commit())
            if f.mode == "r":
                # The datasets were opened before the commit record was read:
                # a batch committed in between must be visible in them too.
                for ds in b.ds.values():
                    ds.refresh()
            self._backends[key] = b

    def _close_handle(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            self._backends = {}
            with contextlib.suppress(Exception):
                if f.mode == "r+":
                    f.flush()
            f.close()

    @_locked
    def refresh(self) -> bool:
        """Take a new snapshot of what the writer has committed (mode ``"r"``).

        Reopens the file if the writer replaced it (new backend, compaction).
        Returns True when anything changed. A no-op for the writer, whose view
        is always current.
        """
        self._require_open()
        if self.mode == "a":
            return False
        try:
            st = os.stat(self.path)
            replaced = (st.st_dev, st.st_ino) != self._inode
        except FileNotFoundError:
            replaced = False
        if replaced:
            self._close_handle()
            self._open_reader()
            return True
        changed = False
        for b in self._backends.values():
            changed |= b.refresh()
        return changed

    # -- properties -------------------------------------------------------------------

    @property
    def format_version(self) -> int:
        self._require_open()
        return int(self._f.attrs["format_version"])

    @property
    def library_root(self) -> str:
        """Library root recorded in the file ("" when unknown)."""
        self._require_open()
        return str(self._f.attrs["library_root"])

    @property
    def app_version(self) -> str:
        """tagger_gui version that created or last rewrote the file."""
        self._require_open()
        return str(self._f.attrs["app_version"])

    def _require_open(self) -> None:
        if self._f is None:
            raise CacheError(f"the embedding cache {self.path} is closed")

    def _require_writable(self) -> None:
        self._require_open()
        if self.mode != "a":
            raise CacheError(f"the embedding cache {self.path} is open read-only")
        if self._broken:
            raise CacheError(
                f"an earlier write to {self.path} failed ({self._broken}); "
                "close and reopen the cache"
            )

    def _backend(self, key: str) -> _Backend:
        self._require_open()
        try:
            return self._backends[key]
        except KeyError:
            known = ", ".join(sorted(self._backends)) or "none"
            raise CacheError(
                f"backend {key!r} is not in the cache {self.path} (registered: {known})"
            ) from None

    # -- reading ------------------------------------------------------------------------

    @_locked
    def backends(self) -> list[str]:
        """Keys (``"name@version"``) of the registered backends, sorted."""
        self._require_open()
        return sorted(self._backends)

    @_locked
    def backend_info(self, backend_key: str) -> dict[str, Any]:
        """name, version, outputs, params, tag_names, patch_outputs, n_tracks..."""
        b = self._backend(backend_key)
        info = copy.deepcopy(b.meta)
        info["n_tracks"] = len(b.table())
        info["n_failures"] = len(b.failure_rows())
        return info

    @_locked
    def tracks(self, backend_key: str) -> TrackTable:
        """The live tracks of a backend (one row per embedded file).

        The arrays are read-only (shared with the cache's snapshot).
        """
        table = self._backend(backend_key).table()
        return dataclasses.replace(table, relpath=list(table.relpath))

    @_locked
    def load(self, backend_key: str, outputs: Sequence[str] | str) -> tuple[list[str], np.ndarray]:
        """Clip-level vectors of every live track.

        Parameters
        ----------
        backend_key : str
        outputs : str or list of str
            Outputs concatenated column-wise, in this order.

        Returns
        -------
        relpaths : list of str
            Same order as :meth:`tracks`.
        X : ndarray, shape (n_tracks, sum of dims), float32
        """
        b = self._backend(backend_key)
        names = [outputs] if isinstance(outputs, str) else list(outputs)
        for name in names:
            if name not in b.outputs:
                raise CacheError(
                    f"backend {backend_key} has no output {name!r} "
                    f"(outputs: {', '.join(b.outputs)})"
                )
        table = b.table()
        n = b.counts["tracks"]
        live = np.zeros(n, dtype=bool)
        live[table.row] = True
        dims = [b.outputs[name] for name in names]
        out = np.empty((len(table), sum(dims)), dtype=np.float32)
        col = 0
        for name, dim in zip(names, dims, strict=True):
            ds = b.ds[f"clip/{name}"]
            step = max(1, (64 * 1024 * 1024) // (4 * dim))
            pos = 0
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                sel = live[lo:hi]
                k = int(sel.sum())
                if k:
                    block = ds[lo:hi]
                    out[pos : pos + k, col : col + dim] = block if k == hi - lo else block[sel]
                pos += k
            col += dim
        return list(table.relpath), out

    @_locked
    def load_patches(
        self, backend_key: str, output: str, relpath: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Patch start times (s) and patch-level vectors of one track.

        Returns ``(starts (P,) float32, (P, dim) float32)``. Only outputs in
        the backend's ``patch_outputs`` are stored at patch level.
        """
        b = self._backend(backend_key)
        if output not in b.meta["patch_outputs"]:
            stored = ", ".join(b.meta["patch_outputs"]) or "none"
            raise CacheError(
                f"output {output!r} of {backend_key} is not stored per patch (stored: {stored})"
            )
        i = b.index().get(_normalize_relpath(relpath))
        if i is None:
            raise CacheError(f"{relpath!r} is not in the cache for {backend_key}")
        b.table()
        start = int(b._cache["patch_offset"][i])
        count = int(b.table().n_patches[i])
        starts = b.ds["patches/starts"][start : start + count]
        vectors = b.ds[f"patches/{output}"][start : start + count].astype(np.float32)
        return starts.astype(np.float32), vectors

    @_locked
    def failures(self, backend_key: str | None = None) -> list[tuple[str, str]]:
        """``(relpath, reason)`` of files that failed (all backends by default)."""
        keys = [backend_key] if backend_key is not None else self.backends()
        latest: dict[str, tuple[float, str]] = {}
        for key in keys:
            for relpath, reason, _, _, failed_at, _ in self._backend(key).failure_rows():
                if relpath not in latest or failed_at >= latest[relpath][0]:
                    latest[relpath] = (failed_at, reason)
        return [(relpath, reason) for relpath, (_, reason) in sorted(latest.items())]

    @_locked
    def plan(
        self,
        backend_key: str,
        files: Iterable[tuple[str, int, int]],
        *,
        retry_failed: bool = False,
    ) -> tuple[list[tuple[str, int, int]], list[str]]:
        """Split the library's files into those to embed and those up to date.

        Parameters
        ----------
        backend_key : str
        files : iterable of (relpath, size, mtime_ns)
            Every audio file of the library now.
        retry_failed : bool, keyword-only
            Also embed files that failed before and have not changed since.
            By default they are in neither list (see :meth:`failures`).

        Returns
        -------
        to_embed : list of (relpath, size, mtime_ns)
            New files and files whose size or mtime changed.
        unchanged : list of str
            Files whose vectors are up to date.
        """
        b = self._backend(backend_key)
        if self.mode == "a":
            live, failed = b.live, b.failed
        else:
            table = b.table()
            live = {
                r: (0, s, m, 0)
                for r, s, m in zip(
                    table.relpath, table.size.tolist(), table.mtime_ns.tolist(), strict=True
                )
            }
            failed = {r: (0, s, m) for r, _, s, m, _, _ in b.failure_rows()}
        to_embed: list[tuple[str, int, int]] = []
        unchanged: list[str] = []
        for relpath, size, mtime_ns in files:
            relpath = _normalize_relpath(relpath)
            ident = (int(size), int(mtime_ns))
            cur = live.get(relpath)
            if cur is not None and cur[1:3] == ident:
                unchanged.append(relpath)
                continue
            bad = failed.get(relpath)
            if bad is not None and bad[1:] == ident and not retry_failed:
                continue
            to_embed.append((relpath, *ident))
        return to_embed, unchanged

    # -- writing ------------------------------------------------------------------

    @_locked
    def register_backend(
        self,
        backend_key: str,
        *,
        name: str,
        version: str,
        outputs: Mapping[str, int],
        params: Mapping[str, Any],
        tag_names: Mapping[str, Sequence[str]] | None = None,
        patch_outputs: Sequence[str] = DEFAULT_PATCH_OUTPUTS,
    ) -> None:
        """Add a backend (no-op if it is registered with the same metadata).

        Parameters
        ----------
        backend_key : str
            ``"name@version"`` (see :func:`backend_key`).
        name, version : str
        outputs : mapping str -> int
            Output name -> dimension, in the backend's order.
        params : mapping
            Preprocessing parameters (JSON-serializable).
        tag_names : mapping str -> list of str, optional
        patch_outputs : sequence of str
            Outputs also stored per patch (float16). Names the backend does
            not have are ignored, so the default stores nothing for a
            backend without ``penultimate`` and ``taggram``. Fixed when the
            backend is first registered.

        Raises
        ------
        CacheError
            The key is registered with different outputs, params or tag names
            (the backend's version should have changed).

        Notes
        -----
        A new backend needs new datasets, which HDF5 cannot create in SWMR
        mode: the file is copied, extended and moved back into place, so
        this takes time proportional to the cache size, once per backend.
        Readers see the new backend after :meth:`refresh`.
        """
        self._require_writable()
        _check_key(backend_key)
        if backend_key != f"{name}@{version}":
            raise ValueError(
                f"backend key {backend_key!r} does not match name@version {name}@{version}"
            )
        outputs = {str(k): int(v) for k, v in outputs.items()}
        if not outputs:
            raise ValueError("a backend needs at least one output")
        for out_name, dim in outputs.items():
            if not out_name or "/" in out_name or out_name == "starts" or dim < 1:
                raise ValueError(f"invalid output {out_name!r} of dimension {dim}")
        meta = {
            "name": str(name),
            "version": str(version),
            "outputs": outputs,
            "params": json.loads(_canonical_json(dict(params))),
            "tag_names": json.loads(_canonical_json(dict(tag_names or {}))),
            "patch_outputs": tuple(o for o in patch_outputs if o in outputs),
            "registered_at": time.time(),
        }
        existing = self._backends.get(backend_key)
        if existing is not None:
            for field_name in ("outputs", "params", "tag_names"):
                old, new = existing.meta[field_name], meta[field_name]
                if _canonical_json(old) != _canonical_json(new) or (
                    field_name == "outputs" and list(old) != list(new)
                ):
                    raise CacheError(
                        f"backend {backend_key} is already in the cache with other "
                        f"{field_name} ({old!r} != {new!r}); a backend whose numbers "
                        "change needs a new version"
                    )
            return

        def add(f: h5py.File) -> None:
            _create_backend_group(f, backend_key, meta)

        self._rewrite_by_copy(add)

    @_locked
    def write_batch(self, backend_key: str, records: Sequence[EmbeddedTrack]) -> list[str]:
        """Store a batch of embedded files in one commit.

        Each record replaces the live row of the same relpath, if any, and
        removes its failure row. Records whose vectors contain NaN or inf are
        stored as failures instead (the committed rows never hold NaN).

        Returns
        -------
        list of str
            Warnings from :func:`sanity_check`, also comparing with the
            vectors already stored for this backend.
        """
        self._require_writable()
        b = self._backend(backend_key)
        records = list(records)
        if not records:
            return []
        outputs = b.outputs
        relpaths = [_normalize_relpath(r.relpath) for r in records]
        if len(set(relpaths)) != len(relpaths):
            raise ValueError("a batch must not hold the same relpath twice")
        starts_list, patch_list = [], []
        for relpath, r in zip(relpaths, records, strict=True):
            starts = np.asarray(r.starts, dtype=np.float32).reshape(-1)
            p = len(starts)
            if p == 0:
                raise ValueError(f"{relpath}: a track needs at least one patch")
            extra = set(r.patches) - set(outputs)
            if extra:
                raise ValueError(f"{relpath}: unknown outputs {sorted(extra)}")
            patches = {}
            for out_name, dim in outputs.items():
                if out_name not in r.patches:
                    raise ValueError(f"{relpath}: output {out_name!r} is missing")
                a = np.asarray(r.patches[out_name], dtype=np.float32)
                if a.shape != (p, dim):
                    raise ValueError(
                        f"{relpath}: output {out_name!r} has shape {a.shape}, expected {(p, dim)}"
                    )
                patches[out_name] = a
            starts_list.append(starts)
            patch_list.append(patches)
        clip = {
            o: np.stack([p[o].mean(axis=0, dtype=np.float64) for p in patch_list]).astype(
                np.float32
            )
            for o in outputs
        }
        finite = np.ones(len(records), dtype=bool)
        for o in outputs:
            finite &= np.isfinite(clip[o]).all(axis=1)
        for i, patches in enumerate(patch_list):
            if finite[i]:
                for o in b.meta["patch_outputs"]:
                    peak = float(np.abs(patches[o]).max())
                    if peak > _FLOAT16_MAX:
                        raise ValueError(
                            f"{relpaths[i]}: output {o!r} reaches {peak:g}, beyond float16; "
                            "register the backend with patch_outputs that exclude it"
                        )
        warnings = sanity_check(clip, relpaths, known_hashes=b.hashes)
        keep = np.flatnonzero(finite)
        hashes = _row_hashes(np.concatenate([clip[o][keep] for o in outputs], axis=1))
        now = time.time()

        tracks = {
            "relpath": [relpaths[i] for i in keep],
            "size": [int(records[i].size) for i in keep],
            "mtime_ns": [int(records[i].mtime_ns) for i in keep],
            "duration": [float(records[i].duration) for i in keep],
            "short": [bool(records[i].short) for i in keep],
            "starts": [starts_list[i] for i in keep],
            "patches": {o: [patch_list[i][o] for i in keep] for o in b.meta["patch_outputs"]},
            "clip": {o: clip[o][keep] for o in outputs},
            "hash": hashes,
            "time": now,
        }
        bad = [
            (
                relpaths[i],
                int(records[i].size),
                int(records[i].mtime_ns),
                _NONFINITE,
            )
            for i in np.flatnonzero(~finite)
        ]
        self._commit(b, tracks=tracks, failures=bad, now=now)
        return warnings

    @_locked
    def adopt_identity(self, changes: Mapping[str, tuple[int, int, int, int]]) -> int:
        """Keep the vectors of files whose tags, not audio, were rewritten.

        ``changes`` maps a relpath to ``(old_size, old_mtime_ns, new_size,
        new_mtime_ns)``. In every backend, a live row stored under the old
        identity is stored again, unchanged, under the new one (one commit per
        backend), so :meth:`plan` sees the file as up to date. A row with any
        other identity is left alone: the file changed in some other way.
        Call it only for files whose audio is known to be unchanged (the
        write-back checks that). Returns the number of rows adopted.
        """
        self._require_writable()
        adopted = 0
        for key in self.backends():
            b = self._backend(key)
            table = b.table()
            index = b.index()
            picked = []
            for rel, (old_size, old_mtime, new_size, new_mtime) in changes.items():
                i = index.get(_normalize_relpath(rel))
                if i is not None and (int(table.size[i]), int(table.mtime_ns[i])) == (
                    int(old_size),
                    int(old_mtime),
                ):
                    picked.append((i, _normalize_relpath(rel), int(new_size), int(new_mtime)))
            if not picked:
                continue
            offsets = b._cache["patch_offset"]
            spans = [(int(offsets[i]), int(table.n_patches[i])) for i, *_ in picked]
            clip = {
                o: np.stack([b.ds[f"clip/{o}"][int(table.row[i])] for i, *_ in picked])
                for o in b.outputs
            }
            now = time.time()
            tracks = {
                "relpath": [rel for _, rel, _, _ in picked],
                "size": [size for *_, size, _ in picked],
                "mtime_ns": [mtime for *_, mtime in picked],
                "duration": [float(table.duration[i]) for i, *_ in picked],
                "short": [bool(table.short[i]) for i, *_ in picked],
                "starts": [b.ds["patches/starts"][a : a + n] for a, n in spans],
                "patches": {
                    o: [b.ds[f"patches/{o}"][a : a + n] for a, n in spans]
                    for o in b.meta["patch_outputs"]
                },
                "clip": clip,
                "hash": _row_hashes(np.concatenate([clip[o] for o in b.outputs], axis=1)),
                "time": now,
            }
            self._commit(b, tracks=tracks, now=now)
            adopted += len(picked)
        return adopted

    @_locked
    def record_failures(
        self, backend_key: str, failures: Iterable[tuple[str, int, int, str]]
    ) -> None:
        """Record files that could not be embedded: ``(relpath, size, mtime_ns, reason)``.

        An unchanged failed file is then left out of :meth:`plan` (unless
        ``retry_failed``). A relpath has one live state: the failure replaces
        its older failure row and its stale vectors, if any.
        """
        self._require_writable()
        b = self._backend(backend_key)
        rows = [(_normalize_relpath(r), int(s), int(m), str(why)) for r, s, m, why in failures]
        if len({r[0] for r in rows}) != len(rows):
            raise ValueError("the same relpath is listed twice")
        if rows:
            self._commit(b, failures=rows, now=time.time())

    @_locked
    def prune(self, existing_relpaths: Iterable[str]) -> int:
        """Drop the rows (vectors and failures, all backends) of files not listed.

        Returns the number of rows dropped.
        """
        self._require_writable()
        keep = {_normalize_relpath(r) for r in existing_relpaths}
        dropped = 0
        for b in self._backends.values():
            gone_tracks = [r for r in b.live if r not in keep]
            gone_failures = [r for r in b.failed if r not in keep]
            if gone_tracks or gone_failures:
                self._commit(
                    b,
                    delete_tracks=gone_tracks,
                    delete_failures=gone_failures,
                    now=time.time(),
                )
                dropped += len(gone_tracks) + len(gone_failures)
        return dropped

    @_locked
    def compact(self) -> None:
        """Rewrite the file without deleted rows and unused space.

        Builds a new file under a temporary name and moves it into place.
        Readers keep their (old) snapshot until :meth:`refresh`.
        """
        self._require_writable()
        self._f.flush()
        tmp = self._tmp_path
        try:
            with h5py.File(tmp, "w", libver=_LIBVER, locking=False) as out:
                for k, v in self._f.attrs.items():
                    out.attrs[k] = v
                self._update_root_attrs(out)
                out.attrs["compacted_at"] = time.time()
                out.create_group("backends")
                for b in self._backends.values():
                    _copy_live(b, out)
            self._close_handle()
            _replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            if self._f is None:
                self._open_writer_handle()
            raise
        self._open_writer_handle()

    @_locked
    def verify(self, *, full: bool = False) -> list[str]:
        """Check the file's consistency; returns the problems found (none: ``[]``).

        Checks the commit records, that every table holds its committed rows,
        offsets into the string and patch tables, duplicate live relpaths,
        and NaN/inf in committed clip vectors (and patch vectors if ``full``).
        """
        self._require_open()
        problems: list[str] = []
        attrs = self._f.attrs
        for name in ("format", "format_version", "library_root", "app_version"):
            if name not in attrs:
                problems.append(f"root attribute {name!r} is missing")
        if "backends" not in self._f:
            return [*problems, "group /backends is missing"]
        for key in self._f["backends"]:
            try:
                b = self._backends.get(key)
                if b is None:
                    b = _Backend(self._f["backends"][key])
                    b.set_counts(b.read_commit())
                problems += [f"backend {key}: {p}" for p in _verify_backend(b, full=full)]
            except Exception as e:  # a damaged file can raise anything
                problems.append(f"backend {key}: unreadable ({type(e).__name__}: {e})")
        return problems

    # -- commit machinery ---------------------------------------------------------------

    def _update_root_attrs(self, f: h5py.File) -> None:
        f.attrs["app_version"] = APP_VERSION
        if self._library_root_arg is not None:
            f.attrs["library_root"] = self._library_root_arg

    def _rewrite_by_copy(self, change: Callable[[h5py.File], None]) -> None:
        """Apply ``change`` to a copy of the file and move the copy into place."""
        self._f.flush()
        self._close_handle()
        tmp = self._tmp_path
        try:
            shutil.copyfile(self.path, tmp)
            # Set if another handle of this process kept the file open.
            _clear_stale_write_flags(tmp)
            with h5py.File(tmp, "r+", libver=_LIBVER, locking=False) as f:
                change(f)
                self._update_root_attrs(f)
            _replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            self._open_writer_handle()
            raise
        self._open_writer_handle()

    @staticmethod
    def _write_marks(ds: h5py.Dataset, rows: np.ndarray, value: int) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if not len(rows):
            return
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if hi - lo <= 4 * len(rows) + 64:
            # Rewriting a span leaves the other rows' (identical) values in place.
            span = ds[lo:hi]
            span[rows - lo] = value
            ds[lo:hi] = span
        else:
            for r in rows.tolist():
                ds[r] = value

    def _commit(
        self,
        b: _Backend,
        *,
        tracks: dict[str, Any] | None = None,
        failures: Sequence[tuple[str, int, int, str]] = (),
        delete_tracks: Iterable[str] = (),
        delete_failures: Iterable[str] = (),
        now: float,
    ) -> None:
        """Append rows and delete rows in one atomic commit (see module doc)."""
        old = dict(b.counts)
        seq = old["seq"] + 1
        n_tr, n_pa, n_fa, n_st = (old[k] for k in ("tracks", "patches", "failures", "string_bytes"))
        new_relpaths = list(tracks["relpath"]) if tracks else []
        failed_relpaths = [f[0] for f in failures]
        # A relpath has one live state: a new row replaces both kinds of old row.
        touched = new_relpaths + failed_relpaths
        gone_tracks = {r for r in (*touched, *delete_tracks) if r in b.live}
        gone_failures = {r for r in (*touched, *delete_failures) if r in b.failed}
        del_tracks = sorted(b.live[r][0] for r in gone_tracks)
        del_failures = sorted(b.failed[r][0] for r in gone_failures)
        blob = bytearray()

        def add_string(s: bytes) -> tuple[int, int]:
            start = n_st + len(blob)
            blob.extend(s)
            return start, len(s)

        try:
            new_track_rows: dict[str, int] = {}
            if tracks and new_relpaths:
                k = len(new_relpaths)
                paths = [add_string(_encode_path(r)) for r in new_relpaths]
                counts = np.array([len(s) for s in tracks["starts"]], dtype=np.int64)
                offsets = n_pa + np.concatenate([[0], np.cumsum(counts)[:-1]])
                cols = {
                    "path_start": [p[0] for p in paths],
                    "path_len": [p[1] for p in paths],
                    "size": tracks["size"],
                    "mtime_ns": tracks["mtime_ns"],
                    "duration": tracks["duration"],
                    "short": tracks["short"],
                    "n_patches": counts,
                    "patch_offset": offsets,
                    "embedded_at": [tracks["time"]] * k,
                    "clip_hash": tracks["hash"],
                    "deleted_seq": [0] * k,
                }
                for name, values in cols.items():
                    _append(b.ds[f"tracks/{name}"], n_tr, np.asarray(values, _TRACK_COLUMNS[name]))
                for name, mat in tracks["clip"].items():
                    _append(b.ds[f"clip/{name}"], n_tr, mat)
                total = int(counts.sum())
                _append(b.ds["patches/starts"], n_pa, np.concatenate(tracks["starts"]))
                for name, mats in tracks["patches"].items():
                    _append(b.ds[f"patches/{name}"], n_pa, np.concatenate(mats).astype(np.float16))
                new_track_rows = {r: n_tr + i for i, r in enumerate(new_relpaths)}
                n_tr += k
                n_pa += total
            new_failure_rows: dict[str, int] = {}
            if failures:
                k = len(failures)
                paths = [add_string(_encode_path(f[0])) for f in failures]
                reasons = [add_string(f[3].encode("utf-8", "replace")) for f in failures]
                cols = {
                    "path_start": [p[0] for p in paths],
                    "path_len": [p[1] for p in paths],
                    "reason_start": [p[0] for p in reasons],
                    "reason_len": [p[1] for p in reasons],
                    "size": [f[1] for f in failures],
                    "mtime_ns": [f[2] for f in failures],
                    "failed_at": [now] * k,
                    "deleted_seq": [0] * k,
                }
                for name, values in cols.items():
                    _append(
                        b.ds[f"failures/{name}"], n_fa, np.asarray(values, _FAILURE_COLUMNS[name])
                    )
                new_failure_rows = {f[0]: n_fa + i for i, f in enumerate(failures)}
                n_fa += k
            if blob:
                _append(b.ds["strings"], n_st, np.frombuffer(bytes(blob), dtype=np.uint8))
                n_st += len(blob)
            for ds, rows in (
                (b.ds["tracks/deleted_seq"], del_tracks),
                (b.ds["failures/deleted_seq"], del_failures),
            ):
                if rows:
                    self._write_marks(ds, np.asarray(rows), seq)
            # Everything the commit points to reaches the file before the
            # commit record does; the record is the only thing readers trust.
            self._f.flush()
            new = {
                "seq": seq,
                "tracks": n_tr,
                "patches": n_pa,
                "failures": n_fa,
                "string_bytes": n_st,
            }
            b.ds["commit"][seq % 2] = _commit_row([new[k] for k in _COMMIT_FIELDS])
            self._f.flush()
        except BaseException as exc:
            # The file may or may not hold this commit now; only reopening
            # (which repairs a half-written commit) tells which. Stop writing.
            self._broken = f"{type(exc).__name__}: {exc}"
            raise
        b.set_counts(new)
        # Keep the writer's in-memory indexes in step with the commit.
        for r in gone_tracks:
            h = b.live.pop(r)[3]
            if b.hashes.get(h) == r:
                del b.hashes[h]
        for r in gone_failures:
            del b.failed[r]
        for i, r in enumerate(new_relpaths):
            h = int(tracks["hash"][i])
            b.live[r] = (new_track_rows[r], tracks["size"][i], tracks["mtime_ns"][i], h)
            b.hashes[h] = r
        for f in failures:
            b.failed[f[0]] = (new_failure_rows[f[0]], f[1], f[2])


def _append(ds: h5py.Dataset, start: int, data: np.ndarray) -> None:
    end = start + len(data)
    if ds.shape[0] < end:
        ds.resize(_grow(ds.shape[0], end, ds.chunks[0]), axis=0)
    if len(data):
        ds[start:end] = data


def _copy_live(b: _Backend, out: h5py.File) -> None:
    """Copy the live rows of backend ``b`` into a new file (for compaction)."""
    meta = b.meta
    table = b.table()
    fails = b.failure_rows()
    src_blob = b.strings()
    blob = bytearray()
    fa = {name: [] for name in _FAILURE_COLUMNS}
    for relpath, reason, size, mtime, failed_at, _ in fails:
        p, r = _encode_path(relpath), reason.encode("utf-8", "replace")
        fa["path_start"].append(len(blob))
        fa["path_len"].append(len(p))
        blob += p
        fa["reason_start"].append(len(blob))
        fa["reason_len"].append(len(r))
        blob += r
        fa["size"].append(size)
        fa["mtime_ns"].append(mtime)
        fa["failed_at"].append(failed_at)
        fa["deleted_seq"].append(0)
    tr_path_start = np.empty(len(table), np.int64)
    tr_path_len = np.empty(len(table), np.int32)
    src_start = b.column("tracks", "path_start")[table.row]
    src_len = b.column("tracks", "path_len")[table.row]
    for i, (s, n) in enumerate(zip(src_start.tolist(), src_len.tolist(), strict=True)):
        tr_path_start[i] = len(blob)
        tr_path_len[i] = n
        blob += src_blob[s : s + n]
    n_patches_total = int(table.n_patches.sum())
    counts = {
        "seq": b.seq,
        "tracks": len(table),
        "patches": n_patches_total,
        "failures": len(fails),
        "string_bytes": len(blob),
    }
    g = _create_backend_group(out, b.key, meta, counts)
    g["strings"][:] = np.frombuffer(bytes(blob), dtype=np.uint8)
    for name, values in fa.items():
        g[f"failures/{name}"][:] = np.asarray(values, _FAILURE_COLUMNS[name])
    new_offsets = np.concatenate([[0], np.cumsum(table.n_patches.astype(np.int64))[:-1]])
    plain = {
        "path_start": tr_path_start,
        "path_len": tr_path_len,
        "patch_offset": new_offsets.astype(np.int64),
        "deleted_seq": np.zeros(len(table), np.int64),
    }
    src_offsets = b.column("tracks", "patch_offset")[table.row]
    for name in _TRACK_COLUMNS:
        values = plain[name] if name in plain else b.column("tracks", name)[table.row]
        g[f"tracks/{name}"][:] = values
    # Copy row blocks so memory stays bounded whatever the cache size.
    step = 512
    patch_names = ["starts", *meta["patch_outputs"]]
    for lo in range(0, len(table), step):
        rows = table.row[lo : lo + step]
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        keep = rows - r0
        for name in meta["outputs"]:
            g[f"clip/{name}"][lo : lo + len(rows)] = b.ds[f"clip/{name}"][r0:r1][keep]
        offs = src_offsets[lo : lo + step]
        cnts = table.n_patches[lo : lo + step].astype(np.int64)
        p0, p1 = int(offs[0]), int(offs[-1] + cnts[-1])
        idx = np.concatenate([np.arange(o, o + c) for o, c in zip(offs, cnts, strict=True)]) - p0
        d0 = int(new_offsets[lo])
        for name in patch_names:
            src = b.ds[f"patches/{name}"][p0:p1][idx]
            g[f"patches/{name}"][d0 : d0 + len(idx)] = src


def _verify_backend(b: _Backend, *, full: bool) -> list[str]:
    problems: list[str] = []
    if "commit" not in b.ds or _decode_commit(b.ds["commit"][()]) is None:
        return ["no valid commit record"]
    # Check the snapshot this handle reads (a reader's datasets are refreshed
    # for it only), not a newer commit the writer may have made since.
    counts = b.counts
    expected = {"strings": ("string_bytes", None)}
    expected.update({f"tracks/{n}": ("tracks", None) for n in _TRACK_COLUMNS})
    expected.update({f"failures/{n}": ("failures", None) for n in _FAILURE_COLUMNS})
    expected.update({f"clip/{n}": ("tracks", d) for n, d in b.outputs.items()})
    expected["patches/starts"] = ("patches", None)
    expected.update({f"patches/{n}": ("patches", b.outputs[n]) for n in b.meta["patch_outputs"]})
    for name, (count, dim) in expected.items():
        ds = b.ds.get(name)
        if ds is None:
            problems.append(f"dataset {name} is missing")
            continue
        if ds.shape[0] < counts[count]:
            problems.append(
                f"dataset {name} has {ds.shape[0]} rows but {counts[count]} are committed"
            )
        if dim is not None and (len(ds.shape) != 2 or ds.shape[1] != dim):
            problems.append(f"dataset {name} has shape {ds.shape}, expected (*, {dim})")
    if problems:
        return problems
    n_tr, n_pa, n_fa, n_st = (counts[k] for k in ("tracks", "patches", "failures", "string_bytes"))
    seq = counts["seq"]

    def check_range(label: str, start: np.ndarray, length: np.ndarray, limit: int, rows):
        bad = (start < 0) | (length < 0) | (start + length > limit)
        for i in np.flatnonzero(bad)[:5].tolist():
            problems.append(
                f"{label} of row {int(rows[i])} is out of range "
                f"({int(start[i])}+{int(length[i])} > {limit})"
            )
        if bad.sum() > 5:
            problems.append(f"{label}: {int(bad.sum()) - 5} more rows out of range")
        return ~bad

    rows = np.arange(n_tr)
    t = {name: b.column("tracks", name, n_tr) for name in _TRACK_COLUMNS}
    ok_path = check_range("tracks path", t["path_start"], t["path_len"], n_st, rows)
    check_range("tracks patch range", t["patch_offset"], t["n_patches"], n_pa, rows)
    for i in np.flatnonzero(t["n_patches"] < 1)[:5].tolist():
        problems.append(f"track row {i} has {int(t['n_patches'][i])} patches")
    if (t["deleted_seq"] < 0).any():
        problems.append("negative deleted_seq in the track table")
    f = {name: b.column("failures", name, n_fa) for name in _FAILURE_COLUMNS}
    frows = np.arange(n_fa)
    ok_fpath = check_range("failures path", f["path_start"], f["path_len"], n_st, frows)
    check_range("failures reason", f["reason_start"], f["reason_len"], n_st, frows)
    blob = b.strings()

    def live_paths(cols, ok) -> list[str]:
        live = ((cols["deleted_seq"] == 0) | (cols["deleted_seq"] > seq)) & ok
        return [
            _decode_path(blob[s : s + n])
            for s, n in zip(
                cols["path_start"][live].tolist(), cols["path_len"][live].tolist(), strict=True
            )
        ]

    track_paths = live_paths(t, ok_path)
    failure_paths = live_paths(f, ok_fpath)
    for label, paths in (("tracks", track_paths), ("failures", failure_paths)):
        seen: set[str] = set()
        dups = {p for p in paths if p in seen or seen.add(p)}
        for p in sorted(dups)[:5]:
            problems.append(f"{label}: relpath {p!r} has more than one live row")
    both = set(track_paths) & set(failure_paths)
    for p in sorted(both)[:5]:
        problems.append(f"relpath {p!r} is live both as a track and as a failure")

    def check_finite(name: str, n: int) -> None:
        ds = b.ds[name]
        step = max(1, (32 * 1024 * 1024) // max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:]))))
        bad = 0
        first = None
        for lo in range(0, n, step):
            block = ds[lo : min(n, lo + step)]
            nf = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
            if nf.any():
                bad += int(nf.sum())
                first = lo + int(np.flatnonzero(nf)[0]) if first is None else first
        if bad:
            problems.append(f"{name}: {bad} committed rows hold NaN or inf (first: row {first})")

    for name in b.outputs:
        check_finite(f"clip/{name}", n_tr)
    check_finite("patches/starts", n_pa)
    if full:
        for name in b.meta["patch_outputs"]:
            check_finite(f"patches/{name}", n_pa)
    return problems


# --------------------------------------------------------------------------
# Sanity checks of embeddings
# --------------------------------------------------------------------------


def _row_hashes(matrix: np.ndarray) -> np.ndarray:
    """64-bit hash of each row, rounded so that near-identical rows collide."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("expected a 2-D matrix")
    scale = np.abs(x).max(axis=1, keepdims=True) if x.shape[1] else np.ones((len(x), 1))
    scale[~(scale > 0)] = 1.0
    q = np.round(x / scale * 4096.0)
    q[~np.isfinite(q)] = 0
    q = q.astype(np.int32)
    out = np.empty(len(x), dtype=np.uint64)
    for i in range(len(x)):
        digest = hashlib.blake2b(q[i].tobytes(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def _names(relpaths: Sequence[str], idx, limit: int = 10) -> str:
    idx = list(idx)
    shown = ", ".join(relpaths[i] for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def sanity_check(
    vectors: Mapping[str, np.ndarray],
    relpaths: Sequence[str],
    *,
    known_hashes: Mapping[int, str] | None = None,
    rtol: float = 1e-4,
) -> list[str]:
    """Look for embeddings that are probably wrong; returns readable warnings.

    Parameters
    ----------
    vectors : mapping str -> ndarray, shape (N, dim)
        Clip-level vectors of N files, per output (the backend's order).
    relpaths : sequence of str, length N
        The files, named in the warnings.
    known_hashes : mapping int -> str, optional, keyword-only
        Hash (of the rounded concatenated vector) -> relpath of vectors
        stored before; a new file with the same hash is reported.
    rtol : float, keyword-only
        Relative distance under which two vectors count as near-identical.

    Returns
    -------
    list of str
        One warning per problem class (per output), naming the files:
        NaN/inf values, all-zero vectors, constant vectors (no variation
        across dimensions), and identical or near-identical vectors for
        different files (within the batch, or matching a stored vector).
    """
    relpaths = list(relpaths)
    n = len(relpaths)
    mats: dict[str, np.ndarray] = {}
    for name, v in vectors.items():
        a = np.asarray(v, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"vectors[{name!r}] has shape {a.shape}, expected ({n}, dim)")
        mats[name] = a
    warnings: list[str] = []
    suspect = np.zeros(n, dtype=bool)
    for name, a in mats.items():
        finite = np.isfinite(a).all(axis=1)
        safe = np.where(finite[:, None], a, 0.0)
        zero = finite & (safe == 0).all(axis=1)
        const = np.zeros(n, dtype=bool)
        if a.shape[1] >= 2:
            scale = np.abs(safe).max(axis=1)
            const = finite & ~zero & (safe.std(axis=1) <= 1e-6 * scale)
        for mask, what in (
            (~finite, "NaN or inf values"),
            (zero, "an all-zero vector"),
            (const, "a constant vector (the same value in every dimension)"),
        ):
            if mask.any():
                k = int(mask.sum())
                warnings.append(
                    f"{k} file{'s' if k > 1 else ''} with {what} in output {name!r}: "
                    f"{_names(relpaths, np.flatnonzero(mask))}"
                )
        suspect |= ~finite | zero | const
    if not mats or n == 0:
        return warnings
    good = np.flatnonzero(~suspect)
    x = np.concatenate(list(mats.values()), axis=1)[good]
    hashes = _row_hashes(x) if len(good) else np.zeros(0, np.uint64)
    # Groups of near-identical rows within the batch.
    parent = list(range(len(good)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs: Iterable[tuple[int, int]]
    if 1 < len(good) <= 2048:
        norms = np.linalg.norm(x, axis=1)
        sq = norms[:, None] ** 2 + norms[None, :] ** 2 - 2 * (x @ x.T)
        dist = np.sqrt(np.maximum(sq, 0))
        close = dist <= rtol * np.maximum(norms[:, None], norms[None, :])
        ii, jj = np.nonzero(np.triu(close, 1))
        pairs = zip(ii.tolist(), jj.tolist(), strict=True)
    else:
        first: dict[int, int] = {}
        pairs = []
        for i, h in enumerate(hashes.tolist()):
            if h in first:
                pairs.append((first[h], i))
            else:
                first[h] = i
    for i, j in pairs:
        if relpaths[good[i]] != relpaths[good[j]]:
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(good)):
        groups.setdefault(find(i), []).append(int(good[i]))
    for members in groups.values():
        if len(members) > 1:
            warnings.append(
                f"{len(members)} files have identical or near-identical embeddings "
                f"(the same audio twice, or a decoding problem?): {_names(relpaths, members)}"
            )
    if known_hashes:
        for i, h in enumerate(hashes.tolist()):
            other = known_hashes.get(h)
            if other is not None and other != relpaths[good[i]]:
                warnings.append(
                    f"{relpaths[good[i]]} has the same embedding as the stored {other} "
                    "(the same audio twice, or a decoding problem?)"
                )
    return warnings
