# Palaver: the commands a developer and CI run. `make help` lists them.

CARGO ?= cargo

.PHONY: help run test lint deps bench fmt

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Run Palaver on its embedded default (palaver up)
	$(CARGO) run -p palaver -- up

test: deps ## Run every test, installing what they need first (PostgreSQL and NATS from PALAVER_TEST_*_URL, else started locally)
	$(CARGO) nextest run --workspace --no-fail-fast

lint: ## Format check, clippy with warnings as errors, and no import cycles between modules
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/module_cycles.py

fmt: ## Format the code
	$(CARGO) fmt --all

deps: ## Install what the tests and helm-check need when it is missing (idempotent; make test runs it)
	bash scripts/deps.sh

bench: deps ## Run the benchmarks and print their figures (installs what they need first)
	$(CARGO) bench -p palaver-identity --bench identity
	$(CARGO) bench -p palaver-presence --bench presence
	$(CARGO) bench -p palaver-conversation --bench conversation
	$(CARGO) bench -p palaver-browser-tests --bench widget
	$(CARGO) bench -p palaver-e2e --bench websocket

.PHONY: helm-check
helm-check: ## Lint, render and validate helm/palaver and deploy/ (helm, kubernetes-validate, checkov)
	bash scripts/deps.sh helm
	bash helm/ci/check.sh
