# dhn: the user's verbs. Each is a line or two that calls a tool; see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
ENV := . tools/env.sh &&
REQ_STAMP := $(VENV)/.stamp-$(shell sha256sum requirements.txt | cut -c1-12)

DATASET ?= cifar10
BITS ?= 48
VARIANT ?= dhn
# GPU=<id> picks the CUDA build (make setup CUDA=1) for everything env.sh sets up.
CUDA ?= $(if $(GPU),1,0)
export CUDA CUDA_ARCH
# TRAIN_ARGS, MODEL_ARGS, RUN_ARGS: each Make variable of a run's settings as its dhn.train option
# (LR=1e-3 -> --lr 1e-3), generated from dhn/options.py (make prototxt)
include tools/run_options.mk

.PHONY: setup system-deps venv caffe test demo train sweep features search gallery table-cpu weights data report keep bench prototxt gpu-bundle clean-caffe

setup: system-deps venv caffe
	@$(ENV) echo "dhn: ready. venv: $$DHN_VENV  caffe: $$CAFFE_ROOT  (wrapper: tools/caffe)"

system-deps:
	@bash tools/build/system_deps.sh

venv: $(REQ_STAMP)
$(REQ_STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.stamp-* && touch $@

# The cache entry is keyed by Caffe version, patches, Python and variant: a no-op when built.
# CUDA=1 [CUDA_ARCH=90] builds the GPU variant into its own entry.
caffe: venv
	@if [ -n "$$CAFFE_ROOT" ]; then echo "dhn: using CAFFE_ROOT=$$CAFFE_ROOT (no build)"; \
	 else PYTHON=$(CURDIR)/$(VENV)/bin/python bash tools/build/build_caffe.sh >/dev/null; fi

test:
	$(ENV) python -m pytest -q tests

# FORCE=1: retrain a demo run from scratch
demo:
	$(ENV) python -m dhn.demo $(if $(filter 1,$(FORCE)),--force)

# DATASET=cifar10 [SOURCE=tarball or folder] [DOWNLOAD=1]; DATASET=nuswide21 or flickr25k IMAGES=folder LIST=file
# [UNLABELED=drop|keep]; any: OUT= (default data/<dataset>/lmdb), SPLITS= (a folder of <split>.txt), WORKERS=
data:
	$(ENV) python -m dhn.convert $(DATASET) $(if $(SOURCE),--source $(SOURCE)) $(if $(filter 1,$(DOWNLOAD)),--download) \
	  $(if $(IMAGES),--images $(IMAGES)) $(if $(LIST),--list $(LIST)) $(if $(UNLABELED),--unlabeled $(UNLABELED)) \
	  $(if $(OUT),--out $(OUT)) $(if $(SPLITS),--splits $(SPLITS)) $(if $(WORKERS),--workers $(WORKERS))

train:
	$(ENV) python -m dhn.train --dataset $(DATASET) --bits $(BITS) --variant $(VARIANT) $(TRAIN_ARGS) $(MODEL_ARGS) $(RUN_ARGS)

sweep:
	$(ENV) python -m dhn.sweep --dataset $(DATASET) --bits $(BITS) $(TRAIN_ARGS) $(MODEL_ARGS)

features:
	$(ENV) python -m dhn.features --dataset $(DATASET) $(MODEL_ARGS)

# use a trained run: RUN=runs/NAME IMAGE="a.jpg b.png" [TOP=20] [RADIUS=2 | NPROBE=2]
search:
	$(ENV) python -m dhn.search --run $(RUN) $(IMAGE) $(if $(TOP),--top $(TOP)) $(if $(RADIUS),--radius $(RADIUS)) $(if $(NPROBE),--nprobe $(NPROBE))

gallery:
	$(ENV) python -m dhn.gallery --run $(RUN)

# the real-data table in the frozen-feature mode (BACKBONE= WEIGHTS= a pretrained Caffe model), or with
# UPPER=1 in the stored mode; BITS_LIST=48 SEEDS=1,2 VARIANTS=dhn,dhn-b: a part of it
table-cpu:
	$(ENV) python -m dhn.table --dataset $(DATASET) $(MODEL_ARGS) $(if $(ITERS),--iters $(ITERS)) $(if $(filter 1,$(SWEEP)),--sweep) \
	  $(if $(UPPER),--upper $(UPPER)) $(if $(BITS_LIST),--bits $(BITS_LIST)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(VARIANTS),--variants $(VARIANTS))

# MODEL=alexnet (default) or squeezenet (fetched and decoded); MIRROR=DIR_OR_URL: a folder or URL holding
# the source's files under their own names (a copy obtained elsewhere); OUT=: the caffemodel written
weights:
	$(ENV) python -m dhn.weights $(if $(MODEL),--model $(MODEL)) $(if $(MIRROR),--mirror $(MIRROR)) $(if $(OUT),--out $(OUT))

# runs/ and the kept results in results/ -> runs/report.md
report:
	$(ENV) python -m dhn.report

# copy finished runs' config.json and results*.json into results/ (committed): RUN="runs/NAME ..."
keep:
	$(ENV) python -m dhn.kept $(RUN)

bench:
	$(ENV) python -m dhn.bench

# no arguments: the canonical set per dataset; DATASET=/BITS=/VARIANT= (any of them): that
# combination into prototxt/extra/<dataset>/ (git-ignored)
prototxt:
	$(ENV) python -m dhn.options
	$(ENV) python -m dhn.netgen $(if $(filter command line,$(origin DATASET)),--dataset $(DATASET)) \
	  $(if $(filter command line,$(origin BITS)),--bits $(BITS)) $(if $(filter command line,$(origin VARIANT)),--variant $(VARIANT))

# what the lent GPU machine needs for tools/gpu/check.sh: .bundle/dhn-gpu.tar.xz
gpu-bundle: venv
	bash tools/gpu/make_bundle.sh

# the Caffe builds build_caffe.sh made (all variants), nothing else of the cache
clean-caffe:
	@bash tools/build/build_caffe.sh --clean
