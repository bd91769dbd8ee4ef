"""Tests of the HDF5 embedding cache (tagger_gui/core/cache.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import unicodedata
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from tagger_gui.core import cache as cache_mod
from tagger_gui.core.cache import (
    FORMAT_VERSION,
    EmbeddedTrack,
    EmbeddingCache,
    default_cache_path,
    sanity_check,
)
from tagger_gui.core.errors import CacheError

REPO = Path(__file__).resolve().parents[1]
KEY = "fake@1"
OUTPUTS = {"mean_pool": 16, "penultimate": 8, "taggram": 4}
TAGS = {"taggram": ["rock", "pop", "jazz", "folk"]}


def make_track(relpath: str, mtime_ns: int = 1, n_patches: int = 3, outputs=OUTPUTS, seed=None):
    """A track whose vectors depend only on (relpath, mtime_ns)."""
    if seed is None:
        seed = zlib.crc32(f"{relpath}|{mtime_ns}".encode("utf-8", "surrogateescape"))
    rng = np.random.default_rng(seed)
    patches = {
        o: rng.standard_normal((n_patches, d)).astype(np.float32) for o, d in outputs.items()
    }
    starts = np.arange(n_patches, dtype=np.float32) * 3.0
    return EmbeddedTrack(
        relpath, 1000 + len(relpath), mtime_ns, 3.0 * n_patches, n_patches == 1, starts, patches
    )


def clip(track: EmbeddedTrack, output: str) -> np.ndarray:
    return track.patches[output].mean(axis=0, dtype=np.float64).astype(np.float32)


def register(cache: EmbeddingCache, key: str = KEY, outputs=OUTPUTS, **kw) -> None:
    name, version = key.split("@")
    cache.register_backend(
        key,
        name=name,
        version=version,
        outputs=outputs,
        params={"sample_rate": 16000, "patch_seconds": 3.0},
        tag_names=TAGS if "taggram" in outputs else {},
        **kw,
    )


@pytest.fixture
def path(tmp_path) -> Path:
    return default_cache_path(tmp_path / "library")


def test_default_path_and_new_file_attributes(path, tmp_path):
    assert path == tmp_path / "library" / ".tagger" / "embeddings.h5"
    with EmbeddingCache.open(path, "a", library_root=tmp_path / "library") as cache:
        assert cache.backends() == []
        assert cache.format_version == FORMAT_VERSION
        assert cache.library_root == str(tmp_path / "library")
        assert cache.app_version
        assert cache.verify() == []
    assert not os.path.exists(str(path) + ".tmp")


def test_round_trip(path):
    tracks = [make_track(f"a/{i}.mp3", n_patches=1 + i % 3) for i in range(7)]
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        assert cache.write_batch(KEY, tracks[:4]) == []
        cache.write_batch(KEY, tracks[4:])
    with EmbeddingCache.open(path, "r") as cache:
        assert cache.backends() == [KEY]
        info = cache.backend_info(KEY)
        assert info["outputs"] == OUTPUTS and list(info["outputs"]) == list(OUTPUTS)
        assert info["params"] == {"sample_rate": 16000, "patch_seconds": 3.0}
        assert info["tag_names"] == TAGS
        assert info["patch_outputs"] == ("penultimate", "taggram")
        table = cache.tracks(KEY)
        assert table.relpath == [t.relpath for t in tracks]
        assert table.size.tolist() == [t.size for t in tracks]
        assert table.mtime_ns.tolist() == [t.mtime_ns for t in tracks]
        assert table.n_patches.tolist() == [len(t.starts) for t in tracks]
        assert table.short.tolist() == [t.short for t in tracks]
        np.testing.assert_allclose(table.duration, [t.duration for t in tracks])
        assert (table.embedded_at > 0).all()
        relpaths, x = cache.load(KEY, ["taggram", "mean_pool"])
        assert relpaths == table.relpath and x.dtype == np.float32 and x.shape == (7, 20)
        want = np.stack(
            [np.concatenate([clip(t, "taggram"), clip(t, "mean_pool")]) for t in tracks]
        )
        np.testing.assert_array_equal(x, want)
        _, x1 = cache.load(KEY, "penultimate")
        np.testing.assert_array_equal(x1, np.stack([clip(t, "penultimate") for t in tracks]))
        starts, p = cache.load_patches(KEY, "penultimate", tracks[2].relpath)
        np.testing.assert_array_equal(starts, tracks[2].starts)
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, tracks[2].patches["penultimate"], rtol=1e-3, atol=1e-3)
        with pytest.raises(CacheError, match="not stored per patch"):
            cache.load_patches(KEY, "mean_pool", tracks[2].relpath)
        with pytest.raises(CacheError, match="no output"):
            cache.load(KEY, ["nope"])
        with pytest.raises(CacheError, match="not in the cache"):
            cache.tracks("other@1")
        with pytest.raises(CacheError, match="read-only"):
            cache.write_batch(KEY, tracks[:1])
        assert cache.verify(full=True) == []


def test_on_disk_layout(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, [make_track("x.mp3")])
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        g = f["backends"][KEY]
        assert g.attrs["name"] == "fake" and g.attrs["version"] == "1"
        assert g["clip/mean_pool"].dtype == np.float32
        assert g["patches/penultimate"].dtype == np.float16
        assert g["patches/starts"].dtype == np.float32
        assert "patches/mean_pool" not in g
        assert g["patches/penultimate"].maxshape == (None, 8)


def test_patch_outputs_subset_and_none(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache, patch_outputs=("taggram",))
        register(cache, "hand@1", outputs={"mfcc": 5})  # has neither default output
        cache.write_batch(KEY, [make_track("a.mp3")])
        cache.write_batch("hand@1", [make_track("a.mp3", outputs={"mfcc": 5})])
        assert cache.backend_info(KEY)["patch_outputs"] == ("taggram",)
        assert cache.backend_info("hand@1")["patch_outputs"] == ()
        with pytest.raises(CacheError, match="stored: none"):
            cache.load_patches("hand@1", "mfcc", "a.mp3")
        starts, _ = cache.load_patches(KEY, "taggram", "a.mp3")
        assert len(starts) == 3


def test_register_conflict_and_key_checks(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        register(cache)  # same metadata: a no-op
        with pytest.raises(CacheError, match="other outputs"):
            register(cache, outputs={"taggram": 4})
        with pytest.raises(ValueError, match="does not match"):
            cache.register_backend("x@2", name="x", version="1", outputs={"a": 1}, params={})


def test_incremental_plan(path):
    tracks = [make_track(f"{i}.mp3", mtime_ns=10) for i in range(4)]
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, tracks)
        files = [(t.relpath, t.size, t.mtime_ns) for t in tracks]
        files[1] = (files[1][0], files[1][1], 11)  # touched
        files[2] = (files[2][0], files[2][1] + 1, 10)  # resized
        files.append(("new.mp3", 5, 5))
        to_embed, unchanged = cache.plan(KEY, files)
        assert to_embed == [files[1], files[2], ("new.mp3", 5, 5)]
        assert unchanged == ["0.mp3", "3.mp3"]
    with EmbeddingCache.open(path, "r") as cache:  # readers can plan too
        assert cache.plan(KEY, files) == (to_embed, unchanged)


def test_change_detection_replaces_vectors_and_compact(path):
    old = [make_track(f"{i}.mp3", mtime_ns=1) for i in range(5)]
    new = make_track("2.mp3", mtime_ns=2, n_patches=5)
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, old)
        cache.write_batch(KEY, [new])
        table = cache.tracks(KEY)
        assert sorted(table.relpath) == [t.relpath for t in old]
        assert dict(zip(table.relpath, table.mtime_ns.tolist(), strict=True))["2.mp3"] == 2
        relpaths, x = cache.load(KEY, "taggram")
        np.testing.assert_array_equal(x[relpaths.index("2.mp3")], clip(new, "taggram"))
        starts, _ = cache.load_patches(KEY, "taggram", "2.mp3")
        assert len(starts) == 5
        size_before = os.path.getsize(path)
        cache.compact()
        assert cache.verify(full=True) == []
        assert cache.tracks(KEY).row.tolist() == list(range(5))
        relpaths2, x2 = cache.load(KEY, "taggram")
        assert relpaths2 == relpaths
        np.testing.assert_array_equal(x2, x)
        cache.write_batch(KEY, [make_track("after.mp3")])  # still writable
    with h5py.File(path, "r") as f:
        committed = cache_mod._decode_commit(f["backends"][KEY]["commit"][()])
        assert committed["tracks"] == 6  # 5 after compaction (the old row is gone) + 1
    assert os.path.getsize(path) <= size_before * 2


def test_prune_drops_rows_of_all_backends(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        register(cache, "other@2", outputs={"feat": 3})
        cache.write_batch(KEY, [make_track(f"{i}.mp3") for i in range(4)])
        cache.write_batch(
            "other@2", [make_track(f"{i}.mp3", outputs={"feat": 3}) for i in range(4)]
        )
        cache.record_failures(KEY, [("broken.mp3", 1, 1, "cannot decode")])
        assert cache.prune(["0.mp3", "2.mp3"]) == 5
        for key in (KEY, "other@2"):
            assert cache.tracks(key).relpath == ["0.mp3", "2.mp3"]
        assert cache.failures() == []
        assert cache.prune(["0.mp3", "2.mp3"]) == 0
    with EmbeddingCache.open(path, "r") as cache:
        assert cache.tracks("other@2").relpath == ["0.mp3", "2.mp3"]


def test_switching_backend_keeps_the_others(path, tmp_path):
    a = [make_track(f"{i}.mp3") for i in range(3)]
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, a)
        _, before = cache.load(KEY, list(OUTPUTS))
        register(cache, "fake@2", outputs={"taggram": 4})
        cache.write_batch("fake@2", [make_track("0.mp3", outputs={"taggram": 4})])
        assert cache.backends() == [KEY, "fake@2"]
        _, after = cache.load(KEY, list(OUTPUTS))
        np.testing.assert_array_equal(before, after)
        cache.write_batch(KEY, [make_track("3.mp3")])
    with EmbeddingCache.open(path, "r") as cache:
        assert len(cache.tracks(KEY)) == 4 and len(cache.tracks("fake@2")) == 1
        assert cache.verify() == []


def test_failure_rows(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.record_failures(KEY, [("bad.mp3", 10, 20, "cannot decode"), ("x.ogg", 1, 2, "empty")])
        assert cache.failures() == [("bad.mp3", "cannot decode"), ("x.ogg", "empty")]
        files = [("bad.mp3", 10, 20), ("x.ogg", 1, 3)]
        assert cache.plan(KEY, files) == ([("x.ogg", 1, 3)], [])  # unchanged failure skipped
        assert cache.plan(KEY, files, retry_failed=True)[0] == files
        cache.record_failures(KEY, [("bad.mp3", 10, 20, "still broken")])
        assert cache.failures(KEY) == [("bad.mp3", "still broken"), ("x.ogg", "empty")]
        cache.write_batch(KEY, [make_track("bad.mp3")])  # a later success
        assert cache.failures() == [("x.ogg", "empty")]
        # NaN vectors are recorded as a failure, never stored.
        nan = make_track("nan.mp3")
        nan.patches["taggram"][1, 2] = np.nan
        warnings = cache.write_batch(KEY, [nan, make_track("ok.mp3")])
        assert any("NaN" in w and "nan.mp3" in w for w in warnings)
        assert "nan.mp3" not in cache.tracks(KEY).relpath
        assert dict(cache.failures())["nan.mp3"] == "the embedding has NaN or inf values"
        assert cache.verify(full=True) == []
    with EmbeddingCache.open(path, "r") as cache:
        assert [r for r, _ in cache.failures()] == ["nan.mp3", "x.ogg"]


def test_newer_format_version_is_refused(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 999
    for mode in ("r", "a"):
        with pytest.raises(CacheError, match="version 999") as info:
            EmbeddingCache.open(path, mode)
        assert "newer" in str(info.value)


def test_not_a_cache(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(CacheError, match="not a tagger_gui embedding cache"):
        EmbeddingCache.open(p, "r")
    with pytest.raises(CacheError, match="no embedding cache"):
        EmbeddingCache.open(tmp_path / "missing.h5", "r")


def test_migration_hook(path, monkeypatch):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, [make_track("a.mp3")])
    calls = []

    def v1_to_v2(f):
        calls.append(int(f.attrs["format_version"]))
        f.attrs["migrated"] = True

    monkeypatch.setattr(cache_mod, "FORMAT_VERSION", 2)
    with pytest.raises(CacheError, match="cannot upgrade"):
        EmbeddingCache.open(path, "a")
    monkeypatch.setattr(cache_mod, "_MIGRATIONS", {1: v1_to_v2})
    with pytest.raises(CacheError, match="open it once for writing"):
        EmbeddingCache.open(path, "r")
    with EmbeddingCache.open(path, "a") as cache:
        assert cache.format_version == 2
        assert cache.tracks(KEY).relpath == ["a.mp3"]
    assert calls == [1]
    with h5py.File(path, "r") as f:
        assert f.attrs["migrated"]


def test_single_writer_lock(path):
    with EmbeddingCache.open(path, "a"):
        with pytest.raises(CacheError, match="already open for writing"):
            EmbeddingCache.open(path, "a")
        with EmbeddingCache.open(path, "r") as reader:  # readers are welcome
            assert reader.backends() == []
    with EmbeddingCache.open(path, "a"):
        pass  # the lock was released


def test_verify_catches_a_corrupted_index(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, [make_track(f"{i}.mp3") for i in range(4)])
        assert cache.verify(full=True) == []
    with h5py.File(path, "r+") as f:
        g = f["backends"][KEY]
        g["tracks/patch_offset"][1] = 10**9
        g["tracks/path_start"][3] = g["tracks/path_start"][2]  # a duplicate relpath
        g["clip/taggram"][0, 1] = np.nan
    with EmbeddingCache.open(path, "r") as cache:
        problems = cache.verify()
    text = "\n".join(problems)
    assert "patch range of row 1 is out of range" in text
    assert "'2.mp3' has more than one live row" in text
    assert "clip/taggram: 1 committed rows hold NaN" in text
    with h5py.File(path, "r+") as f:
        f["backends"][KEY]["commit"][...] = 0
    with pytest.raises(CacheError, match="no valid commit record"):
        EmbeddingCache.open(path, "r")


def test_commit_record_falls_back_to_the_other_slot(path):
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, [make_track("a.mp3")])
        cache.write_batch(KEY, [make_track("b.mp3")])  # commit seq 2 -> slot 0
    with h5py.File(path, "r+") as f:
        f["backends"][KEY]["commit"][0, 1] = 77  # a torn write: checksum breaks
    with EmbeddingCache.open(path, "r") as cache:
        assert cache.tracks(KEY).relpath == ["a.mp3"]


def test_sanity_check_flags_each_class():
    rng = np.random.default_rng(0)
    n = 9
    names = [f"f{i}.mp3" for i in range(n)]
    a = rng.standard_normal((n, 6)).astype(np.float32)
    b = rng.standard_normal((n, 3)).astype(np.float32)
    assert sanity_check({"a": a, "b": b}, names) == []
    a[0, 2] = np.nan
    b[1, 0] = np.inf
    a[2] = 0
    b[2] = 0
    a[3] = 0.25
    b[3] = 0.5
    a[5], b[5] = a[4], b[4]  # exact duplicate
    a[7], b[7] = a[6] * (1 + 1e-7), b[6]  # near duplicate
    warnings = sanity_check({"a": a, "b": b}, names)
    text = "\n".join(warnings)
    assert "NaN or inf values in output 'a': f0.mp3" in text
    assert "NaN or inf values in output 'b': f1.mp3" in text
    assert "all-zero vector in output 'a': f2.mp3" in text
    assert "constant vector" in text and "f3.mp3" in text
    assert any("f4.mp3" in w and "f5.mp3" in w and "identical" in w for w in warnings)
    assert any("f6.mp3" in w and "f7.mp3" in w for w in warnings)
    assert not any("f8.mp3" in w for w in warnings)
    # against vectors stored before: write_batch compares with stored hashes
    known = {int(h): "old.mp3" for h in cache_mod._row_hashes(np.hstack([a[8:], b[8:]]))}
    warnings = sanity_check({"a": a[8:], "b": b[8:]}, ["copy.mp3"], known_hashes=known)
    assert warnings == ["copy.mp3 has the same embedding as the stored old.mp3 "
                        "(the same audio twice, or a decoding problem?)"]  # fmt: skip


def test_write_batch_warns_about_a_stored_duplicate(path):
    t = make_track("a.mp3", seed=1)
    dup = make_track("copy of a.mp3", seed=1)
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        assert cache.write_batch(KEY, [t]) == []
        warnings = cache.write_batch(KEY, [dup])
        assert len(warnings) == 1 and "copy of a.mp3" in warnings[0] and "a.mp3" in warnings[0]
        assert cache.write_batch(KEY, [make_track("b.mp3", seed=2)]) == []
        assert cache.write_batch(KEY, [make_track("b.mp3", seed=2)]) == []  # re-embedding


def test_unicode_relpaths(path):
    nfc = unicodedata.normalize("NFC", "Café/é.flac")
    nfd = unicodedata.normalize("NFD", "Café/é.flac")
    names = [
        "Björk/Jóga.flac",
        "日本/曲 1.mp3",
        "emoji/🎵 ♪.ogg",
        nfc,
        nfd,
        "bad/\udce9t\udce9.mp3",
    ]
    assert nfc != nfd
    tracks = [make_track(n) for n in names]
    with EmbeddingCache.open(path, "a") as cache:
        register(cache)
        cache.write_batch(KEY, tracks)
        cache.record_failures(KEY, [("ünïcode/ß.wav", 1, 1, "grüße: kaputt")])
    with EmbeddingCache.open(path, "r") as cache:
        assert cache.tracks(KEY).relpath == names
        assert cache.failures() == [("ünïcode/ß.wav", "grüße: kaputt")]
        files = [(t.relpath, t.size, t.mtime_ns) for t in tracks]
        assert cache.plan(KEY, files) == ([], names)
        starts, _ = cache.load_patches(KEY, "taggram", nfd)
        assert len(starts) == 3


# -- processes ----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_a_dead_writers_flags_are_cleared_and_its_temp_file_removed(path):
    script = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        from tagger_gui.core.cache import EmbeddingCache, EmbeddedTrack
        cache = EmbeddingCache.open(sys.argv[1], "a")
        cache.register_backend("v@1", name="v", version="1", outputs={"v": 3}, params={})
        cache.write_batch("v@1", [EmbeddedTrack("a", 1, 1, 1.0, True, np.zeros(1),
                                                {"v": np.ones((1, 3), np.float32)})])
        open(sys.argv[1] + ".tmp", "wb").write(b"half a file")
        os._exit(0)  # dies without closing, like a killed writer
        """
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=_env())
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")  # HDF5 alone refuses the file now
    with EmbeddingCache.open(path, "r") as cache:  # SWMR readers can read it
        assert cache.tracks("v@1").relpath == ["a"]
    with EmbeddingCache.open(path, "a") as cache:
        assert cache.tracks("v@1").relpath == ["a"]
        assert cache.verify(full=True) == []
        assert not os.path.exists(str(path) + ".tmp")
    with h5py.File(path, "r") as f:  # a clean close leaves a clean file
        assert f.attrs["format_version"] == FORMAT_VERSION


READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from tagger_gui.core.cache import EmbeddingCache

    path, stop = sys.argv[1], sys.argv[2]
    snapshots, rows, problems, seen, keys = 0, 0, [], set(), set()
    cache = EmbeddingCache.open(path, "r")
    print("ready", flush=True)
    while True:
        done = __import__("os").path.exists(stop)
        cache.refresh()
        for key in cache.backends():
            relpaths, x = cache.load(key, "v")
            if len(relpaths) % 4:
                problems.append(f"{key}: {len(relpaths)} rows, not whole batches")
            for r, row in zip(relpaths, x):
                b, i = (int(s) for s in r.split("/"))
                if not np.array_equal(row, np.full(3, b * 10 + i, np.float32)):
                    problems.append(f"{key}: row {r} holds {row}")
            seen.add((key, len(relpaths)))
            keys.add(key)
            rows += len(relpaths)
        problems += cache.verify()
        snapshots += 1
        if done:
            break
    print(snapshots, len(seen), rows, len(problems), ",".join(sorted(keys)), flush=True)
    for p in problems[:5]:
        print(p, flush=True)
    """
)


def _batch(b: int) -> list[EmbeddedTrack]:
    return [
        EmbeddedTrack(
            f"{b}/{i}", 1, b, 3.0, True, np.zeros(1), {"v": np.full((1, 3), b * 10 + i, np.float32)}
        )
        for i in range(4)
    ]


def test_readable_while_writing_from_another_process(path, tmp_path):
    stop = tmp_path / "stop"
    with EmbeddingCache.open(path, "a") as cache:
        cache.register_backend("v@1", name="v", version="1", outputs={"v": 3}, params={})
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            assert reader.stdout.readline().strip() == "ready"
            for b in range(60):
                cache.write_batch("v@1", _batch(b))
                if b == 30:  # a new backend replaces the file under the reader
                    cache.register_backend(
                        "v@2", name="v", version="2", outputs={"v": 3}, params={}
                    )
                if b >= 30:
                    cache.write_batch("v@2", _batch(b))
                time.sleep(0.005)
            stop.touch()
            out, _ = reader.communicate(timeout=60)
        finally:
            if reader.poll() is None:
                reader.kill()
    lines = out.strip().splitlines()
    *counts, keys = lines[0].split()
    snapshots, distinct, rows, n_problems = (int(v) for v in counts)
    assert n_problems == 0, lines[1:]
    assert snapshots > 3 and distinct > 3 and rows > 0
    assert keys == "v@1,v@2"  # the reader followed the file when it was replaced


KILL_WRITER = textwrap.dedent(
    """
    import sys
    import zlib
    import numpy as np
    from tagger_gui.core.cache import EmbeddingCache, EmbeddedTrack

    OUT = {"penultimate": 8, "taggram": 4, "mean_pool": 32}

    def track(relpath, mtime):
        rng = np.random.default_rng([zlib.crc32(relpath.encode()), mtime])
        p = 1 + mtime % 3
        patches = {o: rng.standard_normal((p, d)).astype(np.float32) for o, d in OUT.items()}
        return EmbeddedTrack(relpath, 7, mtime, 3.0 * p, p == 1, np.arange(p) * 3.0, patches)

    def batch(b):
        records = [track(f"{b}/t{i}.wav", b) for i in range(3)]
        if b >= 2:
            records.append(track(f"{b - 2}/t0.wav", b))  # a changed file
        return records

    def expected(last):
        live = {}
        for b in range(last + 1):
            for t in batch(b):
                live[t.relpath] = t
        return live

    if __name__ == "__main__":
        path, n = sys.argv[1], int(sys.argv[2])
        with EmbeddingCache.open(path, "a") as cache:
            if "fake@1" not in cache.backends():
                cache.register_backend(
                    "fake@1", name="fake", version="1", outputs=OUT, params={}
                )
            t = cache.tracks("fake@1")
            b = int(t.mtime_ns.max()) + 1 if len(t) else 0
            for _ in range(n):
                cache.write_batch("fake@1", batch(b))
                print("committed", b, flush=True)
                b += 1
    """
)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_sigkill_at_random_moments_loses_at_most_the_batch_in_flight(path, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(KILL_WRITER, encoding="utf-8")
    ns: dict = {"__name__": "kill_writer"}
    exec(compile(KILL_WRITER, str(script), "exec"), ns)  # the same schedule, to check
    rng = random.Random(1234)
    max_printed = -1

    def check() -> int:
        with EmbeddingCache.open(path, "r") as cache:
            assert cache.verify(full=True) == []
            table = cache.tracks("fake@1")
            last = int(table.mtime_ns.max()) if len(table) else -1
            assert max_printed <= last <= max_printed + 1  # every committed batch is there
            want = ns["expected"](last)
            relpaths, x = cache.load("fake@1", ["taggram", "mean_pool"])
            assert sorted(relpaths) == sorted(want)
            for r, row, mtime in zip(relpaths, x, table.mtime_ns.tolist(), strict=True):
                t = want[r]
                assert mtime == t.mtime_ns
                np.testing.assert_array_equal(
                    row, np.concatenate([clip(t, "taggram"), clip(t, "mean_pool")])
                )
        return last

    kills = 0
    for _ in range(10):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), "100000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        time.sleep(rng.uniform(0.25, 0.9))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
        done = [int(x.split()[1]) for x in out.split("\n")[:-1] if x.startswith("committed ")]
        if done:
            max_printed = done[-1]
        if os.path.exists(path):
            check()
    # A last writer resumes after the last kill and finishes normally.
    out = subprocess.run(
        [sys.executable, str(script), str(path), "3"],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout
    max_printed = int(out.split()[-1])
    assert check() == max_printed and kills == 10
