#!/usr/bin/env bash
# Set up (if needed) and run lint + the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check pretrained tests benchmarks
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest -q -n 2 --dist loadfile "$@"
