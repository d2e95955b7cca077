#!/usr/bin/env bash
# Training speed and accuracy of `mixup train` beside the PyTorch reference
# ../shared/tools/peer_torch.py, per model, on the same data (TREC-6), model sizes,
# hyper-parameters, batch size, epochs and thread count, run one after the other in one go.
#
#   benches/compare_torch.sh [options]
#     --models "textcnn bilstm transformer"   models to compare (the models/<m>-trec.toml recipes)
#     --method none        none | word | sen | manifold (the methods peer_torch.py has)
#     --epochs 3           epochs for both sides
#     --batch 64           batch size for both sides
#     --threads 2          CPU threads for both sides (RAYON_NUM_THREADS / torch.set_num_threads)
#     --ours flex          our device: flex, ndarray, wgpu, tch, tch-cuda, cuda
#     --peer cpu           the peer's device: cpu or cuda
#     --seed 0
#     --bin target/release/mixup   the mixup binary (built with the feature of --ours)
#     --json FILE          also append one JSON object per model to FILE
#
# Needs python3 with torch (PYTHON=/path/to/python picks one) and the TREC data in
# $MIXUP_DATA_DIR (default ../shared/data). Samples/s: ours counts the whole epoch (batching,
# logging included), the peer only its model work, so the ratio errs against us.
set -euo pipefail
cd "$(dirname "$0")/.."

models="textcnn bilstm transformer"
method=none epochs=3 batch=64 threads=2 ours=flex peer=cpu seed=0
bin=target/release/mixup json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --method) method="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --ours) ours="$2"; shift 2 ;;
    --peer) peer="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "compare_torch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
data="${MIXUP_DATA_DIR:-../shared/data}"
python="${PYTHON:-python3}"
peer_py="${PEER:-../shared/tools/peer_torch.py}"
[ -x "$bin" ] || { echo "compare_torch.sh: $bin not found; build it first (cargo build --release -p mixup-cli)" >&2; exit 1; }
[ -f "$data/trec/train.tsv" ] || { echo "compare_torch.sh: no $data/trec/train.tsv (set MIXUP_DATA_DIR or run \`mixup data fetch trec\`)" >&2; exit 1; }
[ -f "$peer_py" ] || { echo "compare_torch.sh: no peer script at $peer_py (set PEER)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
fi
echo "config: TREC-6, method $method, $epochs epochs, batch $batch, $threads threads; ours $ours, pytorch $peer"
echo
echo "| model | ours ($ours) samples/s | PyTorch ($peer) samples/s | ratio | ours test acc | PyTorch test acc |"
echo "|---|---|---|---|---|---|"
for m in $models; do
  recipe="models/$m-trec.toml"
  [ -f "$recipe" ] || { echo "compare_torch.sh: no recipe $recipe" >&2; exit 1; }
  RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}" \
    MIXUP_DATA_DIR="$data" "$bin" train --recipe "$recipe" --method "$method" --seed "$seed" \
    --epochs "$epochs" --batch-size "$batch" --device "$ours" --out "$tmp/$m" > "$tmp/$m.log" 2>&1 \
    || { echo "compare_torch.sh: mixup train failed for $m:" >&2; tail -20 "$tmp/$m.log" >&2; exit 1; }
  "$python" "$peer_py" --data "$data/trec" --model "$m" --method "$method" --epochs "$epochs" \
    --batch "$batch" --device "$peer" --threads "$threads" --seed "$seed" > "$tmp/$m.peer" 2> "$tmp/$m.peer.err" \
    || { echo "compare_torch.sh: peer_torch.py failed for $m:" >&2; tail -20 "$tmp/$m.peer.err" >&2; exit 1; }
  "$python" - "$tmp/$m/final.json" "$tmp/$m.peer" "$m" "$ours" "$peer" "$method" "$epochs" "$batch" "$threads" "$json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
theirs = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
m, od, pd, method, epochs, batch, threads, out = sys.argv[3:11]
r = ours["train_samples_per_s"] / theirs["train_samples_per_s"]
print(f"| {m} | {ours['train_samples_per_s']:.0f} | {theirs['train_samples_per_s']:.0f} | "
      f"**{r:.2f}x** | {ours['test_accuracy']:.3f} | {theirs['test_accuracy']:.3f} |", flush=True)
if out:
    with open(out, "a") as f:
        f.write(json.dumps({"model": m, "method": method, "ours_device": od, "peer_device": pd,
            "epochs": int(epochs), "batch": int(batch), "threads": int(threads),
            "ours_samples_per_s": ours["train_samples_per_s"],
            "peer_samples_per_s": theirs["train_samples_per_s"], "ratio": r,
            "ours_test_accuracy": ours["test_accuracy"],
            "peer_test_accuracy": theirs["test_accuracy"], "torch": theirs.get("torch")}) + "\n")
PY
done
