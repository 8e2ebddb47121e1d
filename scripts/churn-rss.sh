#!/usr/bin/env bash
# Channel churn and resident memory: how much RSS a node keeps after many channels expired.
#
#   scripts/churn-rss.sh BINARY [VAR=value ...]
#
# Starts BINARY (`switchboard`) on 127.0.0.1 with the given environment added (the allocator
# variant, e.g. MALLOC_ARENA_MAX=2 or LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2)
# and a config in which channels live briefly (META_TTL, HISTORY_TTL: 5 s; the memory engine
# forgets a channel max(meta_ttl, 2 x history_ttl) after its last publication, at its next 5 s
# housekeeping tick; if publishing takes longer than that, the first channels expire before
# the last are published and the peak is lower). Then, per round, publishes one ~100 B
# publication to each of CHANNELS distinct channels through POST /api/publish, waits until they
# have expired and samples VmRSS. Prints one line per figure, in MiB, and kills the node it
# started when it ends (also on error or Ctrl-C).
#
# Variables: META_TTL (5s), HISTORY_TTL (5s), CHANNELS (100000), CONNS (8 keep-alive
# connections), ROUNDS (1), PORT (8300), EXPIRE_WAIT (20 s after the last publication),
# SAMPLES (6), SAMPLE_EVERY (5 s), GDB_TRIM (0; 1 = at the end, call glibc's malloc_trim(0) in
# the node through gdb and sample again: what trimming would give, without a code change),
# MAX_SECONDS (900, whole run).
set -euo pipefail

BIN=${1:?usage: scripts/churn-rss.sh BINARY [VAR=value ...]}
shift
META_TTL=${META_TTL:-5s}
HISTORY_TTL=${HISTORY_TTL:-5s}
CHANNELS=${CHANNELS:-100000}
CONNS=${CONNS:-8}
ROUNDS=${ROUNDS:-1}
PORT=${PORT:-8300}
EXPIRE_WAIT=${EXPIRE_WAIT:-20}
SAMPLES=${SAMPLES:-6}
SAMPLE_EVERY=${SAMPLE_EVERY:-5}
GDB_TRIM=${GDB_TRIM:-0}
MAX_SECONDS=${MAX_SECONDS:-900}

[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
for kv in "$@"; do
  case $kv in *=*) ;; *) echo "not VAR=value: $kv" >&2; exit 2 ;; esac
done

DIR=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$DIR/churn.toml" <<EOF
listen = "127.0.0.1:$PORT"
api_key = "k"
meta_ttl = "$META_TTL"

[jwt]
secret = "s"

[namespaces.default]
history_size = 10
history_ttl = "$HISTORY_TTL"
EOF

START=$(date +%s)
deadline() {
  if [ $(( $(date +%s) - START )) -gt "$MAX_SECONDS" ]; then
    echo "stopped: MAX_SECONDS=$MAX_SECONDS reached" >&2
    exit 1
  fi
}
rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }

env "$@" "$BIN" serve --config "$DIR/churn.toml" >"$DIR/node.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/info" -H 'X-API-Key: k' && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/node.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/info" -H 'X-API-Key: k' \
  || { echo "node did not answer on port $PORT" >&2; exit 1; }

echo "variant: ${*:-(default environment)}"
echo "binary: $BIN, channels per round: $CHANNELS, connections: $CONNS"
sleep 2
echo "baseline_mib $(rss)"

# Loader: CONNS keep-alive connections, one request in flight on each; samples the node's RSS
# every 0.2 s and prints the highest value seen, and the epoch of the first channel.
cat >"$DIR/load.py" <<'EOF'
import asyncio, json, sys, time
port, pid, first, count, conns, limit = (int(a) for a in sys.argv[1:7])
pad = "x" * 60
peak = 0.0
def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
async def sampler():
    global peak
    while True:
        peak = max(peak, rss())
        await asyncio.sleep(0.2)
async def worker(w, results):
    r, wr = await asyncio.open_connection("127.0.0.1", port)
    for n in range(first + w, first + count, conns):
        body = json.dumps({"channel": f"churn:{n}", "data": {"n": n, "pad": pad}}).encode()
        wr.write(b"POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: k\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        head = await r.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        reply = await r.readexactly(length)
        if status != 200:
            raise SystemExit(f"channel churn:{n}: HTTP {status} {reply[:200]!r}")
        results[0] += 1
        if n == first:
            results[1] = json.loads(reply)["epoch"]
    wr.close()
async def main():
    results = [0, ""]
    s = asyncio.create_task(sampler())
    t = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(worker(w, results) for w in range(conns))), limit)
    took = time.monotonic() - t
    s.cancel()
    peak_now = max(peak, rss())
    print(f"published {results[0]} in {took:.1f} s ({results[0] / took:.0f}/s)")
    print(f"peak_mib {peak_now:.1f}")
    print(f"first_epoch {results[1]}")
asyncio.run(main())
EOF

publish_one() {
  curl -sf "http://127.0.0.1:$PORT/api/publish" -H 'X-API-Key: k' \
    -H 'Content-Type: application/json' -d "{\"channel\":\"churn:$1\",\"data\":{\"probe\":true}}"
}

for round in $(seq "$ROUNDS"); do
  deadline
  echo "round $round"
  first=$(( (round - 1) * CHANNELS ))
  left=$(( MAX_SECONDS - ($(date +%s) - START) ))
  out=$(python3 "$DIR/load.py" "$PORT" "$PID" "$first" "$CHANNELS" "$CONNS" "$left")
  echo "$out" | grep -v '^first_epoch'
  epoch=$(echo "$out" | awk '/^first_epoch/ { print $2 }')
  sleep "$EXPIRE_WAIT"
  samples=
  for i in $(seq "$SAMPLES"); do
    deadline
    samples="$samples $(rss)"
    if [ "$i" -lt "$SAMPLES" ]; then sleep "$SAMPLE_EVERY"; fi
  done
  echo "after_expiry_mib$samples   (every ${SAMPLE_EVERY} s from ${EXPIRE_WAIT} s after the last publication)"
  # The first channel was forgotten when a new publication to it starts a new epoch.
  again=$(publish_one "$first")
  case $again in
    *"\"$epoch\""*) echo "WARNING: churn:$first still has epoch $epoch: channels not expired yet" ;;
    *) echo "expired: yes (churn:$first restarted: $again)" ;;
  esac
done

if [ "$GDB_TRIM" = 1 ]; then
  gdb -p "$PID" -batch -ex 'call (int) malloc_trim(0)' >"$DIR/gdb.log" 2>&1 \
    || { echo "gdb failed:" >&2; tail -5 "$DIR/gdb.log" >&2; }
  sleep 1
  echo "after_malloc_trim_mib $(rss)"
fi
