#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then runs pytest over tests/.
# Benchmarks are not tests: see `diffsem bench --help`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO/scripts/setup.sh"
cd "$REPO"
export QT_QPA_PLATFORM=offscreen OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec python -m pytest -q -p no:cacheprovider tests "$@"
