"""Small file-system helpers shared by the writers of the core."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: str | os.PathLike | Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; nothing to do there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
