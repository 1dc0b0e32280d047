#!/usr/bin/env bash
# Install the Socket.IO peer's pinned packages (npm ci) unless node_modules is
# already there and no older than package-lock.json. Same check as
# benchmarks.peers.ensure_installed(), for use from a shell.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: the Socket.IO peer needs Node.js >= 18 and npm on PATH (e.g. apt-get install nodejs npm)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "setup.sh: the Socket.IO peer needs Node.js >= 18, found $(node --version)" >&2
  exit 1
fi
if [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi
exec npm ci --no-audit --no-fund --loglevel=error
