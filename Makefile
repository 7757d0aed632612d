# reelcdn: `make run` starts a local cluster, `make test` runs every test.
# Both install and build what they need first.
SHELL := /bin/bash
NODE_MODULES_STAMP := node_modules/.install-stamp

.PHONY: all install build run test bench bench-policies bench-transcode bench-abr-hit clean

all: build

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	npx tap build
	@touch $@

install: $(NODE_MODULES_STAMP)

build: install native
	npx tsc -p tsconfig.json

# Node-API addons (native/*.c, each loaded by one module in lib/; native/*.h what they share): no node-gyp, only the C compiler `npm ci` already
# needs (it builds SQLite) and the headers that ship with Node. crc32c (lib/integrity/crc32c.ts): without it
# @node-rs/crc32, 4x slower. splice (lib/net/zero-copy.ts): without it RAM hits are copied into sockets. A build
# without a compiler goes on with those fallbacks; the addons' tests then fail, so a machine that should have them
# cannot lose them quietly.
# `make native NATIVE_REQUIRED=1` fails instead (images, packages).
NODE_INCLUDE := $(shell node -p "require('path').resolve(process.execPath, '../../include/node')")
ADDONS := $(patsubst native/%.c,dist/native/%.node,$(wildcard native/*.c))
.PHONY: native
native: $(ADDONS)

dist/native/%.node: native/%.c $(wildcard native/*.h)
	@mkdir -p dist/native
	$(CC) -O2 -fPIC -shared -Wall -Wextra -Werror -I$(NODE_INCLUDE) -o $@ $< || \
	  { rm -f $@; echo "$< did not build (no C compiler or no Node headers in $(NODE_INCLUDE)): its fallback is used" >&2; \
	    [ -z "$(NATIVE_REQUIRED)" ]; }

# 3 shards (127.0.0.1:7101-7103, data in ./var/shard-N), the router (127.0.0.1:7000, state in ./var/router) and an
# edge (127.0.0.1:8080, cache in ./var/edge) in one process; Ctrl-C stops them all. Secrets are generated on the first
# run: the admin token into ./var/router-token, the shards' token into ./var/shard-token, the play-token keys into
# ./var/token-keys, the edge credential into ./var/edge-token, the edge's admin token into ./var/edge-admin-token.
# The effective config goes to ./var/cluster.json: pass it to other subcommands with --config.
# huge pages for chunk memory, as the units set them (lib/malloc-tunables.ts): glibc reads them only at start
run: build
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node dist/cli.js cluster --data-dir ./var

# after a failure, what failed is printed last (test/failures.ts), where a CI log's tail shows it
test: build
	rm -rf .tap/test-results && mkdir -p .tap
	set -o pipefail; npx tap | tee .tap/run.tap || { node dist/test/failures.js .tap/run.tap; exit 1; }

bench: build
	node dist/bench/run.js

clean:
	rm -rf dist .tap

# Cache policies (issue 8): byte hit ratio of each policy and MIN, simulated and on a running edge (~10 min)
bench-policies: build
	node dist/bench/rows/policies.js

# Transcoding (issue 15): a ladder per strategy (split, parallel, sequential) on the 1-minute sample and 60 s of 1080p;
# wall time, CPU per ffmpeg, realtime factor (~15 min on 2 cores). BENCH_LONG_SECONDS=180 for a longer source.
bench-transcode: build
	node dist/bench/rows/transcode.js

# ABR vs single-file viewers (issue 15): one catalog in both forms, an edge per form with the same cache (30 % of the
# single-file catalog), the same audience; byte hit ratio, offload, upstream bytes, QoE, CPU per process (~4 min)
bench-abr-hit: build
	node dist/bench/rows/abr-hit.js

# Dashboards and alerts (issue 18, deploy/): loads every Grafana dashboard's JSON, then a real Prometheus (Debian's
# `prometheus`, installed with apt when missing) scrapes a test cluster under load and evaluates every dashboard
# query and alert rule; promtool checks the rules (~30 s)
.PHONY: check-deploy
check-deploy: build
	npx tap dist/test/system/grafana-dashboards.test.js dist/test/system/prometheus-deploy.test.js
