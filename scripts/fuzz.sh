#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of untrusted input: WebSocket frames and message
# assembly, permessage-deflate, command JSON, channel names, cursors / Last-Event-ID, the
# /sse and /poll query, tickets, JWT (fuzz/, cargo-fuzz + libFuzzer with AddressSanitizer).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     # default: 60 s, every target
#
# Each target asserts the contract in crates/*/tests/contract/mod.rs, the same checks the
# bounded property tests (crates/*/tests/decoders.rs) run in the normal test suite.
# Corpora grow in fuzz/corpus/<target>, starting from the committed fuzz/seeds/<target>.
# A crash or contract violation stops the script; its input is in fuzz/artifacts/<target>/
# and `cargo +nightly fuzz run <target> <file>` replays it. Add such an input to
# fuzz/seeds/<target>/ with the fix: the test suite replays every seed.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain for the sanitizer flags;
# without nightly, RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
[ $# -gt 0 ] && shift
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 1
fi
if cargo +nightly --version >/dev/null 2>&1; then
  cargo=(cargo +nightly)
else
  echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
  cargo=(cargo)
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

echo "==> building ${targets[*]}"
for t in "${targets[@]}"; do
  "${cargo[@]}" fuzz build "$t"
done

for t in "${targets[@]}"; do
  echo "==> $t for ${secs}s"
  mkdir -p "corpus/$t"
  # The first directory receives new inputs; the seeds are read only.
  "${cargo[@]}" fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "==> no crash in ${#targets[@]} targets x ${secs}s"
