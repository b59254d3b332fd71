# replication/: shard replication (libstrata-repl.a): layout, stream frames, primary and
# replica threads, resync, roles, operator requests. Depends on the store only.
REPL_SRC := $(wildcard replication/repl_*.c)
REPL_LIB := $(LIB)/libstrata-repl.a
LIBS_OUT += $(REPL_LIB)
$(REPL_LIB): $(REPL_SRC:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# Unit tests: tests/unit/test_repl_*.c linked with replication, the store and common.
REPL_TESTS := $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(wildcard tests/unit/test_repl_*.c))
UNIT_TESTS += $(REPL_TESTS)
$(REPL_TESTS): $(BIN)/tests/%: $(B)/tests/unit/%.o $(REPL_LIB) $(STORE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -lstdc++
