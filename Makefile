# kpod — see README.md. `make run` starts kpod on this host, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
export GOFLAGS := -trimpath $(filter-out -trimpath,$(GOFLAGS))

TOOLS := tools/bin/mdatagen tools/bin/builder
OTELCOL := _build/otelcol-kpod

# Debian packages the tests and `make generate` need (installed by `make deps` when missing).
APT_PACKAGES := clang-19 llvm-19 libbpf-dev rsync gcc libc6-dev iproute2 util-linux e2fsprogs curl nftables prometheus qemu-system-x86 busybox-static cpio redis-server redis-tools dnsmasq-base bind9-dnsutils mariadb-server mariadb-client postgresql postgresql-client libcap2-bin

.PHONY: all build deps tools generate check-generate lint unit fuzz chart kube test e2e reliability soak test-kernels test-kernel-5.10 otelcol image run clean

all: build

build:
	$(GO) build ./...

# deps installs the Debian packages and mounts the kernel filesystems the tests use.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing (run make deps as root)"; exit 1; fi; \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if [ "$$(id -u)" = 0 ]; then \
		mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; \
		mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; \
	fi

tools: $(TOOLS)
tools/bin/mdatagen: tools/go.mod
	cd tools && $(GO) build -o bin/mdatagen go.opentelemetry.io/collector/cmd/mdatagen
tools/bin/builder: tools/go.mod
	cd tools && $(GO) build -o bin/builder go.opentelemetry.io/collector/cmd/builder

# generate rebuilds every generated file: bpf2go objects (clang-19), syscall tables, mdatagen.
# clang's BTF lists forward-declared types in the order of their addresses on its heap, whose
# layout follows the lengths of its environment and of the paths it resolves (proc's object
# came out otherwise in clones at other paths, and under CI=true). So generate runs on a copy of
# the tree at a real directory of fixed length (/tmp/kpod-gen.XXXXXX/src), clang with a fixed
# environment (bpf/clang.sh), and copies back only the files whose content changed:
# check-generate must give the committed bytes in a clone anywhere.
generate: tools
	@d=$$(mktemp -d /tmp/kpod-gen.XXXXXX) && \
		rsync -a --exclude=/_build --exclude=/.git "$(CURDIR)/" "$$d/src/" && \
		(cd "$$d/src" && echo "go generate ./... (in a copy at $$d/src)" && $(GO) generate ./...) && \
		rsync -rc --exclude=/_build --exclude=/.git "$$d/src/" "$(CURDIR)/"; rc=$$?; rm -rf "$$d"; exit $$rc

# check-generate proves the committed generated files are what the sources produce.
check-generate: generate
	@if ! git diff --exit-code --stat -- . ; then \
		echo "generated files are out of date: run make generate and commit the result"; exit 1; fi
	@untracked=$$(git ls-files --others --exclude-standard); if [ -n "$$untracked" ]; then \
		echo "make generate created files that are not committed: $$untracked"; exit 1; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags chart,kube ./test/chart/
	$(GO) vet -tags reliability ./test/reliability/

# unit runs every Go test of the module with the race detector. As root the real-kernel
# tests run too; without root they skip (and fail under CI=true).
# examples/prometheus validates configs with the collector binary, hence otelcol.
unit: otelcol
	$(GO) test -race -count=1 -p 2 -timeout 20m ./...

test: deps check-generate lint unit fuzz chart kube e2e reliability test-kernels test-kernel-5.10

# fuzz runs every fuzz target (func FuzzXxx in a *_fuzz_test.go) for FUZZTIME, one after the
# other (go test -fuzz takes one package and one target; its workers use every core). Their
# seed corpora (f.Add, this host's kernel files, testdata/fuzz/FuzzXxx/) already ran as plain
# tests in unit. An input that fails is written to the package's testdata/fuzz/FuzzXxx/:
# commit it with the fix, it is the regression test. FUZZTIME=60s make fuzz for a longer hunt.
# A count, not a duration: with a duration Go 1.26's coordinator can report "context deadline
# exceeded" as a failure when the time is up (golang/go#75804, fixed in 1.27; a CI run:
# FuzzDiscover, no failing input).
FUZZTIME ?= 30000x
fuzz:
	@set -eo pipefail; for f in $$(git ls-files --cached --others --exclude-standard '*_fuzz_test.go'); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)([a-z]* \*testing\.F).*/\1/p' $$f); do \
			echo "fuzz ./$$(dirname $$f) $$t $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) | grep -v '^fuzz: elapsed'; \
		done; \
	done

