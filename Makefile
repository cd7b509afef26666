# defectd — two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-defectd
EXTRAS ?= dev,train
DEMO   ?= out/demo

.PHONY: install demo model model-neu-seg test lint bench wheel-check clean

# One install for everything: the package (editable) with its test and training extras.
# torch is pinned in pyproject.toml so pip takes the local CPU wheel on CPU machines.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# The daemon on a simulated line, in one command: 2 synthetic cameras at 5 frames/s for 25 s
# → `defectd run` (bundled model, ONNX Runtime on the CPU) → a subscriber; prints the summary
# with the Kaggle mean Dice against the simulator's truth. Then draw what the model finds on
# three defective frames of a small synthetic line. Under 2 minutes on 2 cores.
demo: install
	$(BIN)/defectd demo --out $(DEMO) --cameras 2 --fps 5 --seconds 25 --seed 7 \
		--json $(DEMO)/summary.json
	$(BIN)/defectd synth --out $(DEMO)/line --count 12 --seed 7 --force
	$(BIN)/defectd inspect --out $(DEMO)/inspect.png \
		$$(cut -d, -f1 $(DEMO)/line/train.csv | tail -n +2 | uniq | head -3 | \
		   sed 's|^|$(DEMO)/line/train_images/|')
	@echo "daemon log: $(DEMO)/daemon.log   summary: $(DEMO)/summary.json   what the model found: $(DEMO)/inspect.png"

# Rebuild the bundled model from nothing (about 2 h on 2 CPU cores): synthetic data with
# disjoint seeds (train 1001, tune 2002, test 3003, plus 1004: a training set where 20% of
# frames hold the rare class 2), train 16 epochs, continue to 24, fine-tune 8 epochs on the
# class-2-rich set, export, tune, evaluate. That is how models/default was made; its card
# lists the commands.
MODEL_DATA ?= out/data
MODEL_RUN  ?= runs/default-r18w025
model: install
	$(BIN)/defectd synth --out $(MODEL_DATA)/synth-train-1001 --count 4000 --seed 1001 --force
	$(BIN)/defectd synth --out $(MODEL_DATA)/synth-train2-1004 --count 3000 --seed 1004 \
		--class-share 2=0.2 --force
	$(BIN)/defectd synth --out $(MODEL_DATA)/synth-tune-2002 --count 600 --seed 2002 --force
	$(BIN)/defectd synth --out $(MODEL_DATA)/synth-test-3003 --count 1000 --seed 3003 --force
	$(BIN)/defectd train --data $(MODEL_DATA)/synth-train-1001 --out $(MODEL_RUN) \
		--encoder resnet18 --encoder-width 0.25 --decoder-channels 64 --epochs 16 \
		--steps-per-epoch 250 --batch-size 8 --crop 256x512 --val-split 0.1 --lr 2e-3 \
		--seed 1 --workers 1 --resume
	$(BIN)/defectd train --data $(MODEL_DATA)/synth-train-1001 --out $(MODEL_RUN) \
		--epochs 24 --workers 1 --resume
	$(BIN)/defectd train --data $(MODEL_DATA)/synth-train2-1004 --out $(MODEL_RUN)-ft2 \
		--init-from $(MODEL_RUN) --epochs 8 --steps-per-epoch 250 --batch-size 8 \
		--crop 256x512 --val-split 0.1 --lr 5e-4 --seed 4 --workers 1 --no-progress
	$(BIN)/defectd export --checkpoint $(MODEL_RUN)-ft2 --out models/default --force \
		--name defectd-default --version 1.1.0
	$(BIN)/defectd tune --model models/default --data $(MODEL_DATA)/synth-tune-2002
	$(BIN)/defectd evaluate --model models/default --data $(MODEL_DATA)/synth-test-3003
	$(BIN)/defectd bench model
	$(BIN)/defectd bench postprocess

# mypy cannot follow the import hook of an editable install, so it reads the package
# through a view: .venv/typecheck/defectd/<part> -> the checkout's folder.
TYPECHECK := $(VENV)/typecheck
# A model of real hot-rolled strip from NEU-Seg (../shared/neu-seg: 3,630 labelled 200×200
# images; its official test set is kept apart): softmax head over 3 classes + background,
# validation split of 15% with duplicates on one side. About 35 minutes on 2 CPU cores
# (32 epochs of 120 steps, ~1 min each); --resume continues an interrupted run.
NEU_SEG    ?= ../shared/neu-seg
NEU_RUN    ?= runs/neu-seg-r18w05
model-neu-seg: install
	$(BIN)/defectd dataset check $(NEU_SEG) --spec training/specs/neu-seg.yaml --no-progress
	$(BIN)/defectd train --data $(NEU_SEG) --spec training/specs/neu-seg.yaml --out $(NEU_RUN) \
		--encoder resnet18 --encoder-width 0.5 --decoder-channels 128 --crop 192x192 \
		--batch-size 8 --epochs 32 --steps-per-epoch 120 --val-split 0.15 --lr 2e-3 --seed 1 \
		--workers 1 --device cpu --no-progress --resume
	$(BIN)/defectd export --checkpoint $(NEU_RUN) --out models/neu-seg --force \
		--name defectd-neu-seg --version 0.1.0
	$(BIN)/defectd bench engine --model models/neu-seg --backend onnxruntime --batch 1,4 \
		--seconds 5 --threads 2

lint: install
	$(BIN)/ruff check daemon engines training models tests deploy
	$(BIN)/ruff format --check daemon engines training models tests deploy
	mkdir -p $(TYPECHECK)/defectd
	for part in daemon engines training models; do ln -sfn $(CURDIR)/$$part $(TYPECHECK)/defectd/$$part; done
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest

# The wheel as an inspection PC installs it (no extras, no torch) in a clean venv outside the
# checkout: site-packages holds defectd alone; predict, run and a short demo work from it;
# the test suite passes against it (torch tests skip). About 5 minutes on 2 cores.
wheel-check: install
	bash .ci/wheel-check $(BIN)/python

bench: install
	$(BIN)/defectd bench micro $(if $(wildcard ../shared/severstal/train.csv),--labels ../shared/severstal/train.csv)

clean:
	rm -rf $(VENV) out build .pytest_cache .mypy_cache .ruff_cache .hypothesis
