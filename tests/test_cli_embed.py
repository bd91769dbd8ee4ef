"""`tagger embed` and `tagger embeddings` as a user runs them: real processes."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.cache import EmbeddingCache

from .conftest import write_audio


def tagger(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tagger_gui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def embed_cmd(root: Path, cache: Path, *extra: str) -> list[str]:
    """The `tagger embed` command line of a real process."""
    return [sys.executable, "-m", "tagger_gui", "embed", str(root), "--cache", str(cache), *extra]


def test_help_speaks_to_a_librarian():
    out = tagger("--help").stdout
    assert "embed" in out and "tags" in out
    out = tagger("embed", "--help").stdout
    for words in ("MUSIC_DIR", "--backend", "--cache", "--workers", "Ctrl-C", "musicnn-msd"):
        assert words in out


def test_embed_a_folder_prints_a_summary_and_lists_failures(small_library: Path, tmp_path: Path):
    cache = tmp_path / "cache.h5"
    res = tagger("embed", str(small_library), "--cache", str(cache), "--workers", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "embedded            4" in res.stdout
    assert "failed              2" in res.stdout
    assert "not really.mp3:" in res.stdout and "empty.wav:" in res.stdout
    log = (tmp_path / "embed.log").read_text(encoding="utf-8")
    assert "not really.mp3" in log and "empty.wav" in log

    res = tagger("embed", str(small_library), "--cache", str(cache), "--quiet")
    assert "unchanged (skipped) 4" in res.stdout

    info = tagger("embeddings", "info", str(cache))
    assert info.returncode == 0 and "Consistency check: OK" in info.stdout
    assert "musicnn-msd@" in info.stdout and "4 tracks" in info.stdout


def test_export_npz_and_csv(small_library: Path, tmp_path: Path):
    cache = tmp_path / "cache.h5"
    assert tagger("embed", str(small_library), "--cache", str(cache), "--quiet").returncode == 0
    npz = tmp_path / "out" / "v.npz"
    res = tagger(
        "embeddings",
        "export",
        str(cache),
        "-o",
        str(npz),
        "--output",
        "mean_pool",
        "--output",
        "max_pool",
    )
    assert res.returncode == 0, res.stderr
    data = np.load(npz)
    assert data["vectors"].shape == (4, 1506)
    assert "Björk – Jóga 日本語.mp3" in set(data["paths"])
    with EmbeddingCache.open(cache) as c:
        rel, x = c.load(c.backends()[0], ["mean_pool", "max_pool"])
    np.testing.assert_array_equal(data["vectors"], x)

    out_csv = tmp_path / "v.csv"
    res = tagger("embeddings", "export", str(cache), "-o", str(out_csv), "--output", "taggram")
    assert res.returncode == 0, res.stderr
    with open(out_csv, encoding="utf-8", newline="") as fh:
        assert fh.readline().startswith("# tagger ")
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["path", "taggram_0"] and len(rows[0]) == 51
    assert len(rows) == 5
    got = {r[0]: np.array(r[1:], dtype=float) for r in rows[1:]}
    with EmbeddingCache.open(cache) as c:
        rel, x = c.load(c.backends()[0], "taggram")
    for r, v in zip(rel, x, strict=True):
        np.testing.assert_allclose(got[r], v, rtol=1e-6)


def test_bad_arguments_give_clear_errors(tmp_path: Path):
    res = tagger("embed", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "not a folder" in res.stderr
    res = tagger("embed", str(tmp_path), "--backend", "nonsense")
    assert res.returncode == 2 and "unknown backend 'nonsense'" in res.stderr
    res = tagger("embeddings", "info", str(tmp_path / "missing.h5"))
    assert res.returncode == 2 and "missing.h5" in res.stderr


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_at_most_a_batch(tmp_path: Path):
    """Kill a real `tagger embed` (and its workers) at random moments, then resume."""
    root = tmp_path / "lib"
    n_files = 60  # 240 patches: several seconds of work, so the kills land mid-run
    for i in range(n_files):
        write_audio(root / f"disc {i // 20}" / f"track {i:02d}.flac", 12, seed=100 + i)
    cache = tmp_path / "cache.h5"
    cmd = embed_cmd(root, cache, "--workers", "1", "--quiet", "--batch-patches", "4")
    rng = np.random.default_rng(7)
    saved_before = 0
    kills = 0
    for delay in rng.uniform(0.3, 3.0, size=6):
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill: nothing left to test
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        if not cache.exists():
            continue  # killed before the cache was created
        with EmbeddingCache.open(cache) as c:
            assert c.verify() == [], f"cache broken after a kill at {delay:.2f} s"
            keys = c.backends()
            saved = len(c.tracks(keys[0]).relpath) if keys else 0
            if keys:
                _, x = c.load(keys[0], "penultimate")
                assert np.isfinite(x).all()
        assert saved >= saved_before  # nothing committed is ever lost
        saved_before = saved
    assert kills >= 3
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with EmbeddingCache.open(cache) as c:
        assert c.verify() == []
        assert len(c.tracks(c.backends()[0]).relpath) == n_files


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_is_finished(tmp_path: Path):
    root = tmp_path / "lib"
    n_files = 64
    for i in range(n_files):
        write_audio(root / f"track {i:02d}.flac", 4, seed=200 + i)
    cache = tmp_path / "cache.h5"
    cmd = embed_cmd(root, cache, "--workers", "1", "--batch-patches", "2")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    # Watch the job's own progress bar (not the cache: a poll of the cache can lag
    # behind a fast job on a loaded machine, and the signal then came too late).
    err_chunks: list[str] = []
    done_files = [0]

    def read_stderr() -> None:
        for chunk in iter(lambda: proc.stderr.read(64), ""):
            err_chunks.append(chunk)
            found = re.findall(r"(\d+)/" + str(n_files), "".join(err_chunks)[-400:])
            if found:
                done_files[0] = max(done_files[0], int(found[-1]))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and done_files[0] < 3:
        time.sleep(0.05)
    assert done_files[0] >= 3, "embedding did not start in time"
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    err = "".join(err_chunks)
    assert proc.returncode == 130, f"exit {proc.returncode} (finished before Ctrl-C?) {err[-500:]}"
    assert "Stopped" in err and "Traceback" not in err
    with EmbeddingCache.open(cache) as c:
        assert c.verify() == []
        kept = len(c.tracks(c.backends()[0]))
    assert 0 < kept < n_files
    again = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True, timeout=600)
    assert f"unchanged (skipped) {kept}" in again.stdout
    assert f"embedded            {n_files - kept}" in again.stdout
