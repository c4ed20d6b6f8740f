#!/usr/bin/env bash
# io_uring_complete + sys_exit_io_uring_enter of the proxy under wrk keep-alive to nginx (1 KiB), or iperf3 -P N.
set -euo pipefail
bin=$1; out=$2; kind=$3; conns=${4:-100}
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wp() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pp=$(fp)
if [ $kind = wrk ]; then
  taskset -c 0 nginx -p /tmp/levers2 -c /tmp/levers2/nginx.conf -g 'daemon off;' & b=$!; bp=38181
else
  bp=$((pp+1)); taskset -c 0 iperf3 -s -B 127.0.0.1 -p $bp >/dev/null & b=$!
fi
wp $bp
taskset -c 1 $bin --listen 127.0.0.1:$pp --backend 127.0.0.1:$bp --threads 1 --no-pin --log-level error & p=$!
wp $pp
perf record -e io_uring:io_uring_complete -e syscalls:sys_exit_io_uring_enter -o $out -p $p -- sleep 600 >/dev/null 2>&1 & r=$!
sleep 0.5
if [ $kind = wrk ]; then taskset -c 0 wrk -t 1 -c $conns -d 3s http://127.0.0.1:$pp/1k > $out.load.txt
else taskset -c 0 iperf3 -c 127.0.0.1 -p $pp -P $conns -t 3 > $out.load.txt; fi
kill -INT $r; wait $r || true
kill -INT $p; wait $p || true; kill -TERM $b; wait $b || true
