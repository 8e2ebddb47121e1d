#!/usr/bin/env bash
# The server API (/api) checked against its own OpenAPI document (GET /api/openapi.json) by
# schemathesis: every check (`--checks all`), positive and negative data (`--mode all`: wrong
# types, missing and unknown fields, out-of-range values, malformed bodies and wrong content
# types), once with the API key and once without it (every call must then be a documented
# 401 with a JSON body). Exits non-zero on any failure.
#
# Starts its own node from an already built binary: SWITCHBOARD_BIN (default
# target/debug/switchboard; `cargo build -p switchboard-cli` first). Knobs:
#   SCHEMATHESIS_SEED          generation seed (default 1: the same cases every run)
#   SCHEMATHESIS_MAX_EXAMPLES  fuzzed cases per operation with the key (default 500: ~25 s
#                              on 2 cores; the keyless run uses 20)
# A failure prints a curl line reproducing it; rerun with the same seed to get it again.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
BIN=${SWITCHBOARD_BIN:-target/debug/switchboard}
SEED=${SCHEMATHESIS_SEED:-1}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-500}
API_KEY=schemathesis-api-key
JWT_SECRET=schemathesis-jwt-secret

installed=$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION (found: ${installed:-none})"
  python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
# The console script may not be on PATH (pip --user, pyenv); call its entry point directly.
st() {
  python3 -c 'import sys; from schemathesis.cli import schemathesis; sys.argv[0] = "schemathesis"; sys.exit(schemathesis())' "$@"
}

# GET /health answers 200 (python3 rather than curl, which a fresh Debian may lack).
healthy() {
  python3 -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).status != 200)' "$1" 2>/dev/null
}

[ -x "$BIN" ] || { echo "server binary not found at $BIN (cargo build -p switchboard-cli)" >&2; exit 1; }

work=$(mktemp -d)
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the node picks a free port and prints it, so there is no race for one. SWITCHBOARD_BIN
# names the binary for this script; the node would read it as a config key and refuse to start.
env -u SWITCHBOARD_BIN SWITCHBOARD_API_KEY="$API_KEY" SWITCHBOARD_JWT_SECRET="$JWT_SECRET" \
  RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:0 >"$work/node.log" 2>&1 &
node_pid=$!

base=""
for _ in $(seq 1 300); do
  if ! kill -0 "$node_pid" 2>/dev/null; then
    echo "the node exited early:" >&2; cat "$work/node.log" >&2; exit 1
  fi
  if [ -z "$base" ]; then
    base=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/node.log" | head -n1 | sed 's/^listening on //' || true)
  fi
  if [ -n "$base" ] && healthy "$base"; then
    break
  fi
  sleep 0.1
done
if [ -z "$base" ] || ! healthy "$base"; then
  echo "the node did not become healthy:" >&2; cat "$work/node.log" >&2; exit 1
fi
echo "==> node at $base, schemathesis $(st --version | awk '{print $NF}'), seed $SEED"

# No check is excluded. The ones that need what this API does not have pass trivially:
# use_after_free / ensure_resource_availability (no DELETE, no links between operations),
# object_level_authorization (one identity: the API key). One worker: with several, Python
# 3.11 before 3.11.8 can fail inside Hypothesis with "AST constructor recursion depth mismatch"
# (CPython gh-106905, ast.parse racing in threads), an error of the tool, not of the API.
common=(
  --checks all
  --mode all
  --seed "$SEED"
  --generation-database none
  --request-timeout 10
  --workers 1
  --no-color
)

# Schemathesis' own warnings fail the run too (a schema it cannot generate for, a regex it
# cannot read, responses it cannot validate, too few valid cases accepted, ...). Without the key
# every call is a 401 by design, so that run does not warn about authentication or about
# rejected valid cases.
warnings=(missing_test_data base_url_mismatch validation_mismatch missing_deserializer
  unused_openapi_auth unsupported_regex method_not_allowed constants_extraction unmatched_filter
  unresolvable_reference rate_limited dictionary_mismatch timeout_units)
toml_list() { printf '"%s", ' "$@" | sed 's/, $//'; }
printf '[warnings]\ndisplay = [%s]\nfail-on = true\n' \
  "$(toml_list "${warnings[@]}" missing_auth low_valid_rate)" >"$work/with-key.toml"
printf '[warnings]\ndisplay = [%s]\nfail-on = true\n' \
  "$(toml_list "${warnings[@]}")" >"$work/without-key.toml"

# Every call without the key is refused with the documented 401 and a JSON error body.
cat >"$work/require_401.py" <<'EOF'
import schemathesis


@schemathesis.check
def refused_without_api_key(ctx, response, case):
    """Without a valid X-API-Key every call is a 401 with the JSON error body."""
    if response.status_code != 401:
        raise AssertionError(f"expected 401 without a valid X-API-Key, got {response.status_code}")
    body = response.json()
    if body.get("error", {}).get("code") != "unauthorized":
        raise AssertionError(f"expected an `unauthorized` JSON error, got {body!r}")
EOF

status=0
(
  cd "$work"
  echo "==> with the API key"
  st --config-file with-key.toml run "$base/api/openapi.json" "${common[@]}" \
    --max-examples "$MAX_EXAMPLES" -H "X-API-Key: $API_KEY"
) || status=1
(
  cd "$work"
  echo "==> without the API key (random or no X-API-Key: every call a documented 401)"
  SCHEMATHESIS_HOOKS=require_401 PYTHONPATH="$work" \
    st --config-file without-key.toml run "$base/api/openapi.json" "${common[@]}" \
    --max-examples 20
) || status=1

if ! kill -0 "$node_pid" 2>/dev/null; then
  echo "the node died during the run:" >&2; cat "$work/node.log" >&2; exit 1
fi
if grep -q 'panicked' "$work/node.log"; then
  echo "the node panicked during the run:" >&2; cat "$work/node.log" >&2; exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis found failures (node log tail below)" >&2
  tail -n 40 "$work/node.log" >&2
  exit 1
fi
echo "==> server API conforms to its OpenAPI document"
