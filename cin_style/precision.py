"""Painting in bfloat16: the precisions a `Stylizer` paints in, and the painting functions of each.

On CPUs with AVX512-BF16 or AMX, TensorFlow's oneDNN convolutions in bfloat16
take about half their float32 time (the bundled default model at 1024 px on
two cores: 1.02 s against 1.87 s), at a mean difference of 0.0014 (a third of
a uint8 level) from the float32 painting; see docs/benchmarks.md.
"""

import warnings

#: What `Stylizer.load(precision=...)` accepts: "float32" (the exported model as it is) or "bfloat16".
PRECISIONS = ("float32", "bfloat16")
#: /proc/cpuinfo flags of the instructions that run bfloat16 multiply-adds natively.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(precision):
    """Raises ValueError naming the choices unless `precision` is one of `PRECISIONS`."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(PRECISIONS)}. Received: precision={precision!r}")


def cpu_runs_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU has AVX512-BF16 or AMX (`True`/`False`), or `None` where `cpuinfo` cannot be read."""
    try:
        with open(cpuinfo) as stream:
            flags = {word for line in stream if line.startswith("flags") for word in line.split(":", 1)[1].split()}
    except OSError:
        return None
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def check_backend(precision):
    """Raises ValueError unless `precision` can run under the current Keras backend (bfloat16: TensorFlow's)."""
    import keras

    if precision == "bfloat16" and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "precision='bfloat16' paints with TensorFlow's oneDNN kernels; under the "
            f"'{keras.backend.backend()}' backend it would be slower than float32 (set KERAS_BACKEND=tensorflow)"
        )


def _warn_if_emulated():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return
    if cpu_runs_bfloat16() is False:
        warnings.warn(
            "precision='bfloat16' on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there and paints "
            "slower than float32",
            stacklevel=3,
        )


def bfloat16_painters(model):
    """`(run, run_spatial)` painting with a bfloat16 copy of transformer `model` (`with_dtype_policy`).

    Each takes float32 images `(n, h, w, 3)` and weights (rows `(n, num_styles)`
    or maps `(n, h, w, num_styles)`) and returns new float32 arrays clipped to
    [0, 1], as the Stylizer's `run` functions do. Each is a `tf.function` traced
    once for any image size (eager ops would forgo Grappler's fused oneDNN
    kernels: 0.35 s against 0.23 s at 512 px), safe to call from several
    threads. TensorFlow backend only (`check_backend`).
    """
    import tensorflow as tf

    from cin_style.network import num_styles_of, spatial_transformer, with_dtype_policy  # Keras: not for --help

    _warn_if_emulated()
    low = with_dtype_policy(model, "mixed_bfloat16")
    num_styles = num_styles_of(model)

    def painter(network, weights_shape):
        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec(weights_shape, tf.float32)]
        )
        def paint(images, weights):
            out = network({"image": images, "style_weights": weights}, training=False)
            return tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)

        return lambda images, weights: paint(images, weights).numpy()

    return painter(low, [None, num_styles]), painter(spatial_transformer(low), [None, None, None, num_styles])
