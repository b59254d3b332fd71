# client/: libstrata (C client library, client/strata_*.c except the CLI) and the `strata` CLI
# (client/strata_cli.c + client/cli_*.c: embedded and remote backends).
STRATA_LIB_SRC := $(filter-out client/strata_cli.c,$(wildcard client/strata_*.c))
STRATA_LIB     := $(LIB)/libstrata.a
# The shared library: real file libstrata.so.VERSION with SONAME libstrata.so.0 (the ABI
# major), and the usual symlinks. A linker version script generated from client/strata.h
# exports exactly the functions the header declares: the generated protocol code (also
# named strata__*), the common helpers and the rest stay local.
STRATA_VERSION := $(shell sed -n 's/^\#define ST_VERSION "\(.*\)"/\1/p' common/st_version.h)
STRATA_SONAME  := libstrata.so.0
STRATA_SO_REAL := $(LIB)/libstrata.so.$(STRATA_VERSION)
STRATA_SO      := $(LIB)/libstrata.so
CLI_SRC        := client/strata_cli.c $(wildcard client/cli_*.c)
BINS           += $(BIN)/strata
HEADERS_PUBLIC += $(wildcard client/strata.h)

ifneq ($(STRATA_LIB_SRC),)
LIBS_OUT += $(STRATA_LIB) $(STRATA_SO)
# The library carries the generated protocol code and the common error helpers it uses, so
# that users link with -lstrata alone (plus its pkg-config deps).
$(STRATA_LIB_SRC:%.c=$(B)/%.o) $(STRATA_LIB_SRC:%.c=$(B)/pic/%.o): | $(PROTO_GEN)
$(STRATA_LIB): $(STRATA_LIB_SRC:%.c=$(B)/%.o) $(PROTO_OBJ) $(COMMON_SRC:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^
# The shared library is built from position-independent objects of its own.
$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@
STRATA_MAP     := $(B)/gen/libstrata.map
$(STRATA_MAP): client/strata.h
	@mkdir -p $(dir $@)
	{ echo 'LIBSTRATA_0 {'; echo '	global:'; \
	  grep -oE '\bstrata_[a-z0-9_]+\(' $< | tr -d '(' | sort -u | sed 's/.*/		&;/'; \
	  echo '	local:'; echo '		*;'; echo '};'; } > $@
$(STRATA_SO_REAL): $(STRATA_LIB_SRC:%.c=$(B)/pic/%.o) $(B)/pic/gen/proto/strata.pb-c.o \
                   $(COMMON_SRC:%.c=$(B)/pic/%.o) $(STRATA_MAP)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,$(STRATA_SONAME) -Wl,--version-script=$(STRATA_MAP) \
	  -Wl,--as-needed -o $@ $(filter %.o,$^) $(LDLIBS)
$(STRATA_SO): $(STRATA_SO_REAL)
	ln -sf $(notdir $<) $(LIB)/$(STRATA_SONAME)
	ln -sf $(STRATA_SONAME) $@
endif

$(BIN)/strata: $(CLI_SRC:%.c=$(B)/%.o) $(if $(STRATA_LIB_SRC),$(STRATA_LIB)) $(STORE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lstdc++
