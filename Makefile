# segments: PGXS build.  `make && make install`, then see README.md.
MODULE_big = segments
EXTENSION  = segments
OBJS       = $(patsubst %.c,%.o,$(wildcard src/*.c))

# The install script is assembled from one file per concern.
DATA_built = sql/segments--0.1.0.sql
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))

# -Wno-sign-compare: PostgreSQL 15 headers (array.h) trip it under -Wextra.
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(EXTRA_CFLAGS)

REGRESS = $(basename $(notdir $(sort $(wildcard sql/[0-9][0-9]_*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=plpgsql

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: every object depends on every header.
$(OBJS): $(wildcard src/*.h)

sql/segments--0.1.0.sql: $(INSTALL_PARTS)
	cat $^ > $@

.PHONY: test demo bench pgtap
test:
	./scripts/test.sh
demo:
	./scripts/demo.sh
bench:
	./bench/run.sh
pgtap:
	pg_prove -d $(or $(PGDATABASE),postgres) test/*.sql
