# common/: error codes, logging, timestamps, durations, small helpers shared by every module.
COMMON_SRC := $(wildcard common/*.c)
COMMON_LIB := $(LIB)/libstrata-common.a
LIBS_OUT   += $(COMMON_LIB)
$(COMMON_LIB): $(COMMON_SRC:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# The build's git commit for --version: rewritten only when it differs from the last build's.
ST_BUILD_H := $(B)/gen/st_build.h
$(ST_BUILD_H): FORCE
	@mkdir -p $(dir $@)
	@c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
	   { git diff --quiet HEAD -- 2>/dev/null || c="$$c-dirty"; } || c=unknown; \
	 printf '#define ST_BUILD_COMMIT "%s"\n' "$$c" > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
$(B)/common/st_version.o $(B)/pic/common/st_version.o: $(ST_BUILD_H)
FORCE:
.PHONY: FORCE
