#!/usr/bin/env bash
# Where RingProxy's CPU goes under request/response load: one worker on CPU 1, an echo backend and ringload
# on CPU 0, `perf record` on the proxy for the run. Prints requests/s, CPU-µs per request (user and system
# apart), io_uring_enter calls and SQEs per request (from the proxy's own counters), the share of samples
# in user space, and the hottest user-space symbols, flagging allocation and ARC (malloc, swift_retain,
# swift_release, swift_beginAccess) if they show at all.
# Usage: bench/profile.sh [bin folder] [connections (100)] [seconds (10)]     (make profile)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(swift build -c release --show-bin-path)}
connections=${2:-100}
seconds=${3:-10}
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
metric() {  # the sum of a counter over its labels
  python3 -c 'import sys, urllib.request
lines = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode().splitlines()
print(int(sum(float(l.split()[-1]) for l in lines if l.startswith(sys.argv[2] + "{"))))' "$admin_port" "$1"
}
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$proxy/stat"; }

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo_port=$(free_port) proxy_port=$(free_port) admin_port=$(free_port)
taskset -c 0 "$bin/ringload" echo-server --listen "127.0.0.1:$echo_port" >/dev/null &
pids+=($!)
wait_port "$echo_port"
taskset -c 1 "$bin/ringproxy" --listen "127.0.0.1:$proxy_port" --backend "127.0.0.1:$echo_port" \
  --threads 1 --no-pin --admin "$admin_port" --log-level warning &
proxy=$!
pids+=($proxy)
wait_port "$proxy_port"
# A short warm-up, so the buffer pool and connection table are touched before counting.
taskset -c 0 "$bin/ringload" rr --target "127.0.0.1:$proxy_port" --connections "$connections" --duration 1 --quiet >/dev/null

enters0=$(metric ringproxy_worker_kernel_enters_total) sqes0=$(metric ringproxy_worker_sqes_submitted_total)
read -r user0 sys0 < <(cpu_ticks)
perf record -q -e cpu-clock -F 2000 -g -p "$proxy" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null &
recorder=$!
taskset -c 0 "$bin/ringload" rr --target "127.0.0.1:$proxy_port" --connections "$connections" --duration "$seconds" \
  --quiet --json "$work/load.json" >/dev/null
wait "$recorder"
read -r user1 sys1 < <(cpu_ticks)
enters1=$(metric ringproxy_worker_kernel_enters_total) sqes1=$(metric ringproxy_worker_sqes_submitted_total)

python3 - "$work/load.json" "$((user1 - user0))" "$((sys1 - sys0))" "$((enters1 - enters0))" "$((sqes1 - sqes0))" \
  "$(getconf CLK_TCK)" "$connections" <<'EOF'
import json, sys
load = json.load(open(sys.argv[1]))
user, system, enters, sqes, hz, connections = (int(v) for v in sys.argv[2:])
requests = load["requests"]
per = lambda ticks: ticks / hz * 1e6 / requests
print(f"rr 64 B, {connections} connections: {requests} requests, {load['requests_per_s']:,.0f} req/s, "
      f"p50 {load['latency_ms']['p50']:.3f} ms, p99 {load['latency_ms']['p99']:.3f} ms")
print(f"proxy CPU per request: {per(user + system):.2f} µs (user {per(user):.2f}, system {per(system):.2f}; "
      f"user share {100 * user / max(1, user + system):.1f} %)")
print(f"io_uring_enter per request: {enters / requests:.3f}; SQEs per request: {sqes / requests:.2f}")
EOF

perf report -i "$work/perf.data" -g none --no-children --sort dso -q --stdio 2>/dev/null | grep -v '^$' | head -8 \
  | sed 's/^/  samples by object: /'
echo "hottest user-space symbols (share of all proxy samples):"
perf report -i "$work/perf.data" -g none --no-children --sort sym -q --stdio 2>/dev/null \
  | grep -v '\[k\]' | grep '%' | head -12 | sed 's/^/  /'
hot=$(perf report -i "$work/perf.data" -g none --no-children --sort sym -q --stdio 2>/dev/null \
  | grep '\[\.\]' | grep -E 'malloc|free|swift_retain|swift_release|swift_beginAccess|swift_allocObject' | head -5 || true)
echo "user-space allocation / ARC / exclusivity symbols: ${hot:-none sampled}"
