#!/usr/bin/env bash
# MiniLM fine-tuning speed, side by side in one run: `mixup bench` (release, flex by default)
# on models/minilm-trec-none.toml against the same checkpoint and configuration in PyTorch +
# transformers (benches/peers/peer_minilm.py): batch 32, AdamW 5e-5 with weight decay 0.01
# off 1-D parameters, clipping at 1.0, dropout 0.1, a linear head on the final [CLS] state.
#
#   benches/minilm_vs_torch.sh [seq ...]        (default: 24 64; tokens per row)
#
# Env: MIXUP_DATA_DIR (default ../shared/data, holding all-minilm-l6-v2), PYTHON (a python
# with torch and transformers), STEPS (default 20), BATCH (default 32), DEVICE (ours, default
# flex), PEER_DEVICE (cpu or cuda, default cpu), THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${MIXUP_DATA_DIR:-../shared/data}"
python="${PYTHON:-python3}"
steps="${STEPS:-20}"
batch="${BATCH:-32}"
threads="${THREADS:-$(nproc)}"
seqs=("$@")
[ ${#seqs[@]} -eq 0 ] && seqs=(24 64)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for seq in "${seqs[@]}"; do
  ours=$(MIXUP_DATA_DIR="$data" ./target/release/mixup bench --recipe models/minilm-trec-none.toml \
    --batch "$batch" --seq "$seq" --steps "$steps" ${DEVICE:+--device "$DEVICE"} --json)
  theirs=$("$python" benches/peers/peer_minilm.py --checkpoint "$data/all-minilm-l6-v2" \
    --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" \
    --device "${PEER_DEVICE:-cpu}" 2>/dev/null)
  echo "ours:    $ours"
  echo "pytorch: $theirs"
  "$python" - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"batch {o['batch']} x {o['seq']} tokens: ours {o['samples_per_s']:.1f} samples/s "
      f"({o['ms_per_step_median']:.0f} ms/step), pytorch {t['samples_per_s']:.1f} "
      f"({t['ms_per_step_median']:.0f} ms/step), ratio {o['samples_per_s'] / t['samples_per_s']:.2f}x")
PY
done
