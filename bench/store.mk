# The store engine benchmark (embedded, no network).
BINS += $(BIN)/strata-kv-bench
$(BIN)/strata-kv-bench: $(B)/bench/kv_bench.o $(STORE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lstdc++
