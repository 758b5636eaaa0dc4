# syntax=docker/dockerfile:1
#
# One image for every component of the shop: `shop run --components=…`
# picks the role (docker-compose.yml, deploy/k8s). Build: docker build -t shopstream .

# The Go of go.mod's go line or newer (the image sets GOTOOLCHAIN=local).
# Build on the build host's platform and cross-compile (pure Go, CGO off),
# so `docker buildx build --platform linux/arm64` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26.8-alpine AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/shop ./cmd/shop

# Alpine rather than distroless: its busybox wget is what the compose health
# checks call (wget http://127.0.0.1:8080/readyz). Kubernetes probes do
# not need it.
FROM alpine:3.22
RUN adduser -D -H -u 65532 shop
COPY --from=build /out/shop /shop
USER 65532:65532
# Every component serves /livez, /readyz (and its alias /healthz) and
# /metrics on --http.
EXPOSE 8080
ENTRYPOINT ["/shop"]
CMD ["run", "--components=all", "--http=:8080"]
