# podctl: `make test` and `make demo` install what they need first.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin:$(PATH)

# podctl is linked statically: without podinit next to it, the same binary
# is every pod's init and must run in root filesystems that have no libc
# (see ARCHITECTURE.md). podinit, the pods' small C init, is static too.
# The tag "seccomp" links libseccomp, with which libcontainer confines pods.
GO_BUILD := CGO_ENABLED=1 go build -tags "netgo osusergo seccomp" -ldflags "-extldflags -static"
CC ?= cc
PODINIT_CFLAGS := -static -Os -Wall -Wextra -Werror

.PHONY: all deps build test unit race e2e bench soak demo fuzz vet clean

all: build

deps:
	bash scripts/deps.sh

# Docks of other ISAs (vessel pods only: pure Go, no cgo) and, compiled but
# not kept, the vessel parts for other operating systems.
CROSS_ISAS := arm64 riscv64 s390x ppc64le loong64
CROSS_OSES := windows darwin freebsd

build:
	$(GO_BUILD) -o bin/podctl ./cmd/podctl
	$(CC) $(PODINIT_CFLAGS) -o bin/podinit cmd/podinit/podinit.c
	for isa in $(CROSS_ISAS); do CGO_ENABLED=0 GOARCH=$$isa go build -o bin/podctl-$$isa ./cmd/podctl || exit 1; done
	for os in $(CROSS_OSES); do CGO_ENABLED=0 GOOS=$$os GOARCH=amd64 go build -o /dev/null ./cmd/podctl || exit 1; done

# The Go programs under testdata/ directories, which ./... leaves out, are
# guests the tests build for wasip1: vetted as such.
WASIP1_GUESTS := $(sort $(shell find . -path ./.git -prune -o -path '*/testdata/*' -name '*.go' -printf '%h\n'))

vet:
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above"; exit 1)
	go vet ./...
	GOOS=wasip1 GOARCH=wasm go vet $(WASIP1_GUESTS)

# Tests skip when a tool they need is missing (see test/harness), except
# after make deps, which installs every one: then a missing tool fails.
REQUIRE_TOOLS := PODCTL_REQUIRE_TOOLS=1

# The package tests, without the end-to-end suite in ./test.
PACKAGES := $$(go list ./... | grep -v '/test$$')

# The package tests under the race detector: every package but the
# end-to-end suite in ./test, whose tests run podctl binaries built
# without it. (Under it, wasm/vessel's tests leave out stops of
# interpreted guests: see wasm/internal/stopflag.)
RACE := go test -race -tags seccomp -count=1 -timeout 30m $(PACKAGES)

# The whole suite, as root: the package tests under the race detector and
# without it, then the end-to-end tests on real namespaces, overlayfs,
# cgroups, veth and nftables. The end-to-end suite runs alone: go test
# runs packages side by side, and the load of another package's tests
# coming and going under it changes its timings from one moment to the
# next (podctl compare checkpoints at a fraction of a run time it measured
# moments before; see ARCHITECTURE.md, "Why: podctl compare").
test: deps build vet
	./bin/podctl doctor
	$(REQUIRE_TOOLS) $(RACE)
	$(REQUIRE_TOOLS) go test -tags seccomp -count=1 -timeout 40m $(PACKAGES)
	$(REQUIRE_TOOLS) go test -tags seccomp -count=1 -timeout 40m ./test

# The package tests alone: no build of podctl and no end-to-end suite
# (./test). One package takes seconds; wasm/prepare and wasm/vessel take
# minutes (Asyncify of a Go guest takes half a minute).
unit:
	go test -tags seccomp -count=1 $(PACKAGES)

# The package tests under the race detector (see RACE).
race:
	$(RACE)

# The end-to-end suite alone: real pods, CRIU, namespaces and docks (root).
e2e: deps build
	$(REQUIRE_TOOLS) go test -count=1 -timeout 40m ./test/...

# The soak: a stateful pod migrated between two hosts 500 times
# (PODCTL_SOAK_ROUNDS), checking that nothing grows. Not in CI.
soak: deps build
	$(REQUIRE_TOOLS) go test -tags soak -count=1 -run TestSoak -v -timeout 120m ./test/

bench: deps build
	$(REQUIRE_TOOLS) go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/

demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf bin
