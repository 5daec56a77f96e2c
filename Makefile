# The two-command set-up: `make` (installs what is missing, configures, builds)
# and `make run`. Everything real happens in scripts/bootstrap and CMake; this
# file only strings them together.

BUILD_DIR ?= build
ASAN_DIR ?= build-asan
JOBS ?= $(shell nproc)
CTEST_JOBS ?= 2
ARGS ?=

FORMAT_DIRS := $(wildcard src tests sdk cli bench)

.PHONY: all build bootstrap run test test-cluster asan fuzz bench bench-cluster bench-micro format clean cluster

all: build

bootstrap:
	@./scripts/bootstrap

# Configured once; after that CMake re-runs itself when CMakeLists.txt changes.
build: bootstrap
	@test -f $(BUILD_DIR)/build.ninja || \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Data goes to ./data (the data_dir default) unless ARGS says otherwise.
run: build
	exec ./$(BUILD_DIR)/parleyd $(ARGS)

# Label `long`: the cluster failure tests at full size (make test-cluster).
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(CTEST_JOBS) -LE long

# The cluster failure tests with 1,000 users (tests/cluster/failure_test.cpp).
test-cluster: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L long

# PostgreSQL, Redis, three parleyd nodes and HAProxy on loopback, in a
# throwaway folder; prints the URL for clients; Ctrl-C stops it all
# (scripts/cluster; docs/operations.md, "Running a cluster"). NODES=5 for more.
cluster: bootstrap
	@test -f $(BUILD_DIR)/build.ninja || \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS) --target parleyd parley
	./scripts/cluster $(BUILD_DIR)

# The sanitized suite leaves out the two reruns of the integration suite on
# PostgreSQL and on a Redis bus (label rerun): the PostgreSQL store's own
# contract suites and the bus contract suite do run under the sanitizers.
asan: bootstrap
	@test -f $(ASAN_DIR)/build.ninja || \
	  cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZE=ON
	cmake --build $(ASAN_DIR) -j$(JOBS)
	ctest --test-dir $(ASAN_DIR) --output-on-failure -j$(CTEST_JOBS) -LE 'rerun|long'

# libFuzzer harnesses (fuzz/README.md), built with clang in build-fuzz, each
# run for FUZZ_SECONDS (default 600); FUZZERS="session http" picks some.
FUZZ_DIR ?= build-fuzz
fuzz:
	@./scripts/bootstrap clang-14 libclang-rt-14-dev
	FUZZ_DIR=$(FUZZ_DIR) JOBS=$(JOBS) ./fuzz/run.sh

# A fresh parleyd, every parley-bench scenario briefly, a summary (bench/run.sh;
# docs/benchmarks.md). Builds only the two binaries it needs.
bench: bootstrap
	@test -f $(BUILD_DIR)/build.ninja || \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS) --target parleyd parley-bench
	./bench/run.sh $(BUILD_DIR)

# The cluster scale run (bench/cluster_scale.sh; docs/benchmarks.md): PostgreSQL,
# Redis and 7 parleyd on loopback, 100,000 sessions (SESSIONS=...), 1,000
# msgs/s across nodes, one node SIGKILLed. Not part of `make test`; it takes
# the whole machine for a few minutes.
bench-cluster: bootstrap
	@test -f $(BUILD_DIR)/build.ninja || \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS) --target parleyd parley-bench
	./bench/cluster_scale.sh $(BUILD_DIR)

# Google Benchmark micro-benchmarks of the hot paths (bench/micro/micro.cpp):
# frame parse and render, fan-out render, the store's append and ack path
# with group commit and fsync (docs/benchmarks.md).
bench-micro: bootstrap
	@test -f $(BUILD_DIR)/build.ninja || \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS) --target parley-micro
	./$(BUILD_DIR)/bench/parley-micro

format:
	@./scripts/bootstrap clang-format
	find $(FORMAT_DIRS) -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' \) \
	  -print0 | xargs -0 -r clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)
