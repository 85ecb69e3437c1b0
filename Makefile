# chat-service: one entry point for running, testing and measuring.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK := bash stack/stack.sh
STACK_HOST ?= 127.0.0.1
CASSANDRA_PORT ?= 9042
KAFKA_PORT ?= 9092
REDIS_PORT ?= 6379

# Where the e2e suite finds the stack (see e2e/src/stack.rs).
export E2E_CASSANDRA ?= $(STACK_HOST):$(CASSANDRA_PORT)
export E2E_REDIS_HOST ?= $(STACK_HOST)
export E2E_REDIS_PORT ?= $(REDIS_PORT)
export E2E_KAFKA ?= $(STACK_HOST):$(KAFKA_PORT)

# The environment that points the service at the local stack.
STACK_ENV := CASSANDRA_NODE_HOSTS=$(STACK_HOST):$(CASSANDRA_PORT) \
	CACHE_HOST=$(STACK_HOST) CACHE_PORT=$(REDIS_PORT) \
	KAFKA_BROKERS=$(STACK_HOST):$(KAFKA_PORT)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: run
run: web ## Run the service on the embedded in-memory backends (nothing is kept); the chat page is at http://localhost:3000/
	cargo run --release -p service --bin chat-service

.PHONY: run-stack run-stack-replicated
run-stack: stack-up web ## Run the service on the local Cassandra, Kafka and Redis
	$(STACK_ENV) cargo run --release -p service --bin chat-service
run-stack-replicated: stack-up-replicated web ## Run the service on the replicated stack (needs the service's Sentinel support)
	$(REPL_STACK_ENV) cargo run --release -p service --bin chat-service

# The chat page (web/): socket.io-client from the npm registry through
# web/package-lock.json, built into web/dist, which the service serves at /.
WEB_INPUTS := web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)

.PHONY: web
web: web/dist/index.html ## Install the chat page's npm dependencies (lock file) and build it into web/dist
web/dist/index.html: $(WEB_INPUTS)
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

.PHONY: browser
browser: ## Install Debian's Chromium and ChromeDriver for the e2e browser test
	$(STACK) browser

.PHONY: migrate
migrate: ## Apply the Cassandra schema (local stack unless CASSANDRA_NODE_HOSTS is set)
	CASSANDRA_NODE_HOSTS=$${CASSANDRA_NODE_HOSTS:-$(STACK_HOST):$(CASSANDRA_PORT)} \
		cargo run --release -p service --bin chat-service -- migrate

.PHONY: stack-up stack-down stack-status stack-logs
stack-up: ## Install, fetch and start Cassandra, Kafka and Redis on 127.0.0.1
	$(STACK) up
stack-down: ## Stop what stack-up started
	$(STACK) down
stack-status: ## Show the local stack
	$(STACK) status
stack-logs: ## Tail the local stack's logs
	$(STACK) logs

# The replicated topology (stack/README.md, "Replicated topology"): three
# Cassandra nodes, three Kafka nodes, Redis master + replica + three
# Sentinels, on 127.0.0.1-3, state in .stack-replicated. Its service
# environment is REPL_STACK_ENV.
REPL_STACK := STACK_TOPOLOGY=replicated bash stack/stack.sh
REPL_STACK_ENV := CASSANDRA_NODE_HOSTS=127.0.0.1:9042,127.0.0.2:9042,127.0.0.3:9042 \
	CASSANDRA_DATACENTER=datacenter1 \
	"CASSANDRA_REPLICATION={'class': 'NetworkTopologyStrategy', 'datacenter1': 3}" \
	CACHE_SENTINELS=127.0.0.1:26379,127.0.0.2:26379,127.0.0.3:26379 CACHE_SENTINEL_MASTER=chat \
	KAFKA_BROKERS=127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092 KAFKA_PUBLISH_TIMEOUT_MS=1400 \
	KAFKA_TOPIC_REPLICATION=3 KAFKA_SESSION_TIMEOUT_MS=3000

.PHONY: stack-up-replicated stack-down-replicated stack-status-replicated
stack-up-replicated: ## Start the replicated stack (3 Cassandra, 3 Kafka, Redis + replica + 3 Sentinels on 127.0.0.1-3)
	$(REPL_STACK) up
stack-down-replicated: ## Stop what stack-up-replicated started
	$(REPL_STACK) down
stack-status-replicated: ## Show the replicated stack, one line per node
	$(REPL_STACK) status
.PHONY: test-replicated
test-replicated: stack-up-replicated ## The fault tests of the replicated topology: one Cassandra node, the busy partition's Kafka leader, the Redis master SIGKILLed under traffic (~3 min, plus ~2 min to start the stack)
	cargo build --workspace --bins
	E2E_TOPOLOGY=replicated cargo test --workspace --no-fail-fast --test faults replicated:: -- --test-threads=1

# Docker (README, "Docker"): the engine, the images, the compose system.
.PHONY: docker-engine docker-engine-stop docker-images compose-smoke compose-smoke-replicated
docker-engine: ## Install Docker from apt if missing; start an engine (host network only) unless one answers
	bash docker/engine.sh start
docker-engine-stop: ## Stop the engine, if docker-engine started it
	bash docker/engine.sh stop
