#!/usr/bin/env bash
# Side-by-side training speed of `mixup train` (release, flex) and the PyTorch reference
# ../shared/tools/peer_torch.py on the same data, model and hyper-parameters, in one run.
#
#   benches/speed_vs_torch.sh [method] [seed]      (method: none, word, sen; default none)
#
# Needs: a release build (`cargo build --release -p mixup-train`), python3 with torch
# (PYTHON=/path/to/python to pick one), and the TREC data in $MIXUP_DATA_DIR (default
# ../shared/data). Prints both JSON reports and the ratio of training samples/s.
set -euo pipefail
cd "$(dirname "$0")/.."
method="${1:-none}"
seed="${2:-0}"
data="${MIXUP_DATA_DIR:-../shared/data}"
python="${PYTHON:-python3}"
peer="${PEER:-../shared/tools/peer_torch.py}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
MIXUP_DATA_DIR="$data" ./target/release/mixup train --recipe models/textcnn-trec.toml \
  --method "$method" --seed "$seed" --out "$out/run" > "$out/ours.log"
ours=$(cat "$out/run/final.json")
theirs=$("$python" "$peer" --data "$data/trec" --model textcnn --method "$method" \
  --threads "$(nproc)" --seed "$seed" 2>/dev/null)
echo "ours:    $(echo "$ours" | tr -d '\n ')"
echo "pytorch: $theirs"
"$python" - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
r = ours["train_samples_per_s"] / theirs["train_samples_per_s"]
print(f"train samples/s: ours {ours['train_samples_per_s']:.0f}, pytorch {theirs['train_samples_per_s']:.0f}, ratio {r:.2f}x")
print(f"test accuracy:   ours {ours['test_accuracy']:.3f}, pytorch {theirs['test_accuracy']:.3f}")
PY
