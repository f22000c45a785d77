# The two set-up commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install demo test bench

install:
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[test]"

demo: install
	adsearch run studies/quickstart.yaml --fresh

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) benchmarks/bench_vgg_digits.py
	$(PYTHON) benchmarks/bench_resnet.py
