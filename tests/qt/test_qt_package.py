"""The Qt package turns off PySide6's per-import source scan (see tagger_gui/qt/__init__.py)."""

from __future__ import annotations

import sys
import threading

import tagger_gui.qt as qt_package


def test_the_feature_scan_is_off_so_imports_in_threads_read_no_source():
    # a PySide6 upgrade that moves the hook must be noticed, not silently ignored
    assert qt_package.FEATURE_SCAN_DISABLED
    feature = sys.modules["shibokensupport.feature"]
    assert feature._mod_uses_pyside(qt_package) is False


def test_a_module_imported_in_a_worker_thread_is_marked_without_its_source(tmp_path, monkeypatch):
    (tmp_path / "tagger_probe_mod.py").write_text("import PySide6\nVALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    feature = sys.modules["shibokensupport.feature"]
    done = []
    thread = threading.Thread(target=lambda: done.append(__import__("tagger_probe_mod").VALUE))
    thread.start()
    thread.join(30)
    assert done == [1]
    # the hook saw it, and marked it "no feature" (-1) although its source names PySide6
    assert feature.pyside_feature_dict.get("tagger_probe_mod") == -1
