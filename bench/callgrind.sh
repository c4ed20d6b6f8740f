#!/usr/bin/env bash
# What one request costs the proxy, counted rather than timed (so it can be compared across builds on a busy
# machine): user-space instructions per request (callgrind) and io_uring_enter calls per request (strace).
# One worker, the bundled echo backend, a ringload request/response run of a fixed number of requests.
#
# Instructions: ringproxy runs under `valgrind --tool=callgrind --instr-atstart=no`; after start-up and a
# warm-up run, `callgrind_control -i on` starts counting, the measured run goes, `-i off` stops it, and the
# dump's total Ir over the requests is the figure (start-up, warm-up and shutdown are left out).
# System calls: a second, plain run of the same proxy with `strace -f -c -e trace=io_uring_enter` attached for
# the measured run only (strace slows each call, so it is kept apart from the instruction count).
#
# Usage: bench/callgrind.sh [bin folder] [requests (20000)] [connections (50)] [size (64)]   (make instructions)
# RINGLOAD=path uses that ringload (load and echo backend), so that builds of the proxy alone are compared.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(swift build -c release --show-bin-path)}
requests=${2:-20000}
connections=${3:-50}
size=${4:-64}
ringload=${RINGLOAD:-$bin/ringload}
for tool in valgrind callgrind_control strace python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install valgrind strace python3" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

work=$(mktemp -d)
pids=()
# Valgrind 3.19 cannot read the DWARF 5 that swiftc writes: measure a copy without debug info (the symbol
# table stays, so callgrind_annotate still names functions).
proxy_bin=$work/ringproxy
strip --strip-debug -o "$proxy_bin" "$bin/ringproxy"
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo_port=$(free_port)
"$ringload" echo-server --listen "127.0.0.1:$echo_port" >/dev/null &
pids+=($!)
wait_port "$echo_port"

load() {  # load <port> <requests>
  "$ringload" rr --target "127.0.0.1:$1" --connections "$connections" --size "$size" --requests "$2" --quiet \
    --json "$work/load.json" >/dev/null
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["requests"])' "$work/load.json"
}
start_proxy() {  # start_proxy <port> <command prefix...>: sets $proxy
  local port=$1; shift
  "$@" "$proxy_bin" --listen "127.0.0.1:$port" --backend "127.0.0.1:$echo_port" --threads 1 --no-pin \
    --log-level warning &
  proxy=$!
  pids+=($proxy)
  wait_port "$port"
}
stop_proxy() { kill -INT "$proxy"; wait "$proxy" 2>/dev/null || true; }

# 1. Instructions, under callgrind.
port=$(free_port)
start_proxy "$port" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" -q
load "$port" 2000 >/dev/null
callgrind_control -i on "$proxy" >/dev/null
done_requests=$(load "$port" "$requests")
callgrind_control -i off "$proxy" >/dev/null
# Dumped while running: under valgrind the proxy's signal thread never sees SIGINT, so it is killed after.
callgrind_control -d "$proxy" >/dev/null
for _ in $(seq 100); do ls "$work"/callgrind.out.* >/dev/null 2>&1 && break; sleep 0.1; done
kill -KILL "$proxy"; wait "$proxy" 2>/dev/null || true
instructions=$(grep -h '^totals:' "$work"/callgrind.out.* | awk '{ s += $2 } END { print s }')

# 2. io_uring_enter calls, under strace, on a plain run.
port=$(free_port)
start_proxy "$port"
load "$port" 2000 >/dev/null
strace -f -c -e trace=io_uring_enter -o "$work/strace.txt" -p "$proxy" 2>/dev/null &
tracer=$!
sleep 1  # strace attaches to every thread before the run starts
traced_requests=$(load "$port" "$requests")
kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
stop_proxy
enters=$(awk '$NF == "io_uring_enter" { print $4 }' "$work/strace.txt")

python3 - "$instructions" "$done_requests" "${enters:-0}" "$traced_requests" "$connections" "$size" <<'EOF'
import sys
instructions, requests, enters, traced, connections, size = (int(v) for v in sys.argv[1:])
print(f"rr {size} B, {connections} connections, one worker: {requests} requests counted")
print(f"user-space instructions per request: {instructions / requests:,.0f} ({instructions:,} in all)")
print(f"io_uring_enter per request: {enters / traced:.3f} ({enters} calls over {traced} requests)")
EOF
