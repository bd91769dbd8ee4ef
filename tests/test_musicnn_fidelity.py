"""The PyTorch musicnn/VGG port against outputs of the original TensorFlow models.

The reference outputs live outside the repository, in
``../shared/reference/musicnn`` (see its README.md): log-mels and the four
models' outputs for five clips, computed with the musicnn wheel's own
TensorFlow graph. Tests that need them are skipped when that folder is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.embeddings import load_backend, weights
from tagger_gui.core.embeddings import musicnn as mn
from tagger_gui.core.errors import BackendError

from .conftest import CHECKPOINT_SIZES

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "reference" / "musicnn"

try:
    HAVE_MUSICNN = weights.weights_dir() is not None
except BackendError:
    HAVE_MUSICNN = False
pytestmark = pytest.mark.skipif(
    not HAVE_MUSICNN, reason=f"musicnn weights not installed ({mn.INSTALL_COMMAND})"
)

MODELS = ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]
CLIPS = sorted(p.stem for p in REF.glob("*.npz")) if REF.is_dir() else []

# tolerances of the fidelity targets
LOGMEL_REL, LOGMEL_ABS = 1e-5, 1e-5  # from the stored log-mel: rel. to max |ref|, plus abs
E2E_TAGGRAM_ABS = 2e-3  # end to end from the WAV
E2E_POOLED_REL = 5e-3  # end to end, relative to max |ref|


def _needs_reference() -> None:
    if not REF.is_dir() or not CLIPS:
        pytest.skip(
            f"musicnn reference outputs not found at {REF} (they are not part of the "
            "repository; see the project's docs/models.md)"
        )


@pytest.fixture(scope="module")
def backends() -> dict[str, mn.MusicnnBackend | mn.VggBackend]:
    """Each model built once for the module."""
    out: dict[str, mn.MusicnnBackend | mn.VggBackend] = {}
    for model in MODELS:
        cls = mn.VggBackend if "vgg" in model else mn.MusicnnBackend
        b = cls(device="cpu", model=model)
        b.torch_module()
        out[model] = b
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, np.ndarray]]:
    _needs_reference()
    return {clip: dict(np.load(REF / f"{clip}.npz")) for clip in CLIPS}


@pytest.fixture(scope="module")
def wavs() -> dict[str, tuple[np.ndarray, int]]:
    _needs_reference()
    import soundfile as sf

    return {clip: sf.read(REF / "clips" / f"{clip}.wav", dtype="float32") for clip in CLIPS}


def _ref_output(ref: dict[str, np.ndarray], key: str) -> np.ndarray:
    value = ref[key]
    return value.reshape(value.shape[0], -1)  # pool5 (P, 2, 1, 128) -> (P, 256), H, W, C order


def _max_err(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    assert got.dtype == np.float32
    return float(np.abs(got.astype(np.float64) - want).max())


# -- fidelity ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_fidelity_from_logmel(backends, reference, model):
    b = backends[model]
    for clip, ref in reference.items():
        out = b.embed_logmel(ref["logmel"])
        assert list(out) == list(b.outputs)
        for name, got in out.items():
            want = _ref_output(ref, f"{model}/{name}")
            tol = LOGMEL_REL * np.abs(want).max() + LOGMEL_ABS
            assert _max_err(got, want) <= tol, (clip, name)


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn"])
def test_fidelity_whole_clip(backends, reference, model):
    b = backends[model]
    for clip, ref in reference.items():
        out = b.embed_logmel(ref["logmel"], whole=True)
        for name, got in out.items():
            want = _ref_output(ref, f"{model}/whole/{name}")
            assert want.shape[0] == 1
            tol = LOGMEL_REL * np.abs(want).max() + LOGMEL_ABS
            assert _max_err(got, want) <= tol, (clip, name)


def test_logmel_matches_reference(reference, wavs):
    for clip, (y, sr) in wavs.items():
        assert sr == mn.SAMPLE_RATE
        got = mn.logmel(y, sr)
        want = reference[clip]["logmel"]
        assert got.shape == want.shape and got.dtype == np.float32
        # The float16 cast can flip a rounding for a few bins if librosa's float32
        # arithmetic changes; with librosa 0.11 the match is exact.
        assert np.abs(got - want).max() < 1e-2, clip
        assert np.mean(got != want) < 1e-3, clip


@pytest.mark.parametrize("model", MODELS)
def test_fidelity_end_to_end(backends, reference, wavs, model):
    b = backends[model]
    for clip, (y, sr) in wavs.items():
        out = b.embed_audio(y, sr)
        ref = reference[clip]
        for name, got in out.items():
            want = _ref_output(ref, f"{model}/{name}")
            err = _max_err(got, want)
            if name == "taggram":
                assert err <= E2E_TAGGRAM_ABS, (clip, name, err)
            else:
                assert err <= E2E_POOLED_REL * np.abs(want).max(), (clip, name, err)


def test_batch_size_does_not_change_results(backends, reference):
    mel = next(iter(reference.values()))["logmel"]
    patches = mn.split_patches(mel)
    b = backends["MSD_musicnn"]
    one = mn.MusicnnBackend(model="MSD_musicnn", batch_size=1)
    one._module, one._device = b.torch_module(), b.device  # share the built model
    many = mn.MusicnnBackend(model="MSD_musicnn", batch_size=7)
    many._module, many._device = b.torch_module(), b.device
    a, c = one.infer(patches), many.infer(patches)
    for name in a:  # different batch shapes may pick different conv kernels: rounding only
        tol = 1e-5 * np.abs(a[name]).max() + 1e-6
        np.testing.assert_allclose(a[name], c[name], rtol=0, atol=tol)


# -- model structure ------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "n_vars", "n_values"), CHECKPOINT_SIZES)
def test_parameter_counts(backends, model, n_vars, n_values):
    from tagger_gui.core.embeddings.musicnn_torch import checkpoint_value_count

    module = backends[model].torch_module()
    assert checkpoint_value_count(module) == (n_vars, n_values)
    assert not module.training
    assert all(not p.requires_grad for p in module.parameters())


def test_metadata(backends):
    names = {m: b.name for m, b in backends.items()}
    assert names == {
        "MSD_musicnn": "musicnn-msd",
        "MTT_musicnn": "musicnn-mtt",
        "MSD_vgg": "vgg-msd",
        "MTT_vgg": "vgg-mtt",
    }
    b = backends["MSD_musicnn"]
    assert b.outputs == {"mean_pool": 753, "max_pool": 753, "penultimate": 200, "taggram": 50}
    assert backends["MTT_vgg"].outputs == {"pool5": 256, "taggram": 50}
    assert b.sample_rate == 16000 and b.patch_seconds == 3.0 and b.version == "1"
    assert b.patch_hop_seconds == pytest.approx(187 * 256 / 16000)
    assert b.params == {
        "sample_rate": 16000,
        "patch_seconds": 3.0,
        "n_fft": 512,
        "hop": 256,
        "n_mels": 96,
        "pad_mode": "reflect",
        "frames_per_patch": 187,
    }
    assert b.tag_names["taggram"] == mn.MSD_LABELS
    assert backends["MTT_vgg"].tag_names["taggram"] == mn.MTT_LABELS
    assert len(mn.MSD_LABELS) == len(mn.MTT_LABELS) == 50
    manifest = REF / "manifest.json"
    if manifest.is_file():
        labels = json.loads(manifest.read_text())["labels"]
        assert labels["MSD"] == mn.MSD_LABELS and labels["MTT"] == mn.MTT_LABELS


def test_registry_builds_backends():
    b = load_backend("musicnn-mtt", device="auto")
    assert isinstance(b, mn.MusicnnBackend) and b.model == "MTT_musicnn"
    v = load_backend("vgg-msd")
    assert isinstance(v, mn.VggBackend) and v.model == "MSD_vgg"
    with pytest.raises(BackendError, match="unknown device"):
        mn.MusicnnBackend(device="tpu")
    with pytest.raises(BackendError, match="no model"):
        mn.MusicnnBackend(model="MSD_vgg")


# -- inputs -----------------------------------------------------------------------------


def _tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.mark.parametrize("model", MODELS)
def test_short_clip_gives_one_finite_patch(backends, model):
    b = backends[model]
    for seconds, sr in ((1.2, 16000), (2.5, 44100), (0.05, 22050)):
        feats = b.features(_tone(seconds, sr), sr)
        assert feats.shape == (1, 187, 96) and feats.dtype == np.float32
        out = b.infer(feats)
        for name, dim in b.outputs.items():
            assert out[name].shape == (1, dim)
            assert np.isfinite(out[name]).all()
        assert ((out["taggram"] >= 0) & (out["taggram"] <= 1)).all()


def test_patching_and_resampling():
    b = mn.MusicnnBackend(model="MSD_musicnn")
    y = _tone(7.0, 44100)
    feats = b.features(y, 44100)
    assert feats.shape == (2, 187, 96)  # 7 s -> 438 frames -> 2 patches, remainder dropped
    mel = b.logmel(y, 44100)
    assert mel.shape == (1 + 7 * 16000 // 256, 96)
    np.testing.assert_array_equal(feats, mel[: 2 * 187].reshape(2, 187, 96))
    # exactly 187 frames: no padding
    assert b.features(np.zeros(mn.MIN_SAMPLES, np.float32) + 0.1, 16000).shape[0] == 1
    with pytest.raises(ValueError, match="mono"):
        b.features(np.zeros((100, 2), np.float32), 16000)
    with pytest.raises(ValueError, match="empty"):
        b.features(np.zeros(0, np.float32), 16000)


def test_embed_logmel_argument_checks(backends):
    mel = np.zeros((150, 96), np.float32)
    with pytest.raises(ValueError, match="fewer than one 187-frame patch"):
        backends["MSD_musicnn"].embed_logmel(mel)
    out = backends["MSD_musicnn"].embed_logmel(mel, whole=True)
    assert out["penultimate"].shape == (1, 200)
    with pytest.raises(ValueError, match="whole=True needs a musicnn model"):
        backends["MSD_vgg"].embed_logmel(np.zeros((400, 96), np.float32), whole=True)
    with pytest.raises(ValueError, match="exactly 187 frames"):
        backends["MSD_vgg"].infer(np.zeros((1, 200, 96), np.float32))
    # a single (T, 96) log-mel is one patch
    assert backends["MTT_musicnn"].infer(np.zeros((300, 96), np.float32))["taggram"].shape == (
        1,
        50,
    )
    empty = backends["MTT_vgg"].infer(np.zeros((0, 187, 96), np.float32))
    assert empty["pool5"].shape == (0, 256)


# -- installation and process isolation ------------------------------------------------------


def test_missing_weights_give_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "candidate_dirs", lambda: [("nowhere", tmp_path / "none")])
    with pytest.raises(BackendError) as info:
        mn.MusicnnBackend(model="MSD_musicnn")
    assert "python -m tagger_gui.core.embeddings.weights" in str(info.value)
    with pytest.raises(BackendError, match=r"tagger_gui\.core\.embeddings\.weights"):
        load_backend("vgg-mtt")
    # a folder with some models' files but not all: named as incomplete
    (tmp_path / "MSD_musicnn").mkdir()
    (tmp_path / "MSD_musicnn" / ".index").write_bytes(b"x")
    monkeypatch.setattr(weights, "candidate_dirs", lambda: [("partial", tmp_path)])
    with pytest.raises(BackendError, match=rf"incomplete copies in: {tmp_path} \(partial\)"):
        mn.musicnn_model_dir("MSD_vgg")
    with pytest.raises(BackendError, match="unknown musicnn model"):
        mn.musicnn_model_dir("MSD_musicnn_big")


def test_backend_pickles_without_its_model(backends):
    import pickle

    b = backends["MTT_musicnn"]
    clone = pickle.loads(pickle.dumps(b))
    assert clone._module is None and clone.name == b.name and clone.params == b.params
    y = _tone(4.0, 16000)
    np.testing.assert_array_equal(clone.features(y, 16000), b.features(y, 16000))


def test_model_dir_is_found_without_importing_musicnn_modules():
    d = mn.musicnn_model_dir("MTT_musicnn")
    assert (d / ".index").is_file() and (d / ".data-00000-of-00001").is_file()
    assert "musicnn.models" not in sys.modules and "tensorflow" not in sys.modules


def test_features_does_not_import_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from tagger_gui.core.embeddings.musicnn import MusicnnBackend, VggBackend\n"
        "y = (0.1 * np.random.default_rng(0).standard_normal(150_000)).astype(np.float32)\n"
        "for cls in (MusicnnBackend, VggBackend):\n"
        "    f = cls(model='MTT_' + cls.kind).features(y, 22050)\n"
        "    assert f.shape == (2, 187, 96), f.shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
