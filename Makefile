# The two commands a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest docs bench soak mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict signalwire_calls tests

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

# The documentation site (mkdocs.yml), into build/site; strict: a warning (a broken link,
# a reference to a name that does not exist) fails the build. The test suite builds it too.
# Preview while writing: .venv/bin/mkdocs serve
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py --flows 1000 --minutes 5

# Mutation testing with mutmut (its settings: [tool.mutmut] in pyproject.toml; how to read
# the result: docs/mutation.md). MUTATE lists the files whose mutants are run and scored:
# add a file here, and its tests to mutmut's test selection in pyproject.toml.
MUTATE := signalwire_calls/_core.py signalwire_calls/receiver.py signalwire_calls/_signing.py
MUTATION_MIN := 85

mutation: $(STAMP)
	rm -f mutants/mutmut-stats.json  # mutmut may keep a stale map of which test reaches what
	$(BIN)/mutmut run $(foreach f,$(MUTATE),'$(subst /,.,$(f:.py=)).*')
	$(BIN)/python tools/mutation_score.py --min $(MUTATION_MIN) --survivors $(MUTATE)

clean:
	rm -rf $(VENV) build dist *.egg-info mutants
