# Fuzz targets (clang libFuzzer + ASan/UBSan), built in build-fuzz/ and run for FUZZ_SECONDS
# each by `make fuzz`. Seeds live in tests/fuzz/corpus/NAME/; the growing corpus stays in
# build-fuzz/corpus/NAME/ (not committed).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CC      := clang
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=c11 -D_GNU_SOURCE -I. -I$(B)/gen $(PKG_CFLAGS)
FUZZ_SRC     := $(COMMON_SRC) $(STORE_SRC) $(REPL_SRC) server/srv_resp_proto.c server/srv_buf.c \
                fuse/fs_journal.c

build-fuzz/%: tests/fuzz/%.c $(FUZZ_SRC) | $(ST_BUILD_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC) $(PKG_LIBS) -lpthread -lm -lstdc++

fuzz: $(FUZZ_TARGETS:%=build-fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t tests/fuzz/corpus/$$t; \
	  echo "== $$t ($(FUZZ_SECONDS)s)"; \
	  build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
	    build-fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

.PHONY: fuzz
