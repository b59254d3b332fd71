# store/: the versioned feature store engine (libstrata-store.a) and its unit tests.
STORE_SRC := $(wildcard store/*.c)
STORE_LIB := $(LIB)/libstrata-store.a
LIBS_OUT  += $(STORE_LIB)
$(STORE_LIB): $(STORE_SRC:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# Unit tests: tests/unit/test_kv_*.c, each its own program linked with the store and common.
STORE_TESTS := $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(wildcard tests/unit/test_kv_*.c))
UNIT_TESTS  += $(STORE_TESTS)
$(STORE_TESTS): $(BIN)/tests/%: $(B)/tests/unit/%.o $(STORE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -lstdc++
