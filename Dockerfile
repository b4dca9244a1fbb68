# syntax=docker/dockerfile:1
#
# The Obsqra server's image: one static binary (pure Go, SQLite included,
# time zone data embedded) on distroless's static base, which holds CA
# certificates, /etc/passwd and /tmp and nothing else (no shell), run as
# its non-root user. No Docker engine ran where this file was written:
# scripts/check-container, which CI runs, builds the binary with the build
# command below, read from this file, and runs it as this image would.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t obsqra .
#   docker run -p 8000:8000 obsqra            # SQLite under /home/nonroot/data
#
# The build stage runs on the builder's platform and cross-compiles for the
# target's (docker buildx build --platform linux/amd64,linux/arm64 …).
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# The version /health reports (main.version), e.g. the git describe of the
# build; .dockerignore leaves .git out of the context.
ARG VERSION=dev
# Where the binary goes; an argument so that scripts/check-container can run
# the build command as written into a directory of its own.
ARG OUT=/out
# build-command: scripts/check-container runs the RUN below as written.
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
        -ldflags="-s -w -X main.version=$VERSION" -o "$OUT/obsqra" ./cmd/obsqra

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/obsqra /usr/local/bin/obsqra
# nonroot (65532) owns its home: SQLite's default file (data/obsqra.db) and
# the development secret key (DATA_DIR=data) land in /home/nonroot/data.
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 8000
# /health: alive while it serves HTTP, whatever the database does (see
# `obsqra healthcheck`). The first start migrates and may load the market's
# history, hence the start period.
HEALTHCHECK --interval=10s --timeout=5s --start-period=2m --retries=3 \
    CMD ["/usr/local/bin/obsqra", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/obsqra"]
CMD ["serve"]
