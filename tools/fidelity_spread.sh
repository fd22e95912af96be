#!/usr/bin/env bash
# The spread over training seeds of what tests/fidelity_test measures, from
# which its bounds are set:
#   tools/fidelity_spread.sh [first_seed] [last_seed]
set -euo pipefail
cd "$(dirname "$0")/.."
for seed in $(seq "${1:-0}" "${2:-4}"); do
  bazel test //tests:fidelity_test --test_env=QFORGE_FIDELITY_SEED="$seed" \
    --nocache_test_results --test_output=all 2>/dev/null | grep -E '^seed [0-9]+:' || true
done
