#!/usr/bin/env bash
# Set up .venv (CPU torch, loclip with its test extras) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python -m pytest tests "$@"
