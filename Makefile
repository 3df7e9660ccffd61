# ebb — see README.md. `make demo` and `make test` are the two commands.
GO       ?= go
BIN      ?= bin/ebb
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
IMAGE    ?= ebbscale/ebb:$(VERSION)

.PHONY: build demo test test-deps bench bench-large lint docker clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ebb

demo: build
	./$(BIN) demo $(DEMO_ARGS)

# test-deps installs the real stores the integration tests run against.
test-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v victoria-metrics >/dev/null; then \
		echo "installing prometheus and victoria-metrics from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus victoria-metrics >/dev/null; \
	fi
	@prometheus --version 2>&1 | head -1; echo "victoria-metrics $$(dpkg-query -W -f='$${Version}' victoria-metrics 2>/dev/null || echo '(not from Debian)')" 

test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x ./... >/dev/null
	$(GO) test -run '^$$' -bench . -benchmem ./scaler ./externalscaler ./queries

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

docker:
	docker build -t $(IMAGE) --build-arg VERSION=$(VERSION) .

clean:
	rm -rf bin
