"""SIGKILL stress test of the embedding cache (tagger_gui/core/cache.py).

A writer process runs a deterministic schedule of cache operations (batches
of tracks, re-embedded files, failures, prunes, new backends, compactions)
and prints ``committed N`` after batch N is committed. This script kills it
with SIGKILL after a random delay, then checks that the file opens read-only,
``verify(full=True)`` finds nothing, and the contents equal a replay of the
schedule up to the last committed batch: every batch reported committed is
there, byte for byte, and nothing of a half-written batch is. The next writer
resumes from the cache's own state. Every ``--episode`` kills the cache is
deleted, so file creation and backend registration are hit again.

With ``--reader`` another process reads the cache in a loop during the whole
run (opening it, refreshing its snapshot, checking every row it sees).

Usage::

    python benchmarks/cache_kill_stress.py --kills 150 --max-delay-ms 1500 --reader

Prints one line per kill (phase the writer was in, batches committed) and a
summary: kills survived / failures. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tagger_gui.core.cache import EmbeddedTrack, EmbeddingCache

KEY_A = "fake-a@1"
KEY_B = "fake-b@2"
OUT_A = {"mean_pool": 753, "max_pool": 753, "penultimate": 200, "taggram": 50}
OUT_B = {"feat": 40}
OUT_C = {"feat": 12, "taggram": 6}
TRACKS_PER_BATCH = 6


# -- the deterministic schedule -----------------------------------------------------


def backend_of(b: int) -> tuple[str, dict[str, int]]:
    if b % 25 == 12:  # a brand-new backend now and then: a registration
        return f"fake-c@{b}", OUT_C
    if b >= 8 and b % 2:
        return KEY_B, OUT_B
    return KEY_A, OUT_A


def batch_items(b: int) -> list[tuple[str, int, int, int, bool]]:
    """(relpath, size, mtime_ns, n_patches, has_nan) written by batch ``b``."""
    items = [
        (f"{b:04d}/tråck {i} ♪.flac", 1000 * b + i, b, 1 + (7 * b + i) % 4, False)
        for i in range(TRACKS_PER_BATCH)
    ]
    if b % 4 == 3 and b >= 4:  # a changed file: re-embedded, replaces its row
        items.append((f"{b - 4:04d}/tråck 0 ♪.flac", 1000 * (b - 4), b, 2, False))
    if b % 5 == 0:  # NaN vectors: stored as a failure in the same commit
        items.append((f"fail/{b}.mp3", b, b, 1, True))
        if b >= 10:  # a failed file that now works: removes its failure row
            items.append((f"fail/{b - 10}.mp3", b, b, 2, False))
    return items


def pruned_by(b: int) -> set[str]:
    """Files deleted from the library just before batch ``b``."""
    return {f"{b - 7:04d}/tråck 1 ♪.flac"} if b % 7 == 6 and b >= 7 else set()


def existing_before(b: int) -> list[str]:
    created, gone = set(), set()
    for c in range(b + 1):
        gone |= pruned_by(c)
        created.update(item[0] for item in batch_items(c))
    return sorted(created - gone)


def make_record(key: str, outputs: dict[str, int], item) -> EmbeddedTrack:
    relpath, size, mtime, p, nan = item
    seed = hashlib.blake2b(f"{key}|{relpath}|{mtime}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(seed, "little"))
    patches = {o: rng.standard_normal((p, d)).astype(np.float32) for o, d in outputs.items()}
    if nan:
        patches[next(iter(outputs))][0, 0] = np.nan
    starts = np.arange(p, dtype=np.float32) * 3
    return EmbeddedTrack(relpath, size, mtime, 3.0 * p, p == 1, starts, patches)


def item_for(relpath: str, mtime: int):
    for item in batch_items(mtime):
        if item[0] == relpath:
            return item
    return None


def replay(last: int) -> dict[str, dict[str, dict[str, tuple[int, int]]]]:
    """Expected content after batch ``last``: key -> {tracks, failures}."""
    state: dict[str, dict[str, dict]] = {}
    for b in range(last + 1):
        apply_prune(state, b)
        key, _ = backend_of(b)
        st = state.setdefault(key, {"tracks": {}, "failures": {}})
        for relpath, size, mtime, _, nan in batch_items(b):
            st["tracks"].pop(relpath, None)
            st["failures"].pop(relpath, None)
            (st["failures"] if nan else st["tracks"])[relpath] = (size, mtime)
    return state


def apply_prune(state, b: int) -> None:
    for st in state.values():
        for relpath in pruned_by(b):
            st["tracks"].pop(relpath, None)
            st["failures"].pop(relpath, None)


def last_batch(cache: EmbeddingCache) -> int:
    last = -1
    for key in cache.backends():
        t = cache.tracks(key)
        if len(t):
            last = max(last, int(t.mtime_ns.max()))
    return last


# -- writer ----------------------------------------------------------------------------


def run_writer(path: str) -> None:
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    say("phase create" if not os.path.exists(path) else "phase open")
    with EmbeddingCache.open(path, "a", library_root=os.path.dirname(path)) as cache:
        b = last_batch(cache) + 1
        say("start", b)
        while True:
            if pruned_by(b):
                say("phase prune")
                cache.prune(existing_before(b))
            key, outputs = backend_of(b)
            if key not in cache.backends():
                say("phase register")
                name, version = key.split("@")
                cache.register_backend(
                    key, name=name, version=version, outputs=outputs, params={"sr": 16000}
                )
            records = [make_record(key, outputs, item) for item in batch_items(b)]
            say("phase batch")
            cache.write_batch(key, records)
            say(f"committed {b}")
            if b % 15 == 14:
                say("phase compact")
                cache.compact()
            b += 1


# -- checker -----------------------------------------------------------------------------


def check_rows(cache: EmbeddingCache, key: str, sample: int | None, rng) -> list[str]:
    """Every live row (or a sample) holds exactly the vectors the schedule gives."""
    problems = []
    info = cache.backend_info(key)
    outputs = info["outputs"]
    relpaths, x = cache.load(key, list(outputs))
    table = cache.tracks(key)
    if len(set(relpaths)) != len(relpaths):
        problems.append(f"{key}: duplicate live relpaths")
    idx = range(len(relpaths))
    if sample is not None and len(relpaths) > sample:
        idx = sorted(rng.choice(len(relpaths), sample, replace=False).tolist())
    for i in idx:
        relpath, mtime = relpaths[i], int(table.mtime_ns[i])
        item = item_for(relpath, mtime)
        if item is None:
            problems.append(f"{key}: unexpected row {relpath!r} mtime {mtime}")
            continue
        rec = make_record(key, outputs, item)
        want = np.concatenate(
            [rec.patches[o].mean(axis=0, dtype=np.float64).astype(np.float32) for o in outputs]
        )
        if not np.array_equal(x[i], want):
            problems.append(f"{key}: clip vectors of {relpath!r} differ")
        if int(table.size[i]) != item[1] or int(table.n_patches[i]) != item[3]:
            problems.append(f"{key}: identity of {relpath!r} differs")
        for o in info["patch_outputs"]:
            starts, v = cache.load_patches(key, o, relpath)
            if not (
                np.array_equal(v, rec.patches[o].astype(np.float16).astype(np.float32))
                and np.array_equal(starts, rec.starts)
            ):
                problems.append(f"{key}: patches {o!r} of {relpath!r} differ")
    return problems


def check_after_kill(path: str, max_printed: int, rng) -> tuple[int, list[str]]:
    """Open read-only, verify, compare with the replay. Returns (last batch, problems)."""
    if not os.path.exists(path):
        return -1, ([] if max_printed < 0 else ["the cache file is gone"])
    problems = []
    with EmbeddingCache.open(path, "r") as cache:
        problems += cache.verify(full=True)
        last = last_batch(cache)
        if not (max_printed <= last <= max_printed + 1):
            problems.append(f"cache holds batches up to {last}, writer reported {max_printed}")
        expected = replay(last)
        # The prune before batch last+1 may have run (partly: one commit per backend).
        pruned = replay(last)
        apply_prune(pruned, last + 1)
        next_key = backend_of(last + 1)[0]
        for key in sorted(set(cache.backends()) | set(expected)):
            if key not in cache.backends():
                problems.append(f"backend {key} is missing")
                continue
            got_tracks = {
                r: (int(s), int(m))
                for r, s, m in zip(
                    cache.tracks(key).relpath,
                    cache.tracks(key).size,
                    cache.tracks(key).mtime_ns,
                    strict=True,
                )
            }
            got_failures = {r for r, _ in cache.failures(key)}
            if key not in expected:
                if key != next_key or got_tracks or got_failures:
                    problems.append(f"unexpected backend {key}")
                continue
            ok = any(
                got_tracks == s[key]["tracks"] and got_failures == set(s[key]["failures"])
                for s in (expected, pruned)
            )
            if not ok:
                want = expected[key]["tracks"]
                problems.append(
                    f"{key}: tracks differ from the replay of batch {last}: "
                    f"missing {sorted(set(want) - set(got_tracks))[:3]}, "
                    f"extra {sorted(set(got_tracks) - set(want))[:3]}"
                )
            problems += check_rows(cache, key, 300, rng)
    return last, problems


def superblock_state(path: str) -> list[str]:
    """What a dead writer left in the HDF5 superblock (for the statistics)."""
    if not os.path.exists(path):
        return ["no file"]
    with open(path, "rb") as fh:
        head = fh.read(48)
        size = os.fstat(fh.fileno()).st_size
    (eoa,) = struct.unpack_from("<Q", head, 28)
    state = ["write flags left set" if head[11] else "flags clear"]
    if eoa < size:
        state.append("stored EOA < file size")
    elif eoa > size:
        state.append("stored EOA > file size")
    return state


# -- concurrent reader -----------------------------------------------------------------


def run_reader(path: str) -> None:
    rng = np.random.default_rng(1)
    stats = Counter()
    problems: list[str] = []
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    cache = None
    while not stop:
        try:
            if cache is None:
                if not os.path.exists(path):
                    time.sleep(0.01)
                    continue
                cache = EmbeddingCache.open(path, "r")
                stats["opens"] += 1
            elif cache.refresh():
                stats["new snapshots"] += 1
            for key in cache.backends():
                found = check_rows(cache, key, 20, rng)
                problems += found
                stats["rows checked"] += min(20, len(cache.tracks(key)))
            stats["checks"] += 1
            if stats["checks"] % 25 == 0:
                found = cache.verify()
                problems += found
                stats["verifies"] += 1
            if rng.random() < 0.05:  # sometimes start from a fresh open
                cache.close()
                cache = None
        except Exception as e:
            if not os.path.exists(path) or str(e).startswith("no embedding cache"):
                stats["file deleted by the driver (new episode)"] += 1
            else:
                problems.append(f"{type(e).__name__}: {e}")
            if cache is not None:
                cache.close()
            cache = None
            time.sleep(0.01)
    for key, value in sorted(stats.items()):
        print(f"reader {key}: {value}")
    print(f"reader problems: {len(problems)}")
    for p in problems[:20]:
        print("reader problem:", p)


# -- driver ------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=120)
    ap.add_argument("--max-delay-ms", type=float, default=1500.0)
    ap.add_argument("--episode", type=int, default=8, help="kills before starting afresh")
    ap.add_argument(
        "--clock",
        choices=("start", "ready"),
        default="start",
        help="count the delay from the writer's start, or from when it has imported "
        "everything and starts opening the cache (more kills land in cache code)",
    )
    ap.add_argument("--reader", action="store_true", help="run a concurrent reader")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--writer", metavar="PATH", help=argparse.SUPPRESS)
    ap.add_argument("--read", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        run_writer(args.writer)
        return 0
    if args.read:
        run_reader(args.read)
        return 0

    rng = np.random.default_rng(args.seed)
    pyrng = random.Random(args.seed)
    workdir = args.workdir or tempfile.mkdtemp(prefix="cache-kill-")
    path = os.path.join(workdir, ".tagger", "embeddings.h5")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    reader = None
    if args.reader:
        reader = subprocess.Popen(
            [sys.executable, __file__, "--read", path], stdout=subprocess.PIPE, text=True
        )
    failures = 0
    phases = Counter()
    superblocks = Counter()
    max_printed = -1
    total_batches = 0
    t0 = time.time()
    for kill in range(args.kills):
        if kill % args.episode == 0:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            max_printed = -1
        proc = subprocess.Popen(
            [sys.executable, __file__, "--writer", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = proc.stdout.readline() if args.clock == "ready" else ""
        delay = pyrng.uniform(0, args.max_delay_ms) / 1000
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        lines = (first + out).split("\n")[:-1]  # a line cut by the kill has no newline
        committed = [int(x.split()[1]) for x in lines if x.startswith("committed ")]
        phase = next((x[6:] for x in reversed(lines) if x.startswith("phase ")), "startup")
        if committed:
            phase = "batch" if lines[-1].startswith("committed") else phase
            max_printed = max(max_printed, committed[-1])
        phases[phase] += 1
        total_batches += len(committed)
        superblocks.update(superblock_state(path))
        problems = []
        if proc.returncode != -signal.SIGKILL:
            problems.append(f"writer exited by itself ({proc.returncode}): {err.strip()[-800:]}")
        try:
            last, found = check_after_kill(path, max_printed, rng)
            problems += found
            if (kill + 1) % args.episode == 0 and os.path.exists(path):
                # The next writer of this file would come after the reset:
                # check here that a writer can reopen (and repair) it.
                with EmbeddingCache.open(path, "a") as cache:
                    problems += [f"after reopening for writing: {p}" for p in cache.verify()]
        except Exception as e:
            last = None
            problems.append(f"{type(e).__name__}: {e}")
        status = "OK" if not problems else "FAIL"
        failures += bool(problems)
        print(
            f"kill {kill + 1:3d} after {delay * 1000:6.0f} ms in {phase:9s} "
            f"committed {len(committed):3d} this run, cache at batch {last}: {status}",
            flush=True,
        )
        for p in problems[:10]:
            print("   ", p, flush=True)
    print(
        f"\nkills survived: {args.kills - failures}/{args.kills}, failures: {failures}; "
        f"{total_batches} batches committed in {time.time() - t0:.0f} s; "
        f"kill phases: {dict(phases)}; delays 0-{args.max_delay_ms:g} ms after {args.clock}"
    )
    print(f"superblock after the kills: {dict(superblocks)}")
    if reader is not None:
        reader.send_signal(signal.SIGTERM)
        report = reader.communicate(timeout=60)[0].strip()
        print(report)
        if "reader problems: 0" not in report:
            failures += 1
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
