# Switchboard — the two commands: `make run` and `make test` (see README.md).
# Both install the Debian packages they need (a no-op when present), configure and build.

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= 2
CONFIG     ?=
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
FUZZ_DIR   := $(abspath $(FUZZ_BUILD))

.PHONY: all deps configure build fuzz run test unit clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then \
	  cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DSB_FUZZ_BUILD_DIR=$(FUZZ_DIR); \
	fi

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# libFuzzer targets in their own clang build tree: the codecs, and whole sessions (these link
# the kernel of the main build, so it is built first).
fuzz: build
	@if [ ! -f $(FUZZ_BUILD)/CMakeCache.txt ]; then \
	  cmake -S . -B $(FUZZ_BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	        -DCMAKE_CXX_COMPILER=clang++ -DSB_FUZZ=ON -DSB_MAIN_BUILD_DIR=$(abspath $(BUILD)); \
	fi
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

run: build
	$(BUILD)/switchboard run $(if $(CONFIG),-c $(CONFIG))

test: build fuzz
	cd $(BUILD) && ctest --output-on-failure --timeout 600

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
