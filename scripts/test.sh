#!/usr/bin/env bash
# Install everything the tests need and run all checks: lint, the core/Qt
# import contract, and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian parts the player tests need (PortAudio, an ALSA null device); quick
# when present, asks for root/sudo only when something is missing.
bash scripts/ci_system.sh
bash scripts/install.sh --test
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contract (core never imports Qt)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/python -m pytest "$@"
