# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
BUILD_DIR   ?= build
RELEASE_DIR ?= build-release
FUZZ_DIR    ?= build-fuzz
FUZZ_RUNS   ?= 20000
# The e2e suite: its store backends (sqlite, postgres or both) and how many tests run at once (pytest-xdist).
E2E_BACKEND ?= both
E2E_JOBS    ?= 4

.PHONY: all deps build webmail release test unit e2e fuzz fuzz-build demo bench format lint clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMAGPIE_SANITIZE=ON

# The webmail (web/): `npm ci` only when package-lock.json changed (so `make` works offline afterwards),
# then Vite builds static files into web/dist, which magpied serves at "/".
WEB_SOURCES := $(wildcard web/src/* web/public/* web/index.html web/vite.config.js)

web/node_modules/.package-lock.json: web/package-lock.json | deps
	cd web && npm ci --no-audit --no-fund
	touch $@

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npm run build --silent

webmail: web/dist/index.html

# The test build: debug, with AddressSanitizer and UndefinedBehaviorSanitizer.
build: deps webmail $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR)

$(RELEASE_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAGPIE_WERROR=OFF

release: deps webmail $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) --target magpied magpie

$(FUZZ_DIR)/build.ninja:
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-gline-tables-only -O1" -DMAGPIE_FUZZ=ON

fuzz-build: deps $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) $(FUZZ_BUILD_FLAGS)

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j2

e2e: build
	MAGPIE_BUILD_DIR=$(abspath $(BUILD_DIR)) /usr/bin/python3 -m pytest -q tests/e2e --backend=$(E2E_BACKEND) \
	  -n $(E2E_JOBS) --dist loadgroup

# Every fuzz target for a short, fixed number of runs from its seed corpus: a smoke test, not a campaign.
fuzz: fuzz-build
	bash scripts/run-fuzz.sh $(FUZZ_DIR) $(FUZZ_RUNS)

# The e2e suite on both backends, with ctest beside it and, at a lower priority, the fuzz build (-j2)
# and its smoke run (scripts/run-tests.sh prints the time of each phase).
test: build
	E2E_BACKEND=$(E2E_BACKEND) E2E_JOBS=$(E2E_JOBS) bash scripts/run-tests.sh $(BUILD_DIR) $(FUZZ_DIR) $(FUZZ_RUNS)

# Starts magpied in the foreground on the embedded default store; Ctrl-C stops it.
demo: release
	$(RELEASE_DIR)/src/server/magpied --demo

# Side-by-side benchmarks against Postfix (and smtp-sink) on this machine; writes bench/RESULTS.md.
# BENCH_ARGS="--quick" checks the harness in a minute.
bench: release
	@bash scripts/install-deps.sh bench
	cmake --build $(RELEASE_DIR) --target imap_load jmap_load
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

lint: build
	clang-tidy -p $(BUILD_DIR) $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD_DIR) $(RELEASE_DIR) $(FUZZ_DIR) web/dist
