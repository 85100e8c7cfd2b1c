#!/usr/bin/env bash
# Builds the moe-cuda test binaries and the GPU benchmark here (the GPU machine has no cargo) and copies them
# into .device/cuda/ at the repository root (git ignores .device/). Then, on the GPU machine, with
# carry [".device/cuda"]:  bash native/cuda/scripts/device-check.sh
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
dest=.device/cuda
mkdir -p "$dest"
cargo build -p moe-cuda --release --example gpu_bench
cp target/release/examples/gpu_bench "$dest/"
# `cargo test --no-run` prints "Executable tests/<name>.rs (target/release/deps/<name>-<hash>)".
cargo test -p moe-cuda --release --no-run 2>&1 | sed -n 's/.*Executable tests\/\([a-z_]*\)\.rs (\(.*\))/\1 \2/p' |
  while read -r name path; do cp "$path" "$dest/$name"; done
ls -la "$dest"
