# xlb — build, test, demo. See README.md.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/xlbproject/xlb/internal/buildinfo.Version=$(VERSION)
PROTOS   := $(wildcard controlplane/api/xlb/v1/*.proto)
# Test timeout: the whole suite must stay well under CI's budget.
TEST_TIMEOUT ?= 14m

.PHONY: all build generate generate-proto test check-lab run bench lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Regenerates the committed generated code. Needs protoc (Debian
# protobuf-compiler); protoc-gen-go and protoc-gen-go-grpc are pinned in go.mod
# as tool dependencies.
generate: generate-proto generate-bpf

generate-proto:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o $(BIN)/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	protoc -I controlplane/api -I /usr/include \
		--plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
		--plugin=protoc-gen-go-grpc=$(BIN)/protoc-gen-go-grpc \
		--go_out=. --go_opt=module=github.com/xlbproject/xlb \
		--go-grpc_out=. --go-grpc_opt=module=github.com/xlbproject/xlb \
		$(PROTOS)

# The BPF objects (bpf/) and their Go loaders, compiled by bpf2go (a tool
# dependency in go.mod) from the //go:generate lines of these packages. Needs
# clang, llvm (llvm-strip) and libbpf-dev. The output is byte-for-byte
# reproducible: bpf2go maps the source directory out of the debug info and
# the include paths are relative.
BPF_PKGS := ./bench/xdpgen/ ./dataplane/xdp/
.PHONY: generate-bpf
generate-bpf:
	$(GO) generate $(BPF_PKGS)

# The whole suite, privileged tests included (they need root; with CI=true a
# privileged test that cannot run fails instead of skipping).
test: lint build
	$(BIN)/xlbd validate configs/*.yaml
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/bench/scenario$$')
	@# The benchmark scenarios pin processes to cores and time them: alone,
	@# after the rest, so that other packages' tests do not starve them.
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./bench/scenario/
	@$(MAKE) --no-print-directory check-lab

# Fails when a test left a lab namespace or BPF pin behind.
check-lab:
	@left=$$(ip netns list 2>/dev/null | grep -c '^xlbt-'); \
	pins=$$(ls -d /sys/fs/bpf/xlbt-* 2>/dev/null | wc -l); \
	if [ "$$left" -ne 0 ] || [ "$$pins" -ne 0 ]; then \
		echo "tests left $$left lab namespace(s) and $$pins BPF pin dir(s) behind"; \
		ip netns list | grep '^xlbt-'; exit 1; fi; \
	echo "lab clean: no xlbt-* namespaces or pins left"

# The demo: a lab in network namespaces, xlbd with the embedded configuration,
# real traffic through every plane. Needs root. Ctrl-C tears it down.
run: build
	$(BIN)/xlb-bench demo --xlbd $(BIN)/xlbd

# The standard benchmark set, under 10 minutes; needs root (the scenarios
# run in network namespaces), haproxy, nginx and nft. First the
# micro-benchmarks of the pick and lookup paths (bench/RESULTS.md records
# them with the machine and date), then the side-by-side scenarios
# (xlb-bench scenario NAME), which write bench/out/NAME-<time>/ and replace
# their own sections of bench/RESULTS.md and plots in bench/results/NAME/.
bench: build
	@mkdir -p bench/out
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300ms -count 3 ./dataplane/pool/ ./dataplane/acl/ | tee bench/out/micro.txt
	$(BIN)/xlb-bench scenario l7-baseline --update-results
	$(BIN)/xlb-bench scenario l4 --update-results

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN) bench/out
