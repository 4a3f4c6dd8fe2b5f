# Tessera's build. Every Go command goes through $(GO) so that the build tag
# Karmada's protobuf types need is set in exactly one place.
SHELL := /bin/bash
export GOTOOLCHAIN := local
export GONOSUMDB := github.com/karmada-io/karmada
# go-nvml's cgo wrappers call deprecated NVML entry points on purpose.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations
GOTAGS := kubernetes_protomessage_one_more_release
GO := go
GOFLAGS_ALL := -tags $(GOTAGS)
BIN := bin

.PHONY: servers test-deps manifests all build test test-go test-hook chaos bench bench-go bench-hook demo clean vet

all: build

build:
	$(GO) build $(GOFLAGS_ALL) -o $(BIN)/ ./cmd/...
	$(MAKE) -C cuda-hook all

vet:
	$(GO) vet $(GOFLAGS_ALL) ./...

## test: every test in the project (what CI runs).
test: test-hook test-go

# The integration tests run real etcd, kube-apiserver, kube-scheduler and
# Karmada binaries built from Go modules (cached under ~/.cache/tessera):
# build them first, with progress, so no test waits silently on a build.
# test/install runs verbosely: its output lists the objects each values set
# applied and the ServiceAccount every component ran as.
test-go: servers test-deps
	$(GO) test $(GOFLAGS_ALL) -count=1 -timeout 45m $$($(GO) list $(GOFLAGS_ALL) ./... | grep -v '/test/install$$')
	$(GO) test $(GOFLAGS_ALL) -count=1 -timeout 15m -v ./test/install

## chaos: the long chaos run (docs/e2e.md): CHAOS_FAULTS faults on the real
## Karmada and two members; make test runs its short form (6 faults).
## TESSERA_CHAOS_SEED=<seed printed by a run> replays a run's plan.
CHAOS_FAULTS ?= 100
chaos: servers
	TESSERA_CHAOS_FAULTS=$(CHAOS_FAULTS) $(GO) test $(GOFLAGS_ALL) -count=1 -timeout 60m -run '^TestChaosLosesNothing$$' -v ./test/e2e/

## servers: build (or reuse) the real servers the integration tests run.
servers:
	test/tools/build-servers.sh all >/dev/null

## test-deps: system packages the tests use (Debian's prometheus and chromium).
test-deps:
	test/tools/install-prometheus.sh
	test/tools/install-chromium.sh

## manifests: re-render deploy/manifests from the Helm chart.
manifests:
	deploy/render.sh

test-hook:
	$(MAKE) -C cuda-hook test

## bench: the benchmarks recorded in docs/benchmarks.md.
bench: bench-go bench-hook

bench-go:
	$(GO) test $(GOFLAGS_ALL) -run '^$$' -bench . -benchmem ./...

bench-hook:
	$(MAKE) -C cuda-hook bench

clean:
	rm -rf $(BIN)
	$(MAKE) -C cuda-hook clean

## demo: the main job for a newcomer (see README). KEEP=1 keeps the clusters
## running afterwards and serves the fleet page on $(DASHBOARD) until Ctrl-C.
DASHBOARD ?= 127.0.0.1:8080
demo:
	$(GO) run $(GOFLAGS_ALL) ./cmd/tessera-demo $(if $(KEEP),--serve $(DASHBOARD))
