#!/usr/bin/env bash
# Installs everything gr-diffsem needs on a fresh Debian 12 machine (as root), idempotently:
# Debian's GNU Radio + dataset, a venv from Debian's Python 3.11 (the interpreter GNU Radio's
# bindings are built for) with system site packages, the pinned pip requirements, the core
# library and the apps (python/: diffsem, diffsem_apps and the `diffsem` program) in editable
# mode, and the block package on the venv's path. Quiet when nothing to do.
# Source it (`. scripts/setup.sh`) to get the venv activated and GRC_BLOCKS_PATH set; the
# install steps run in a strict-mode subshell, so sourcing does not change your shell's options.
_diffsem_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_diffsem_venv="${DIFFSEM_VENV:-$_diffsem_repo/.venv}"

_diffsem_install() (
  set -euo pipefail
  REPO="$_diffsem_repo" VENV="$_diffsem_venv"
  # gir1.2-gtk-3.0: gnuradio-companion's GUI ("Namespace Gtk not available" without it)
  APT_PACKAGES=(gnuradio gnuradio-dev gir1.2-gtk-3.0 python3-zmq python3-matplotlib python3-venv dataset-fashion-mnist cmake)

  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtualenv $VENV"
    /usr/bin/python3.11 -m venv --system-site-packages "$VENV"
  fi

  # An NVIDIA GPU gets ONNX Runtime's GPU build (requirements-gpu.txt) instead of the CPU one.
  gpu=cpu
  if [ -e /dev/nvidia0 ] || nvidia-smi -L >/dev/null 2>&1; then gpu=gpu; fi

  # Re-run pip only when the requirements, the package metadata or the GPU-ness changed.
  stamp="$VENV/.diffsem-stamp"
  want="$( (cat "$REPO"/requirements*.txt "$REPO/python/pyproject.toml"; echo "$gpu") | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing pip requirements into $VENV ($gpu)"
    reqs=(-r "$REPO/requirements.txt")
    if [ "$gpu" = gpu ]; then
      grep -v -E '^onnxruntime==' "$REPO/requirements.txt" > "$VENV/.diffsem-requirements-nocpu-ort.txt"
      reqs=(-r "$VENV/.diffsem-requirements-nocpu-ort.txt" -r "$REPO/requirements-gpu.txt")
      # the CPU wheel would shadow (and, uninstalled later, break) the GPU one: same module
      "$VENV/bin/pip" uninstall -y -q onnxruntime >/dev/null 2>&1 || true
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "${reqs[@]}" 2>&1 | grep -v -E "^WARNING: Location" || true
    if [ "$gpu" = gpu ]; then
      "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements-tensorrt.txt" >/dev/null 2>&1 \
        || echo "setup: TensorRT not installed (requirements-tensorrt.txt); provider auto will use CUDA"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$REPO/python" 2>&1 | grep -v -E "^WARNING: Location" || true
    "$VENV/bin/python" -c "import numpy, torch, onnxruntime, gnuradio.gr" \
      || { echo "setup: the venv cannot import its packages (see above)" >&2; exit 1; }
    echo "$want" > "$stamp"
  fi

  # `from gnuradio import diffsem` from the source tree: gnuradio's __init__ uses pkgutil.extend_path,
  # so a gnuradio/ folder on sys.path joins the package (the CMake install puts it in GR's prefix instead).
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$REPO/gr-diffsem" > "$site/gr_diffsem_source.pth"
)

if _diffsem_install; then
  export PATH="$_diffsem_venv/bin:$PATH" VIRTUAL_ENV="$_diffsem_venv"
  export GRC_BLOCKS_PATH="$_diffsem_repo/grc${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"
else
  echo "setup: failed" >&2
  return 1 2>/dev/null || exit 1
fi