# The binary directory of scripts/k8s-build.sh (kubectl, helm, the cluster's binaries).
K8S_BIN = $(shell scripts/k8s-build.sh --bin-dir)

# chart tests charts/kpod with Helm v4 (built from the Go module proxy on first use, cached
# with the Kubernetes binaries): helm lint, helm template checked against examples/ (DaemonSet,
# RBAC, collector config, rules, dashboard), every rendered collector config validated by
# otelcol-kpod, and otelcol-kpod run with the chart's config (clusterName on every series).
chart: otelcol
	scripts/k8s-build.sh -q helm
	KPOD_K8S_BIN=$(K8S_BIN) $(GO) test -tags chart -count=1 -timeout 15m ./test/chart/

# kube runs the tests that need a real kube-apiserver (filters, restart counts) against one
# started on 127.0.0.1 for them (binaries built from the Go module proxy on first use, cached).
# Its own ports (etcd 2479/2480, kube-apiserver 6543), so that it runs beside a cluster-up cluster.
# test/chart sends the raw manifests of examples/kubernetes and the rendered chart to it as a
# server-side dry run.
KUBE_STATE := /tmp/kpod-kube-test
KUBE_ENV := KPOD_CLUSTER_STATE=$(KUBE_STATE) KPOD_ETCD_PORT=2479 KPOD_APISERVER_PORT=6543 KPOD_SERVICE_CIDR=10.96.0.0/16
kube:
	scripts/k8s-build.sh -q helm
	$(KUBE_ENV) scripts/cluster-up.sh --control-plane-only
	KPOD_TEST_KUBECONFIG=$(KUBE_STATE)/kubeconfig KPOD_K8S_BIN=$(K8S_BIN) \
		$(GO) test -tags kube -count=1 -run TestKube ./receiver/kpodreceiver/ ./test/chart/ ./internal/kube/; \
		rc=$$?; $(KUBE_ENV) scripts/cluster-down.sh; exit $$rc

otelcol: $(OTELCOL)
# The receiver's sources, including the committed BPF objects it embeds.
$(OTELCOL): $(TOOLS) builder-config.yaml $(shell git ls-files '*.go' '*.o' 'go.mod' 'go.sum' 2>/dev/null)
	tools/bin/builder --config builder-config.yaml

# image packs _build/otelcol-kpod into an OCI image archive, _build/otelcol-kpod-image.tar,
# named $(IMAGE) (scripts/image.sh; push it with skopeo, or import it into a node's containerd).
IMAGE ?= localhost/otelcol-kpod:dev
image: otelcol
	scripts/image.sh --no-import --tag $(IMAGE)

# e2e runs the ocb-built collector against fake pods and scrapes it over HTTP.
e2e: otelcol
	$(GO) test -tags e2e -count=1 -timeout 20m ./test/e2e/...

# reliability runs test/reliability (build tag reliability; RELIABILITY.md) with the built
# collector: a 400-pod churn soak, Prometheus across a collector and a container restart, the
# DaemonSet's capabilities as user nobody (capsh) and each dropped, a 20 s OTLP outage, 31 bad
# configurations. About 6 minutes on 2 cores (bounded by -timeout 30m). Not taken into the
# test-kernels VM (tag e2e only).
reliability: otelcol
	$(GO) test -tags reliability -count=1 -timeout 30m ./test/reliability/

