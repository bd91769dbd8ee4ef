"""Embedding backends: a small registry of pre-trained (and baseline) models.

>>> from tagger_gui.core.embeddings import load_backend
>>> b = load_backend("musicnn-msd")
>>> b.outputs
{'mean_pool': 753, 'max_pool': 753, 'penultimate': 200, 'taggram': 50}

torch is imported only when a torch backend runs its model.
"""

from __future__ import annotations

import importlib

from tagger_gui.core.embeddings.base import Backend
from tagger_gui.core.errors import BackendError

DEFAULT_BACKEND = "musicnn-msd"

# name -> (module, factory, keyword arguments, one-line description)
_REGISTRY: dict[str, tuple[str, str, dict, str]] = {
    "musicnn-msd": (
        "tagger_gui.core.embeddings.musicnn",
        "MusicnnBackend",
        {"model": "MSD_musicnn"},
        "musicnn trained on the Million Song Dataset (default)",
    ),
    "musicnn-mtt": (
        "tagger_gui.core.embeddings.musicnn",
        "MusicnnBackend",
        {"model": "MTT_musicnn"},
        "musicnn trained on MagnaTagATune",
    ),
    "vgg-msd": (
        "tagger_gui.core.embeddings.musicnn",
        "VggBackend",
        {"model": "MSD_vgg"},
        "VGG-like baseline trained on the Million Song Dataset",
    ),
    "vgg-mtt": (
        "tagger_gui.core.embeddings.musicnn",
        "VggBackend",
        {"model": "MTT_vgg"},
        "VGG-like baseline trained on MagnaTagATune",
    ),
    "handcrafted": (
        "tagger_gui.core.embeddings.handcrafted",
        "HandcraftedBackend",
        {},
        "classic librosa features (MFCC, contrast, chroma, tempo); no weights",
    ),
}


def available_backends() -> dict[str, str]:
    """Backend name -> one-line description."""
    return {name: entry[3] for name, entry in _REGISTRY.items()}


def load_backend(name: str = DEFAULT_BACKEND, *, device: str = "cpu") -> Backend:
    """Instantiate the backend called ``name``.

    Parameters
    ----------
    name : str
        One of :func:`available_backends`.
    device : str, keyword-only
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available). Ignored by
        backends without a neural model.

    Raises
    ------
    BackendError
        Unknown name, or the model files are missing (the message gives the
        install command).
    """
    try:
        module_name, factory, kwargs, _ = _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise BackendError(f"unknown backend {name!r}; choose one of: {known}") from None
    module = importlib.import_module(module_name)
    return getattr(module, factory)(device=device, **kwargs)


__all__ = ["DEFAULT_BACKEND", "Backend", "available_backends", "load_backend"]
