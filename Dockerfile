# syntax=docker/dockerfile:1

# wahaq container image: one image carries both binaries.
#   /wahaq     (ENTRYPOINT)  wahaq worker | wahaq serve | wahaq dlq ...
#   /fakewaha  (dev only)    docker run --entrypoint /fakewaha IMAGE --addr 0.0.0.0:3000
#
# The final stage is distroless: no shell, no package manager, runs as the
# "nonroot" user (65532). That is why docker-compose.yml defines no
# healthcheck for wahaq containers; the /healthz and /readyz endpoints are
# meant for Kubernetes probes (see deploy/k8s/).

# ---- build ------------------------------------------------------------------
# Build on the host's platform and cross-compile (pure Go, no cgo), so
# `docker buildx build --platform linux/amd64,linux/arm64 .` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src

# Dependencies first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
      go build -trimpath -ldflags='-s -w' -o /out/wahaq ./cmd/wahaq && \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
      go build -trimpath -ldflags='-s -w' -o /out/fakewaha ./cmd/fakewaha

# ---- runtime ----------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wahaq /wahaq
COPY --from=build /out/fakewaha /fakewaha
# distroless :nonroot already defaults to this user; stating it numerically
# lets Kubernetes verify runAsNonRoot without a name lookup.
USER 65532:65532
# 8080: `wahaq serve` (API, /healthz, /readyz, /metrics)
# 9090: `wahaq worker --metrics-addr :9090` (/metrics, /healthz, /readyz)
EXPOSE 8080 9090
ENTRYPOINT ["/wahaq"]
