"""musicnn and VGG tagging models (Pons & Serra, MTG-UPF 2019) ported to PyTorch.

The weights are the TensorFlow checkpoints shipped in the ``musicnn==0.1.0``
wheel (ISC license). :mod:`tagger_gui.core.embeddings.weights` unpacks only
those files from the wheel (``python -m tagger_gui.core.embeddings.weights``,
which ``scripts/install.sh`` runs) and finds them at run time.

Only the wheel's data files are read (by our own checkpoint reader,
:mod:`tagger_gui.core.embeddings.tf_checkpoint`); its Python modules import
TensorFlow and are never imported. The PyTorch modules live in
:mod:`tagger_gui.core.embeddings.musicnn_torch`, imported on the first
:meth:`MusicnnBackend.infer` call, so :meth:`~MusicnnBackend.features` runs in
worker processes without importing torch. See ``docs/models.md`` for the port
and its measured fidelity.

>>> b = MusicnnBackend(model="MSD_musicnn")          # doctest: +SKIP
>>> out = b.embed_audio(y, sr)                       # doctest: +SKIP
>>> out["penultimate"].shape                         # doctest: +SKIP
(10, 200)
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tagger_gui.core.embeddings import weights
from tagger_gui.core.embeddings.base import Backend, repeat_pad
from tagger_gui.core.errors import BackendError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "FRAMES_PER_PATCH",
    "HOP",
    "INSTALL_COMMAND",
    "MODELS",
    "MSD_LABELS",
    "MTT_LABELS",
    "N_FFT",
    "N_MELS",
    "SAMPLE_RATE",
    "MusicnnBackend",
    "VggBackend",
    "logmel",
    "musicnn_model_dir",
    "split_patches",
]

INSTALL_COMMAND = weights.INSTALL_COMMAND

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PAD_MODE = "reflect"  # what librosa < 0.10 did, and what the models were trained with
FRAMES_PER_PATCH = 187  # 3 s
#: fewest samples giving FRAMES_PER_PATCH frames (librosa, center=True)
MIN_SAMPLES = (FRAMES_PER_PATCH - 1) * HOP

#: Checkpoint folder -> architecture.
MODELS: dict[str, str] = {
    "MSD_musicnn": "musicnn",
    "MTT_musicnn": "musicnn",
    "MSD_vgg": "vgg",
    "MTT_vgg": "vgg",
}

# Tag names in taggram order (musicnn/configuration.py of the wheel).
MTT_LABELS: list[str] = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock",
    "fast", "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian",
    "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet",
    "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats",
    "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
]  # fmt: skip
MSD_LABELS: list[str] = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
]  # fmt: skip


# --------------------------------------------------------------------------
# Locating the weights
# --------------------------------------------------------------------------


def musicnn_model_dir(model: str) -> Path:
    """Folder holding the checkpoint of ``model`` (see :mod:`.weights` for where).

    Parameters
    ----------
    model : str
        One of :data:`MODELS`: ``"MSD_musicnn"``, ``"MTT_musicnn"``,
        ``"MSD_vgg"``, ``"MTT_vgg"``.

    Returns
    -------
    pathlib.Path
        ``<weights folder>/<model>``; the checkpoint prefix is the folder
        itself (files ``.index`` and ``.data-00000-of-00001``).

    Raises
    ------
    BackendError
        Unknown model, or the weights are not installed; the message gives
        the install command (:data:`INSTALL_COMMAND`).
    """
    if model not in MODELS:
        raise BackendError(f"unknown musicnn model {model!r}; choose one of: {', '.join(MODELS)}")
    return weights.weights_dir() / model


# --------------------------------------------------------------------------
# Preprocessing (numpy only)
# --------------------------------------------------------------------------


def _prepare_audio(y: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 audio at 16 kHz, resampled with soxr like ``librosa.load``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"expected floating-point audio, got dtype {y.dtype}")
    sr = int(sr)
    if sr <= 0:
        raise ValueError(f"invalid sample rate {sr}")
    if sr != SAMPLE_RATE and len(y):
        import soxr

        n_out = int(np.ceil(len(y) * SAMPLE_RATE / sr))
        y = soxr.resample(y.astype(np.float32), sr, SAMPLE_RATE, quality="HQ")
        # librosa.resample(fix=True) pads/trims to ceil(n * ratio)
        if len(y) < n_out:
            y = np.pad(y, (0, n_out - len(y)))
        y = y[:n_out]
    # librosa.load returns float32, which the reference log-mels were computed from
    return np.ascontiguousarray(y, dtype=np.float32)


_openblas: Any = None  # threadpoolctl controller of numpy's OpenBLAS, or False


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """Limit numpy's OpenBLAS to one thread for the mel projection.

    OpenBLAS worker threads busy-wait for a while after each call; on a small
    machine that spinning steals the cores from the torch model that runs
    next (measured: +25 % on a 30 s clip on 2 cores). The product is small, so
    one thread is as fast, and its result is identical. Only OpenBLAS is
    limited (not torch's OpenMP/MKL); without threadpoolctl this is a no-op.
    """
    global _openblas
    if _openblas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _openblas = ThreadpoolController().select(internal_api="openblas")
        except Exception:  # threadpoolctl missing or failing: not worth an error
            _openblas = False
    if _openblas is False:
        return contextlib.nullcontext()
    return _openblas.limit(limits=1)


def _logmel16k(y16: np.ndarray) -> np.ndarray:
    import librosa

    with _single_threaded_blas():
        mel = librosa.feature.melspectrogram(
            y=y16, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode=PAD_MODE
        ).T
    # The reference casts to float16 (as musicnn's extractor did), then takes the
    # log in float32: under numpy 2, 10000 * float16 would stay float16 and overflow.
    mel = mel.astype(np.float16).astype(np.float32)
    return np.ascontiguousarray(np.log10(np.float32(10000) * mel + np.float32(1)))


def logmel(y: np.ndarray, sr: int) -> np.ndarray:
    """The musicnn log-mel spectrogram of mono audio ``y`` at any rate ``sr``.

    Audio is resampled to 16 kHz with soxr (HQ, as ``librosa.load``), then
    ``librosa.feature.melspectrogram(sr=16000, n_fft=512, hop_length=256,
    n_mels=96, pad_mode="reflect")``, transposed, cast to float16 and mapped
    through ``log10(10000 x + 1)`` in float32.

    Parameters
    ----------
    y : numpy.ndarray
        Mono floating-point audio, shape ``(n,)``.
    sr : int
        Its sample rate.

    Returns
    -------
    numpy.ndarray
        ``(T, 96)`` float32, ``T = 1 + n16 // 256`` for ``n16`` samples at 16 kHz.
    """
    y16 = _prepare_audio(y, sr)
    if len(y16) == 0:
        raise ValueError("cannot compute a log-mel spectrogram of empty audio")
    return _logmel16k(y16)


def split_patches(mel: np.ndarray, n_frames: int = FRAMES_PER_PATCH) -> np.ndarray:
    """Non-overlapping ``n_frames`` patches of a ``(T, 96)`` log-mel; the remainder is dropped.

    Returns
    -------
    numpy.ndarray
        ``(T // n_frames, n_frames, 96)`` float32 (C-contiguous copy).
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[1] != N_MELS:
        raise ValueError(f"expected a log-mel of shape (T, {N_MELS}), got {mel.shape}")
    n = mel.shape[0] // n_frames
    return np.ascontiguousarray(mel[: n * n_frames].reshape(n, n_frames, N_MELS))


# --------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------


def _check_device(device: str) -> str:
    if device in ("cpu", "cuda", "auto") or device.startswith("cuda:"):
        return device
    raise BackendError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'")


class _TFModelBackend(Backend):
    """Shared code of the musicnn and VGG backends (log-mel front end, lazy torch model)."""

    kind: ClassVar[str]
    model_names: ClassVar[dict[str, str]]
    #: patches per forward pass, measured best on a 2-core CPU (docs/models.md)
    default_batch_size: ClassVar[int]
    sample_rate = SAMPLE_RATE
    version = "1"

    def __init__(
        self,
        device: str = "cpu",
        model: str = "MSD_musicnn",
        *,
        batch_size: int | None = None,
    ):
        if model not in self.model_names:
            raise BackendError(
                f"{type(self).__name__} has no model {model!r}; "
                f"choose one of: {', '.join(self.model_names)}"
            )
        if batch_size is None:
            batch_size = self.default_batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.name = self.model_names[model]
        self.requested_device = _check_device(device)
        self.batch_size = int(batch_size)
        labels = MSD_LABELS if model.startswith("MSD") else MTT_LABELS
        self.tag_names = {"taggram": list(labels)}
        self._module: Any = None
        self._device: str | None = None
        self._onnx: Any = None  # OnnxModel when the ONNX Runtime engine runs the model
        self._lock = threading.Lock()
        # fail early (and without torch) when the weights are not installed
        self.model_dir = musicnn_model_dir(model)

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for worker processes (which only call features()): the
        # torch model and the lock stay behind and are rebuilt on demand.
        state = self.__dict__.copy()
        state.update(_module=None, _device=None, _lock=None, _onnx=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- metadata -------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """Preprocessing parameters, stored with every cached vector."""
        p = super().params
        p.update(
            n_fft=N_FFT,
            hop=HOP,
            n_mels=N_MELS,
            pad_mode=PAD_MODE,
            frames_per_patch=FRAMES_PER_PATCH,
        )
        return p

    @property
    def patch_hop_seconds(self) -> float:
        """Time between patch starts: 187 frames x 256 / 16000 = 2.992 s.

        :attr:`patch_seconds` stays the nominal 3 s (patches are "3 s" in the
        musicnn papers and in the cache parameters), but :meth:`features`
        cuts consecutive 187-frame patches, which start 2.992 s apart.
        """
        return FRAMES_PER_PATCH * HOP / SAMPLE_RATE

    @property
    def device(self) -> str:
        """Device the model runs on (``"auto"`` is resolved when the model is built)."""
        return self._device or self.requested_device

    # -- numpy part -----------------------------------------------------

    def logmel(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``(T, 96)`` float32 log-mel of ``y`` (see :func:`logmel`); no padding."""
        return logmel(y, sr)

    def features(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``(P, 187, 96)`` float32 log-mel patches of mono audio ``y`` at rate ``sr``.

        Non-overlapping 3 s patches, remainder dropped. Audio with fewer than
        187 frames (under 2.976 s at 16 kHz) is first repeat-padded to 47,616
        samples, giving exactly one patch. numpy only (no torch import).
        """
        y16 = _prepare_audio(y, sr)
        y16 = repeat_pad(y16, MIN_SAMPLES)
        return split_patches(_logmel16k(y16))

    # -- model ----------------------------------------------------------

    def _resolve_device(self) -> str:
        import torch

        dev = self.requested_device
        if dev == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {dev!r} requested but CUDA is not available to torch")
        return dev

    def torch_module(self) -> torch.nn.Module:
        """The PyTorch model (built and loaded on first use; eval mode, float32)."""
        if self._module is None:
            with self._lock:
                if self._module is None:
                    from tagger_gui.core.embeddings.musicnn_torch import build_model
                    from tagger_gui.core.embeddings.tf_checkpoint import read_checkpoint

                    device = self._resolve_device()
                    weights = read_checkpoint(self.model_dir)
                    module = build_model(self.kind, weights).to(device)
                    self._device = device
                    self._module = module
        return self._module

    def _onnx_model(self) -> Any:
        """The ONNX Runtime model (:mod:`~tagger_gui.core.embeddings.onnx_runtime`)."""
        if self._onnx is None:
            from tagger_gui.core.embeddings.onnx_runtime import OnnxModel, onnx_path

            if self.requested_device.startswith("cuda"):
                raise BackendError(
                    f"device {self.requested_device!r}: the ONNX Runtime engine is CPU-only"
                )
            self._device = "cpu"
            self._onnx = OnnxModel(onnx_path(self.model), list(self.outputs))
        return self._onnx

    def _forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on ``x`` (P, T, 96) in batches; outputs as float32 numpy.

        With torch, or with ONNX Runtime when torch is missing (the frozen
        app) or ``TAGGER_INFERENCE=onnx`` (see
        :func:`~tagger_gui.core.embeddings.onnx_runtime.inference_engine`).
        """
        from tagger_gui.core.embeddings.onnx_runtime import inference_engine

        chunks: dict[str, list[np.ndarray]] = {k: [] for k in self.outputs}
        if self._onnx is not None or (self._module is None and inference_engine() == "onnx"):
            onnx_model = self._onnx_model()
            for start in range(0, x.shape[0], self.batch_size):
                values = onnx_model.run(x[start : start + self.batch_size])
                for name, value in zip(self.outputs, values, strict=True):
                    chunks[name].append(np.asarray(value, dtype=np.float32))
            return self._concat(chunks, x.shape[0])

        import torch

        module = self.torch_module()
        device = self._device
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                batch = torch.from_numpy(x[start : start + self.batch_size]).to(device)
                for name, value in zip(self.outputs, module(batch), strict=True):
                    chunks[name].append(value.float().cpu().numpy())
        return self._concat(chunks, x.shape[0])

    def _concat(self, chunks: dict[str, list[np.ndarray]], n: int) -> dict[str, np.ndarray]:
        return {
            k: np.ascontiguousarray(np.concatenate(v).reshape(n, self.outputs[k]))
            if v
            else np.zeros((0, self.outputs[k]), dtype=np.float32)
            for k, v in chunks.items()
        }

    def _as_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[2] != N_MELS:
            raise ValueError(
                f"expected log-mel patches (P, T, {N_MELS}) or (T, {N_MELS}), got {x.shape}"
            )
        if x.shape[0] and x.shape[1] == 0:
            raise ValueError("log-mel patches have no frames")
        return np.ascontiguousarray(x)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on log-mel patches.

        Parameters
        ----------
        x : numpy.ndarray
            ``(P, 187, 96)`` patches (possibly from many tracks), or one
            ``(T, 96)`` log-mel treated as a single patch. musicnn accepts
            patches of any length ``T >= 1``; the VGG needs ``T = 187``.

        Returns
        -------
        dict[str, numpy.ndarray]
            ``{output: (P, dim) float32}`` in the order of :attr:`outputs`.
        """
        return self._forward(self._as_batch(x))

    def embed_logmel(self, mel: np.ndarray, *, whole: bool = False) -> dict[str, np.ndarray]:
        """Outputs for a ``(T, 96)`` log-mel.

        Parameters
        ----------
        mel : numpy.ndarray
            Log-mel spectrogram from :func:`logmel`.
        whole : bool, keyword-only
            False: one row per non-overlapping 187-frame patch (remainder
            dropped; at least 187 frames needed). True: the whole input as
            ONE patch of ``T`` frames (musicnn only).

        Returns
        -------
        dict[str, numpy.ndarray]
            ``{output: (P, dim) float32}``, ``P = 1`` when ``whole``.
        """
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 2 or mel.shape[1] != N_MELS:
            raise ValueError(f"expected a log-mel of shape (T, {N_MELS}), got {mel.shape}")
        if whole:
            if mel.shape[0] == 0:
                raise ValueError("empty log-mel")
            return self.infer(mel)
        if mel.shape[0] < FRAMES_PER_PATCH:
            raise ValueError(
                f"log-mel has {mel.shape[0]} frames, fewer than one {FRAMES_PER_PATCH}-frame "
                "patch; use embed_audio() (which repeat-pads short audio)"
                + (" or whole=True" if self.kind == "musicnn" else "")
            )
        return self.infer(split_patches(mel))


class MusicnnBackend(_TFModelBackend):
    """musicnn (Pons & Serra 2019) trained on MSD or MagnaTagATune, in PyTorch.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"`` (CUDA when
        torch sees one). Resolved when the model is first used.
    model : {"MSD_musicnn", "MTT_musicnn"}
        Which checkpoint of the musicnn wheel.
    batch_size : int, optional, keyword-only
        Patches per forward pass (only speed depends on it); default 8 for
        musicnn, 2 for the VGG (measured, see ``docs/models.md``).

    Attributes
    ----------
    outputs : dict[str, int]
        ``mean_pool`` (753), ``max_pool`` (753): mean and max over time of the
        mid-end feature maps; ``penultimate`` (200): the last hidden layer;
        ``taggram`` (50): tag probabilities (sigmoid), names in
        :attr:`tag_names`.

    Raises
    ------
    BackendError
        Unknown model, or the musicnn wheel is not installed.
    """

    kind = "musicnn"
    default_batch_size = 8
    model_names: ClassVar[dict[str, str]] = {
        "MSD_musicnn": "musicnn-msd",
        "MTT_musicnn": "musicnn-mtt",
    }

    def __init__(
        self,
        device: str = "cpu",
        model: str = "MSD_musicnn",
        *,
        batch_size: int | None = None,
    ):
        self.outputs = {"mean_pool": 753, "max_pool": 753, "penultimate": 200, "taggram": 50}
        super().__init__(device, model, batch_size=batch_size)


class VggBackend(_TFModelBackend):
    """The VGG-like baseline of the musicnn package, in PyTorch.

    Parameters are those of :class:`MusicnnBackend`, with ``model`` one of
    ``"MSD_vgg"``, ``"MTT_vgg"``.

    Attributes
    ----------
    outputs : dict[str, int]
        ``pool5`` (256): the last pooled feature map (2 x 1 x 128, flattened
        in TensorFlow's H, W, C order); ``taggram`` (50).
    """

    kind = "vgg"
    default_batch_size = 2
    model_names: ClassVar[dict[str, str]] = {"MSD_vgg": "vgg-msd", "MTT_vgg": "vgg-mtt"}

    def __init__(
        self,
        device: str = "cpu",
        model: str = "MSD_vgg",
        *,
        batch_size: int | None = None,
    ):
        self.outputs = {"pool5": 256, "taggram": 50}
        super().__init__(device, model, batch_size=batch_size)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on ``(P, 187, 96)`` log-mel patches (or one ``(187, 96)`` patch).

        Returns
        -------
        dict[str, numpy.ndarray]
            ``{"pool5": (P, 256), "taggram": (P, 50)}`` float32.

        Raises
        ------
        ValueError
            Patches that are not exactly 187 frames long (the VGG's dense
            layer fixes the input length).
        """
        x = self._as_batch(x)
        if x.shape[1] != FRAMES_PER_PATCH:
            raise ValueError(
                f"the VGG models need patches of exactly {FRAMES_PER_PATCH} frames, "
                f"got {x.shape[1]}"
            )
        return self._forward(x)

    def embed_logmel(self, mel: np.ndarray, *, whole: bool = False) -> dict[str, np.ndarray]:
        """Outputs per non-overlapping 187-frame patch of a ``(T, 96)`` log-mel.

        ``whole=True`` is not possible for the VGG models (they need exactly
        187 frames) and raises :class:`ValueError`.
        """
        if whole:
            raise ValueError(
                "the VGG models accept only 187-frame patches; whole=True needs a musicnn model"
            )
        return super().embed_logmel(mel, whole=False)
