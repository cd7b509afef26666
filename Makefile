# defectd — two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-defectd
EXTRAS ?= dev,train
DEMO   ?= out/demo

.PHONY: install demo test lint bench clean

# One install for everything: the package (editable) with its test and training extras.
# torch is pinned in pyproject.toml so pip takes the local CPU wheel on CPU machines.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# Until the daemon lands: synthesise a small steel line, look at it, and score the
# "predict nothing" baseline against it (Kaggle's empty submission scored 0.8556).
demo: install
	$(BIN)/defectd synth --out $(DEMO)/line --count 60 --seed 7 --force \
		--preview $(DEMO)/preview.png
	printf 'ImageId,ClassId,EncodedPixels\n' > $(DEMO)/predict-nothing.csv
	$(BIN)/defectd score --truth $(DEMO)/line/train.csv --pred $(DEMO)/predict-nothing.csv
	@echo "contact sheet: $(DEMO)/preview.png"

lint: install
	$(BIN)/ruff check daemon engines training tests
	$(BIN)/ruff format --check daemon engines training tests
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/defectd bench $(if $(wildcard ../shared/severstal/train.csv),--labels ../shared/severstal/train.csv)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
