# tools/: strata-admin (bin/strata-admin): a dispatch table in admin_main.c, one file per
# subcommand (admin_*.c); links the libraries of the modules it drives.
ADMIN_SRC := $(wildcard tools/admin_*.c)
BINS      += $(BIN)/strata-admin

# libstrata: backup, stats and verify --addr ask a running stratad.
$(ADMIN_SRC:%.c=$(B)/%.o): | $(PROTO_GEN)
$(BIN)/strata-admin: $(ADMIN_SRC:%.c=$(B)/%.o) $(FS_LIB) $(REPL_LIB) $(STRATA_LIB) $(STORE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lstdc++
