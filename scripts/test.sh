#!/usr/bin/env bash
# Set up .venv (CPU torch, loclip with its test extras) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# The demo's browser test drives Debian's Chromium through Playwright (never `playwright install`):
# install it once when missing. If that fails the suite still runs, and that test says what is missing.
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        || echo "scripts/test.sh: could not install chromium (apt-get); the browser test will fail" >&2
fi
exec .venv/bin/python -m pytest tests "$@"
