#!/usr/bin/env bash
# Set up (if needed) and run lint + the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check pretrained tests benchmarks
# Two pytest workers on two cores: one thread each, or torch oversubscribes the cores (several x slower).
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python -m pytest -q -n 2 --dist loadfile "$@"
