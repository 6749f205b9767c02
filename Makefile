# Set-up and the main jobs. `make demo` and `make test` work on a fresh machine with only
# Python 3 and pip: both create .venv and install the package into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_output

.PHONY: install demo test clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Meta-trains an LSTM optimizer on 10-d quadratics with the default flags, evaluates it
# against tuned SGD/NAG/RMSprop/Adam on 100 fresh test problems and writes a report.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/python bin/l2l_train.py --save_path=$(DEMO)/optimizer
	$(BIN)/python bin/l2l_evaluate.py --path=$(DEMO)/optimizer --optimizer=all --output_dir=$(DEMO)/evaluation
	@echo
	@echo "Report: $(CURDIR)/$(DEMO)/evaluation/report.md (plot: $(CURDIR)/$(DEMO)/evaluation/loss_curves.png)"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
