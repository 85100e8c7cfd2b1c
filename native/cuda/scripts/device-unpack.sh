# Sourced by device-check.sh and device-profile.sh on the GPU machine with $bin set (default .device/cuda):
# pack-device.sh ships the binaries as one xz tarball, $bin.tar.xz, unpacked here once per machine (python's
# tarfile where the machine has no xz).
if [ ! -d "$bin" ] && [ -f "$bin.tar.xz" ]; then
  mkdir -p "$bin"
  if command -v xz > /dev/null; then tar xJf "$bin.tar.xz" -C "$bin"
  else python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$bin.tar.xz" "$bin"; fi
fi
