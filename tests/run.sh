#!/usr/bin/env bash
# The test command: ruff (lint, format), then the whole suite under TensorFlow, then again under JAX for everything not
# marked tensorflow_only (layers, network, VGG, losses, training loop, ...), then the tests marked
# no_tensorflow in a second environment where TensorFlow is not installed at all (jax, keras, numpy,
# pillow, absl-py, h5py: what a lent GPU machine has), made on first use in .venv-notf.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# Lint and formatting first (settings in ruff.toml): a failure stops the run before the slow part.
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
KERAS_BACKEND=tensorflow "$PYTHON" -m pytest "$@"
# Tests marked no_tensorflow run under JAX in the TensorFlow-free environment below, not twice.
KERAS_BACKEND=jax "$PYTHON" -m pytest -m "not tensorflow_only and not no_tensorflow" "$@"

NOTF=${NOTF_VENV:-.venv-notf}
if [ ! -x "$NOTF/bin/python" ]; then
  "$PYTHON" -m venv "$NOTF"
  "$NOTF/bin/python" -m pip install -q --upgrade pip
  "$NOTF/bin/python" -m pip install -q jax keras numpy pillow absl-py h5py pytest
fi
"$NOTF/bin/python" -m pip install -q --no-deps -e .
if "$NOTF/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "$NOTF must not have TensorFlow installed" >&2
  exit 1
fi
KERAS_BACKEND=jax "$NOTF/bin/python" -m pytest -m no_tensorflow "$@"
