#!/usr/bin/env bash
# Install everything the tests need and run all checks: lint, the core/Qt
# import contract, and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# With --test, install.sh also brings the Debian parts the tests need
# (PortAudio, Xvfb, an ALSA null device: scripts/system_packages.sh); quick
# when present, asks for root/sudo only when something is missing.
bash scripts/install.sh --test
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contract (core never imports Qt)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/python -m pytest "$@"
