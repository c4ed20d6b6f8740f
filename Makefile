# RingProxy — `make demo` runs the proxy end to end, `make test` runs the test suite.
SHELL := /bin/bash
SWIFT ?= swift
RELEASE_BIN = $(shell $(SWIFT) build -c release --show-bin-path)

.PHONY: all deps build debug run demo test bench-picks soak clean

all: build

# liburing's headers (Debian: liburing-dev) are the only system package the build needs.
deps:
	@if [ ! -f /usr/include/liburing.h ]; then \
	  echo "installing liburing-dev (the io_uring headers)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq liburing-dev pkg-config || \
	    { echo "cannot install liburing-dev: install it with your package manager" >&2; exit 1; }; \
	fi

build: deps
	$(SWIFT) build -c release

debug: deps
	$(SWIFT) build

# make run ARGS="--listen 127.0.0.1:8080 --backend 127.0.0.1:9000"
run: build
	$(RELEASE_BIN)/ringproxy $(ARGS)

# Proxy + bundled echo backend + a short ringload run, direct and through the proxy.
demo: build
	bench/demo.sh $(RELEASE_BIN)

# ns per backend pick for each balancing algorithm (bench/results/pick-cost.md has the last run).
bench-picks: deps
	$(SWIFT) run -c release pick-cost

test: deps
	$(SWIFT) build
	$(SWIFT) test

# Minutes of mixed load on the proxy binary (integrity streams, ringload rr, connection churn), then its
# memory and descriptors compared: make soak DURATION=600
DURATION ?= 60
soak: deps
	SOAK_SECONDS=$(DURATION) $(SWIFT) test -c release -Xswiftc -enable-testing --filter SoakTests

clean:
	rm -rf .build

# Deployment (docker/): `make release` builds ringproxy and ringload to need nothing but glibc and packs them
# into dist/; `make validate-deploy` lints the Dockerfile, compose file, manifests and systemd unit, and
# checks the seccomp profile against what the binaries really call.
.PHONY: release validate-deploy

release: deps
	docker/release.sh

validate-deploy: debug
	docker/validate.sh
	docker/seccomp-check.sh

# RingProxy beside HAProxy and nginx (stream), one worker each on CPU 1, load on CPU 0: `make bench` (3 rounds,
# about 12 minutes) or `make bench-quick` (1 short round, about 2 minutes). Writes bench/results/<date>.{md,json,svg}
# and latest.svg; installs haproxy, nginx and libnginx-mod-stream when missing. The rr cells run again across two
# network namespaces (BENCH_ARGS=--no-netns skips them); BENCH_VARIANTS=sqpoll,zerocopy adds RingProxy variants.
.PHONY: bench bench-quick
BENCH_ARGS ?=

bench: build
	python3 bench/harness/run.py --bin $(RELEASE_BIN) --rounds 3 $(BENCH_ARGS)

bench-quick: build
	python3 bench/harness/run.py --bin $(RELEASE_BIN) --quick $(BENCH_ARGS)
