# neurode: build, test and CI entry points. `make help` lists the targets.
# pkg/neurode.wasm is committed, so build/test/demo/bench need only Node + npm (and a host cargo for
# the Rust tests); only `wasm`/`wasm-verify` need the wasm toolchain (`make toolchain`).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

DEMO ?= all
BENCH_ARGS ?=
FUZZ_RUNS ?= 100000
BIN := node_modules/.bin
export NO_COLOR := 1

# Host cargo for the Rust tests: the one on PATH (rustup), else Debian's; with neither, install
# Debian's first (make toolchain) and use it with its own rustc.
HOST_CARGO := $(shell command -v cargo 2>/dev/null)
ifeq ($(HOST_CARGO),)
  ifeq ($(wildcard /usr/bin/cargo),)
    TEST_TOOLCHAIN := toolchain
  endif
  HOST_CARGO := RUSTC=/usr/bin/rustc /usr/bin/cargo
endif

.PHONY: help toolchain toolchain-chromium node_modules wasm wasm-verify build test demo bench fuzz clean

help:
	@echo "make toolchain           install Debian's offline wasm toolchain (rustc-web, rust-web-src, lld-N)"
	@echo "make toolchain-chromium  the same plus chromium (browser tests)"
	@echo "make wasm                build the core to SIMD wasm and copy it to pkg/neurode.wasm (commit it)"
	@echo "make wasm-verify         rebuild into a temp dir and fail if pkg/neurode.wasm differs"
	@echo "make build               tsc -> dist/"
	@echo "make test                cargo test (host) + vitest; prints 'total: N passed, N failed'"
	@echo "make demo [DEMO=name]    node dist/cli.js demo \$$DEMO (default: all)"
	@echo "make bench [BENCH_ARGS=] node bench/run.mjs"
	@echo "make fuzz                vitest on test/fuzz with FUZZ_RUNS=$(FUZZ_RUNS)"
	@echo "make clean               remove dist/, test-output/, target/"

toolchain:
	scripts/toolchain.sh

toolchain-chromium:
	scripts/toolchain.sh --chromium

# npm ci only when package.json / package-lock.json changed since the last install (or no install yet).
node_modules: node_modules/.neurode-stamp
node_modules/.neurode-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

wasm:
	scripts/build-wasm.sh pkg

wasm-verify:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	scripts/build-wasm.sh "$$tmp"; \
	if cmp -s "$$tmp/neurode.wasm" pkg/neurode.wasm; then \
	  echo "wasm-verify: OK, pkg/neurode.wasm is byte-identical to a fresh build of the current source"; \
	else \
	  echo "wasm-verify: fresh build: $$(sha256sum < "$$tmp/neurode.wasm" | cut -c1-16), $$(stat -c %s "$$tmp/neurode.wasm") bytes"; \
	  echo "wasm-verify: committed:   $$( [ -f pkg/neurode.wasm ] && echo "$$(sha256sum < pkg/neurode.wasm | cut -c1-16), $$(stat -c %s pkg/neurode.wasm) bytes" || echo missing)"; \
	  echo "ERROR: pkg/neurode.wasm differs from a fresh build of the current Rust source: run 'make wasm' and commit pkg/neurode.wasm (CI builds with route B, Debian rustc-web)"; \
	  exit 1; \
	fi

build: node_modules
	rm -rf dist
	$(BIN)/tsc -p tsconfig.json
	@if [ -f dist/cli.js ]; then chmod +x dist/cli.js; fi

# Both suites always run (status kept in test-output/*.status); the summary decides the exit code.
# `build` first: worker/pool tests import the compiled JS from dist/.
test: $(TEST_TOOLCHAIN) node_modules build
	@rm -rf test-output && mkdir -p test-output
	@echo "== cargo test (host: $(HOST_CARGO)) =="
	@s=0; $(HOST_CARGO) test --workspace --offline 2>&1 | tee test-output/cargo.log || s=$$?; echo $$s > test-output/cargo.status
	@echo "== vitest (JSON report: test-output/vitest.json) =="
	@s=0; $(BIN)/vitest run || s=$$?; echo $$s > test-output/vitest.status
	@echo "== summary =="
	@node scripts/test-summary.mjs test-output

demo: node_modules build
	node dist/cli.js demo $(DEMO)

bench: node_modules build
	node bench/run.mjs $(BENCH_ARGS)

fuzz: node_modules build
	@if [ -n "$$(find test/fuzz -name '*.test.ts' 2>/dev/null)" ]; then \
	  FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SEED=$${FUZZ_SEED:-random} $(BIN)/vitest run test/fuzz --testTimeout=0 --outputFile.json=test-output/fuzz.json; \
	else \
	  echo "fuzz: no fuzz tests yet (add test/fuzz/*.test.ts that read process.env.FUZZ_RUNS)"; \
	fi

clean:
	rm -rf dist test-output target
