#!/usr/bin/env bash
# Install everything the tests need and run all checks: lint, the core/Qt
# import contract, and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contract (core never imports Qt)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/python -m pytest "$@"
