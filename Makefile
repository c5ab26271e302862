# xlb — build, test, demo. See README.md.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/xlbproject/xlb/internal/buildinfo.Version=$(VERSION)
PROTOS   := $(wildcard controlplane/api/xlb/v1/*.proto)

.PHONY: all build generate generate-proto test test-short run bench lint clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Regenerates the committed protobuf code. Needs protoc (Debian protobuf-compiler);
# protoc-gen-go is pinned in go.mod as a tool dependency.
generate: generate-proto

generate-proto:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	protoc -I controlplane/api -I /usr/include \
		--plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
		--go_out=. --go_opt=module=github.com/xlbproject/xlb \
		$(PROTOS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN) bench/out
