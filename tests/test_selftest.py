"""``tagger --self-test`` run from the source tree, its failure paths, and tagger.spec's contents.

The frozen build's own self-test runs in CI through scripts/build_app.sh.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagger_gui.core.embeddings import available_backends
from tagger_gui.selftest import (
    EXPECTED_FILE,
    TONE_FILE,
    CheckFailed,
    compare,
    figures,
    make_tone,
    resource_path,
    run_self_test,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cli_self_test_passes_unfrozen(tmp_path):
    # a fresh HOME: the window check must not need (or touch) the user's settings
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    run = subprocess.run(
        [sys.executable, "-m", "tagger_gui", "--self-test"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    for name in available_backends():
        assert any(line.startswith(f"PASS backend {name}:") for line in lines), run.stdout
    for check in ("test tone", "worker process", "Qt plugins", "main window"):
        assert any(line.startswith(f"PASS {check}:") for line in lines), run.stdout
    # audio: passes on a machine with an output device, else says why it skipped
    assert any(line.startswith(("PASS audio output:", "SKIP audio output:")) for line in lines)
    assert lines[-1] == "self-test: all checks passed"
    assert not list((tmp_path / "config").glob("**/*.conf")), "the window check wrote settings"


@pytest.mark.slow
def test_altered_figures_fail_with_the_reason(tmp_path):
    data = json.loads(resource_path(EXPECTED_FILE).read_text())
    data["backends"]["musicnn-msd"]["penultimate"]["norm"] *= 1.01
    altered = tmp_path / "expected.json"
    altered.write_text(json.dumps(data))
    out = io.StringIO()
    status = run_self_test(out, expected_file=altered, audio=False)
    report = out.getvalue()
    assert status == 1
    failed = [line for line in report.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, report
    assert failed[0].startswith("FAIL backend musicnn-msd: penultimate: norm")
    assert "PASS backend musicnn-mtt" in report
    assert report.rstrip().endswith("self-test: 1 check(s) FAILED")


def test_missing_figures_file_fails_naming_it(tmp_path):
    missing = tmp_path / "nowhere.json"
    out = io.StringIO()
    # backends would fail too; the point is the first failure names the file
    status = run_self_test(out, expected_file=missing, audio=False)
    lines = out.getvalue().splitlines()
    assert status == 1
    assert lines[2].startswith(f"FAIL expected figures: {missing}: missing")
    assert "FAIL backend handcrafted: no expected figures for handcrafted" in out.getvalue()


def test_compare_accepts_its_own_figures_and_rejects_changes():
    rng = np.random.default_rng(0)
    means = {"a": rng.normal(size=20), "b": rng.normal(size=5)}
    stored = {k: figures(v) for k, v in means.items()}
    assert compare(means, stored).startswith("2 outputs match")

    nudged = {**means, "a": means["a"] * (1 + 1e-5)}
    compare(nudged, stored)  # well within the tolerance

    biggest = int(np.argmax(np.abs(means["a"])))
    for changed, reason in [
        ({**means, "a": np.where(np.arange(20) == biggest, 0.0, means["a"])}, "off by"),
        ({**means, "a": np.full(20, np.nan)}, "off by"),
        ({**means, "b": means["b"][:4]}, "4 values, expected 5"),
        ({"a": means["a"]}, "outputs ['a'] differ"),
    ]:
        with pytest.raises(CheckFailed, match=reason.replace("[", r"\[")):
            compare(changed, stored)


def test_bundled_tone_is_the_generated_one():
    y, sr = sf.read(resource_path(TONE_FILE), dtype="float64")
    expected = make_tone()
    assert sr == 22050
    assert y.shape == expected.shape
    assert np.max(np.abs(y - expected)) <= 1.01 / 32768  # 16-bit FLAC quantisation


# -- tagger.spec ---------------------------------------------------------------------------


class _Recorder:
    """Stands in for one of PyInstaller's spec classes, keeping its arguments."""

    made: list[_Recorder]

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.made.append(self)


def _run_spec(tmp_path: Path) -> dict[str, list[_Recorder]]:
    pytest.importorskip("PyInstaller", reason="the build extra (pip install -e .[build])")
    made: dict[str, list[_Recorder]] = {}

    def kind(name):
        made[name] = []
        return type(name, (_Recorder,), {"made": made[name]})

    analysis = kind("Analysis")

    def analysis_factory(scripts, **kwargs):
        a = analysis(scripts, **kwargs)
        a.scripts = [("pyi_rth_x", "rth.py", "PYSOURCE")]
        a.scripts += [(Path(s).stem, s, "PYSOURCE") for s in scripts]
        a.binaries = [("torch/bin/test_api", "x", "BINARY"), ("libfoo.so", "x", "BINARY")]
        a.datas = [(f"{dest}/{Path(src).name}", src, "DATA") for src, dest in kwargs["datas"]]
        a.pure = []
        return a

    namespace = {
        "SPECPATH": str(REPO),
        "workpath": str(tmp_path),
        "Analysis": analysis_factory,
        "PYZ": kind("PYZ"),
        "EXE": kind("EXE"),
        "COLLECT": kind("COLLECT"),
        "__file__": str(REPO / "tagger.spec"),
    }
    code = compile((REPO / "tagger.spec").read_text(), "tagger.spec", "exec")
    exec(code, namespace)
    return made


def test_spec_builds_two_programs_with_the_data_they_need(tmp_path):
    made = _run_spec(tmp_path)
    (analysis,) = made["Analysis"]
    datas = analysis.kwargs["datas"]
    destinations = {(Path(src).name, dest) for src, dest in datas}
    for name in (TONE_FILE, EXPECTED_FILE, "tagger-gui.desktop", "tagger-gui-256.png"):
        assert (name, "resources") in destinations
        assert (REPO / "resources" / name).is_file()
    for model in ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"):
        assert (".index", f"musicnn/{model}") in destinations
        assert (".data-00000-of-00001", f"musicnn/{model}") in destinations
    assert "tagger_gui.qt.app" in analysis.kwargs["hiddenimports"]
    assert "tagger_gui.gui_launcher" in analysis.kwargs["hiddenimports"]

    exes = {e.kwargs["name"]: e for e in made["EXE"]}
    assert set(exes) == {"tagger", "tagger-gui"}
    assert exes["tagger"].kwargs["console"] and not exes["tagger-gui"].kwargs["console"]
    own = {
        name: [s[0] for s in e.args[1] if not s[0].startswith("pyi_rth")]
        for name, e in exes.items()
    }
    assert own == {"tagger": ["tagger_main"], "tagger-gui": ["tagger_gui_main"]}
    (collect,) = made["COLLECT"]
    assert collect.kwargs["name"] == "tagger"
    binaries = next(
        arg for arg in collect.args if isinstance(arg, list) and arg and arg[0][2] == "BINARY"
    )
    assert [b[0] for b in binaries] == ["libfoo.so"]  # torch's test binaries are left out
    entry = (tmp_path / "entry" / "tagger_main.py").read_text()
    assert entry.index("freeze_support()") < entry.index("from tagger_gui.cli import main")
    gui_entry = (tmp_path / "entry" / "tagger_gui_main.py").read_text()
    assert "from tagger_gui.gui_launcher import main" in gui_entry