# soak is the long version (not part of make test): 10,000 pods churned under the collector
# and a 5-minute OTLP outage; the soak's table is written to _build/soak.md. 19m27s on 2
# cores (RELIABILITY.md: 13m34s for the 10,000 pods, 5½ minutes for the outage).
# SOAK_CYCLES, SOAK_EVERY (pods between two rows) and SOAK_OUTAGE change the size.
SOAK_CYCLES ?= 10000
SOAK_OUTAGE ?= 5m
SOAK_EVERY ?= 1000
soak: deps otelcol
	KPOD_SOAK_CYCLES=$(SOAK_CYCLES) KPOD_SOAK_REPORT_EVERY=$(SOAK_EVERY) KPOD_SOAK_REPORT=$(CURDIR)/_build/soak.md KPOD_OUTAGE=$(SOAK_OUTAGE) \
		$(GO) test -tags reliability -count=1 -timeout 3h -v -run '^(TestSoak|TestBackpressure)$$' ./test/reliability/

# test-kernels runs the real-kernel test binaries (and test/e2e with otelcol-kpod) again in a
# qemu VM booting Debian's 6.1 cloud kernel with pure cgroup v2 (scripts/test-kernels.sh; the
# kernel is cached in ~/.cache/kpod-kernels). KERNEL_TEST_RUN=<regexp> and
# KERNEL_TEST_PKGS=<go list patterns> narrow it; the console is kept in _build/test-kernels/.
test-kernels: otelcol
	scripts/test-kernels.sh

# test-kernel-5.10 does the same on Debian 11's 5.10 cloud kernel (Amazon Linux 2's series):
# no task storage, bpf_loop or folios there, so families that need them assert their reasons.
test-kernel-5.10: otelcol
	KERNEL_SERIES=5.10 scripts/test-kernels.sh

# run starts otelcol-kpod on this host with examples/collector-local.yaml and demo pods.
run: deps otelcol
	scripts/demo.sh

clean:
	rm -rf _build tools/bin

# ---- local Kubernetes (etcd, kube-apiserver, containerd, kubelet on 127.0.0.1) -------------
# Versions are pinned in tools/k8s; binaries are cached in ~/.cache/kpod-k8s/<version>/bin
# (about 15-45 min the first time on 2 cores, nothing afterwards). After cluster-up:
# . /tmp/kpod-cluster/env (KUBECONFIG, K8S_API, K8S_TOKEN, ...). See scripts/cluster-up.sh.
.PHONY: k8s-build cluster-up cluster-down

# k8s-build builds etcd, kube-apiserver, kubectl, kubelet (K8S_BUILD=all adds containerd 2.x and helm).
k8s-build:
	scripts/k8s-build.sh $(K8S_BUILD)

# cluster-up starts the cluster; CLUSTER_FLAGS=--control-plane-only for the API server alone.
cluster-up:
	scripts/cluster-up.sh $(CLUSTER_FLAGS)

cluster-down:
	scripts/cluster-down.sh

# ---- end to end in a real cluster ------------------------------------------------------------
# e2e-cluster installs charts/kpod with helm install in a real single-node cluster
# (cluster-up with kube-controller-manager and kube-scheduler), runs workload pods and checks
# per-pod values, a pod's deletion and the dashboard/rule queries on real scrapes
# (scripts/e2e-cluster.sh, test/e2ecluster). Always tears the cluster down. Run by .ci/run
# after make test; cold (k8s binaries built from the module proxy) see docs in examples/README.md.
.PHONY: e2e-cluster
e2e-cluster: deps otelcol
	scripts/e2e-cluster.sh

# ---- benchmarks -------------------------------------------------------------------------------
# bench measures kpod's cost and writes BENCHMARKS.md (see bench/README.md): kernel overhead of
# each BPF family and profile next to bpftrace / libbpf-tools equivalents (interleaved A/B pairs),
# per-program BPF statistics, collection cycle and collector RSS at 10, 110 and 1,000 fake pods.
# Root, about 17 minutes (15-19) on 2 idle cores. Never part of make test: the Go code has the bench build tag.
.PHONY: bench
bench: deps otelcol
	bench/run.sh
