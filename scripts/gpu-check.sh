#!/usr/bin/env bash
# GPU check: prebuilt `mixup` release binaries against PyTorch eager on the same machine, no
# Rust toolchain needed. For each binary found in the bins folder it prints the device, runs
# `mixup bench` per model at batch 64 and 256, then `benches/compare_torch.sh` (short TREC
# training of TextCNN, BiLSTM and the Transformer beside ../shared/tools/peer_torch.py),
# printing samples/s, the ratio to PyTorch and test accuracy.
#
#   scripts/gpu-check.sh [--bins gpu/bin] [--data gpu/data] [--out gpu/out] [--epochs 2]
#                        [--peer cuda] [--batches "64 256"] [--models "textcnn bilstm transformer"]
#
# The bins folder holds any of (scripts/gpu-pack.sh builds and packs them):
#   mixup-tch-cuda         built with --features tch   (LibTorch CUDA; needs a PyTorch whose
#                          torch/lib is put on LD_LIBRARY_PATH here, found through python3)
#   mixup-wgpu[.xz]        built with --features wgpu  (Vulkan; needs libvulkan and a driver)
#   mixup-cuda             built with --features cuda  (CubeCL; needs the CUDA runtime)
#   mixup-flex, mixup-ndarray, mixup-tch   CPU backends, to try the script without a GPU
# The data folder holds trec/ (train.tsv, test.tsv). Results: one JSON line per measurement
# in OUT/results.jsonl and the tables in OUT/summary.md.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

bins=gpu/bin data=gpu/data out=gpu/out epochs=2 peer=cuda batches="64 256"
models="textcnn bilstm transformer"
while [ $# -gt 0 ]; do
  case "$1" in
    --bins) bins="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --peer) peer="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# Relative paths are taken from where the script was started; the defaults from the repo.
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ "$bins" = gpu/bin ] && bins="$repo/gpu/bin" || bins="$(abs "$bins")"
[ "$data" = gpu/data ] && data="$repo/gpu/data" || data="$(abs "$data")"
[ "$out" = gpu/out ] && out="$repo/gpu/out" || out="$(abs "$out")"
if [ -n "${PEER:-}" ]; then export PEER="$(abs "$PEER")"; fi
cd "$repo"
python="${PYTHON:-python3}"
if [ -z "${PEER:-}" ] && [ -f gpu/peer_torch.py ]; then export PEER="$repo/gpu/peer_torch.py"; fi
mkdir -p "$out"
summary="$out/summary.md"
jsonl="$out/results.jsonl"
: > "$jsonl"
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
export MIXUP_DATA_DIR="$data"

{
  echo "# mixup GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "- gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  fi
  echo "- torch: $("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
  echo "- config: TREC-6, $epochs epochs per training run, CUBECL_AUTOTUNE_LEVEL=$CUBECL_AUTOTUNE_LEVEL"
} | tee "$summary"

# LibTorch from the installed PyTorch, for the tch binaries.
torch_lib="$("$python" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)"

found=0
for backend in tch-cuda cuda wgpu flex ndarray tch; do
  bin="$bins/mixup-$backend"
  if [ ! -e "$bin" ] && [ -e "$bin.xz" ]; then
    mkdir -p "$out/bin"
    xz -dc "$bin.xz" > "$out/bin/mixup-$backend"
    chmod +x "$out/bin/mixup-$backend"
    bin="$out/bin/mixup-$backend"
  fi
  [ -e "$bin" ] || continue
  found=1
  env_prefix=(env)
  case "$backend" in
    tch*) env_prefix=(env "LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}") ;;
  esac
  peer_dev="$peer"
  case "$backend" in flex|ndarray|tch) peer_dev=cpu ;; esac
  {
    echo
    echo "## $backend ($bin)"
    echo
    echo "Synthetic steps (\`mixup bench\`, 24 tokens per row, median of 30 steps after 5):"
    echo
    echo "| model | batch | ms/step | samples/s | peak host MiB |"
    echo "|---|---|---|---|---|"
  } | tee -a "$summary"
  for m in $models; do
    for b in $batches; do
      if line=$("${env_prefix[@]}" "$bin" bench --model "$m" --batch "$b" --steps 30 --warmup 5 \
          --device "$backend" --json 2> "$out/bench-$backend-$m-$b.err"); then
        echo "$line" | "$python" -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
m, b, ms, sps = r["model"], r["batch"], r["ms_per_step_median"], r["samples_per_s"]
mib = r.get("peak_host_memory_mib") or 0
print(f"| {m} | {b} | {ms:.2f} | {sps:.0f} | {mib:.0f} |")
' | tee -a "$summary" || echo "| $m | $b | unparsable output: $line | | |" | tee -a "$summary"
        echo "$line" | tail -1 | "$python" -c 'import json,sys; r=json.loads(sys.stdin.read()); r["kind"]="bench"; print(json.dumps(r))' >> "$jsonl" || true
      else
        echo "| $m | $b | failed: $(tail -1 "$out/bench-$backend-$m-$b.err") | | |" | tee -a "$summary"
      fi
    done
  done
  for b in $batches; do
    {
      echo
      echo "Training beside PyTorch ($peer_dev), batch $b:"
      echo
    } | tee -a "$summary"
    if ! "${env_prefix[@]}" benches/compare_torch.sh --models "$models" --epochs "$epochs" \
        --batch "$b" --ours "$backend" --peer "$peer_dev" --bin "$bin" --json "$jsonl" \
        2> "$out/compare-$backend-$b.err" | grep '^|' | tee -a "$summary"; then
      echo "compare failed: $(tail -3 "$out/compare-$backend-$b.err")" | tee -a "$summary"
    fi
  done
done
if [ "$found" = 0 ]; then
  echo "gpu-check.sh: no mixup-<backend> binary in $bins (see --help)" >&2
  exit 1
fi
echo
echo "results: $summary, $jsonl"
