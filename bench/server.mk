# bench/server.mk: strata-bench (stratad and Redis through one harness) and the server
# comparison run by `make bench` (bench/bench-server.sh).
BENCH_SRV_SRC := $(wildcard bench/strata_bench*.c)
BINS += $(BIN)/strata-bench
$(BENCH_SRV_SRC:%.c=$(B)/%.o): | $(PROTO_GEN)
$(BIN)/strata-bench: $(BENCH_SRV_SRC:%.c=$(B)/%.o) $(LIB)/libstrata.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lhiredis
