# ebb — see README.md. `make demo` and `make test` are the two commands.
GO       ?= go
BIN      ?= bin/ebb
# ebb's version is the chart's appVersion (charts/ebb/Chart.yaml): the image
# tag, the chart's default image.tag and what `ebb version` prints.
VERSION  ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' charts/ebb/Chart.yaml)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION)
IMAGE    ?= ebbscale/ebb:$(VERSION)
PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: build demo test test-deps bench bench-large soak lint docker docker-multiarch manifests version clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ebb

demo: build
	./$(BIN) demo $(DEMO_ARGS)

# test-deps installs the real stores the integration tests run against and
# the headless browser the HTML report is checked in, and
# builds the Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, the KEDA operator) and helm from test/tools/ into
# $EBB_TOOLS_DIR (default ~/.cache/ebb-tools), with the CRDs of KEDA, the
# Prometheus Operator and cert-manager: about 25 minutes on a cold machine,
# nothing once they are cached.
test-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v victoria-metrics >/dev/null || ! command -v chromium >/dev/null; then \
		echo "installing prometheus, victoria-metrics and chromium (for the HTML report tests) from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus victoria-metrics chromium >/dev/null; \
	fi
	@prometheus --version 2>&1 | head -1; echo "victoria-metrics $$(dpkg-query -W -f='$${Version}' victoria-metrics 2>/dev/null || echo '(not from Debian)')" 
	@bash test/tools/build.sh

test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	@# KEDA's own external-scaler client (pkg/scalers) against ebb serve: in
	@# the KEDA wrapper module, with the operator build's flags so that its
	@# build cache serves (pkg/scalers pulls every cloud SDK KEDA supports).
	cd test/tools/keda && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" $(GO) test -trimpath -count=1 -timeout 10m .
	@# The soak for 3 minutes, alone: its checks hold ebb to one tick and one
	@# scrape, so it does not share the cores with the package tests.
	$(GO) run ./bench/soak -duration 3m -out bench/soak/out

# bench runs the quick set in a few minutes (see bench/README.md): every
# benchmark once, the micro-benchmarks at 100, 1k and 10k workloads, the gRPC
# load at 1k and 10k workloads, and KEDA's per-object querying side by side
# with ebb's batched collector on a real Prometheus at 100 and 1k workloads.
# Results are also written to bench/out/quick/.
bench: test-deps
	@mkdir -p bench/out/quick
	$(GO) test -short -run '^$$' -bench . -benchtime 1x ./... >/dev/null
	($(GO) test -short -run '^$$' -bench . -benchmem -count 1 ./scaler ./externalscaler ./queries/promapi; echo $$? >bench/out/.status) | tee bench/out/quick/micro.txt
	@exit $$(cat bench/out/.status)
	EBB_BENCH=1 EBB_BENCH_OUT=$(CURDIR)/bench/out/quick $(GO) test -count 1 -timeout 30m -run 'TestLoad$$|TestSideBySide$$' -v ./bench

# bench-large adds 100k workloads and 5 counts to the micro-benchmarks,
# 30 s runs repeated 3 times to the load, and 5k workloads to the side by side;
# results also in bench/out/large/.
bench-large: test-deps
	@mkdir -p bench/out/large
	($(GO) test -run '^$$' -bench . -benchmem -count 5 -timeout 120m ./scaler ./externalscaler ./queries/promapi; echo $$? >bench/out/.status) | tee bench/out/large/micro.txt
	@exit $$(cat bench/out/.status)
	EBB_BENCH_LARGE=1 EBB_BENCH_OUT=$(CURDIR)/bench/out/large $(GO) test -count 1 -timeout 120m -run 'TestLoad$$|TestSideBySide$$' -v ./bench

# soak runs bench/soak for SOAK_DURATION (3m, as `make test` runs it; 60m
# for a recorded run): two ebb serve replicas on a real Prometheus (or
# VictoriaMetrics with SOAK_STORE=victoriametrics), 10,000 workloads whose
# demand it knows, KEDA's generated client at KEDA's pace and the store's and
# the replicas' faults on a schedule; it fails when a check of
# bench/RESULTS.md fails. Charts and the summary go to bench/soak/out/.
SOAK_DURATION ?= 3m
SOAK_STORE ?= prometheus
soak: test-deps
	$(GO) run ./bench/soak -duration $(SOAK_DURATION) -store $(SOAK_STORE) -out bench/soak/out

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# docker builds the image for this machine's platform, tagged $(IMAGE)
# (ebbscale/ebb:$(VERSION)); push it to your own registry with
#   make docker IMAGE=registry.example.com/ebb:$(VERSION) && docker push registry.example.com/ebb:$(VERSION)
docker:
	docker build -t $(IMAGE) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) .

# docker-multiarch builds for $(PLATFORMS) with buildx and pushes (a
# multi-platform image cannot be loaded into the local daemon). The builder
# cross-compiles, so no emulation is needed:
#   make docker-multiarch IMAGE=registry.example.com/ebb:$(VERSION)
docker-multiarch:
	docker buildx build --platform $(PLATFORMS) -t $(IMAGE) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --push .

# manifests renders deploy/ from the Helm chart (release ebb, namespace
# ebb-system, default values); charts/ebb's tests fail when the two differ.
# Needs helm from `make test-deps`.
manifests:
	CI=true EBB_UPDATE_MANIFESTS=1 $(GO) test -count=1 -run '^TestDeployIsRenderedFromTheChart$$' ./charts/ebb

version:
	@echo $(VERSION)

clean:
	rm -rf bin
