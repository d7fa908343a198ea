# The two commands README.md starts with: `make up` and `make test`.
.PHONY: setup up test test-fast test-docker bench image

setup:
	./deploy/setup.sh

up: setup
	.venv/bin/sam3v up

# The compose test (marker docker) runs in `make test-docker`: its cold image build alone
# takes ~11 minutes here, which would push CI towards an hour.
test: setup
	.venv/bin/python -m pytest -q -rs -n auto --maxprocesses 4 --dist loadfile -m "not docker"

test-fast: setup
	.venv/bin/python -m pytest -q -rs -n auto --maxprocesses 4 --dist loadfile -m "not slow"

test-docker: setup
	CI=true .venv/bin/python -m pytest -q -rs -m docker

# The Docker image sam3v:latest, from nothing (no registry needed): deploy/image.sh.
image:
	./deploy/image.sh