# SERVICE_PROFILE=debug packages the debug build instead (CI: the one its
# tests built, which saves a cold release build).
SERVICE_PROFILE ?= release
docker-images: web ## Build the chat-service/* images (base, Cassandra, Kafka, Redis, the service); unchanged ones are kept
	$(if $(filter debug,$(SERVICE_PROFILE)),cargo build --workspace --bins,cargo build --profile $(SERVICE_PROFILE) --locked -p service --bin chat-service)
	SERVICE_PROFILE=$(SERVICE_PROFILE) bash docker/images.sh
compose-smoke: docker-images ## docker-compose up on the host network, wait until healthy, chat through it, down -v (CHAT_HOST_ADDRESS moves it)
	bash docker/smoke.sh
# The replicated compose file: both instances chat, then a Kafka node and a
# Cassandra node are SIGKILLed and both chat again.
SMOKE_REPLICATED := SMOKE_COMPOSE_FILE=docker-compose.replicated.yml \
	COMPOSE_PROJECT_NAME=chat-service-smoke-replicated \
	SMOKE_URLS="http://127.0.0.1:3000 http://127.0.0.2:3000" SMOKE_KILL="kafka-2 cassandra-3" \
	bash docker/smoke.sh
compose-smoke-replicated: docker-images ## The same on docker-compose.replicated.yml (13 containers), then again with kafka-2 and cassandra-3 SIGKILLed
	$(SMOKE_REPLICATED)
.PHONY: test-docker
test-docker: docker-engine browser ## The e2e suite's stack tests and the fault tests on containers (testcontainers, E2E_STACK=docker), then the compose smoke tests (single and replicated)
	$(MAKE) docker-images SERVICE_PROFILE=debug
	# The in-memory half of the e2e suite has no containers to test, and
	# `make test` ran it.
	E2E_STACK=docker cargo test --workspace --no-fail-fast --test e2e --test faults -- --skip in_memory
	bash docker/smoke.sh
	$(SMOKE_REPLICATED)

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: lint stack-up web browser ## Lint, then every test of the workspace against the real stack, and the API fuzzer
	# The e2e suite spawns this binary; `cargo test` alone does not build it.
	cargo build --workspace --bins
	bash e2e/fuzz/run.sh
	cargo test --workspace --no-fail-fast

.PHONY: fuzz
fuzz: ## schemathesis (from PyPI) on every operation of docs/openapi.json against the in-memory service, fixed seed and budget (~30 s); fails on any 5xx or response that breaks the schema
	cargo build -p service --bin chat-service
	bash e2e/fuzz/run.sh

.PHONY: e2e
e2e: stack-up web browser ## The e2e suite with JUnit reports in target/nextest/ (installs cargo-nextest)
	@command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
	cargo build --workspace --bins
	E2E_RUN_ID=$${E2E_RUN_ID:-$$(date +%s)} bash -c '\
		cargo nextest run -p e2e --test e2e --profile default && \
		cargo nextest run -p e2e --test faults --profile faults'
	@echo "JUnit: $${CARGO_TARGET_DIR:-target}/nextest/default/e2e-junit.xml $${CARGO_TARGET_DIR:-target}/nextest/faults/faults-junit.xml"

# Load tests (see loadtest/README.md); LOAD_RATE, LOAD_DURATION, ... pass
# through the environment.
LOAD_HOST ?= http://127.0.0.1:3000
LOAD_USERS ?= 1000
LOAD_INCREASE_RATE ?= 100
LOAD_ARGS ?=

.PHONY: load load-stack
load: ## Load test a running service at LOAD_HOST (~2 min, 1000 chatters); exits 2 on any lost message
	cargo build --release -p loadtest
	ulimit -n 65535 2>/dev/null || ulimit -n $$(ulimit -Hn); \
		$${CARGO_TARGET_DIR:-target}/release/loadtest --host $(LOAD_HOST) -u $(LOAD_USERS) -r $(LOAD_INCREASE_RATE) $(LOAD_ARGS)

load-stack: ## Start a release service on the local stack, load test it (~2 min), stop it
	bash loadtest/run-stack.sh -u $(LOAD_USERS) -r $(LOAD_INCREASE_RATE) $(LOAD_ARGS)

# Its own defaults (2000 chatters, 1000 msg/s, 45 s): LOAD_USERS and the
# rest reach the script only when set in the environment or on the command line.
.PHONY: profile
profile: ## Flame graph of the service under load on the local stack (~1.5 min): reports/profile/<time>/flamegraph.svg (installs perf, inferno)
	@command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf; }
	@command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
	bash loadtest/profile.sh $(LOAD_ARGS)

.PHONY: socket-memory
socket-memory: ## Resident memory per idle socket (SOCKETS=2000; HEAPTRACK=1 adds the heap's stacks at its peak)
	bash loadtest/socket-memory.sh

# The capacity curve: 2,000 chatters by default; LOAD_CAPACITY_START,
# LOAD_CAPACITY_STEP, LOAD_CAPACITY_MAX, ... pass through the environment.
CAPACITY_USERS ?= 2000

.PHONY: capacity
capacity: ## Step the send rate up on the local stack until the service falls behind or fan-out p99 passes 50 ms; report the curve and the sustainable rate (exits 2 on any lost message)
	LOAD_CAPACITY=1 bash loadtest/run-stack.sh -u $(CAPACITY_USERS) -r $(LOAD_INCREASE_RATE) $(LOAD_ARGS)

.PHONY: chaos
chaos: ## Load two instances while each backend, then one instance, is SIGKILLed and restarted, and a third joins and leaves all along (~6 min); exits 2 on any lost or silent message
	bash loadtest/chaos.sh $(LOAD_ARGS)
