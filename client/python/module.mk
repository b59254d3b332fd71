# client/python/: the `strata` Python package, a CPython extension (client/python/src/py_*.c)
# over libstrata and the embedded store, with the Pythonic layer in client/python/strata/.
# `make python` builds it in place (import it with PYTHONPATH=client/python); other build
# flavours (`make asan`) build it under $(B)/python. setup.py does the compiling, so `make`
# and `pip install --no-build-isolation ./client/python` build it the same way.
PY            := /usr/bin/python3
PY_EXT_SUFFIX := $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
PY_CORE_LIB   := $(LIB)/libstrata-py.a
PY_CORE_FLAGS := $(LIB)/libstrata-py.ldflags
PY_CORE_SRC   := $(STRATA_LIB_SRC) client/cli_embedded.c client/cli_remote.c $(STORE_SRC) \
                 $(COMMON_SRC)
PY_CORE_OBJ   := $(PY_CORE_SRC:%.c=$(B)/pic/%.o) $(B)/pic/gen/proto/strata.pb-c.o
PY_INPLACE    := $(filter build,$(B))
PY_DIR        := $(if $(PY_INPLACE),client/python,$(B)/python)
PY_SO         := $(PY_DIR)/strata/_core$(PY_EXT_SUFFIX)

# Everything the extension links, position-independent, in one archive.
$(PY_CORE_LIB): $(PY_CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^
$(PY_CORE_FLAGS): $(PY_CORE_LIB)
	echo '$(LDFLAGS) $(PKG_LIBS) -lpthread -lm -lstdc++' > $@

# --force: setuptools decides staleness from the extension's own sources only, so a changed
# archive would otherwise leave a stale (or unresolvable) _core behind.
$(PY_SO): $(PY_CORE_LIB) $(PY_CORE_FLAGS) client/python/setup.py \
          $(wildcard client/python/src/*.[ch] client/python/strata/*.py)
	cd client/python && STRATA_LIB_DIR=$(abspath $(LIB)) STRATA_CFLAGS='$(SAN) $(STRICT)' \
	  $(PY) setup.py -q $(if $(PY_INPLACE),build_ext --force --inplace --build-temp $(abspath $(B))/python-build,build --force --build-lib $(abspath $(PY_DIR)) \
	  --build-base $(abspath $(B))/python-build) >/dev/null
	touch $@

python: $(PY_SO)
# Built by `make` and `make test` (tests/integ/py_api.sh runs the pytest suite against it).
UNIT_TESTS += $(PY_SO)
.PHONY: python

python-clean:
	rm -rf client/python/strata/_core*.so client/python/build client/python/strata.egg-info
clean: python-clean
.PHONY: python-clean
