#!/usr/bin/env bash
# The test command: ruff (lint, format), then the whole suite under TensorFlow, then again under JAX for everything not
# marked tensorflow_only (layers, network, VGG, losses, training loop, ...), then the tests marked
# no_tensorflow in a second environment where TensorFlow is not installed at all (jax, keras, numpy,
# pillow, absl-py, h5py: what a lent GPU machine has), made on first use in .venv-notf while the first pass runs.
# Each pass runs on PYTEST_WORKERS pytest-xdist workers (default 2, one per core here; 0 runs in one process), except
# the tests marked alone, which hold a time limit and run by themselves after the TensorFlow pass.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python writes each module's bytecode on its first import and every later process reads it. Environments that set
# PYTHONDONTWRITEBYTECODE (this project's machines do) made each test worker and each tool run as a subprocess compile
# TensorFlow's modules from source again (import tensorflow, keras: 8.8 s instead of 4.4 s), since the set-up installs
# with --no-compile (.ci/run, the TensorFlow-free environment below).
unset PYTHONDONTWRITEBYTECODE
PYTHON=${PYTHON:-python}
WORKERS=${PYTEST_WORKERS:-2}
XDIST=()
if [ "$WORKERS" != 0 ]; then
  if "$PYTHON" -c "import xdist" 2>/dev/null; then
    XDIST=(-n "$WORKERS" --dist worksteal)
  else
    echo "pytest-xdist is not installed (pip install -e '.[test]'): running in one process" >&2
    WORKERS=0
  fi
fi
# Lint and formatting first (settings in ruff.toml): a failure stops the run before the slow part.
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .

NOTF=${NOTF_VENV:-.venv-notf}
NOTF_SETUP=""
if [ ! -x "$NOTF/bin/python" ]; then
  # Installing from pip's cache is mostly waiting on the disk: done beside the TensorFlow pass; --no-compile leaves
  # Python to compile only the modules the pass imports (13 s -> 4 s of the cores the TensorFlow pass runs on).
  mkdir -p .pytest_cache
  (
    "$PYTHON" -m venv "$NOTF"
    "$NOTF/bin/python" -m pip install -q --upgrade pip
    "$NOTF/bin/python" -m pip install -q --no-compile jax keras numpy pillow absl-py h5py pytest pytest-xdist
  ) > .pytest_cache/notf-setup.log 2>&1 &
  NOTF_SETUP=$!
fi

# The TensorFlow-free pass below runs test_no_tensorflow where TensorFlow is really absent; the passes in this
# environment skip its simulation (one training run under JAX in a subprocess).
export CIN_STYLE_TF_FREE_PASS=1
KERAS_BACKEND=tensorflow "$PYTHON" -m pytest "${XDIST[@]}" -m "not alone" "$@"
# Tests with a time limit on 2 cores (the notebook's two minutes) run by themselves, not beside another worker's
# training; exit code 5 means the arguments selected none of them.
KERAS_BACKEND=tensorflow "$PYTHON" -m pytest -m alone "$@" || { status=$?; [ "$status" = 5 ] || exit "$status"; }
# Tests marked no_tensorflow run under JAX in the TensorFlow-free environment below, not twice.
KERAS_BACKEND=jax "$PYTHON" -m pytest "${XDIST[@]}" -m "not tensorflow_only and not no_tensorflow" "$@"

if [ -n "$NOTF_SETUP" ] && ! wait "$NOTF_SETUP"; then
  cat .pytest_cache/notf-setup.log >&2
  echo "could not set up $NOTF" >&2
  exit 1
fi
"$NOTF/bin/python" -m pip install -q --no-deps -e .
if [ "$WORKERS" != 0 ] && ! "$NOTF/bin/python" -c "import xdist" 2>/dev/null; then
  "$NOTF/bin/python" -m pip install -q pytest-xdist  # an environment made before the suite ran on workers
fi
if "$NOTF/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "$NOTF must not have TensorFlow installed" >&2
  exit 1
fi
KERAS_BACKEND=jax "$NOTF/bin/python" -m pytest "${XDIST[@]}" -m no_tensorflow "$@"
