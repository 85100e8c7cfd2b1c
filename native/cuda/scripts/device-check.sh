#!/usr/bin/env bash
# Runs on the GPU machine (see pack-device.sh): the moe-cuda GPU tests (parity of every pass and of whole
# fits against the CPU backend, determinism, NVRTC, OOM recovery), then the benchmark, the package check and
# the performance targets' table. Full logs go to $OUT (or ./device-out); the summary tables are printed last.
set -u
bin=${1:-.device/cuda}
out=${OUT:-./device-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/device.txt"
summary=()
[ -x "$bin/dmma_rate" ] && "$bin/dmma_rate" 2>&1 | tee "$out/dmma-rate.log"
for t in passes fits oom; do
  start=$(date +%s)
  timeout 200 "$bin/$t" --nocapture > "$out/test-$t.log" 2>&1
  rc=$?
  summary+=("| test $t | rc $rc | $(( $(date +%s) - start )) s | $(grep -E '^test result' "$out/test-$t.log" | tail -1) |")
  grep -E "mismatch|FAILED|panicked|relative error|iters|vs GEMM|kernel available" "$out/test-$t.log" | head -60
done
timeout 300 "$bin/gpu_bench" > "$out/bench.log" 2>&1
echo "bench rc $?"
grep -v '^|' "$out/bench.log" | tail -40
# The package check (scripts/gpu-check.mjs) when a packed Node, dist/ and the addon were carried too
# (pack-device.sh --package).
pkg=$(dirname "$bin")/pkg
if [ -f "$pkg/moe-em.node" ] && [ -f "$(dirname "$bin")/node.xz" ]; then
  . "$(dirname "$bin")/node-up.sh"
  [ -d dist ] || cp -r "$pkg/dist" dist
  MOE_EM_NATIVE_PATH="$PWD/$pkg/moe-em.node" timeout 150 node scripts/gpu-check.mjs > "$out/gpu-check.log" 2>&1
  rc=$?
  summary+=("| node scripts/gpu-check.mjs | rc $rc | | $(grep -E '^# (pass|fail)' "$out/gpu-check.log" | tr '\n' ' ') |")
  grep -E "^not ok|params rel|assert|Error" "$out/gpu-check.log" | head -40
  sed -n '/^device via/,$p' "$out/gpu-check.log"
fi
# Last, the performance targets' table (EM per iteration, CUDA and CPU backend at the four shapes, floors,
# targets): the CPU backend's (1e7, 100, 16) iterations take about a minute on 16 cores.
start=$(date +%s)
timeout 240 "$bin/gpu_bench" --targets > "$out/targets.log" 2>&1
summary+=("| gpu_bench --targets | rc $? | $(( $(date +%s) - start )) s | targets.log |")
echo
printf '%s\n' "${summary[@]}"
grep '^|' "$out/bench.log"
echo
grep '^|' "$out/targets.log"
