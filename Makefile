# The two commands of the README: `make demo` and `make test`. Both create the pinned environment
# first (reused while requirements/lock.txt is unchanged; see scripts/install_env.sh).
SHELL := /bin/bash
CORES ?= all
VENV = $(shell bash scripts/install_env.sh)
SNAKEMAKE = $(VENV)/bin/snakemake

.PHONY: env demo demo-data test lint bench clean-demo

env:
	@echo "environment: $(VENV)"
	@echo "activate it with: source .venv/bin/activate"

demo-data:
	@$(VENV)/bin/python -m omnitrain.demo resources/demo > /dev/null
	@echo "demo data: resources/demo"

demo: demo-data
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo.yaml
	$(SNAKEMAKE) --configfile config/demo.yaml --report results/demo/report.html
	@echo "Validation report:  results/demo/validation/inputs_summary.txt (table: inputs.tsv)"
	@echo "Training set:       results/demo/trainset/ (provenance: results/demo/preprocess/provenance.tsv)"
	@echo "Preview:            results/demo/preprocess/preview.png"
	@echo "Held-out images:    results/demo/heldout/"
	@echo "Model:              results/demo/model/ (model_card.json, losses.tsv, loss_curve.png, models/)"
	@echo "Held-out scores:    results/demo/evaluation/summary.tsv (per image: per_image.tsv; scores.json)"
	@echo "Report:             results/demo/report.html (open it in a browser)"

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile workflow/
	$(VENV)/bin/python -m omnitrain.demo resources/demo > /dev/null
	$(SNAKEMAKE) --lint --configfile config/demo.yaml

test: lint
	$(VENV)/bin/python -m pytest -q tests

bench:
	$(VENV)/bin/python tests/benchmarks/bench_validation.py
	$(VENV)/bin/python tests/benchmarks/bench_packing.py
	$(VENV)/bin/python tests/benchmarks/bench_training.py

clean-demo:
	rm -rf resources/demo results/demo
