# The two set-up commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install data demo test bench

install:
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[test]"

# Fashion-MNIST's IDX files (studies/fashion_mnist.yaml) from Debian's package, into /usr/share/datasets
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "Fashion-MNIST is in /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null; then \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$sudo apt-get update -qq && $$sudo apt-get install -y dataset-fashion-mnist; \
	else echo "no apt-get here: download the four files of https://github.com/zalandoresearch/fashion-mnist" \
	  "into ~/data/fashion-mnist/ (or set data.root)"; exit 1; fi

demo: install
	adsearch run studies/quickstart.yaml --fresh

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) benchmarks/bench_vgg_digits.py
	$(PYTHON) benchmarks/bench_resnet.py
