#!/usr/bin/env bash
# Builds the release binaries that scripts/gpu-check.sh runs on a GPU machine without Rust,
# and packs them with the data they need into gpu/ (git-ignored; about 25 MiB):
#   gpu/bin/mixup-tch-cuda     --features tch (LibTorch from the PyTorch of $PYTHON)
#   gpu/bin/mixup-wgpu.xz      --features wgpu,fusion (Burn's fusion and autotune; ~18 MB compressed)
#   gpu/data/trec/             train.tsv, test.tsv from $MIXUP_DATA_DIR (default ../shared/data)
#   gpu/peer_torch.py          the PyTorch reference ($PEER, default ../shared/tools/peer_torch.py)
#
#   PYTHON=/path/to/python scripts/gpu-pack.sh [tch] [wgpu]     (default: both)
#
# The tch build needs a PyTorch matching the GPU machine's (here: pip install torch==2.11.0,
# the CUDA 13 build); tch 0.22 targets torch 2.9, hence LIBTORCH_BYPASS_VERSION_CHECK.
# Each build is a separate cargo invocation with one feature, so each binary has one GPU
# backend plus flex.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${*:-tch wgpu}"
python="${PYTHON:-python3}"
data="${MIXUP_DATA_DIR:-../shared/data}"
mkdir -p gpu/bin gpu/data/trec
for w in $what; do
  case "$w" in
    tch)
      LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 PYTHON_SYS_EXECUTABLE="$python" \
        PATH="$(dirname "$(command -v "$python")"):$PATH" \
        cargo build --release --locked -p mixup-cli --features tch
      cp target/release/mixup gpu/bin/mixup-tch-cuda
      ;;
    wgpu)
      cargo build --release --locked -p mixup-cli --features wgpu,fusion
      xz -T2 -6 -c target/release/mixup > gpu/bin/mixup-wgpu.xz
      ;;
    *) echo "gpu-pack.sh: unknown build $w (tch, wgpu)" >&2; exit 2 ;;
  esac
done
cp "$data/trec/train.tsv" "$data/trec/test.tsv" gpu/data/trec/
cp "${PEER:-../shared/tools/peer_torch.py}" gpu/peer_torch.py
du -sh gpu
