# Both targets work on a fresh machine: they create .venv and install what they need.
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test reproduce audit lint clean

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	-$(PY) -m pip install --quiet --no-build-isolation deepspeed==0.19.8
	touch $@

demo: .venv/.installed
	$(PY) scripts/demo.py

test: .venv/.installed
	$(PY) -m pytest -q tests

reproduce: .venv/.installed
	$(PY) scripts/reproduce.py

audit: .venv/.installed
	$(PY) scripts/audit_benchmark.py out/mini-benchmark search=true

lint: .venv/.installed
	$(PY) -m ruff check biotalk scripts tests benchmarks *.py

clean:
	rm -rf runs out cache
