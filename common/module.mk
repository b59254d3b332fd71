# common/: error codes, logging, timestamps, durations, small helpers shared by every module.
COMMON_SRC := $(wildcard common/*.c)
COMMON_LIB := $(LIB)/libstrata-common.a
LIBS_OUT   += $(COMMON_LIB)
$(COMMON_LIB): $(COMMON_SRC:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
