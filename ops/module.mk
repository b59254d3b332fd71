# ops/: what `make install` puts beside the programs (man pages from ops/man/*.scd through
# scdoc, bash and zsh completions), and the deployment files (systemd units, example
# configs, Prometheus rules, Grafana dashboard) that tests/integ/ops_*.sh check.
MAN_SRC   := $(wildcard ops/man/*.scd)
MAN_PAGES := $(MAN_SRC:ops/man/%.scd=$(B)/man/%)

$(B)/man/%: ops/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@

man: $(MAN_PAGES)
all: $(MAN_PAGES)
.PHONY: man

# Called from the install recipe (Makefile).
define install-extra
install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8 \
  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions
install -m 644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(PREFIX)/share/man/man1/
install -m 644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(PREFIX)/share/man/man8/
install -m 644 ops/completions/strata.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/strata
for c in strata-admin stratad stratafs; do \
  ln -sf strata $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$c; done
install -m 644 ops/completions/_strata $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_strata
endef
