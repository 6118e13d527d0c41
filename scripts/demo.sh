#!/usr/bin/env bash
# The main job: the loopback demo over the simulated channel (installs what it needs first).
# Writes out/demo/: mosaic.png (original / DeepJSCC / diffusion decoder per SNR), metrics.json and
# a PSNR/accuracy vs SNR plot. Extra arguments go to `diffsem demo` (see `diffsem demo --help`).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO/scripts/setup.sh"
cd "$REPO"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec diffsem demo --out out/demo "$@"
