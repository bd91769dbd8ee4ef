"""Running the musicnn and VGG models with ONNX Runtime instead of PyTorch.

The frozen desktop app ships without torch (385 MB): its models are ONNX
files exported at build time by :mod:`tagger_gui.core.embeddings.onnx_export`
from the same PyTorch modules, and run here with ``onnxruntime`` (CPU). The
outputs equal torch's within float32 rounding (``docs/models.md``, "ONNX"),
so the backends keep their ``version`` and cached vectors stay valid.

Which engine runs (:func:`inference_engine`):

* ``TAGGER_INFERENCE=onnx`` or ``=torch`` in the environment forces one;
* otherwise ONNX Runtime in the frozen app (``sys.frozen``), torch when it
  is importable (the source install), else ONNX Runtime.

The ``.onnx`` files are looked up in ``TAGGER_ONNX_DIR`` if set, else in
``<sys._MEIPASS>/onnx`` in the frozen app, else in ``build/onnx`` of the
source tree (where ``python -m tagger_gui.core.embeddings.onnx_export``
writes them).

This module imports neither torch nor onnxruntime at import time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tagger_gui.core.errors import BackendError

__all__ = [
    "ENGINE_ENV",
    "INPUT_NAME",
    "ONNX_DIR_ENV",
    "OnnxModel",
    "default_threads",
    "inference_engine",
    "onnx_dir",
    "onnx_path",
]

#: environment variable choosing the engine: "onnx" or "torch"
ENGINE_ENV = "TAGGER_INFERENCE"
#: environment variable naming the folder of the .onnx files
ONNX_DIR_ENV = "TAGGER_ONNX_DIR"
#: name of the models' single input, log-mel patches (batch, frames, 96)
INPUT_NAME = "logmel"


def inference_engine() -> str:
    """``"onnx"`` or ``"torch"``: which engine the musicnn/VGG backends use now.

    Raises
    ------
    BackendError
        ``TAGGER_INFERENCE`` is set to something else than ``onnx`` or ``torch``.
    """
    forced = os.environ.get(ENGINE_ENV, "").strip().lower()
    if forced in ("onnx", "torch"):
        return forced
    if forced:
        raise BackendError(f"{ENGINE_ENV}={forced!r}: use 'onnx' or 'torch'")
    if getattr(sys, "frozen", False):
        return "onnx"  # the desktop build carries no torch, whatever the host has
    try:
        has_torch = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        has_torch = False
    return "torch" if has_torch else "onnx"


def onnx_dir() -> Path:
    """Folder of the ``<model>.onnx`` files (see the module docstring)."""
    env = os.environ.get(ONNX_DIR_ENV)
    if env:
        return Path(env)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "onnx"
    return Path(__file__).resolve().parents[3] / "build" / "onnx"


def onnx_path(model: str) -> Path:
    """Path of the ONNX file of checkpoint ``model`` (e.g. ``"MSD_musicnn"``); may not exist."""
    return onnx_dir() / f"{model}.onnx"


def default_threads() -> int:
    """Threads per operator, as torch chooses them: ``OMP_NUM_THREADS`` if set, else 0.

    0 lets ONNX Runtime use one thread per physical core, which is torch's
    default too; the musicnn backends set no thread count of their own.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        return max(0, int(value))
    except ValueError:
        return 0


class OnnxModel:
    """One exported model in an ONNX Runtime CPU session (created on first use).

    Parameters
    ----------
    path : pathlib.Path
        The ``.onnx`` file.
    outputs : list of str
        Output names to fetch, in the backend's order.
    intra_op_threads : int, optional
        Threads per operator; default :func:`default_threads`.

    Raises
    ------
    BackendError
        (on first :meth:`run`) onnxruntime missing, the file missing or
        unreadable, or lacking one of ``outputs``.
    """

    def __init__(self, path: Path, outputs: list[str], *, intra_op_threads: int | None = None):
        self.path = Path(path)
        self.outputs = list(outputs)
        if intra_op_threads is None:
            intra_op_threads = default_threads()
        self.intra_op_threads = int(intra_op_threads)
        self._session: Any = None
        self._lock = threading.Lock()

    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (built once, thread-safe)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._open()
        return self._session

    def _open(self) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(
                f"onnxruntime is not installed ({exc}); install it with: pip install onnxruntime"
            ) from exc
        if not self.path.is_file():
            raise BackendError(
                f"{self.path}: ONNX model not found; export it with: "
                "python -m tagger_gui.core.embeddings.onnx_export"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{self.path}: cannot load the ONNX model: {exc}") from exc
        names = {o.name for o in session.get_outputs()}
        missing = [o for o in self.outputs if o not in names]
        if missing:
            raise BackendError(
                f"{self.path}: the ONNX model lacks outputs {missing}; re-export it with: "
                "python -m tagger_gui.core.embeddings.onnx_export"
            )
        return session

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs for ``x`` (batch, frames, 96) float32, in the order of ``outputs``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session().run(self.outputs, {INPUT_NAME: x})

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_session=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
