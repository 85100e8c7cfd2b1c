#!/usr/bin/env bash
# Builds the moe-cuda test binaries and the GPU benchmark here (the GPU machine has no cargo) and packs them
# into .device/cuda.tar.xz at the repository root (git ignores .device/; device-check.sh unpacks it: each
# binary embeds the ~4.6 MB fatbin, ~30 MB in all, ~8 MB packed, and a device call carries at most 64 MiB).
# With --package it also builds the addon and dist/ into .device/pkg/ and packs Node
# (../shared/tools/device-node.sh) for scripts/gpu-check.mjs.
# Then, on the GPU machine, with carry [".device"]:  bash native/cuda/scripts/device-check.sh
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
dest=.device/cuda
rm -rf "$dest" "$dest.tar.xz"
mkdir -p "$dest"
cargo build -p moe-cuda --release --example gpu_bench
cp target/release/examples/gpu_bench "$dest/"
# The kernels as built (for cuobjdump's SASS there: device-profile.sh): the newest build's fatbin.
fatbin=$(ls -t target/release/build/moe-cuda-*/out/moe_kernels.fatbin 2>/dev/null | head -1)
[ -s "$fatbin" ] && cp "$fatbin" "$dest/"
# The fp64 tensor-core rate of each DMMA shape alone (the Gram kernel's ceiling).
nvcc -O3 -arch=sm_90 -o "$dest/dmma_rate" native/cuda/bench/dmma_rate.cu
# `cargo test --no-run` prints "Executable tests/<name>.rs (target/release/deps/<name>-<hash>)".
cargo test -p moe-cuda --release --no-run 2>&1 | sed -n 's/.*Executable tests\/\([a-z_]*\)\.rs (\(.*\))/\1 \2/p' |
  while read -r name path; do [ "$name" = emulated ] || cp "$path" "$dest/$name"; done  # emulated: host-only
if [ "${1:-}" = "--package" ]; then
  cargo build --release -p moe-node
  mkdir -p .device/pkg
  cp target/release/libmoe_node.so .device/pkg/moe-em.node
  rm -rf .device/pkg/dist
  npx tsc -p tsconfig.build.json --outDir .device/pkg/dist
  [ -s .device/node.xz ] || ../shared/tools/device-node.sh
fi
ls -la "$dest"
tar cJf "$dest.tar.xz" -C "$dest" . && rm -r "$dest"
du -sh .device/*
