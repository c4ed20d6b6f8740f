#!/bin/bash
# The container's HEALTHCHECK: GET /healthz on ringproxy's admin port; healthy only on HTTP 200 (it answers
# 503 while draining). debian:bookworm-slim has no curl or wget, and bash, which is always there, can open
# a TCP connection itself through /dev/tcp, so the image needs no extra package for this.
# Usage: healthcheck.sh [host:port]   (default 127.0.0.1:9901)
set -eu
address=${1:-127.0.0.1:9901}
exec 3<>"/dev/tcp/${address%:*}/${address##*:}"
printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$address" >&3
read -r -t 2 _ status _ <&3
[ "$status" = 200 ]
