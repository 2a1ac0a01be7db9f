#!/usr/bin/env bash
# The test command: the whole suite under TensorFlow, then again under JAX for
# everything not marked tensorflow_only (layers, network, VGG, losses, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
KERAS_BACKEND=tensorflow "$PYTHON" -m pytest "$@"
KERAS_BACKEND=jax "$PYTHON" -m pytest -m "not tensorflow_only" "$@"
