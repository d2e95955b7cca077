#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this after installing what it needs):
#   1. every crate, example and doc test of the workspace on flex (dev profile; the workspace
#      optimises dependencies even there);
#   2. the other CPU backends (crates/mixup-cli/tests/backends.rs): ndarray, and wgpu on
#      Mesa's lavapipe when a Vulkan driver is installed (CI installs it; elsewhere wgpu is
#      left out with a note unless MIXUP_TEST_WGPU=1);
#   3. the benchmarks still compile.
# (`RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib` checks the docs; it is
# left out here because it compiles every dependency once more, in check mode.)
# Tests that need ../shared/data fail loudly under CI=true, and are skipped with a message
# otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked

backends=ndarray
if [ "${MIXUP_TEST_WGPU:-}" = 1 ] || [ "${CI:-}" = true ] \
    || ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  backends=ndarray,wgpu
else
  echo "note: no Vulkan driver (Mesa lavapipe) found: the wgpu backend test is left out" >&2
fi
# Autotuning kept minimal, else wgpu spends minutes per kernel.
CUBECL_AUTOTUNE_LEVEL=minimal \
  cargo test --locked -p mixup-cli --features "$backends" --test backends

# In the test profile (dev), so the dependencies built above are reused.
cargo test --workspace --benches --no-run --locked
