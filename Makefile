# scalpel: `make` builds, `make test` runs the suite, `make check` its fast tiers (unit and
# parity, for the edit loop), `make demo` runs the main job.
# Missing Debian packages are installed with apt-get (through sudo when not root).
BUILD      ?= build
BUILD_TYPE ?= Release
JOBS       ?= $(shell nproc)
# python3 and chromium run the browser test of `scalpel serve` (tests/browser); OpenMPI runs
# data-parallel training (`mpirun -np N scalpel train`, docs/distributed.md); libhdf5-dev reads Keras .h5
# files (optional: without it scalpel builds and refuses them).
PACKAGES   := cmake make g++ pkg-config libeigen3-dev libstb-dev libfmt-dev libgtest-dev \
              libbenchmark-dev libcpp-httplib-dev zlib1g-dev libhdf5-dev python3 chromium libopenmpi-dev openmpi-bin
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps configure build reference test check test-asan demo bench clean fixtures op-table

all: build

deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) >/dev/null

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Reference runtimes for the import tests (tests/reference/*.js): @tensorflow/tfjs and
# onnxruntime-node from npm into $(BUILD)/reference/node_modules, once. Fails soft: without npm
# or a network the tests that need them report themselves skipped.
REFERENCE_PACKAGES := @tensorflow/tfjs@4.22.0 onnxruntime-node@1.20.1
reference:
	@modules=$(BUILD)/reference/node_modules; \
	if grep -qs '"version": "4.22.0"' $$modules/@tensorflow/tfjs/package.json && \
	   grep -qs '"version": "1.20.1"' $$modules/onnxruntime-node/package.json; then :; \
	elif ! command -v npm >/dev/null 2>&1; then \
	  echo "reference: npm not found; the tests against tfjs and onnxruntime will be skipped"; \
	else \
	  mkdir -p $(BUILD)/reference && \
	  npm install --ignore-scripts --no-audit --no-fund --prefix $(BUILD)/reference $(REFERENCE_PACKAGES) || \
	  echo "reference: npm install failed; the tests against tfjs and onnxruntime will be skipped"; \
	fi

test: build reference
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The tiers are ctest labels (tests/CMakeLists.txt): unit, parity, cli, emu-slow.
check: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L '^(unit|parity)$$'

# The same suite under AddressSanitizer and UBSan, in its own build folder.
test-asan:
	$(MAKE) test BUILD=build-asan BUILD_TYPE=Debug CMAKE_ARGS="-DSCALPEL_SANITIZE=ON -DSCALPEL_CUDA=OFF -DSCALPEL_BUILD_BENCH=OFF"

demo: build
	$(BUILD)/bin/scalpel demo

bench: build
	@for b in $(BUILD)/bin/bench_*; do echo "== $$b"; $$b; done

# Regenerates tests/fixtures with Debian's python3-torch (not needed by CI).
fixtures:
	/usr/bin/python3 scripts/make_fixtures.py

# Rewrites README.md's op table from the `// op table:` rows at the end of each op's reference file.
op-table:
	/usr/bin/python3 scripts/op_table.py

clean:
	rm -rf $(BUILD)
