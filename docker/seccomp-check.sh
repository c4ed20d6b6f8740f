#!/usr/bin/env bash
# Checks docker/seccomp-ringproxy.json against what runs in the container. One scenario — ringproxy --help,
# a bad flag, --check, a start that cannot bind, and a run with a name-resolved and a dead backend under
# ringload traffic, an idle connection timed out, SIGHUP sent by a shell (as `kubectl exec` would), SIGTERM,
# then a --sqpoll run stopped by SIGINT; docker/healthcheck.sh against admin stubs answering 200 and 503; and
# the preStop `sleep` — runs twice:
#   1. under strace: every system call made must be covered by the profile;
#   2. under the profile itself (docker/seccomp-exec.py loads it as runc does): everything must still work.
# Traffic stays on 127.0.0.1; every process is started here and stopped by its PID.
# Usage: docker/seccomp-check.sh [folder with ringproxy and ringload]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(swift build --show-bin-path)}
profile=docker/seccomp-ringproxy.json
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for tool in strace /usr/bin/python3; do command -v "$tool" >/dev/null || missing=1; done
if [ -n "${missing:-}" ] || ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
  echo "installing strace and python3-seccomp"
  apt-get update -qq && apt-get install -y -qq strace python3-seccomp >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
fail() { echo "seccomp-check: $*" >&2; exit 1; }
# The process a wrapper runs: strace's child, or the wrapper itself where it execs (seccomp-exec.py).
tracee() { local child=; read -r child _ 2>/dev/null <"/proc/$1/task/$1/children" || true; echo "${child:-$1}"; }
# expect STATUS COMMAND...: runs COMMAND (wrapped), which must exit with STATUS.
expect() { local want=$1 got=0; shift; "$@" >>"$work/out.log" 2>&1 || got=$?; [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want (log: $(tail -3 "$work/out.log"))"; }

# admin_stub PORT STATUS: a stand-in for ringproxy's admin port that answers every request with STATUS.
admin_stub() {
  python3 -c '
import http.server, sys
class Reply(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(sys.argv[2])); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Reply).serve_forever()
' "$1" "$2" &
  pids+=($!)
  wait_port "$1"
}

# scenario WRAP...: the whole run, each process started as WRAP... PROGRAM ARGS.
scenario() {
  local wrap=("$@")
  local echo_port proxy_port dead_port admin_port
  echo_port=$(free_port); proxy_port=$(free_port); dead_port=$(free_port); admin_port=$(free_port)
  cat >"$work/proxy.toml" <<EOF
host = "127.0.0.1"
port = $proxy_port
threads = 2
idle_timeout = "1s"
admin = "127.0.0.1:$admin_port"
access_log = true
report_interval = "200ms"
zerocopy = "auto"

[health]
interval = "200ms"

[[backends]]
host = "localhost"
port = $echo_port

[[backends]]
host = "127.0.0.1"
port = $dead_port
EOF
  expect 0 "${wrap[@]}" "$bin/ringproxy" --help
  expect 2 "${wrap[@]}" "$bin/ringproxy" --no-such-flag
  expect 0 "${wrap[@]}" "$bin/ringproxy" --config "$work/proxy.toml" --check
  expect 1 "${wrap[@]}" "$bin/ringproxy" --listen 192.0.2.1:9 --backend 127.0.0.1:9 --threads 1

  "${wrap[@]}" "$bin/ringload" echo-server --listen "127.0.0.1:$echo_port" >>"$work/out.log" 2>&1 &
  local echo_pid=$!; pids+=("$echo_pid")
  "${wrap[@]}" "$bin/ringproxy" --config "$work/proxy.toml" >>"$work/out.log" 2>&1 &
  local proxy_pid=$!; pids+=("$proxy_pid")
  wait_port "$echo_port"; wait_port "$proxy_port"
  local proxy
  proxy=$(tracee "$proxy_pid")

  "${wrap[@]}" "$bin/ringload" rr --target "127.0.0.1:$proxy_port" --connections 20 --duration 2 >"$work/rr.log" 2>&1 ||
    fail "ringload rr failed: $(cat "$work/rr.log")"
  grep -q -E '^ +errors +0$' "$work/rr.log" || fail "ringload rr saw errors: $(cat "$work/rr.log")"
  expect 0 "${wrap[@]}" docker/healthcheck.sh "127.0.0.1:$admin_port"
  python3 -c 'import sys, urllib.request; [urllib.request.urlopen("http://127.0.0.1:%s/%s" % (sys.argv[1], path)).read() for path in ("metrics", "backends")]' "$admin_port" ||
    fail "the admin endpoint did not answer /metrics and /backends"
  local idle=0
  (exec 3<>/dev/tcp/127.0.0.1/"$proxy_port"; read -r -t 5 <&3) || idle=$?
  [ "$idle" = 1 ] || fail "an idle connection was not closed after idle_timeout (read status $idle)"
  expect 0 "${wrap[@]}" bash -c "kill -HUP $proxy"; sleep 0.3
  kill -0 "$proxy" || fail "ringproxy did not survive SIGHUP"
  kill -TERM "$proxy"
  local status=0; wait "$proxy_pid" || status=$?
  [ "$status" = 0 ] || fail "ringproxy exited $status after SIGTERM, expected 0 (log: $(tail -3 "$work/out.log"))"

  "${wrap[@]}" "$bin/ringproxy" --listen "127.0.0.1:$proxy_port" --backend "127.0.0.1:$echo_port" --threads 1 --sqpoll >>"$work/out.log" 2>&1 &
  proxy_pid=$!; pids+=("$proxy_pid")
  wait_port "$proxy_port"
  "${wrap[@]}" "$bin/ringload" rr --target "127.0.0.1:$proxy_port" --connections 4 --duration 1 >"$work/rr.log" 2>&1 ||
    fail "ringload rr through --sqpoll failed: $(cat "$work/rr.log")"
  kill -INT "$(tracee "$proxy_pid")"
  status=0; wait "$proxy_pid" || status=$?
  [ "$status" = 0 ] || fail "ringproxy --sqpoll exited $status after SIGINT, expected 0"
  kill -TERM "$(tracee "$echo_pid")"; wait "$echo_pid" || true

  local healthy_port draining_port
  healthy_port=$(free_port); draining_port=$(free_port)
  admin_stub "$healthy_port" 200
  admin_stub "$draining_port" 503
  expect 0 "${wrap[@]}" docker/healthcheck.sh "127.0.0.1:$healthy_port"
  expect 1 "${wrap[@]}" docker/healthcheck.sh "127.0.0.1:$draining_port"
  expect 1 "${wrap[@]}" docker/healthcheck.sh "127.0.0.1:$dead_port"
  expect 0 "${wrap[@]}" sleep 0.1  # the Kubernetes preStop pause
}

# The names the profile decides on: allowed (some only under argument conditions), or answered with an
# errno on purpose (clone3 gets ENOSYS, so glibc falls back to clone, whose flags the profile can check).
covered=$(python3 -c '
import json, sys
print("\n".join(sorted({name for group in json.load(open(sys.argv[1]))["syscalls"] for name in group["names"]})))
' "$profile")

echo "== pass 1: strace"
cat >"$work/traced" <<EOF
#!/bin/sh
exec strace -f -qq -c -U name -o "\$(mktemp -p $work strace.XXXXXX)" "\$@"
EOF
chmod +x "$work/traced"
scenario "$work/traced"
seen=$(cat "$work"/strace* | awk 'NF == 1 && $1 ~ /^[a-z_0-9]+$/ && $1 != "syscall" && $1 != "total" { print $1 }' | sort -u)
[ -n "$seen" ] || fail "strace recorded no system calls"
missing=$(comm -23 <(echo "$seen") <(echo "$covered"))
[ -z "$missing" ] || fail "system calls made but not covered by $profile: ${missing//$'\n'/ }"
echo "$(echo "$seen" | wc -l) distinct system calls made, all covered: ${seen//$'\n'/ }"

echo "== pass 2: under $profile"
scenario /usr/bin/python3 docker/seccomp-exec.py "$profile"
/usr/bin/python3 docker/seccomp-exec.py "$profile" unshare --user true 2>/dev/null &&
  fail "the profile let unshare(2) through: it is not being enforced"
echo "ringproxy and ringload work under the profile (and it denies what it leaves out, like unshare)"
