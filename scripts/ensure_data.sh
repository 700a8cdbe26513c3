#!/usr/bin/env bash
# Make sure the quickstart data (Fashion-MNIST) is present: the Debian package when apt is available.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/t10k-labels-idx1-ubyte.gz" ] || [ -f "$DIR/t10k-labels-idx1-ubyte" ]; then
  exit 0
fi
if [ -n "${COMPRESSBENCH_DATA_ROOT:-}" ] && [ -d "$COMPRESSBENCH_DATA_ROOT" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)..."
  $SUDO apt-get update -qq >/dev/null || true
  $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
else
  echo "note: Fashion-MNIST not found in $DIR and apt-get is unavailable;" \
       "compressbench will try a torchvision download into its cache dir" >&2
fi
