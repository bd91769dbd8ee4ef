"""Embedding a music library into the cache: the job behind ``tagger embed``.

:func:`embed_library` is a generator task (see :mod:`tagger_gui.core.tasks`).
Work is split so that both cores are busy:

* worker processes decode, downmix, resample and compute each backend's
  model input (:meth:`Backend.features`, numpy only);
* the process that drives the task runs the models on batches of patches
  gathered across tracks, and is the only writer of the HDF5 cache.

A batch is committed to the cache as a whole; stopping the task (or killing
the process) loses at most the batch in flight. Per-file problems never stop
the run: they are recorded in the cache, logged, and listed in the report.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagger_gui.core.audio import AnalysisPolicy, load_excerpts
from tagger_gui.core.cache import EmbeddedTrack, EmbeddingCache, backend_key, default_cache_path
from tagger_gui.core.embeddings import DEFAULT_BACKEND, Backend, load_backend
from tagger_gui.core.errors import AudioError, TaggerError
from tagger_gui.core.library import LibraryFile, ScanProblem, scan_library

log = logging.getLogger(__name__)

#: Patches gathered before the model runs and the cache commits.
DEFAULT_BATCH_PATCHES = 64


@dataclass
class EmbedProgress:
    """What :func:`embed_library` yields after each file or batch."""

    done: int
    total: int
    embedded: int
    unchanged: int
    failed: int
    audio_seconds: float
    elapsed: float
    current: str | None = None
    stage: str = "embedding"


@dataclass
class EmbedReport:
    """What :func:`embed_library` returns."""

    root: Path
    cache_path: Path
    backends: list[str]
    found: int = 0
    embedded: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped_failed: int = 0
    short: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pruned: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of analysed audio per second of wall time."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Decoded:
    """A worker's result for one file: model input per backend."""

    file: LibraryFile
    duration: float
    short: bool
    analysed_seconds: float
    features: dict[str, np.ndarray]
    starts: dict[str, np.ndarray]


# --- worker side -------------------------------------------------------------

_WORKER_BACKENDS: dict[str, Backend] = {}


#: Nice value added to the decoding processes: decoding is background work, and
#: the app's GUI thread (or the user's other programs) should get a CPU first.
WORKER_NICENESS = 10


def _worker_init() -> None:
    # Ctrl-C goes to the whole process group; only the parent handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(WORKER_NICENESS)


