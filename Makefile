# Strata: one entry point. `make`, `make test`, `make run`, `make bench`, `make asan`,
# `make install PREFIX=...`, `make clean`. Each folder adds its targets in its module.mk.
SHELL   := /bin/bash
PREFIX  ?= /usr/local
CC      ?= cc
WARN    ?= -Wall -Wextra -Wmissing-prototypes -Wvla -Wno-unused-parameter
STRICT  ?= -Werror
OPT     ?= -O2 -g
SAN     ?=
PKGS    := rocksdb fuse3 liburing libprotobuf-c libevent libevent_pthreads libxxhash libzstd zlib jansson yaml-0.1

# Object/binary dirs differ per build flavour so `make asan` never mixes with the normal build.
B       ?= build
BIN     ?= bin
LIB     ?= lib

all:

# A fresh machine needs nothing but `make`: missing Debian packages are installed before the
# pkg-config flags below are read (a quick dpkg query when everything is present).
ifeq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(shell bash ops/install-deps.sh --check >/dev/null 2>&1 || bash ops/install-deps.sh >&2 || echo fail),)
$(error ops/install-deps.sh failed)
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lcsv -linih
endif

CFLAGS  += -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(OPT) $(WARN) $(STRICT) $(SAN) \
           -I. -I$(B)/gen $(PKG_CFLAGS)
LDFLAGS += $(SAN)
LDLIBS  += $(PKG_LIBS) -lpthread -lm

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Modules append to these.
BINS           :=
LIBS_OUT       :=
UNIT_TESTS     :=
HEADERS_PUBLIC :=

include common/module.mk
include store/module.mk
include $(wildcard proto/module.mk replication/module.mk server/module.mk client/module.mk \
                   client/python/module.mk \
                   tests/fuzz/module.mk \
                   fuse/module.mk tools/module.mk bench/module.mk ops/module.mk)

all: $(LIBS_OUT) $(BINS) $(UNIT_TESTS)

# Unit test programs (cmocka) and integration scripts; ends with "N passed, N failed".
test: all
	@B=$(B) BIN=$(BIN) bash tests/run-tests.sh $(TESTS)

# ASan+UBSan build in its own tree, then the same test runner.
asan:
	$(MAKE) B=build-asan BIN=bin-asan LIB=lib-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# `make run` builds the server alone; PORT= and DATA= choose where it listens and stores
# (the admin/metrics port is PORT+1).
PORT ?= 7070
DATA ?= ./data
run: $(BIN)/stratad
	@mkdir -p $(DATA)
	$(BIN)/stratad --data-dir $(DATA) --listen 127.0.0.1:$(PORT) --admin 127.0.0.1:$(shell echo $$(($(PORT) + 1)))

bench: all
	@BIN=$(BIN) bash bench/run-bench.sh

# Installs the public parts only: the four programs, libstrata.so (with its SONAME link),
# the header, the pkg-config file, man pages and shell completions; not the internal static
# libraries, tests or benchmarks. ldconfig runs for a real (not DESTDIR) install as root.
INSTALL_BINS := $(filter-out %-bench,$(BINS))
install: $(INSTALL_BINS) $(STRATA_SO) $(MAN_PAGES)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(INSTALL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(STRATA_SO_REAL) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(notdir $(STRATA_SO_REAL)) $(DESTDIR)$(PREFIX)/lib/$(STRATA_SONAME)
	ln -sf $(STRATA_SONAME) $(DESTDIR)$(PREFIX)/lib/libstrata.so
	install -m 644 $(HEADERS_PUBLIC) $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(STRATA_VERSION)|' ops/strata.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/strata.pc
	$(install-extra)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  echo ldconfig; ldconfig; fi

clean:
	rm -rf build build-asan build-fuzz bin bin-asan lib lib-asan

.PHONY: all test asan run bench install clean
-include $(shell find $(B) -name '*.d' 2>/dev/null)
