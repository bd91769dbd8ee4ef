"""The thin Qt layer over :mod:`tagger_gui.core` (the desktop app).

Importing it turns off one piece of PySide6 we do not use and cannot afford:
after ``import PySide6`` every later import of a Python module, in any
thread, runs shiboken's ``feature_imported`` hook, which reads the module's
source with ``inspect.getsource`` to decide whether ``from __feature__
import ...`` (snake_case / true_property) may apply to it. The app imports
scikit-learn, librosa and matplotlib lazily in worker threads; with the hook
doing that work there, the GUI thread crashed (SIGSEGV in Qt's text
drawing) in about half of the ``benchmarks/ui_latency.py`` runs, as in other
projects' reports of the same hook. This package never uses ``__feature__``,
so every module is marked "no feature" without reading its source.
"""

from __future__ import annotations

import sys

import PySide6.QtCore  # noqa: F401  (loads shiboken's import hook)


def _no_feature_scan() -> bool:
    feature = sys.modules.get("shibokensupport.feature")
    if feature is None or not hasattr(feature, "_mod_uses_pyside"):
        return False  # another PySide6 layout: leave it
    feature._mod_uses_pyside = lambda module: False
    return True


FEATURE_SCAN_DISABLED = _no_feature_scan()
