"""The musicnn models run with ONNX Runtime (the frozen app's engine) give torch's outputs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.embeddings.musicnn import MusicnnBackend
from tagger_gui.core.embeddings.onnx_runtime import (
    ENGINE_ENV,
    ONNX_DIR_ENV,
    inference_engine,
    onnx_path,
)
from tagger_gui.core.errors import BackendError
from tests.conftest import music_like

pytest.importorskip("torch", reason="the export needs torch (the dev install)")
pytest.importorskip("onnx", reason="the export needs onnx: pip install -e .[test]")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e .[test]")


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tagger_gui.core.embeddings.onnx_export import export_model

    folder = tmp_path_factory.mktemp("onnx")
    export_model("MSD_musicnn", folder, check=False)
    return folder


def test_onnx_embed_audio_equals_torch(onnx_folder, monkeypatch):
    y = music_like(7.5, sr=22050, channels=1, seed=3)
    if y.ndim == 2:
        y = y.mean(axis=1)
    y = y.astype(np.float32)
    monkeypatch.setenv(ENGINE_ENV, "torch")
    expected = MusicnnBackend(model="MSD_musicnn").embed_audio(y, 22050)

    monkeypatch.setenv(ENGINE_ENV, "onnx")
    monkeypatch.setenv(ONNX_DIR_ENV, str(onnx_folder))
    backend = MusicnnBackend(model="MSD_musicnn", batch_size=2)
    got = backend.embed_audio(y, 22050)

    assert backend._onnx is not None and backend._module is None  # ONNX ran, not torch
    assert list(got) == list(expected) == ["mean_pool", "max_pool", "penultimate", "taggram"]
    for name in expected:
        assert got[name].shape == expected[name].shape == (2, backend.outputs[name])
        assert got[name].dtype == np.float32
        scale = float(np.abs(expected[name]).max())
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5 * scale)


def test_onnx_whole_logmel_of_any_length(onnx_folder, monkeypatch):
    """musicnn takes any number of frames: the exported time axis is dynamic."""
    rng = np.random.default_rng(1)
    mel = rng.uniform(0, 4, size=(300, 96)).astype(np.float32)
    monkeypatch.setenv(ENGINE_ENV, "torch")
    expected = MusicnnBackend(model="MSD_musicnn").embed_logmel(mel, whole=True)
    monkeypatch.setenv(ENGINE_ENV, "onnx")
    monkeypatch.setenv(ONNX_DIR_ENV, str(onnx_folder))
    got = MusicnnBackend(model="MSD_musicnn").embed_logmel(mel, whole=True)
    for name in expected:
        scale = float(np.abs(expected[name]).max())
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5 * scale)


def test_engine_choice_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv(ENGINE_ENV, "onnx")
    assert inference_engine() == "onnx"
    monkeypatch.setenv(ENGINE_ENV, "torch")
    assert inference_engine() == "torch"
    monkeypatch.delenv(ENGINE_ENV)
    assert inference_engine() == "torch"  # torch is importable here
    monkeypatch.setenv(ENGINE_ENV, "tensorflow")
    with pytest.raises(BackendError, match="TAGGER_INFERENCE"):
        inference_engine()

    monkeypatch.setenv(ENGINE_ENV, "onnx")
    monkeypatch.setenv(ONNX_DIR_ENV, str(tmp_path))
    assert onnx_path("MSD_musicnn") == tmp_path / "MSD_musicnn.onnx"
    backend = MusicnnBackend(model="MSD_musicnn")
    with pytest.raises(BackendError, match=r"MSD_musicnn\.onnx: ONNX model not found"):
        backend.infer(np.zeros((1, 187, 96), dtype=np.float32))


def test_backend_with_onnx_session_pickles(onnx_folder, monkeypatch):
    monkeypatch.setenv(ENGINE_ENV, "onnx")
    monkeypatch.setenv(ONNX_DIR_ENV, str(onnx_folder))
    backend = MusicnnBackend(model="MSD_musicnn")
    backend.infer(np.zeros((1, 187, 96), dtype=np.float32))
    clone = pickle.loads(pickle.dumps(backend))
    assert clone._onnx is None
    out = clone.infer(np.ones((1, 187, 96), dtype=np.float32))
    assert out["taggram"].shape == (1, 50)
