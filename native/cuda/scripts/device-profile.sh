#!/usr/bin/env bash
# Runs on the GPU machine after device-check.sh (same carried .device/, see pack-device.sh): Nsight Compute's
# full section set for one launch each of the tensor-core Gram kernel and the fused narrow pass, in the
# 3-iteration EM fit of `gpu_bench --profile` at (1e6, 100, 8), and the SASS of every kernel. The reports and
# logs come back as $OUT/device-profile.tgz (a device call returns at most 8 files), or stay in ./device-out
# without $OUT; the reports' headline metrics are printed last.
set -u
bin=${1:-.device/cuda}
. "$(dirname "$0")/device-unpack.sh"
if [ -n "${OUT:-}" ]; then out=$(mktemp -d); else out=./device-out; fi
mkdir -p "$out"
command -v ncu > /dev/null || { echo "no ncu on this machine"; exit 0; }
profile() {  # name, kernel regex, extra environment
  env $3 timeout 240 ncu --set full -k "regex:$2" -s 2 -c 1 -f -o "$out/$1" "$bin/gpu_bench" --profile > "$out/ncu-$1.log" 2>&1
  echo "ncu $1 rc $?"
  ncu --import "$out/$1.ncu-rep" --page details > "$out/$1-details.txt" 2>&1
  ncu --import "$out/$1.ncu-rep" --page source --print-source sass --csv > "$out/$1-source.csv" 2>&1
  grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Achieved Occupancy|Issued Ipc|No Eligible|Warp Cycles Per Issued|Local Memory Spill" \
    "$out/$1-details.txt" | head -20
}
profile gram 'gram_tc_m16k16$' ""
profile fused 'fused_tc$' ""
[ -f "$bin/moe_kernels.fatbin" ] && command -v cuobjdump > /dev/null && cuobjdump -sass "$bin/moe_kernels.fatbin" > "$out/sass.txt" 2>&1
[ -n "${OUT:-}" ] && tar czf "$OUT/device-profile.tgz" -C "$out" .
true
