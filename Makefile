# reelcdn: `make run` starts a local cluster, `make test` runs every test.
# Both install and build what they need first.
SHELL := /bin/bash
NODE_MODULES_STAMP := node_modules/.install-stamp

.PHONY: all install build run test bench clean

all: build

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	npx tap build
	@touch $@

install: $(NODE_MODULES_STAMP)

build: install
	npx tsc -p tsconfig.json

run: build
	node dist/cli.js origin --data-dir ./var/origin-1

test: build
	npx tap

bench: build
	node dist/bench/run.js

clean:
	rm -rf dist .tap
