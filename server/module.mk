# server/: stratad (io_uring or libevent network threads, worker pool, admin HTTP) and the
# unit/integration test programs of the server, the protocol and libstrata.
SRV_SRC     := $(wildcard server/srv_*.c)
SRV_OBJ     := $(SRV_SRC:%.c=$(B)/%.o)
SRV_LIB_OBJ := $(filter-out $(B)/server/srv_main.o,$(SRV_OBJ))
BINS        += $(BIN)/stratad

$(SRV_OBJ): | $(PROTO_GEN)
$(BIN)/stratad: $(SRV_OBJ) $(PROTO_OBJ) $(REPL_LIB) $(STORE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lstdc++

# Tests: one program per behaviour. Those that start a real stratad find it in $(BIN).
# (libstrata is named by path: client/module.mk, which defines STRATA_LIB, comes later.)
SRV_TESTS := $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(wildcard tests/unit/test_srv_*.c \
               tests/unit/test_proto_*.c tests/unit/test_client_*.c))
UNIT_TESTS += $(SRV_TESTS)
$(SRV_TESTS:$(BIN)/tests/%=$(B)/tests/unit/%.o): | $(PROTO_GEN)
$(SRV_TESTS): $(BIN)/tests/%: $(B)/tests/unit/%.o $(SRV_LIB_OBJ) $(LIB)/libstrata.a \
              $(REPL_LIB) $(STORE_LIB) $(COMMON_LIB) | $(BIN)/stratad
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -lstdc++ $(if $(findstring _resp,$@),-lhiredis)
