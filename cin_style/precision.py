"""How a `Stylizer` computes: its precision (float32 or bfloat16), XLA fusion, and the painting functions of each.

On CPUs with AVX512-BF16 or AMX, TensorFlow's oneDNN convolutions in bfloat16
take about half their float32 time (the bundled default model at 1024 px on
two cores, 2026-12-05: 1.02 s against 1.87 s), at a mean difference of 0.0014 (a third of
a uint8 level) from the float32 painting. What remains is memory-bound work
between the convolutions, which `jit_compile=True` hands to XLA; see
`network_painters` and docs/benchmarks.md.
"""

import contextlib
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


def check_jit_compile(jit_compile):
    """Raises ValueError unless `jit_compile` is a bool that the current Keras backend can honour (TensorFlow's)."""
    import keras

    if not isinstance(jit_compile, bool):
        raise ValueError(f"`jit_compile` must be True or False. Received: jit_compile={jit_compile!r}")
    if jit_compile and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "jit_compile=True fuses TensorFlow graphs with XLA and needs the TensorFlow backend, not "
            f"'{keras.backend.backend()}' (set KERAS_BACKEND=tensorflow, or leave jit_compile False)"
        )


#: Op types that `jit_compile=True` leaves to TensorFlow's own kernels: oneDNN's convolutions and matrix
#: products run faster than XLA:CPU's (the whole network under `tf.function(jit_compile=True)` was slower than
#: without XLA); the memory-bound work between them is what XLA fuses.
NATIVE_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"})


def _fused_by_xla(node_def):
    return node_def.op not in NATIVE_OPS


def _narrowing(layer):
    """Whether `layer` (a `ReflectionConv2D`) is wider than 3x3 with fewer output than input channels: the last
    layer, 9x9 to RGB, which oneDNN runs in half the time in float32 as `conv_by_space_to_depth` (alone at 512 px:
    8 -> 3 channels 40 -> 20 ms, 32 -> 3 89 -> 47 ms; the first layer's 3 -> 8 or 32 gained nothing or lost, and
    in bfloat16 none did)."""
    return layer.kernel_size > 3 and layer.filters < layer.conv.kernel.shape[2]


def network_painters(model, precision="float32", jit_compile=False):
    """`(run, run_spatial)` painting with transformer `model` in `precision`, its elementwise work XLA-fused or not.

    Each takes float32 images `(n, h, w, 3)` and weights (rows `(n, num_styles)`
    or maps `(n, h, w, num_styles)`) and returns new float32 arrays clipped to
    [0, 1], as the Stylizer's `run` functions do. Each is a `tf.function` traced
    once for any image size (eager ops would forgo Grappler's fused oneDNN
    kernels: 0.35 s against 0.23 s at 512 px in bfloat16), safe to call from
    several threads. TensorFlow backend only (`check_backend`, `check_jit_compile`).

    Both run the network's layers through `conv_rewrites.rewritten_layers`:
    each upsampling folded into the 3x3 convolution after it, computed at the
    low resolution, and in float32 the 9x9 RGB layer two by two pixels at a
    time (`_narrowing`); the same values to float rounding, in 0.78-0.96x of
    the time of the Keras model called whole (bundled models, 512 and 1024
    px, measured side by side on this project's CPU).

    `precision="bfloat16"` paints with a copy whose convolutions compute in
    bfloat16 (`with_dtype_policy`). `jit_compile=True` marks every op but the
    convolutions and matrix products (`NATIVE_OPS`) for XLA, which fuses the
    instance statistics, normalisations, activations, paddings and pixel
    rearrangements (depth-to-space) between two convolutions into a few
    passes over memory instead of a dozen: the bundled models paint in
    0.6-0.9x of the time at 512 and 1024 px on
    this project's 2-core AMX Xeon, in either precision (docs/benchmarks.md).
    XLA compiles per input shape (image size and batch; each painter its
    own), which costs 3.4-5.4 s here (TensorFlow's lazy compilation: the first
    shape on its first call, a later one on its second call, and none for a
    part that has met many shapes with few calls each), so it pays where many
    paintings share a shape: video frames, one camera's photos, a service that
    resizes to a few sizes.
    """
    import tensorflow as tf

    from cin_style.conv_rewrites import rewritten_layers  # TensorFlow and Keras: not for --help
    from cin_style.network import num_styles_of, run_layers, style_map_levels, with_dtype_policy

    check_precision(precision)
    check_backend(precision)
    check_jit_compile(jit_compile)
    if precision == "bfloat16":
        _warn_if_emulated()
        model = with_dtype_policy(model, "mixed_bfloat16")
    num_styles = num_styles_of(model)

    def scope():  # ops made within it are marked for XLA, the convolutions and matrix products excepted
        if not jit_compile:
            return contextlib.nullcontext()
        return tf.xla.experimental.jit_scope(compile_ops=_fused_by_xla, separate_compiled_gradients=False)

    wrap = rewritten_layers(space_to_depth=_narrowing if precision == "float32" else lambda layer: False)

    def painter(weights_at, weights_shape):
        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec(weights_shape, tf.float32)]
        )
        def paint(images, weights):
            with scope():
                out = run_layers(model, images, weights_at(weights), wrap=wrap)
                return tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)

        def run(images, weights):
            return paint(images, weights).numpy()

        run.tf_function = paint  # its graph shows what XLA is handed
        return run

    rows = painter(lambda weights: lambda level: weights, [None, num_styles])
    return rows, painter(style_map_levels, [None, None, None, num_styles])
