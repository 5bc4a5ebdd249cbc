#!/bin/sh
# Installs what the browser tests need on a fresh Debian machine:
# Debian's Chromium (never a downloaded browser build), a colour emoji font so reactions render
# in screenshots, iproute2, node and npm if missing, and playwright-core from the committed lock file.
set -eu
cd "$(dirname "$0")"

need_apt=""
[ -x /usr/bin/chromium ] || need_apt="$need_apt chromium"
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_apt="$need_apt fonts-noto-color-emoji"
# ip and tc, for the test that slows a listener's line in a network namespace of its own.
{ command -v ip && command -v tc; } >/dev/null 2>&1 || need_apt="$need_apt iproute2"
command -v node >/dev/null 2>&1 || need_apt="$need_apt nodejs"
command -v npm >/dev/null 2>&1 || need_apt="$need_apt npm"
if [ -n "$need_apt" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y $need_apt
fi

# playwright-core needs node 20 or newer.
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup.sh: node $(node --version) is too old for playwright-core; install node 20 or newer" >&2
  exit 1
fi

# playwright-core must not fetch a browser of its own.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
