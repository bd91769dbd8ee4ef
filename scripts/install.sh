#!/usr/bin/env bash
# Set up tagger_gui in ./.venv on a Debian/Ubuntu machine with Python 3.11.
# Idempotent: a second run only installs what changed.
#   bash scripts/install.sh          # the app
#   bash scripts/install.sh --test   # the app and the test tools
# It needs nothing but the package registries (Debian's and PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

extras="gui"
system_mode=""
[[ "${1:-}" == "--test" ]] && { extras="gui,test"; system_mode="--test"; }

# System libraries: Qt's X11/Wayland platform libraries and PortAudio (with
# --test also Xvfb and an ALSA null device); asks for sudo only if one is
# missing, and goes on (with the command to run) if it cannot install them.
bash scripts/system_packages.sh $system_mode

PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
[[ -n "$PY" ]] || { echo "install.sh: Python 3.11 not found (apt-get install python3 python3-venv)" >&2; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch: the CPU build, pinned (an unpinned torch pulls a multi-GB CUDA build).
.venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || { echo "== installing torch 2.13.0 (CPU)"; "${pip[@]}" torch==2.13.0; }

# An install made before the weights were unpacked on their own has the
# musicnn package (installed --no-deps), which makes pip's resolver report
# its TensorFlow requirement on every install: it goes, its weights are
# unpacked below.
if .venv/bin/python -m pip show musicnn >/dev/null 2>&1; then
  echo "== removing the musicnn package (its weights are kept on their own)"
  .venv/bin/python -m pip uninstall --quiet --yes musicnn
fi

echo "== installing tagger_gui[$extras]"
"${pip[@]}" -e ".[$extras]"

# The musicnn weights: the musicnn 0.1.0 wheel is downloaded (not installed:
# its TensorFlow and numpy<1.17 requirements must not be), checked against
# its pinned SHA-256, and only its checkpoint files are unpacked into
# .venv/share/tagger_gui/ (tagger_gui/core/embeddings/weights.py).
.venv/bin/python -m tagger_gui.core.embeddings.weights --check >/dev/null 2>&1 \
  || { echo "== installing the musicnn model weights"; .venv/bin/python -m tagger_gui.core.embeddings.weights >/dev/null; }

.venv/bin/python - <<'PY'
import torch

import tagger_gui
from tagger_gui.core.embeddings.weights import weights_dir

print(
    f"tagger_gui {tagger_gui.__version__} is installed in .venv (torch {torch.__version__}, "
    f"musicnn weights in {weights_dir()}). Start it with: .venv/bin/tagger-gui ~/Music"
)
PY
