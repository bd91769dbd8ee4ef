"""The interface every embedding backend implements.

A backend turns mono audio into one vector per output and per *patch* (a
fixed-length excerpt, 3 s for musicnn). Work is split in two so that the
embedding job can run the cheap, numpy-only part in worker processes and the
model in batches in the main process:

``features(y, sr)``
    numpy only, picklable result: the model input for every patch of ``y``
    (for musicnn, log-mel patches of shape (P, 187, 96)).
``infer(x)``
    runs the model on a batch of patches (any P, possibly from many tracks)
    and returns ``{output_name: (P, dim) float32}``.

``embed_audio(y, sr)`` is simply ``infer(features(y, sr))``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class Backend(ABC):
    """Common interface of embedding backends.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"musicnn-msd"``.
    version : str
        Changes whenever the numbers a backend produces may change (weights,
        preprocessing, code). The cache keys vectors by name and version.
    sample_rate : int
        Rate the audio is resampled to before :meth:`features`.
    patch_seconds : float
        Length of one patch of audio.
    outputs : dict[str, int]
        Output name -> dimension, in a stable order.
    tag_names : dict[str, list[str]]
        For outputs that are tag probabilities (``taggram``), the tag names.
    """

    name: str
    version: str
    sample_rate: int
    patch_seconds: float = 3.0
    outputs: dict[str, int]
    tag_names: ClassVar[dict[str, list[str]]] = {}

    @property
    def patch_samples(self) -> int:
        """Number of samples (at :attr:`sample_rate`) in one patch."""
        return round(self.patch_seconds * self.sample_rate)

    @property
    def patch_hop_seconds(self) -> float:
        """Time between the starts of consecutive patches from :meth:`features`."""
        return self.patch_seconds

    @property
    def params(self) -> dict[str, Any]:
        """Preprocessing parameters, stored with every cached vector."""
        return {
            "sample_rate": self.sample_rate,
            "patch_seconds": self.patch_seconds,
        }

    @abstractmethod
    def features(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Model input for every patch of ``y`` (mono float audio at ``sr``).

        Audio shorter than one patch is repeat-padded to one patch (as the
        musicnn models were trained). Returns an array whose first axis is
        the patch axis. Uses numpy only, so it can run in a worker process.
        """

    @abstractmethod
    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a batch of patches: ``{output: (P, dim) float32}``."""

    def embed_audio(self, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """Patch-level outputs for mono float audio ``y`` at any rate ``sr``."""
        return self.infer(self.features(y, sr))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version}>"


def repeat_pad(y: np.ndarray, n: int) -> np.ndarray:
    """Repeat ``y`` until it has at least ``n`` samples (no-op if it has)."""
    y = np.asarray(y)
    if len(y) == 0:
        raise ValueError("cannot repeat-pad empty audio")
    if len(y) >= n:
        return y
    return np.resize(y, n)
