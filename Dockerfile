# Multi-stage build of xlbd and xlbctl. The generated BPF objects and protobuf
# code are committed, so the build stage needs neither clang nor protoc.
#
# Run with the capabilities the data path needs (see README.md):
#   docker run --network host --cap-add BPF --cap-add NET_ADMIN --cap-add SYS_ADMIN \
#     -v /sys/fs/bpf:/sys/fs/bpf -v /etc/xlb:/etc/xlb xlb run --config /etc/xlb/xlb.yaml
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/xlbproject/xlb/internal/buildinfo.Version=${VERSION}" \
      -o /out/ ./cmd/xlbd ./cmd/xlbctl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/xlbd /out/xlbctl /usr/local/bin/
VOLUME ["/var/lib/xlb"]
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/xlbd"]
CMD ["run"]
