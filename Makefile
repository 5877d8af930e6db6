# The two commands of the README. Each installs what is missing (Debian 12), configures and builds.
#   make run    build nnlc and run the main job
#   make test   build the normal and the sanitizer configuration and run every test in both
# Other targets: build, build-asan, clean.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build build-asan run test test-release test-asan clean

all: build

deps:
	@./scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DNNLC_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The sanitizer configuration is built with clang so that the libFuzzer harnesses come with it.
build-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_C_COMPILER=clang-19 -DNNLC_SANITIZE=ON -DNNLC_FUZZ=ON \
	       -DNNLC_WERROR=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build
	@./scripts/main-job $(BUILD)/nnlc

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS)

test: test-release test-asan

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
