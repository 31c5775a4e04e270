# uplinkd — see README.md. Everything here runs as root on Debian.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/uplinkd/uplinkd/pkg/version.Version=$(VERSION)
BIN := bin
export CGO_ENABLED := 0

.PHONY: help deps build generate check-generated test test-unit test-fuzz test-e2e test-summary test-kernels lint demo bench bench-full install uninstall clean

# make install: where things go (DESTDIR stages a package).
PREFIX ?= /usr/local
SYSTEMD_DIR ?= /etc/systemd/system
CONFIG_DIR ?= /etc/uplinkd

help: ## show this help
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## install what the build, tests and demo need (Debian)
	@scripts/deps.sh

build: deps ## build uplinkd and uplinkctl into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/uplinkd ./cmd/uplinkctl ./cmd/uplinkbench

generate: ## rebuild the committed BPF objects with the pinned clang
	@scripts/deps.sh generate
	$(GO) generate ./pkg/datapath/... ./test/bench/benchbpf

check-generated: generate ## fail if the committed BPF objects are stale
	@if [[ -n "$$(git status --porcelain -- pkg/datapath test/bench/benchbpf bpf)" ]]; then \
		git status --short -- pkg/datapath test/bench/benchbpf bpf; \
		echo "check-generated: BPF objects differ from the sources; run 'make generate' and commit"; exit 1; \
	else echo "check-generated: BPF objects are up to date"; fi

test: deps lint test-unit test-fuzz test-e2e test-summary ## run every test (as root)

# gotestsum runs go test -json, prints go test's own lines and keeps the
# events, so one summary can list every skipped test with its reason.
GOTESTSUM := $(GO) tool gotestsum
TEST_OUT := out/test

test-unit: ## unit and BPF (Program.Run) tests
	@mkdir -p $(TEST_OUT)
	$(GOTESTSUM) --format standard-quiet --hide-summary skipped --jsonfile $(TEST_OUT)/unit.json -- \
		-count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/e2e)

# A count, not a duration: Go 1.26's fuzz coordinator can fail a run that
# ends on its deadline with "context deadline exceeded" (golang/go#75804).
FUZZTIME ?= 60000x
test-fuzz: ## a short fuzz run of every fuzz target (FUZZTIME each; seed corpora in testdata/fuzz)
	$(GO) test -run '^$$' -fuzz '^FuzzSwitchFrames$$' -fuzztime $(FUZZTIME) ./pkg/datapath
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/config

test-e2e: build ## end-to-end tests in network namespaces (prints measured figures)
	@mkdir -p $(TEST_OUT)
	UPLINKD_BIN=$(CURDIR)/$(BIN) $(GOTESTSUM) --format standard-verbose --hide-summary skipped \
		--jsonfile $(TEST_OUT)/e2e.json -- -count=1 -timeout 30m ./test/e2e/... 2>&1 | \
		grep -vE '^=== (RUN|PAUSE|CONT|NAME)'; exit $${PIPESTATUS[0]}

test-summary: ## every package of the last test-unit and test-e2e, and every skipped test with its reason
	@files=$$(ls $(TEST_OUT)/unit.json $(TEST_OUT)/e2e.json 2>/dev/null); \
		if [[ -z $$files ]]; then echo "test-summary: no results in $(TEST_OUT): run make test-unit or test-e2e"; exit 1; fi; \
		echo; echo "Summary of" $$files; \
		$(GOTESTSUM) --format pkgname --format-icons text --format-hide-empty-pkg --raw-command -- cat $$files

test-kernels: ## the kernel tests as root on Debian 12's 6.1 kernel under qemu (~4 min; TEST_KERNEL_PKGS=... picks packages)
	GO=$(GO) scripts/test-kernels.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' ; git ls-files -o --exclude-standard '*.go')); \
		if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: build ## a real topology in namespaces: daemon, traffic, a failover, failback
	@scripts/demo.sh $(BIN)

bench: build ## quick benchmark (<= 10 min): bench-results/{results.json,report.html}, docs/benchmarks.md
	$(BIN)/uplinkbench -profile quick -bin $(BIN) -out bench-results -markdown docs/benchmarks.md

bench-full: build ## the full benchmark (more trials, longer rounds)
	$(BIN)/uplinkbench -profile full -bin $(BIN) -out bench-results -markdown docs/benchmarks.md

install: build ## install uplinkd, uplinkctl, the systemd unit and (if absent) a configuration; enable with systemctl enable --now uplinkd
	install -D -m 0755 $(BIN)/uplinkd $(DESTDIR)$(PREFIX)/sbin/uplinkd
	install -D -m 0755 $(BIN)/uplinkctl $(DESTDIR)$(PREFIX)/bin/uplinkctl
	install -D -m 0644 deploy/systemd/uplinkd.service $(DESTDIR)$(SYSTEMD_DIR)/uplinkd.service
	sed -i 's|/usr/local/|$(PREFIX)/|g; s|/etc/uplinkd/|$(CONFIG_DIR)/|g' $(DESTDIR)$(SYSTEMD_DIR)/uplinkd.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/uplinkd/README.md
	@if [[ -e $(DESTDIR)$(CONFIG_DIR)/uplinkd.yaml ]]; then echo "keeping $(DESTDIR)$(CONFIG_DIR)/uplinkd.yaml"; 		else install -D -m 0644 pkg/config/example.yaml $(DESTDIR)$(CONFIG_DIR)/uplinkd.yaml; 		echo "installed an example configuration: edit $(DESTDIR)$(CONFIG_DIR)/uplinkd.yaml"; fi
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then systemctl daemon-reload; fi

uninstall: ## remove what make install put in place (the configuration and a running data plane stay: uplinkd -cleanup removes the latter)
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then systemctl disable --now uplinkd 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(PREFIX)/sbin/uplinkd $(DESTDIR)$(PREFIX)/bin/uplinkctl $(DESTDIR)$(SYSTEMD_DIR)/uplinkd.service
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/uplinkd
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then systemctl daemon-reload; fi

clean: ## remove build output
	rm -rf $(BIN)
