# The two commands README.md starts with: `make up` and `make test`.
.PHONY: setup up test test-fast bench

setup:
	./deploy/setup.sh

up: setup
	.venv/bin/sam3v up

test: setup
	.venv/bin/python -m pytest -q -rs -n auto --maxprocesses 4 --dist loadfile

test-fast: setup
	.venv/bin/python -m pytest -q -rs -n auto --maxprocesses 4 --dist loadfile -m "not slow"
