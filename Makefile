# qpeach - plain GNU make. `make` builds build/qpeach, build/libqpeach.a,
# build/libqpeach.so and the Python extension. See README.md.
#
# BUILD selects the output folder, so sanitizer builds live beside the
# normal one: `make asan` is `make BUILD=build/asan SAN=1 check`.

BUILD   ?= build
PYTHON  ?= /usr/bin/python3
PKGS    := hwloc msgpack openssl cunit inih python3-embed zlib

# Flags from pkg-config are computed the first time a recipe needs them, not
# when the Makefile is parsed: on a fresh machine `make demo` parses this file
# before `deps` has installed anything. A package pkg-config cannot find stops
# the build naming it (and its Debian package) instead of compiling without
# flags. `once` caches a value after its first expansion.
once = $(eval $(1) := $$(2))$(2)
pc_deb = $(patsubst zlib,zlib1g-dev,$(patsubst python3-embed,python3-dev,$(patsubst cunit,libcunit1-dev,$(patsubst openssl,libssl-dev,$(patsubst msgpack,libmsgpack-dev,$(patsubst hwloc,libhwloc-dev,$(patsubst inih,libinih-dev,$(1))))))))
pc_missing = $(strip $(foreach p,$(1),$(if $(shell pkg-config --exists $(p) 2>/dev/null && echo y),,$(p))))
pc_flags = $(if $(call pc_missing,$(2)),$(error pkg-config cannot find: $(call pc_missing,$(2)) \
    (Debian packages: $(call pc_deb,$(call pc_missing,$(2)))); run `make deps` as root, or make demo / make test, which install them),$(shell pkg-config $(1) $(2)))
PKG_CFLAGS = $(call once,PKG_CFLAGS,$(call pc_flags,--cflags,$(PKGS)))
PKG_LIBS   = $(call once,PKG_LIBS,$(call pc_flags,--libs,$(PKGS)))
NPY_INC    = $(call once,NPY_INC,$(shell $(PYTHON) -c 'import numpy; print(numpy.get_include())' 2>/dev/null))

CC      ?= cc
CFLAGS  ?= -O2 -g
QP_CFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -pthread \
              -Iinclude -Isrc $(PKG_CFLAGS) $(if $(NPY_INC),-I$(NPY_INC)) -MMD -MP
QP_LDLIBS   = $(PKG_LIBS) -lpthread -lm
ifeq ($(SAN),1)
QP_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
QP_LDFLAGS += -fsanitize=address,undefined
endif
# FUZZ=1 (set by `make fuzz` and `make check` for their build/fuzz make, with
# CC=clang): every object gets libFuzzer's coverage hooks and ASan + UBSan;
# only the fuzz programs link libFuzzer's main.
ifeq ($(FUZZ),1)
QP_CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
QP_LDFLAGS += -fsanitize=address,undefined
endif

