# Obsqra backend. `make run` starts the server with embedded defaults;
# `make test` runs the whole suite (SQLite always, PostgreSQL when it answers
# at TEST_DATABASE_URL, or must answer when REQUIRE_POSTGRES=1).

GO ?= go
BIN := bin/obsqra
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export TEST_DATABASE_URL

.PHONY: run build test generate lint bench bench-live bench-live-sse bench-replay bench-read backtest refit fuzz playground-assets docs-assets clean

run: build
	./$(BIN) serve

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/obsqra

# The full-data backtest is too slow under the race detector, so it runs in
# a second pass without it.
test:
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'SharedData' ./ml/ ./ml/mlcli/ ./aave/

# gqlgen through our plugin, which marshals lists in order instead of with a
# goroutine per element (see cmd/gqlgen-obsqra and graph/slice.go).
generate:
	$(GO) run ./cmd/gqlgen-obsqra

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Live delivery at scale: a server with the simulated market ticking every
# 5 s, and BENCH_CONNS subscribers to riskScoreUpdated held for
# BENCH_DURATION by BENCH_GENERATORS load generator processes, each reading
# its sockets on one thread (an epoll loop). BENCH_TRANSPORT says how they
# subscribe: ws, a WebSocket each (graphql-transport-ws); sse, one HTTP/1.1
# POST /graphql each with Accept: text/event-stream, answered with a chunked
# event stream (graphql-sse) that the generator parses itself, on a raw
# socket per subscriber (`make bench-live-sse`). A process may hold at most
# 20,000 open files here: one generator holds 15,000 sockets beside the
# server's 15,000 in its own process; more generators only take turns with
# the server on the two cores. Prints deliveries, drops, latency from
# commit (min/p50/p90/p99/max) and server memory per connection.
# BENCH_RESTART_AFTER into the window the server is restarted (SIGTERM, then
# the same binary on the same database and port, as a deploy does; 0: never):
# every WebSocket is closed with 1001, every event stream ends without its
# complete, and each reconnects at once, resuming after its last cursor.
# Prints how soon every connection is subscribed and live again (its first
# score committed after the drop received; target 15 s), the server's
# memory during the storm, and checks against the outbox that every
# connection received every score of the window once and in order.
BENCH_CONNS ?= 15000
BENCH_GENERATORS ?= 1
BENCH_DURATION ?= 5m
BENCH_RESTART_AFTER ?= 2m
BENCH_TRANSPORT ?= ws
# Every connection comes from 127.0.0.1: the per-address limits are set to
# hold them all (and, after the restart, a resumed subscription each), for
# event streams too. The cost budget of that one address is set too:
# 15,000 subscriptions (and as many resumed after the restart) cost far
# more than an address's default budget, and the bench measures delivery,
# not refusals.
BENCH_LIMITS ?= -server-env WS_MAX_CONNECTIONS_PER_ADDRESS=20000 -server-env LIVE_SUBSCRIPTIONS_PER_ADDRESS=20000 \
	-server-env LIVE_ADDRESS_BUFFER_BYTES=268435456 -server-env RATE_LIMIT_ANONYMOUS=1000000000000/1s
BENCH_FLAGS ?=
bench-live: build
	$(GO) build -o bin/benchlive ./cmd/benchlive
	./bin/benchlive -server $(BIN) -transport $(BENCH_TRANSPORT) -conns $(BENCH_CONNS) -generators $(BENCH_GENERATORS) \
		-duration $(BENCH_DURATION) -restart-after $(BENCH_RESTART_AFTER) $(BENCH_LIMITS) $(BENCH_FLAGS)

bench-live-sse:
	$(MAKE) bench-live BENCH_TRANSPORT=sse

# Replay storm: anonymous sockets, each with BENCH_REPLAY_SUBS
# metricsUpdated(after: the cursor of event 0) subscriptions replaying the
# outbox (500 days of simulated history: over 5,000 events), first
# BENCH_REPLAY_READING sockets whose clients read, then BENCH_REPLAY_NEVER
# sockets whose clients never read, each phase on a freshly started server
# for BENCH_REPLAY_PHASE; a live riskScoreUpdated observer measures everyone
# else's latency. Prints the server's memory growth, the observer's
# percentiles, the sockets the server closed and how, RATE_LIMITED errors,
# and PASS/FAIL against growth < 200 MiB and p99 < 500 ms (a measurement:
# it exits 0 either way). Every socket comes from 127.0.0.1, so the
# per-address limits are set explicitly in BENCH_REPLAY_LIMITS: sockets
# enough for every phase, and the default subscriptions per address (1000),
# which refuses most of the never-reading phase's 3,000 with RATE_LIMITED.
# BENCH_REPLAY_LIMITS='-server-env LIVE_SUBSCRIPTIONS_PER_ADDRESS=4000'
# measures the server holding all of them.
BENCH_REPLAY_READING ?= 4
BENCH_REPLAY_NEVER ?= 30
BENCH_REPLAY_SUBS ?= 100
BENCH_REPLAY_PHASE ?= 45s
BENCH_REPLAY_LIMITS ?= -server-env WS_MAX_CONNECTIONS_PER_ADDRESS=64 -server-env LIVE_SUBSCRIPTIONS_PER_ADDRESS=1000 \
	-server-env RATE_LIMIT_ANONYMOUS=1000000000000/1s
