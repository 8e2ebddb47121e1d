#!/usr/bin/env bash
# The project's one test command (README, .ci/run). Installs what the tests need on a fresh
# Debian machine (redis-server, Chromium, nginx, openssl; npm packages, Python requests and
# websockets; schemathesis, pinned and installed by scripts/schemathesis.sh), then
# runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python clients as Python programs use them: SSE through requests, WebSocket with
# permessage-deflate through websockets.
python3 -c "import requests, websockets.sync.client" 2>/dev/null \
  || python3 -m pip install -q requests 'websockets>=13'

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo build (the binary the browser tests start)"
cargo build -p switchboard-cli
echo "==> Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi
echo "==> server API against its OpenAPI document (schemathesis)"
./scripts/schemathesis.sh
echo "==> browser SDK tests (headless Chromium)"
(cd clients/js && npm ci --no-audit --no-fund && npm test)
echo "==> service desk example (headless Chromium)"
(cd examples/servicedesk && npm ci --no-audit --no-fund && npm test)
echo "==> all tests passed"
