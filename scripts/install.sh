#!/usr/bin/env bash
# Set up tagger_gui in ./.venv on a Debian machine with Python 3.11.
# Idempotent: a second run only installs what changed.
#   bash scripts/install.sh          # the app
#   bash scripts/install.sh --test   # the app and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras="gui"
[[ "${1:-}" == "--test" ]] && extras="gui,test"

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

# musicnn: only for the weights it ships. --no-deps: its declared deps
# (TensorFlow, numpy<1.17) must not be installed; we never import its code.
.venv/bin/python -m pip show musicnn >/dev/null 2>&1 \
  || { echo "== installing musicnn 0.1.0 weights (--no-deps)"; "${pip[@]}" --no-deps musicnn==0.1.0; }

echo "== installing tagger_gui[$extras]"
"${pip[@]}" -e ".[$extras]"
.venv/bin/python -c "import tagger_gui, torch, h5py, soundfile; print('tagger_gui', tagger_gui.__version__, 'ready in .venv')"
