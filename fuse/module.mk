# fuse/: stratafs (bin/stratafs) and libstrata-fs.a (trash index, rmr queue, control
# channel client), which strata-admin links too; unit tests tests/unit/test_fs_*.c.
FS_LIB_SRC    := fuse/fs_util.c fuse/fs_rec.c fuse/fs_trash.c fuse/fs_rmr.c fuse/fs_ctlmsg.c \
                 fuse/fs_cmd.c \
                 fuse/fs_config.c fuse/fs_journal.c fuse/fs_log.c
FS_DAEMON_SRC := fuse/fs_main.c fuse/fs_inode.c fuse/fs_ops.c fuse/fs_notify.c fuse/fs_ctl.c \
                 fuse/fs_chan.c fuse/fs_loop.c fuse/fs_wb.c fuse/fs_extent.c \
                 fuse/fs_metrics.c
FS_LIB        := $(LIB)/libstrata-fs.a
LIBS_OUT      += $(FS_LIB)
BINS          += $(BIN)/stratafs

$(FS_LIB): $(FS_LIB_SRC:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BIN)/stratafs: $(FS_DAEMON_SRC:%.c=$(B)/%.o) $(FS_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

FS_TESTS   := $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(wildcard tests/unit/test_fs_*.c))
UNIT_TESTS += $(FS_TESTS)
$(FS_TESTS): $(BIN)/tests/%: $(B)/tests/unit/%.o $(FS_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# POSIX conformance: pjdfstest (../shared/conformance, never copied here) in a stratafs
# mount; fails when the suite is missing. `make conformance CONFORMANCE_TESTS="chmod open"`.
conformance: $(BIN)/stratafs
	@BIN=$(BIN) bash tests/integ/fs_conformance.bash $(CONFORMANCE_TESTS)
.PHONY: conformance
