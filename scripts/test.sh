#!/usr/bin/env bash
# Set up a venv and run the whole test suite.
#   bash scripts/test.sh [PYTEST ARGS]            .venv at the tested lock: what the README promises and CI runs
#   bash scripts/test.sh --latest [PYTEST ARGS]   the canary: a fresh .venv-latest with the newest versions that
#                                                 pyproject's ranges allow; run it before every landing
#   bash scripts/test.sh --oldest [PYTEST ARGS]   a fresh .venv-oldest: the lock, with the packages that have a
#                                                 tested floor (scripts/compat.py FLOORS) at pyproject's lower bound
# --latest and --oldest write the versions and the result into docs/compatibility.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=locked
case "${1:-}" in
    --latest) MODE=latest; shift ;;
    --oldest) MODE=oldest; shift ;;
esac
case "$MODE" in
    locked) export LOCLIP_VENV=.venv ;;
    latest) export LOCLIP_VENV=.venv-latest LOCLIP_UNLOCKED=1; rm -rf .venv-latest ;;
    oldest) export LOCLIP_VENV=.venv-oldest LOCLIP_CONSTRAINTS=requirements/oldest.txt; rm -rf .venv-oldest
            "${PYTHON:-python3}" scripts/compat.py oldest-constraints > "$LOCLIP_CONSTRAINTS" ;;
esac
bash scripts/setup.sh dev
# The demo's browser test drives Debian's Chromium through Playwright (never `playwright install`):
# install it once when missing. If that fails the suite still runs, and that test says what is missing.
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        || echo "scripts/test.sh: could not install chromium (apt-get); the browser test will fail" >&2
fi
if [ "$MODE" = locked ]; then
    exec "$LOCLIP_VENV/bin/python" -m pytest tests "$@"
fi
set +e
"$LOCLIP_VENV/bin/python" -m pytest tests --junitxml "$LOCLIP_VENV/junit.xml" "$@"
RC=$?
set -e
"$LOCLIP_VENV/bin/python" scripts/compat.py record --mode "$MODE" --junit "$LOCLIP_VENV/junit.xml"
exit "$RC"
