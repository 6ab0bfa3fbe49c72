# `make demo` sets everything up and exports a clip end to end; `make test` runs the tests.
.PHONY: setup demo serve test test-all test-slow lint bench bench-transcode bench-api bench-archive bench-latency bench-load clean

setup:
	bash scripts/bootstrap.sh

demo: setup
	.venv/bin/python scripts/demo.py

serve: setup
	DEMO_SERVE=1 .venv/bin/python scripts/demo.py

test: setup
	bash scripts/run_tests.sh

test-slow: setup
	bash scripts/run_tests.sh -m slow

test-all: setup
	bash scripts/run_tests.sh -m ""

lint: setup
	.venv/bin/ruff format . && .venv/bin/ruff check --fix . && .venv/bin/mypy

bench: setup
	.venv/bin/python scripts/bench_export.py

bench-api: setup
	BOOTSTRAP_EXTRA_PACKAGES=wrk bash scripts/bootstrap.sh
	.venv/bin/python scripts/bench_api.py

bench-transcode: setup
	.venv/bin/python scripts/bench_transcode.py

bench-archive: setup
	.venv/bin/python scripts/bench_archive.py

bench-latency: setup
	.venv/bin/python scripts/bench_latency.py

bench-load: setup
	.venv/bin/python scripts/bench_load.py

clean:
	rm -rf .demo .bench .pytest_cache .ruff_cache .mypy_cache
