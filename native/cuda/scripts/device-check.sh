#!/usr/bin/env bash
# Runs on the GPU machine (see pack-device.sh): the moe-cuda GPU tests (parity of every pass and of whole
# fits against the CPU backend, determinism, NVRTC, OOM recovery), the package check, the performance
# targets' table and the benchmark's tuning tables. The summary tables are printed last.
#
# Made for one device call (at most 600 s, at most 8 files back):
# - every step's time limit is cut to what is left of BUDGET_S (default 540 s from the start), and a step
#   with less than 20 s left is skipped (and says so), so the script ends inside the call's limit;
# - the steps run in the order of what a session needs first: parity, the package check, the targets'
#   table, then the tuning tables;
# - under the device tool ($OUT set) the logs are written to a scratch folder and bundled into
#   $OUT/device-check.tgz after every step (by rename, never half-written), with the summary beside it as
#   $OUT/summary.txt: a call stopped at its limit still brings back every step that finished.
# Without $OUT the logs stay in ./device-out.
set -u
bin=${1:-.device/cuda}
budget=${BUDGET_S:-540}
started=$SECONDS
if [ -n "${OUT:-}" ]; then logs=$(mktemp -d); else logs=./device-out; fi
mkdir -p "$logs"

. "$(dirname "$0")/device-unpack.sh"

summary=()
bundle() {
  [ -n "${OUT:-}" ] || return 0
  printf '%s\n' "${summary[@]}" > "$OUT/summary.txt"
  tar czf "$OUT/.device-check.tgz" -C "$logs" . && mv -f "$OUT/.device-check.tgz" "$OUT/device-check.tgz"
}
# step NAME LIMIT_S LOG COMMAND...: runs COMMAND with its output in $logs/LOG under the smaller of LIMIT_S
# and the time left, adds a summary row and re-bundles. Returns the command's status (or 125: skipped).
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$(( budget - (SECONDS - started) ))
  (( left < limit )) && limit=$left
  if (( limit < 20 )); then
    summary+=("| $name | skipped | | ${left} s of the budget left |")
    bundle
    return 125
  fi
  local t=$SECONDS
  timeout "$limit" "$@" > "$logs/$log" 2>&1
  local rc=$?
  (( rc == 124 )) && rc="$rc (stopped at $limit s)"
  summary+=("| $name | rc $rc | $(( SECONDS - t )) s | $log $(grep -E '^test result' "$logs/$log" | tail -1) |")
  bundle
  [ "$rc" = 0 ]
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$logs/device.txt"
for t in passes fits; do
  step "test $t" 200 "test-$t.log" "$bin/$t" --nocapture
  grep -E "mismatch|FAILED|panicked|relative error|iters|vs GEMM|kernel available" "$logs/test-$t.log" | head -60
done
# The package check (scripts/gpu-check.mjs) when a packed Node, dist/ and the addon were carried too
# (pack-device.sh --package).
pkg=$(dirname "$bin")/pkg
if [ -f "$pkg/moe-em.node" ] && [ -f "$(dirname "$bin")/node.xz" ]; then
  . "$(dirname "$bin")/node-up.sh"
  [ -d dist ] || cp -r "$pkg/dist" dist
  MOE_EM_NATIVE_PATH="$PWD/$pkg/moe-em.node" step "node scripts/gpu-check.mjs" 150 gpu-check.log \
    node scripts/gpu-check.mjs
  summary[-1]="${summary[-1]% |} $(grep -E '^# (pass|fail)' "$logs/gpu-check.log" | tr '\n' ' ')|"
  grep -E "^not ok|params rel|assert|Error" "$logs/gpu-check.log" | head -40
  sed -n '/^device via/,$p' "$logs/gpu-check.log"
fi
step "test oom" 60 test-oom.log "$bin/oom" --nocapture
# The performance targets' table (EM per iteration, CUDA and the CPU backend at the four shapes, floors,
# verdicts): the CPU backend's (1e7, 100, 16) iterations take about a minute on 16 cores.
step "gpu_bench --targets" 240 targets.log "$bin/gpu_bench" --targets
# The tuning tables: every kernel configuration at the benchmark's shapes (which to make the default).
step "gpu_bench" 300 bench.log "$bin/gpu_bench"
[ -x "$bin/dmma_rate" ] && step "dmma_rate" 30 dmma-rate.log "$bin/dmma_rate"
grep -v '^|' "$logs/bench.log" 2>/dev/null | tail -40
bundle
echo
printf '%s\n' "${summary[@]}"
grep '^|' "$logs/bench.log" 2>/dev/null
echo
grep '^|' "$logs/targets.log" 2>/dev/null
true
