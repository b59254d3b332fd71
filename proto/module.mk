# proto/: the wire protocol. protoc-c generates $(B)/gen/proto/strata.pb-c.{c,h}; every object
# that includes the header depends on $(PROTO_GEN) (order-only) so it exists before compiling.
PROTO_GEN := $(B)/gen/proto/strata.pb-c.h
PROTO_OBJ := $(B)/gen/proto/strata.pb-c.o

$(B)/gen/proto/strata.pb-c.c $(B)/gen/proto/strata.pb-c.h &: proto/strata.proto
	@mkdir -p $(B)/gen/proto
	protoc-c --c_out=$(B)/gen $<

# Generated code is compiled from the build tree, with the warnings it is known to trip off.
$(PROTO_OBJ): $(B)/gen/proto/strata.pb-c.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@
$(B)/pic/gen/proto/strata.pb-c.o: $(B)/gen/proto/strata.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -Wno-missing-prototypes -MMD -MP -c $< -o $@