BENCH_REPLAY_FLAGS ?=
bench-replay: build
	$(GO) build -o bin/benchlive ./cmd/benchlive
	./bin/benchlive replay -server $(BIN) -reading-sockets $(BENCH_REPLAY_READING) -never-sockets $(BENCH_REPLAY_NEVER) \
		-subs $(BENCH_REPLAY_SUBS) -phase $(BENCH_REPLAY_PHASE) $(BENCH_REPLAY_LIMITS) $(BENCH_REPLAY_FLAGS)

# The signed-in read path of issue 21 (dashboard(windowDays: 7) with its
# protocols and pending suggestion, allocationHistory(first: 20),
# transactions(first: 20), and the three in one document) for a user with
# a year of history, on the current tree's build (bin/obsqra) and on
# BENCH_BASE's (bin/obsqra-base, built from `git archive` in a temporary
# directory), one server at a time on one fresh PostgreSQL database
# (created and dropped by the bench), alternating per shape and round.
# Prints requests per second and p50/p99 at 32 keep-alive connections per
# (shape, round, server) and new/base per shape; fails when any request
# does. BENCH_READ_FLAGS passes more (-duration 10s -rounds 3 -warm 3s
# -conns 32 -market-poll 1h -pg URL; -market-poll 5s has the market
# write during the measurement).
BENCH_BASE ?= c785e77
BENCH_READ_FLAGS ?=
bench-read: build
	$(GO) build -o bin/benchread ./cmd/benchread
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && git archive $(BENCH_BASE) | tar -x -C "$$tmp" && \
		cd "$$tmp" && $(GO) build -ldflags "-X main.version=$(BENCH_BASE)" -o "$(CURDIR)/bin/obsqra-base" ./cmd/obsqra
	./bin/benchread -base bin/obsqra-base -new $(BIN) $(BENCH_READ_FLAGS)

# Walk-forward forecast accuracy at 7 and 30 days (every 7th origin; over
# all series, then per network) and the strategy backtests on the real Aave
# V3 daily rates beside the checkout.
SHARED_DATA ?= ../shared/data/aave_v3_daily_rates_dev.csv
backtest: build
	./$(BIN) ml backtest --csv $(SHARED_DATA) --horizon 7 --every 7 --by-network
	./$(BIN) ml backtest --csv $(SHARED_DATA) --horizon 30 --every 7 --by-network
	./$(BIN) ml backtest --csv $(SHARED_DATA) --horizon 7 --every 7 --leave-one-network-out
	./$(BIN) ml backtest --csv $(SHARED_DATA) --horizon 30 --every 7 --leave-one-network-out
	./$(BIN) ml backtest --csv $(SHARED_DATA) --horizon 7 --every 7 --by-network --model '$(SERIES_MODEL)'
	./$(BIN) ml backtest --csv $(SHARED_DATA) --horizon 30 --every 7 --by-network --model '$(SERIES_MODEL)'
	./$(BIN) ml strategies --csv $(SHARED_DATA)

# The per-series method the global model replaced as the default, printed by
# `make backtest` beside it.
SERIES_MODEL = select(naive,median3,median7,median14)

# Refit the global forecasting model on the shared data and rewrite its
# committed parameters (ml/globalparams.go). The fit is deterministic; the
# SharedData test TestRefitSharedData fails when the committed file is not
# what this writes.
refit:
	$(GO) run ./cmd/obsqra ml fit --csv $(SHARED_DATA) --out ml/globalparams.go

# Re-vendor the GraphQL playground (GraphiQL, React) from the npm registry
# into server/playground/assets, licences included. The result is committed,
# so `make run` never needs the network.
playground-assets:
	./scripts/vendor-playground.sh

docs-assets:
	./scripts/vendor-docs.sh

# FuzzAPIInputs puts fuzzed values at every input position of the schema
# through the real handler, on SQLite and PostgreSQL (when it answers).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseFelt -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz FuzzAPIInputs -fuzztime $(FUZZTIME) ./resolvers/

clean:
	rm -rf bin
