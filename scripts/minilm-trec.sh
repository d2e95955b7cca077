#!/usr/bin/env bash
# Fine-tunes all-MiniLM-L6-v2 on TREC-6 with the recipe
# crates/mixup-cli/tests/data/minilm-trec.toml (AdamW 5e-5, weight decay 0.01, 10% warm-up
# then linear decay, gradient-norm clipping 1.0, batch 32, max_len 64, 3 epochs).
#
#   scripts/minilm-trec.sh [extra `mixup train` options, e.g. --epochs 1 --method ssmix]
#
# Data: MIXUP_DATA_DIR (default ../shared/data) must hold trec/ and all-minilm-l6-v2/.
# The run folder defaults to runs/minilm-trec-<method>-seed<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
export MIXUP_DATA_DIR="${MIXUP_DATA_DIR:-../shared/data}"
cargo build --release -p mixup-cli
exec target/release/mixup train --recipe crates/mixup-cli/tests/data/minilm-trec.toml "$@"
