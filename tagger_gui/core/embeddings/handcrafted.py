"""A baseline backend without a neural model: classic librosa features.

Each 3-s patch becomes one vector of per-patch statistics (mean and standard
deviation over frames) of MFCCs, their deltas, spectral contrast and chroma,
plus onset strength and a tempo estimate. Useful as a baseline for the
learned embeddings and when no model weights are installed.

The values have very different scales (tempo is in BPM, MFCCs in dB-like
units), so standardise them before fitting a linear model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from tagger_gui.core.embeddings.base import Backend, repeat_pad

# (block name, number of values): the layout of one feature vector.
_N_MFCC = 20
_N_CONTRAST_BANDS = 6  # spectral contrast gives n_bands + 1 values
_N_CHROMA = 12
_LAYOUT: tuple[tuple[str, int], ...] = (
    ("mfcc_mean", _N_MFCC),
    ("mfcc_std", _N_MFCC),
    ("delta_mfcc_mean", _N_MFCC),
    ("delta_mfcc_std", _N_MFCC),
    ("contrast_mean", _N_CONTRAST_BANDS + 1),
    ("contrast_std", _N_CONTRAST_BANDS + 1),
    ("chroma_mean", _N_CHROMA),
    ("chroma_std", _N_CHROMA),
    ("onset_strength_mean", 1),
    ("onset_strength_std", 1),
    ("tempo", 1),
)
_N_FEATURES = sum(n for _, n in _LAYOUT)


class HandcraftedBackend(Backend):
    """MFCC, spectral contrast, chroma, onset and tempo statistics per patch.

    Parameters
    ----------
    device : str, keyword-only
        Ignored (there is no model); accepted like every backend's.
    """

    name = "handcrafted"
    version = "1"
    sample_rate = 22050
    patch_seconds = 3.0
    outputs = {"features": _N_FEATURES}  # noqa: RUF012 - read-only by convention
    #: Name of every value of a feature vector, e.g. ``"mfcc_mean_0"``.
    feature_names: tuple[str, ...] = tuple(
        name if n == 1 else f"{name}_{i}" for name, n in _LAYOUT for i in range(n)
    )

    n_fft = 2048
    hop_length = 512
    n_mels = 128

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = device

    @property
    def params(self) -> dict[str, Any]:
        return {
            **super().params,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "layout": [list(block) for block in _LAYOUT],
        }

    def features(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Feature vectors of the non-overlapping patches of ``y``: (P, D) float32.

        ``y`` is resampled to 22050 Hz if needed, repeat-padded to one patch if
        shorter, and cut into 3-s patches; a remainder shorter than a patch
        is dropped (unless the audio is a single patch).
        """
        import librosa  # heavy import, only where features are computed

        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {y.shape}")
        if sr != self.sample_rate:
            y = soxr.resample(y, sr, self.sample_rate, quality="HQ").astype(np.float32)
        n = self.patch_samples
        y = repeat_pad(y, n)
        n_patches = len(y) // n
        patches = np.ascontiguousarray(y[: n_patches * n].reshape(n_patches, n))

        # One STFT shared by every feature; librosa works on the batch of
        # patches at once (leading axis).
        S = np.abs(librosa.stft(patches, n_fft=self.n_fft, hop_length=self.hop_length))
        power = S**2
        mel_db = librosa.power_to_db(
            librosa.feature.melspectrogram(S=power, sr=self.sample_rate, n_mels=self.n_mels)
        )
        mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=_N_MFCC)
        delta = librosa.feature.delta(mfcc)
        contrast = librosa.feature.spectral_contrast(
            S=S, sr=self.sample_rate, n_fft=self.n_fft, n_bands=_N_CONTRAST_BANDS
        )
        # tuning=0: no tuning estimate, which warns on silence and costs time.
        chroma = librosa.feature.chroma_stft(
            S=power, sr=self.sample_rate, n_fft=self.n_fft, tuning=0.0, n_chroma=_N_CHROMA
        )
        onset = librosa.onset.onset_strength(S=mel_db, sr=self.sample_rate)
        tempo = librosa.feature.tempo(
            onset_envelope=onset, sr=self.sample_rate, hop_length=self.hop_length
        ).reshape(n_patches, 1)

        blocks = [
            mfcc.mean(-1),
            mfcc.std(-1),
            delta.mean(-1),
            delta.std(-1),
            contrast.mean(-1),
            contrast.std(-1),
            chroma.mean(-1),
            chroma.std(-1),
            onset.mean(-1, keepdims=True),
            onset.std(-1, keepdims=True),
            tempo,
        ]
        out = np.concatenate(blocks, axis=-1).astype(np.float32)
        assert out.shape == (n_patches, _N_FEATURES)
        return out

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The features are the output: ``{"features": (P, D) float32}``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != _N_FEATURES:
            raise ValueError(f"expected features of shape (P, {_N_FEATURES}), got {x.shape}")
        return {"features": x}
