#!/usr/bin/env bash
# Idempotent setup: npm packages (when missing or older than the lockfile), then Mesa unless both the
# default and the OpenGL adapter come up.
# Mesa 25 from bookworm-backports gives Vulkan (lavapipe, feature level core);
# Mesa's EGL gives OpenGL (llvmpipe, feature level compatibility). Real GPUs need only their driver.
# `--tests` also installs what only the test suite needs (Debian's Chromium for the browser test).
# `--fashion` installs Debian's dataset-fashion-mnist (`--data fashion`); `--tests` does too.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
fashion=0
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1; fashion=1 ;;
    --fashion) fashion=1 ;;
    *) echo "setup: unknown option '$arg' (options: --tests: also install what the test suite needs; --fashion: Fashion-MNIST for --data fashion)" >&2; exit 2 ;;
  esac
done

if [ ! -d node_modules/webgpu ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Debian's Chromium for the browser page's test (test/package.test.ts drives /usr/bin/chromium with
# playwright-core; no browser is ever downloaded). Its bundled SwiftShader gives WebGPU without a GPU.
if [ "$tests" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium (for test/package.test.ts)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing: install Debian's chromium (as root: apt-get install chromium) for test/package.test.ts" >&2
  fi
fi

# Debian's python3-torch (1.13, for /usr/bin/python3) for the PyTorch twin's test
# (test/pytorch-interop.test.ts runs interop/pytorch with $PYTHON, default /usr/bin/python3).
if [ "$tests" = 1 ] && ! /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's python3-torch (for test/pytorch-interop.test.ts)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
  else
    echo "setup: /usr/bin/python3 has no torch: install Debian's python3-torch (as root: apt-get install python3-torch) for test/pytorch-interop.test.ts" >&2
  fi
fi

# Debian's dataset-fashion-mnist (IDX gz files in /usr/share/datasets/fashion-mnist) for --data fashion,
# its evaluation and test/data.test.ts.
if [ "$fashion" = 1 ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's dataset-fashion-mnist (for --data fashion)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null
  else
    echo "setup: /usr/share/datasets/fashion-mnist is missing: install Debian's dataset-fashion-mnist (as root: apt-get install dataset-fashion-mnist) for --data fashion" >&2
  fi
fi

have_adapters() { node scripts/probe-adapters.mjs --require-all >/dev/null 2>&1; }

if have_adapters; then
  echo "setup: WebGPU adapters present"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup: no WebGPU adapter. Install Mesa >= 24 (mesa-vulkan-drivers, libvulkan1, libegl1, libegl-mesa0)" >&2
  echo "       or a GPU driver, then rerun. (Needs root and apt for automatic install.)" >&2
  exit 1
fi

echo "setup: installing Mesa software GPU (lavapipe + llvmpipe) from bookworm-backports"
src=/etc/apt/sources.list.d/debian.sources
bp=/etc/apt/sources.list.d/distillkac-backports.sources
if [ ! -f "$bp" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uris=$(awk '/^URIs:/ && /debian\/?$/ {print $2; exit}' "$src")
  signed=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "${uris:-http://deb.debian.org/debian}" "${signed:-/usr/share/keyrings/debian-archive-keyring.gpg}" > "$bp"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libegl-mesa0 libgl1-mesa-dri >/dev/null
apt-get install -y -qq libvulkan1 libegl1 >/dev/null

node scripts/probe-adapters.mjs