def _ping() -> bool:
    return True


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of decoding processes that has been seen to start."""
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init)
    try:
        pool.submit(_ping).result(timeout=120)
    except BrokenProcessPool as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        raise TaggerError(
            f"the decoding worker processes could not start ({exc}); try again with --workers 0"
        ) from exc
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


def _backend(name: str) -> Backend:
    if name not in _WORKER_BACKENDS:
        _WORKER_BACKENDS[name] = load_backend(name)
    return _WORKER_BACKENDS[name]


def decode_file(
    file: LibraryFile, backend_names: Sequence[str], policy: AnalysisPolicy
) -> _Decoded | tuple[LibraryFile, str]:
    """Decode one file and compute each backend's model input.

    Returns ``(file, reason)`` instead of raising, so that one bad file never
    breaks the pool.
    """
    try:
        by_rate: dict[int, object] = {}
        features: dict[str, np.ndarray] = {}
        starts: dict[str, np.ndarray] = {}
        decoded = None
        for name in backend_names:
            backend = _backend(name)
            sr = backend.sample_rate
            if sr not in by_rate:
                by_rate[sr] = load_excerpts(file.path, sr, policy=policy)
            decoded = by_rate[sr]
            hop = backend.patch_hop_seconds
            feats, patch_starts = [], []
            for seg, seg_start in zip(decoded.segments, decoded.starts, strict=True):
                x = backend.features(seg, sr)
                feats.append(x)
                patch_starts.append(seg_start + hop * np.arange(len(x)))
            features[name] = np.concatenate(feats)
            starts[name] = np.concatenate(patch_starts).astype(np.float32)
        analysed = sum(len(s) for s in decoded.segments) / decoded.sr
        return _Decoded(file, decoded.duration, decoded.short, analysed, features, starts)
    except AudioError as exc:
        return file, exc.reason
    except MemoryError:
        return file, "file too large to decode in memory"
    except Exception as exc:  # a decoder bug must not stop the library
        return file, f"unexpected error while decoding ({type(exc).__name__}: {exc})"


# --- driver side -------------------------------------------------------------


def _key(backend: Backend) -> str:
    return backend_key(backend.name, backend.version)


class _Batcher:
    """Gathers decoded tracks for one backend and commits them in batches."""

    def __init__(self, backend: Backend, cache: EmbeddingCache, batch_patches: int):
        self.backend = backend
        self.key = _key(backend)
        self.cache = cache
        self.batch_patches = batch_patches
        self.pending: list[_Decoded] = []
        self.n_patches = 0

    def add(self, item: _Decoded) -> bool:
        """Queue a track; True when a batch is ready to flush."""
        self.pending.append(item)
        self.n_patches += len(item.features[self.backend.name])
        return self.n_patches >= self.batch_patches

    def flush(self) -> list[str]:
        """Run the model on the queued tracks and commit them; returns warnings."""
        if not self.pending:
            return []
        name = self.backend.name
        x = np.concatenate([d.features[name] for d in self.pending])
        out = self.backend.infer(x)
        records, offset = [], 0
        for d in self.pending:
            n = len(d.features[name])
            records.append(
                EmbeddedTrack(
                    relpath=d.file.relpath,
                    size=d.file.size,
                    mtime_ns=d.file.mtime_ns,
                    duration=d.duration,
                    short=d.short,
                    starts=d.starts[name],
                    patches={k: v[offset : offset + n] for k, v in out.items()},
                )
            )
            offset += n
        warnings = [f"{self.backend.name}: {w}" for w in self.cache.write_batch(self.key, records)]
        self.pending, self.n_patches = [], 0
        return warnings


def embed_library(
    root: str | os.PathLike,
    *,
    cache_path: str | os.PathLike | None = None,
    backends: Sequence[str] = (DEFAULT_BACKEND,),
    policy: AnalysisPolicy | None = None,
    workers: int | None = None,
    device: str = "cpu",
    batch_patches: int = DEFAULT_BATCH_PATCHES,
    prune: bool = False,
    retry_failed: bool = False,
) -> Generator[EmbedProgress, None, EmbedReport]:
    """Embed every new or changed audio file below ``root`` into the cache.

    Parameters
    ----------
    root : path
        The music library folder.
    cache_path : path, optional
        The HDF5 cache; default :func:`default_cache_path`.
    backends : sequence of str
        Backend names (see :func:`~tagger_gui.core.embeddings.available_backends`).
    policy : AnalysisPolicy, optional
        Which part of each track is analysed (default: up to 10 excerpts of 3 s).
    workers : int, optional
        Decoding processes; 0 decodes in this process. Default: one per core
        less one (at least 1), leaving a core for the model.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_patches : int
        Patches per model batch and cache commit.
    prune : bool
        Drop cached vectors of files that no longer exist.
    retry_failed : bool
        Try again files that failed before and have not changed since.

    Yields
    ------
    EmbedProgress

    Returns
    -------
    EmbedReport
    """
    t0 = time.perf_counter()
    root = Path(root)
    policy = policy or AnalysisPolicy()
    cache_path = Path(cache_path) if cache_path else default_cache_path(root)
    if workers is None:
        workers = max(1, (os.cpu_count() or 2) - 1)
    models = [load_backend(name, device=device) for name in dict.fromkeys(backends)]
    report = EmbedReport(root, cache_path, [_key(b) for b in models])

    yield EmbedProgress(0, 0, 0, 0, 0, 0.0, 0.0, stage="scanning")
    files: list[LibraryFile] = []
    problems: list[ScanProblem] = []
    for item in scan_library(root):
        (files if isinstance(item, LibraryFile) else problems).append(item)
    report.found = len(files) + len(problems)

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache = EmbeddingCache.open(cache_path, mode="a", library_root=root)
    pool: ProcessPoolExecutor | None = None
    try:
        batchers = {}
        for b in models:
            cache.register_backend(
                _key(b),
                name=b.name,
                version=b.version,
                outputs=dict(b.outputs),
                params=dict(b.params),
                tag_names=dict(b.tag_names),
            )
            batchers[b.name] = _Batcher(b, cache, batch_patches)
        if prune:
            report.pruned = cache.prune([f.relpath for f in files])

        # What each file needs: the backends whose cached vectors are missing or stale.
        identities = [(f.relpath, f.size, f.mtime_ns) for f in files]
        needs: dict[str, list[str]] = {}
        up_to_date = {f.relpath for f in files}
        for b in models:
            to_embed, unchanged = cache.plan(_key(b), identities, retry_failed=retry_failed)
            for relpath, _, _ in to_embed:
                needs.setdefault(relpath, []).append(b.name)
            up_to_date &= set(unchanged)
        todo = [f for f in files if f.relpath in needs]
        report.unchanged = len(up_to_date)
        # neither to embed nor up to date: failed before and unchanged since
        report.skipped_failed = len(files) - len(todo) - len(up_to_date)
        for p in problems:
            report.failed.append((p.relpath, p.reason))
            log.warning("%s: %s", p.relpath, p.reason)

        total = len(todo)
        done = 0

        def progress(current: str | None = None, stage: str = "embedding") -> EmbedProgress:
            return EmbedProgress(
                done,
                total,
                report.embedded,
                report.unchanged,
                len(report.failed),
                report.audio_seconds,
                time.perf_counter() - t0,
                current,
                stage,
            )

        yield progress()

        def fail(file: LibraryFile, reason: str, names: Sequence[str]) -> None:
            report.failed.append((file.relpath, reason))
            log.warning("%s: %s", file.relpath, reason)
            for name in names:
                cache.record_failures(
                    _key(batchers[name].backend),
                    [(file.relpath, file.size, file.mtime_ns, reason)],
                )

        def warn(warnings: list[str]) -> None:
            for w in warnings:
                report.warnings.append(w)
                log.warning(w)

        def accept(result: _Decoded | tuple[LibraryFile, str]) -> None:
            nonlocal done
            done += 1
            if isinstance(result, tuple):
                fail(*result, needs[result[0].relpath])
                return
            report.embedded += 1
            report.audio_seconds += result.analysed_seconds
            if result.short:
                report.short.append(result.file.relpath)
            for name in needs[result.file.relpath]:
                if batchers[name].add(result):
                    warn(batchers[name].flush())

        if workers == 0:
            for f in todo:
                accept(decode_file(f, needs[f.relpath], policy))
                yield progress(f.relpath)
        else:
            pool = _start_pool(workers)
            queue = list(reversed(todo))
            in_flight: dict[Future, LibraryFile] = {}
            crashed: set[str] = set()
            max_in_flight = 32 * workers  # keep workers busy while the model runs
            suspects: list[LibraryFile] = []  # in flight when a worker crashed
            while queue or in_flight or suspects:
                if suspects:  # run them one at a time to find the culprit
                    if not in_flight:
                        f = suspects.pop()
                        in_flight[pool.submit(decode_file, f, needs[f.relpath], policy)] = f
                else:
                    while queue and len(in_flight) < max_in_flight:
                        f = queue.pop()
                        in_flight[pool.submit(decode_file, f, needs[f.relpath], policy)] = f
                finished, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                broken = False
                for fut in finished:
                    if isinstance(fut.exception(), BrokenProcessPool):
                        broken = True
                        continue
                    f = in_flight.pop(fut)
                    accept(fut.result())
                    yield progress(f.relpath)
                if broken:
                    # A decoder crashed a worker (e.g. a libsndfile bug on a hostile
                    # file) and took the pool down. The files that were in flight are
                    # retried alone in a new pool; one that crashes alone is the culprit.
                    pool.shutdown(wait=True, cancel_futures=True)
                    for f in in_flight.values():
                        if f.relpath in crashed:
                            accept((f, "the decoder crashed on this file"))
                            yield progress(f.relpath)
                        else:
                            crashed.add(f.relpath)
                            suspects.append(f)
                    in_flight.clear()
                    pool = _start_pool(workers)
                if not finished:
                    yield progress()

        yield progress(stage="saving")
        for batcher in batchers.values():
            warn(batcher.flush())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        cache.close()
    report.seconds = time.perf_counter() - t0
    return report
