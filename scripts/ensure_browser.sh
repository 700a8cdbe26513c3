#!/usr/bin/env bash
# Headless Chromium for the HTML report test (Debian's package). Optional: the test skips
# with a clear reason when no browser can be installed.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
   || command -v google-chrome >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing chromium (Debian) for the report's browser test..."
  ($SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the browser test will be skipped" >&2
fi
exit 0
