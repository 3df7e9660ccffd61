# syntax=docker/dockerfile:1
#
# ebb: a static Go binary on distroless, running as non-root.
#
#   make docker              # ebbscale/ebb:$(VERSION), VERSION = the chart's appVersion
#   make docker-multiarch IMAGE=registry.example.com/ebb:0.1.0   # amd64 + arm64, pushed
#   docker build --build-arg VERSION=0.1.0 -t ebbscale/ebb:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 \
#     -t registry.example.com/ebb:0.1.0 --push .
#
# VERSION must be charts/ebb/Chart.yaml's appVersion: the chart's default
# image tag, and what `ebb version` prints.
#
# The builder runs on the build machine's own platform and cross-compiles to
# the target's (CGO is off), so a multi-platform build needs no emulation.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies in their own layer: rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# Same flags as `make build`. The cache mount only speeds up rebuilds; the
# binary does not depend on it.
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ebb ./cmd/ebb

# static-debian12: CA certificates, tzdata (keep-awake windows name IANA time
# zones), /etc/passwd with nonroot = 65532, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ebb" \
      org.opencontainers.image.description="KEDA external scaler: request-rate and GPU autoscaling and autoshutdown from batched Prometheus queries" \
      org.opencontainers.image.source="https://github.com/ebbscale/ebb" \
      org.opencontainers.image.url="https://github.com/ebbscale/ebb" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="ebbscale" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=build /out/ebb /ebb

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 9090: KEDA's external scaler gRPC API. 8080: /metrics, /healthz, /readyz.
# 8012: the activator (held requests of idle workloads).
EXPOSE 9090 8080 8012

ENTRYPOINT ["/ebb"]
CMD ["serve"]
