# posgw: `make demo` runs the end-to-end demo, `make test` runs every check.
.PHONY: bootstrap till services demo test lint typecheck pytest bench chaos fuzz clean

VENV := .venv/bin

bootstrap:
	@bash .ci/bootstrap

# A checkout terminal: what the daemon needs, and none of the test-only services (docs/operator-guide.md).
till:
	@bash .ci/bootstrap --till

services: bootstrap
	@bash .ci/services

demo: services
	$(VENV)/posgw-sim demo

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: bootstrap
	$(VENV)/mypy

pytest: services
	$(VENV)/pytest -n 3 --durations=15

test: lint typecheck pytest

bench: services
	$(VENV)/python -m bench

fuzz: bootstrap
	$(VENV)/python -m bench.fuzz

chaos: services
	$(VENV)/python -m bench.chaos --kills 1000 --network 300

clean:
	rm -rf .demo .mypy_cache .ruff_cache .pytest_cache .hypothesis .schemathesis bench/results
