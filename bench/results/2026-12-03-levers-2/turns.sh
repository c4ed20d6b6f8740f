#!/usr/bin/env bash
# Record io_uring_complete + sys_exit_io_uring_enter of the proxy during a fixed ringload rr run.
set -euo pipefail
bin=$1; out=$2; requests=${3:-30000}; conns=${4:-100}
L=/tmp/levers2/ringload
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wp() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
ep=$(fp); pp=$(fp)
taskset -c 0 $L echo-server --listen 127.0.0.1:$ep >/dev/null & e=$!
wp $ep
taskset -c 1 $bin --listen 127.0.0.1:$pp --backend 127.0.0.1:$ep --threads 1 --no-pin --log-level error & p=$!
wp $pp
taskset -c 0 $L rr --target 127.0.0.1:$pp --connections $conns --requests 5000 --quiet >/dev/null
perf record -e io_uring:io_uring_complete -e syscalls:sys_exit_io_uring_enter -o $out -p $p -- sleep 600 >/dev/null 2>&1 & r=$!
sleep 0.5
taskset -c 0 $L rr --target 127.0.0.1:$pp --connections $conns --requests $requests --quiet --json $out.load.json >/dev/null
kill -INT $r; wait $r || true
kill -INT $p; wait $p || true; kill -INT $e; wait $e || true
