#!/usr/bin/env bash
# The built-in default run: a bundled echo backend, RingProxy in front of it, and a short ringload
# request/response load, direct and through the proxy, at 1 and 100 connections.
# Usage: bench/demo.sh [folder with ringproxy and ringload]   (make demo passes the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(swift build -c release --show-bin-path)}
duration=${DEMO_DURATION:-3}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

echo_port=$(free_port)
proxy_port=$(free_port)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/ringload" echo-server --listen "127.0.0.1:$echo_port" >/dev/null &
pids+=($!)
wait_port "$echo_port"
"$bin/ringproxy" --listen "127.0.0.1:$proxy_port" --backend "127.0.0.1:$echo_port" --threads 1 &
pids+=($!)
wait_port "$proxy_port"

for connections in 1 100; do
  echo
  echo "== $connections connection(s), 64 B request/response, ${duration} s =="
  echo "-- direct to the echo backend"
  "$bin/ringload" rr --target "127.0.0.1:$echo_port" --connections "$connections" --duration "$duration"
  echo "-- through ringproxy"
  "$bin/ringload" rr --target "127.0.0.1:$proxy_port" --connections "$connections" --duration "$duration"
done
