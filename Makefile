# The two commands README.md starts with: `make up` and `make test`.
.PHONY: setup up test test-fast bench image

setup:
	./deploy/setup.sh

up: setup
	.venv/bin/sam3v up

test: setup
	.venv/bin/python -m pytest -q -rs -n auto --maxprocesses 4 --dist loadfile

test-fast: setup
	.venv/bin/python -m pytest -q -rs -n auto --maxprocesses 4 --dist loadfile -m "not slow"

# The Docker image sam3v:latest, from nothing (no registry needed): deploy/image.sh.
image:
	./deploy/image.sh
