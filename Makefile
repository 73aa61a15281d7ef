# The commands of the README: `make demo`, `make test` (everything) and `make ci` (what CI runs). Each
# creates the pinned environment first (reused while requirements/lock.txt is unchanged; see scripts/install_env.sh).
SHELL := /bin/bash
CORES ?= all
VENV = $(shell bash scripts/install_env.sh)
SNAKEMAKE = $(VENV)/bin/snakemake

CONFIG ?= config/demo.yaml

.PHONY: env demo demo-data demo3d test ci unit lint bench clean-demo unlock

env:
	@echo "environment: $(VENV)"
	@echo "activate it with: source .venv/bin/activate"

demo-data:
	@$(VENV)/bin/python -m omnitrain.demo resources/demo > /dev/null
	@echo "demo data: resources/demo"

demo: demo-data
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo.yaml
	$(SNAKEMAKE) --configfile config/demo.yaml --report results/demo/report.html
	@echo "Every result is under a version id; results/demo/latest links to the current version:"
	@echo "  Validation report:  results/demo/latest/validation/inputs_summary.txt (table: inputs.tsv)"
	@echo "  Training set:       results/demo/latest/trainset/ (trainset/, provenance.tsv, preview.png)"
	@echo "  Held-out images:    results/demo/latest/heldout/"
	@echo "  Model:              results/demo/latest/model/ (models/, model_card.json, losses.tsv, loss_curve.png)"
	@echo "  Held-out scores:    results/demo/latest/evaluation/summary.tsv (per image: per_image.tsv)"
	@echo "  Version record:     results/demo/latest/record.json, changes.md, manifest.json"
	@echo "Registry of all versions: results/demo/registry.tsv"
	@echo "Report:             results/demo/report.html (open it in a browser)"
	@$(VENV)/bin/python -m omnitrain.evaluation results/demo/latest/evaluation

# The 3D demo: synthetic volumes of touching cells (resources/demo3d), a dim 3 model (config/demo3d.yaml).
demo3d:
	@$(VENV)/bin/python -m omnitrain.demo resources/demo3d --dim 3 > /dev/null
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo3d.yaml
	$(SNAKEMAKE) --configfile config/demo3d.yaml --report results/demo3d/report.html
	@$(VENV)/bin/python -m omnitrain.evaluation results/demo3d/latest/evaluation

# After snakemake itself was killed (kill -9, a crash): remove its stale lock, then run the same command again.
unlock:
	$(SNAKEMAKE) --unlock --configfile $(CONFIG)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile workflow/
	$(VENV)/bin/python -m omnitrain.demo resources/demo > /dev/null
	$(SNAKEMAKE) --lint --configfile config/demo.yaml
	$(VENV)/bin/python -m omnitrain.demo resources/demo3d --dim 3 > /dev/null
	$(SNAKEMAKE) --lint --configfile config/demo3d.yaml

# Tests by cost: tests/unit (no snakemake, no training: about a minute), tests/training (Omnipose trained
# through its API), tests/workflow (snakemake end to end; trained runs are shared, tests/conftest.py).
test: lint
	@start=$$(date +%s); $(VENV)/bin/python -m pytest -q --durations=15 tests; rc=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s of tests (the linters before them not counted)"; exit $$rc

# What CI runs: the linters and every test except those marked slow (the quality test stays in).
ci: lint
	@start=$$(date +%s); $(VENV)/bin/python -m pytest -q -m "not slow" --durations=15 tests; rc=$$?; \
	echo "make ci: $$(( $$(date +%s) - start )) s of tests (the linters before them not counted)"; exit $$rc

unit:
	$(VENV)/bin/python -m pytest -q tests/unit

bench:
	$(VENV)/bin/python benchmarks/bench_validation.py
	$(VENV)/bin/python benchmarks/bench_packing.py
	$(VENV)/bin/python benchmarks/bench_training.py
	$(VENV)/bin/python benchmarks/bench_metrics.py
	$(VENV)/bin/python benchmarks/bench_dryrun.py
	$(VENV)/bin/python benchmarks/bench_batches.py
	$(VENV)/bin/python benchmarks/bench_cpu_epochs.py
	$(VENV)/bin/python benchmarks/bench_monitor.py
	$(VENV)/bin/python benchmarks/bench_job_startup.py

clean-demo:
	rm -rf resources/demo results/demo resources/demo3d results/demo3d
