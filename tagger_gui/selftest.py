"""``tagger --self-test``: check that an install (above all the frozen app) works.

Each check prints one ``PASS``/``FAIL``/``SKIP`` line with what it found, and
:func:`run_self_test` returns 1 if any check failed. The checks:

- every embedding backend loads and embeds a short bundled test tone
  (``resources/selftest_tone.flac``), and its outputs match the figures
  stored in ``resources/selftest_expected.json`` (norm, sum and largest
  values of the clip-mean vector of every output, within a tolerance);
- a spawned worker process starts (the embedding job decodes in spawned
  processes, which a frozen app only supports through ``freeze_support``);
- the Qt platform plugins are there, and the real main window opens and
  closes (offscreen when there is no display), with settings redirected to a
  temporary folder so the user's are not touched;
- an audio output stream opens if PortAudio reports an output device
  (otherwise ``SKIP``, with the reason).

The test tone and the expected figures are made by this module, from the
unfrozen install::

    python -m tagger_gui.selftest --write-resources   # tone (if missing) + figures

- the system libraries Qt's X11 and Wayland plugins and PortAudio load are
  present (:mod:`tagger_gui.platform_check`).

The window check is passed in by the caller (:mod:`tagger_gui.qt.selftest_window`),
so this module never imports the Qt layer, and the command-line self-test
starts without Qt until that check runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TextIO

import numpy as np

from tagger_gui.resources import resource_path, resources_dir

__all__ = [
    "EXPECTED_FILE",
    "TONE_FILE",
    "CheckFailed",
    "CheckSkipped",
    "clip_means",
    "compare",
    "figures",
    "resource_path",
    "resources_dir",
    "run_self_test",
]

TONE_FILE = "selftest_tone.flac"
EXPECTED_FILE = "selftest_expected.json"
EXPECTED_VERSION = 1
#: values compared besides norm and sum: the N_VALUES largest entries of the clip-mean vector
N_VALUES = 4
#: tolerance on every figure, relative to the vector's norm
#: (machines differ in SIMD paths and thread splits, the figures do not by more)
REL_TOL = 1e-3
TONE_SR = 22050  # not the models' 16 kHz, so resampling is exercised too
TONE_SECONDS = 3.0


class CheckFailed(Exception):
    """A self-test check found a problem (the message says which)."""


class CheckSkipped(Exception):
    """A self-test check could not run here (the message says why)."""


# --------------------------------------------------------------------------
# The test tone and the figures
# --------------------------------------------------------------------------


def make_tone(sr: int = TONE_SR, seconds: float = TONE_SECONDS) -> np.ndarray:
    """A deterministic 3-s test signal: a plucked arpeggio over a 120-BPM noise beat."""
    n = round(sr * seconds)
    t = np.arange(n) / sr
    y = np.zeros(n)
    notes = [220.0, 277.18, 329.63, 440.0, 329.63, 277.18]  # A major arpeggio
    step = seconds / len(notes)
    for i, f in enumerate(notes):
        start = round(i * step * sr)
        tt = t[: n - start]
        env = np.exp(-3.0 * tt)
        tone = sum(np.sin(2 * np.pi * f * k * tt) / k for k in (1, 2, 3))
        y[start:] += 0.25 * env * tone
    rng = np.random.default_rng(20261128)
    for beat in np.arange(0.0, seconds, 0.5):  # 120 BPM
        start = round(beat * sr)
        length = min(round(0.08 * sr), n - start)
        y[start : start + length] += (
            0.3 * rng.standard_normal(length) * np.exp(-np.arange(length) / (0.015 * sr))
        )
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


def clip_means(name: str, tone_path: Path) -> dict[str, np.ndarray]:
    """Clip-mean vector of every output of backend ``name`` for the tone.

    The tone is decoded like the embedding job does (mono, resampled with
    soxr to the backend's rate), then embedded in the calling process.
    """
    from tagger_gui.core.audio import load_excerpts
    from tagger_gui.core.embeddings import load_backend

    backend = load_backend(name)
    decoded = load_excerpts(tone_path, backend.sample_rate)
    y = np.concatenate(decoded.segments)
    outputs = backend.embed_audio(y, backend.sample_rate)
    return {
        output: np.asarray(vectors, dtype=np.float64).mean(axis=0)
        for output, vectors in outputs.items()
    }


def figures(mean: np.ndarray) -> dict[str, object]:
    """What is stored of a clip-mean vector: size, norm, sum, and its largest values.

    ``largest`` maps the index of each of the N_VALUES entries of largest
    magnitude to its value.
    """
    top = np.sort(np.argsort(-np.abs(mean), kind="stable")[:N_VALUES])
    return {
        "dim": int(mean.shape[0]),
        "norm": float(np.linalg.norm(mean)),
        "sum": float(mean.sum()),
        "largest": {str(i): float(mean[i]) for i in top},
    }


def compare(means: dict[str, np.ndarray], expected: dict[str, dict]) -> str:
    """Check clip-mean vectors against stored figures; returns a summary.

    Raises
    ------
    CheckFailed
        Other outputs or sizes, or a figure off by more than REL_TOL x the
        expected norm (NaN included).
    """
    if set(means) != set(expected):
        raise CheckFailed(f"outputs {sorted(means)} differ from the expected {sorted(expected)}")
    worst = 0.0
    for output, exp in expected.items():
        mean = means[output]
        got = figures(mean)
        if got["dim"] != exp["dim"]:
            raise CheckFailed(f"{output}: {got['dim']} values, expected {exp['dim']}")
        scale = max(abs(exp["norm"]), 1e-12)
        values = {i: float(mean[int(i)]) for i in exp["largest"]}
        errors = [abs(got[k] - exp[k]) / scale for k in ("norm", "sum")]
        errors += [abs(values[i] - v) / scale for i, v in exp["largest"].items()]
        err = max(errors)
        if not err <= REL_TOL:  # "not <=" so that NaN fails too
            raise CheckFailed(
                f"{output}: norm {got['norm']:.6g} (expected {exp['norm']:.6g}), sum "
                f"{got['sum']:.6g} (expected {exp['sum']:.6g}), values "
                f"{ {i: round(v, 5) for i, v in values.items()} } (expected "
                f"{ {i: round(v, 5) for i, v in exp['largest'].items()} }): "
                f"off by {err:.2g} x norm, more than {REL_TOL:g}"
            )
        worst = max(worst, err)
    return f"{len(expected)} outputs match (largest difference {worst:.1e} x norm)"


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------


def _load_expected(expected_file: Path) -> dict:
    try:
        data = json.loads(expected_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckFailed(
            f"{expected_file}: missing (the app's resources are incomplete)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CheckFailed(f"{expected_file}: cannot be read ({exc})") from None
    if data.get("version") != EXPECTED_VERSION or not isinstance(data.get("backends"), dict):
        raise CheckFailed(f"{expected_file}: not a version-{EXPECTED_VERSION} figures file")
    return data["backends"]


def _child_probe() -> tuple[int, bool]:
    """Run in a spawned worker: its pid, and whether it is the frozen app."""
    from tagger_gui.core.embeddings import load_backend

    load_backend("handcrafted")  # the worker side of the embedding job imports the core
    return os.getpid(), bool(getattr(sys, "frozen", False))


def check_worker_process() -> str:
    """A spawned worker process (as the embedding job uses) starts and answers."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pid, frozen = pool.submit(_child_probe).result(timeout=120)
    if pid == os.getpid():
        raise CheckFailed("the worker ran in this process")
    return f"spawned worker pid {pid} answered ({'frozen' if frozen else 'python'})"


def check_qt_plugins() -> str:
    """The Qt platform plugins the app may need are present."""
    try:
        from PySide6.QtCore import QLibraryInfo
    except ImportError as exc:
        raise CheckFailed(f"PySide6 cannot be imported ({exc})") from None
    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    found = sorted(p.name for p in folder.glob("libq*.so")) if folder.is_dir() else []
    missing = [n for n in ("libqoffscreen.so", "libqxcb.so") if n not in found]
    if sys.platform.startswith("linux") and missing:
        raise CheckFailed(f"{folder}: missing {', '.join(missing)} (found {found or 'none'})")
    return f"{folder}: {', '.join(found) or 'none needed'}"


def check_system_libraries() -> str:
    """The system libraries of Qt's X11 and Wayland plugins and of PortAudio can be loaded."""
    import ctypes.util

    from tagger_gui.platform_check import LIBRARY_PACKAGES, platform_problems, pyside_dir

    if pyside_dir() is None:
        raise CheckSkipped("PySide6 is not installed (the command line only)")
    missing = {p: platform_problems(p) for p in ("xcb", "wayland")}
    if ctypes.util.find_library("portaudio") is None:
        missing["PortAudio"] = ["libportaudio.so.2"]
    found = {p: m for p, m in missing.items() if m}
    if not found:
        return "X11 (xcb) and Wayland plugins' libraries, PortAudio: all present"
    packages = sorted({LIBRARY_PACKAGES.get(s, s) for m in found.values() for s in m})
    where = "; ".join(f"{p}: {', '.join(m)}" for p, m in found.items())
    raise CheckFailed(f"missing {where} (sudo apt-get install {' '.join(packages)})")


def check_audio_output() -> str:
    """An output stream opens on the default output device, if there is one."""
    try:
        import sounddevice as sd
    except OSError as exc:  # the PortAudio library is missing
        raise CheckFailed(f"PortAudio cannot be loaded ({exc})") from None
    library = f"{sd.get_portaudio_version()[1]} ({getattr(sd, '_libname', '?')})"
    try:
        devices = sd.query_devices()
        output = sd.query_devices(kind="output")
    except sd.PortAudioError as exc:
        raise CheckSkipped(f"{library}: no output device ({exc})") from None
    if not any(d["max_output_channels"] > 0 for d in devices):
        raise CheckSkipped(f"{library}: no output device")
    sr = int(output["default_samplerate"])
    with sd.OutputStream(samplerate=sr, channels=1, dtype="float32") as stream:
        stream.write(np.zeros(sr // 20, dtype=np.float32))
    return f"{library}: 50 ms of silence played on {output['name']!r} at {sr} Hz"


def _backend_check(name: str, tone: Path, expected: dict) -> Callable[[], str]:
    def check() -> str:
        if name not in expected:
            raise CheckFailed(f"no expected figures for {name} in {EXPECTED_FILE}")
        return compare(clip_means(name, tone), expected[name])

    check.__doc__ = f"backend {name} embeds the test tone as expected"
    return check


def run_self_test(
    out: TextIO | None = None,
    *,
    expected_file: Path | None = None,
    window_check: Callable[[], str] | None = None,
    audio: bool = True,
) -> int:
    """Run every check, printing one line per check; 0 if none failed, else 1.

    Parameters
    ----------
    out : text stream, optional
        Where the report goes (default ``sys.stdout``).
    expected_file : path, keyword-only
        The stored figures (default ``resources/selftest_expected.json``).
    window_check : callable, keyword-only
        Opens the main window and says what it saw
        (:func:`tagger_gui.qt.selftest_window.open_and_close_main_window`);
        the Qt layer passes it in, so this module never imports the Qt
        layer. None (the running app's Help → Self-test, and tests with a
        Qt application of their own) leaves out the window checks.
    audio : bool, keyword-only
        Run the audio-output check.
    """
    out = sys.stdout if out is None else out
    import tagger_gui
    from tagger_gui.core.embeddings import available_backends

    frozen = bool(getattr(sys, "frozen", False))
    print(
        f"tagger {tagger_gui.__version__} self-test "
        f"({'frozen app' if frozen else 'Python ' + sys.version.split()[0]}: {sys.executable})",
        file=out,
        flush=True,
    )
    tone = resource_path(TONE_FILE)
    expected_file = resource_path(EXPECTED_FILE) if expected_file is None else Path(expected_file)
    checks: list[tuple[str, Callable[[], str]]] = []

    def tone_present() -> str:
        if not tone.is_file():
            raise CheckFailed(f"{tone}: missing (the app's resources are incomplete)")
        return str(tone)

    checks.append(("test tone", tone_present))
    expected: dict = {}
    try:
        expected = _load_expected(expected_file)
        checks.append(("expected figures", lambda: f"{expected_file} ({len(expected)} backends)"))
    except CheckFailed as exc:
        message = str(exc)

        def report() -> str:
            raise CheckFailed(message)

        checks.append(("expected figures", report))
    for name in available_backends():
        checks.append((f"backend {name}", _backend_check(name, tone, expected)))
    checks.append(("worker process", check_worker_process))
    checks.append(("system libraries", check_system_libraries))
    if window_check is not None:
        checks += [("Qt plugins", check_qt_plugins), ("main window", window_check)]
    if audio:
        checks.append(("audio output", check_audio_output))

    failed = 0
    for label, check in checks:
        start = time.perf_counter()
        try:
            detail = check()
            status = "PASS"
        except CheckSkipped as exc:
            status, detail = "SKIP", str(exc)
        except CheckFailed as exc:
            status, detail = "FAIL", str(exc)
        except Exception as exc:  # an unexpected error is a failure, with where it happened
            status = "FAIL"
            where = traceback.extract_tb(exc.__traceback__)[-1]
            detail = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
        failed += status == "FAIL"
        seconds = time.perf_counter() - start
        print(f"{status} {label}: {detail} [{seconds:.1f} s]", file=out, flush=True)
    verdict = "all checks passed" if not failed else f"{failed} check(s) FAILED"
    print(f"self-test: {verdict}", file=out, flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------
# Making the resources (from the unfrozen install)
# --------------------------------------------------------------------------


def write_resources(*, force_tone: bool = False) -> tuple[Path, Path]:
    """Write the test tone (unless present) and the expected figures of every backend."""
    import soundfile as sf

    from tagger_gui.core.embeddings import available_backends

    tone = resource_path(TONE_FILE)
    if force_tone or not tone.is_file():
        sf.write(tone, make_tone(), TONE_SR, subtype="PCM_16", format="FLAC")
    stored = {
        name: {output: figures(mean) for output, mean in clip_means(name, tone).items()}
        for name in available_backends()
    }
    data = {
        "version": EXPECTED_VERSION,
        "made_by": "python -m tagger_gui.selftest --write-resources",
        "tone": TONE_FILE,
        "rel_tol": REL_TOL,
        "backends": stored,
    }
    expected = resource_path(EXPECTED_FILE)
    expected.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return tone, expected


def main(argv: list[str] | None = None) -> int:
    """``python -m tagger_gui.selftest [--write-resources [--new-tone]]``."""
    parser = argparse.ArgumentParser(prog="python -m tagger_gui.selftest")
    parser.add_argument(
        "--write-resources",
        action="store_true",
        help="write the test tone (if missing) and the expected figures, then exit",
    )
    parser.add_argument("--new-tone", action="store_true", help="rewrite the tone too")
    args = parser.parse_args(argv)
    if args.write_resources:
        for path in write_resources(force_tone=args.new_tone):
            print(f"wrote {path}")
        return 0
    return run_self_test()


if __name__ == "__main__":
    sys.exit(main())
