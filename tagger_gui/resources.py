"""Where the app's resource files are: ``resources/`` in the source tree or the frozen app."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["resource_path", "resources_dir"]


def resources_dir() -> Path:
    """The ``resources/`` folder: inside the frozen app, else at the top of the source tree."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(name: str) -> Path:
    """Path of the resource file ``name`` (it may not exist; callers check)."""
    return resources_dir() / name