# The library's rooms, lowest first (docs/ARCHITECTURE.md): each may use
# the ones before it only. cli is the binary on top. -Isrc lets a file
# name another room's internal header by its room ("net/net_int.h").
LIB_ROOMS := core kdb net server py sched
LIB_SRC  := $(sort $(wildcard $(LIB_ROOMS:%=src/%/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_HLP := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
HLP_OBJ  := $(UNIT_HLP:%.c=$(BUILD)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/%)

# Keep intermediate objects (bench and test .o files), so a second make
# does not delete and rebuild them.
.SECONDARY:
.PHONY: all deps test check unit integration interop asan fuzz fuzz-build fuzz-bins fuzz-smoke demo clean bench bench-quick valgrind

all: $(BUILD)/libqpeach.a $(BUILD)/libqpeach.so $(if $(CLI_SRC),$(BUILD)/qpeach) $(UNIT_BIN) $(BENCH_BIN) pyext

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(QP_CFLAGS) -c $< -o $@

$(BUILD)/libqpeach.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libqpeach.so: $(LIB_OBJ)
	$(CC) -shared $(QP_LDFLAGS) $(LDFLAGS) -o $@ $^ $(QP_LDLIBS)

$(BUILD)/qpeach: $(CLI_OBJ) $(BUILD)/libqpeach.a
	$(CC) $(QP_LDFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libqpeach.a $(QP_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(HLP_OBJ) $(BUILD)/libqpeach.a
	@mkdir -p $(dir $@)
	$(CC) $(QP_LDFLAGS) $(LDFLAGS) -o $@ $< $(HLP_OBJ) $(BUILD)/libqpeach.a $(QP_LDLIBS)

# Benchmarks: each bench/*.c is one program linked against the library.
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libqpeach.a
	@mkdir -p $(dir $@)
	$(CC) $(QP_LDFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libqpeach.a $(QP_LDLIBS)

# libFuzzer programs: each tests/fuzz/fuzz_*.c linked against the library
# built with the same FUZZ=1 flags, so they follow the Makefile's own source
# lists and pkg-config flags. Built only by the build/fuzz make (fuzz-build).
$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/libqpeach.a
	$(CC) -fsanitize=fuzzer $(QP_LDFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libqpeach.a $(QP_LDLIBS)

# Writes the seed corpora: a plain program, without the fuzzer runtime.
$(BUILD)/seeds: tests/fuzz/seeds.c tests/unit/ipc_vectors.h
	$(CC) -std=c11 -O1 -Wall -Wextra -Werror -Itests/unit -o $@ $<

fuzz-bins: $(if $(filter 1,$(FUZZ)),$(FUZZ_BIN) $(BUILD)/seeds,fuzz-needs-FUZZ)
	@:

# The Python extension (python/qpeach/_qpeach*.so), built against Debian's
# python3 by python/setup-free rules in python/Makefile.inc when present.
-include python/Makefile.inc
pyext::

# DEPS_EXTRA adds optional tools (scripts/deps.sh's arguments); the targets
# that build the fuzzers ask for clang and libFuzzer.
deps:
	@sh scripts/deps.sh $(DEPS_EXTRA)
test asan fuzz: DEPS_EXTRA = fuzz

# Every test: CUnit suites, then integration and interop through one runner
# that ends with "N passed, N failed", then each fuzz target for a few seconds.
test: deps
	@$(MAKE) --no-print-directory check

# The integration runner goes last: its "N passed, N failed" closes the run.
# First the rooms' dependency order (includes, and the calls in the objects)
# and the length of functions.
check: all fuzz-build
	@sh scripts/check-layers.sh $(BUILD)
	@sh scripts/check-functions.sh
	@sh scripts/run-unit.sh $(BUILD) $(UNIT_BIN)
	@QPEACH=$(BUILD)/qpeach sh scripts/fuzz.sh --smoke $(FUZZ_DIR) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)
	@QPEACH_BUILD=$(BUILD) $(PYTHON) tests/run.py

unit: all
	@sh scripts/run-unit.sh $(BUILD) $(UNIT_BIN)

# ASan keeps freed memory in quarantine (256 MB by default), which would
# read as growth to the tests that watch a server's resident memory.
asan: deps
	@ASAN_OPTIONS=$${ASAN_OPTIONS:-quarantine_size_mb=16} \
	    $(MAKE) --no-print-directory BUILD=build/asan SAN=1 check

# Fuzzing: the library and tests/fuzz/fuzz_*.c built by clang with
# libFuzzer + ASan + UBSan in build/fuzz (a second make with FUZZ=1), then
# scripts/fuzz.sh seeds the corpora and runs each target. `make fuzz` runs
# each for FUZZ_SECONDS and keeps what it finds in build/fuzz/corpus_*;
# `make check` runs each for FUZZ_SMOKE_SECONDS from the seeds only.
FUZZ_DIR     := build/fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_TARGETS ?=
fuzz-build:
	@sh scripts/deps.sh --check fuzz || { echo "fuzz: install them with \`make deps DEPS_EXTRA=fuzz\` (make test and make fuzz do)" >&2; exit 1; }
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CC=$(FUZZ_CC) CFLAGS='-O1 -g' SAN= FUZZ=1 fuzz-bins

fuzz: deps
	@$(MAKE) --no-print-directory all fuzz-build
	@QPEACH=$(BUILD)/qpeach sh scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: all fuzz-build
	@QPEACH=$(BUILD)/qpeach sh scripts/fuzz.sh --smoke $(FUZZ_DIR) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# Every CUnit suite under valgrind's memcheck: any error or definite leak
# fails. tests/valgrind.supp holds suppressions for third-party internals;
# PYTHONMALLOC=malloc lets memcheck see CPython's allocations.
VALGRIND ?= valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --num-callers=30 --suppressions=tests/valgrind.supp
valgrind:
	@sh scripts/deps.sh valgrind
	@$(MAKE) --no-print-directory all
	@status=0; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	    PYTHONMALLOC=malloc $(VALGRIND) $$t || { echo "FAILED: $$t (exit $$?)"; status=1; }; \
	done; exit $$status

# Targets that need `deps` build in a second make, started after `deps` has
# installed what was missing (this make's view of the machine is older).
demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh $(BUILD)

# Benchmark harness (bench/harness.py): ratios against baselines measured in
# the same run, results checked equal; writes bench/results/ (CSV, markdown,
# PNG). bench-quick stays under 3 minutes on 2 cores; bench is the full run.
bench: deps
	@$(MAKE) --no-print-directory all
	QPEACH_BUILD=$(BUILD) $(PYTHON) bench/harness.py

bench-quick: deps
	@$(MAKE) --no-print-directory all
	QPEACH_BUILD=$(BUILD) $(PYTHON) bench/harness.py --quick

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(HLP_OBJ:.o=.d) $(FUZZ_SRC:%.c=$(BUILD)/obj/%.d) $(UNIT_BIN:$(BUILD)/tests/%=$(BUILD)/obj/tests/unit/%.d)
