"""Export the musicnn and VGG models to ONNX, and check them against PyTorch.

Build-time tool (needs torch, onnx and onnxruntime)::

    python -m tagger_gui.core.embeddings.onnx_export            # all four -> build/onnx/
    python -m tagger_gui.core.embeddings.onnx_export --out DIR MSD_musicnn

Each model becomes ``<DIR>/<model>.onnx`` with one input ``logmel``
``(batch, frames, 96)`` float32 (batch dynamic; frames dynamic for musicnn,
187 for the VGG) and the backend's outputs by name (musicnn: ``mean_pool``,
``max_pool``, ``penultimate``, ``taggram``; VGG: ``pool5``, ``taggram``).
After writing, each file is run with ONNX Runtime on the self-test tone's
patches and on random log-mels of several batch sizes and lengths, and the
command fails if any output differs from torch's by more than ``rtol``
(1e-5) of that output's largest magnitude; the largest differences are
printed. :func:`export_model` is what ``scripts/build_app.sh`` and the tests
call.

The musicnn front end is exported without its time slicing
(``frame_budget=None``): the slicing only bounds memory and is exact, and a
traced graph would freeze the slices of the example's length.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from tagger_gui.core.embeddings.musicnn import (
    FRAMES_PER_PATCH,
    MODELS,
    N_MELS,
    MusicnnBackend,
    VggBackend,
    musicnn_model_dir,
)
from tagger_gui.core.embeddings.onnx_runtime import INPUT_NAME, OnnxModel, onnx_dir

__all__ = ["OPSET", "RTOL", "check_model", "export_model", "main", "output_names"]

OPSET = 17
RTOL = 1e-5
#: the self-test tone of the source tree (a build-time tool: not the frozen app's copy)
TONE = Path(__file__).resolve().parents[3] / "resources" / "selftest_tone.flac"


def output_names(model: str) -> list[str]:
    """The backend's output names for checkpoint ``model``, in its order."""
    return list(_outputs_of(MusicnnBackend if MODELS[model] == "musicnn" else VggBackend))


def _outputs_of(cls: type) -> dict[str, int]:
    # outputs are set in __init__; the dicts are fixed per class
    if cls is MusicnnBackend:
        return {"mean_pool": 753, "max_pool": 753, "penultimate": 200, "taggram": 50}
    return {"pool5": 256, "taggram": 50}


def _torch_module(model: str):
    """The PyTorch model for export: eval mode, and (musicnn) without time slicing."""
    from tagger_gui.core.embeddings.musicnn_torch import Musicnn, build_model
    from tagger_gui.core.embeddings.tf_checkpoint import read_checkpoint

    weights = read_checkpoint(musicnn_model_dir(model))
    if MODELS[model] != "musicnn":
        return build_model("vgg", weights)
    module = Musicnn(frame_budget=None)
    module.load_tf_weights(weights)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def export_model(model: str, out_dir: Path | None = None, *, check: bool = True) -> Path:
    """Export checkpoint ``model`` (e.g. ``"MSD_musicnn"``) to ``<out_dir>/<model>.onnx``.

    Parameters
    ----------
    model : str
        One of :data:`~tagger_gui.core.embeddings.musicnn.MODELS`.
    out_dir : pathlib.Path, optional
        Destination folder (created); default :func:`onnx_dir` (``build/onnx``).
    check : bool, keyword-only
        Run :func:`check_model` after writing (raises if it fails).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import torch

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    out_dir = Path(out_dir) if out_dir is not None else onnx_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model}.onnx"
    names = output_names(model)
    module = _torch_module(model)
    example = torch.zeros(2, FRAMES_PER_PATCH, N_MELS)
    axes = {0: "batch"} if MODELS[model] == "vgg" else {0: "batch", 1: "frames"}
    dynamic_axes = {INPUT_NAME: axes, **{n: {0: "batch"} for n in names}}
    tmp = path.with_suffix(".onnx.part")
    with torch.inference_mode(), warnings.catch_warnings():
        # the legacy exporter's deprecation and tracer warnings: the trace is
        # checked below, on other lengths and batch sizes than the example
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    tmp.replace(path)
    if check:
        errors = check_model(model, path, module=module)
        worst = max(errors.values())
        if worst > RTOL:
            raise RuntimeError(f"{path}: ONNX Runtime differs from torch: {errors}")
    return path


def _check_inputs(model: str) -> list[np.ndarray]:
    """Self-test tone patches and random log-mels (several batches and lengths)."""
    from tagger_gui.core.embeddings.musicnn import logmel, split_patches

    inputs = []
    try:
        import soundfile as sf

        y, sr = sf.read(str(TONE), dtype="float32")
        if y.ndim == 2:
            y = y.mean(axis=1)
        mel = logmel(np.concatenate([y, y, y]), sr)
        inputs.append(split_patches(mel))
        if MODELS[model] == "musicnn":
            inputs.append(mel[None])
    except (ImportError, OSError):
        pass
    rng = np.random.default_rng(0)
    lengths = [FRAMES_PER_PATCH] if MODELS[model] == "vgg" else [1, 40, FRAMES_PER_PATCH, 1000]
    for batch in (1, 3, 8):
        for n in lengths:
            # log10(10000 x + 1) of mel powers lies roughly in [0, 6]
            inputs.append(rng.uniform(0.0, 4.0, size=(batch, n, N_MELS)).astype(np.float32))
    return inputs


def check_model(model: str, path: Path, *, module=None) -> dict[str, float]:
    """Largest difference between ONNX Runtime and torch per output, relative to its scale.

    For each output, ``max |onnx - torch| / max(|torch|)`` over all check inputs
    (:func:`_check_inputs`).
    """
    import torch

    module = module if module is not None else _torch_module(model)
    names = output_names(model)
    runner = OnnxModel(path, names)
    diff = dict.fromkeys(names, 0.0)
    scale = dict.fromkeys(names, 0.0)
    for x in _check_inputs(model):
        with torch.inference_mode():
            expected = [t.numpy() for t in module(torch.from_numpy(x))]
        got = runner.run(x)
        for name, e, g in zip(names, expected, got, strict=True):
            if g.shape != e.shape:
                raise RuntimeError(f"{path}: output {name} has shape {g.shape}, torch {e.shape}")
            diff[name] = max(diff[name], float(np.max(np.abs(g - e))))
            scale[name] = max(scale[name], float(np.max(np.abs(e))))
    return {n: diff[n] / scale[n] if scale[n] else diff[n] for n in names}


def main(argv: list[str] | None = None) -> int:
    """Command line: export (and check) the given models, default all four."""
    parser = argparse.ArgumentParser(
        prog="python -m tagger_gui.core.embeddings.onnx_export",
        description="Export the musicnn/VGG models to ONNX and check them against torch.",
    )
    parser.add_argument("models", nargs="*", help=f"default all: {', '.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=None, help="folder (default build/onnx)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from: {', '.join(MODELS)}")
    for model in args.models or list(MODELS):
        path = export_model(model, args.out, check=False)
        errors = check_model(model, path)
        size = path.stat().st_size / 1e6
        text = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        print(f"{path} ({size:.1f} MB): max relative difference to torch: {text}")
        if max(errors.values()) > RTOL:
            print(f"onnx_export: {path}: differs from torch by more than {RTOL}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
