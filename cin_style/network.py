"""The feed-forward style transformer network of Dumoulin et al. (2017)."""

import contextlib
import math

import keras
import numpy as np
from keras import ops

from cin_style.checks import check_positive_integer
from cin_style.layers import (
    ConditionalInstanceNormalization,
    CropToMatch,
    MirrorPadToMultiple,
    ReflectionConv2D,
    ResidualBlock,
)
from cin_style.layers.conditional_instance_norm import new_style_rows

#: (filters, kernel size, stride) of the encoder convolutions at alpha=1.
ENCODER = ((32, 9, 1), (64, 3, 2), (128, 3, 2))
#: Residual blocks at the bottleneck, each at the last encoder width.
NUM_RESIDUAL_BLOCKS = 5
#: (filters, kernel size) of the convolutions after each ×2 nearest upsampling.
DECODER = ((64, 3), (32, 3))
#: Kernel size of the last convolution, to RGB.
OUTPUT_KERNEL = 9
#: Layers `with_dtype_policy` keeps in float32 under any policy: the output's normalisation and sigmoid, whose
#: values are the picture (bfloat16 would round them to 1/256 near white); elementwise, so nearly free.
FLOAT32_OUTPUT_LAYERS = ("output_cin", "output_sigmoid", "crop")


def scaled_width(filters, alpha):
    """Channel count `filters * alpha`, rounded, at least 1."""
    return max(1, int(round(filters * alpha)))


def _forward(image, weights_at, layer, num_styles, alpha, epsilon, output_norm):
    """Wires the transformer from `image`; `layer(name, make)` gives each layer, `weights_at(level)` the
    style weights for feature maps at 1/2**level of the padded image's size."""
    block = dict(num_styles=num_styles, epsilon=epsilon)

    def conv_cin(x, level, filters, kernel, strides, activation, name):
        x = layer(f"{name}_conv", lambda: ReflectionConv2D(filters, kernel, strides=strides, name=f"{name}_conv"))(x)
        norm = layer(f"{name}_cin", lambda: ConditionalInstanceNormalization(name=f"{name}_cin", **block))
        x = norm([x, weights_at(level)])
        return layer(f"{name}_{activation}", lambda: keras.layers.Activation(activation, name=f"{name}_{activation}"))(
            x
        )

    x = layer("pad", lambda: MirrorPadToMultiple(multiple=4, minimum=8, name="pad"))(image)
    level = 0
    for i, (filters, kernel, strides) in enumerate(ENCODER, start=1):
        level += strides // 2
        x = conv_cin(x, level, scaled_width(filters, alpha), kernel, strides, "relu", f"encoder{i}")
    bottleneck = scaled_width(ENCODER[-1][0], alpha)
    for i in range(1, NUM_RESIDUAL_BLOCKS + 1):
        make = lambda i=i: ResidualBlock(bottleneck, name=f"residual{i}", **block)
        x = layer(f"residual{i}", make)([x, weights_at(level)])
    for i, (filters, kernel) in enumerate(DECODER, start=1):
        x = layer(
            f"upsample{i}", lambda i=i: keras.layers.UpSampling2D(2, interpolation="nearest", name=f"upsample{i}")
        )(x)
        level -= 1
        x = conv_cin(x, level, scaled_width(filters, alpha), kernel, 1, "relu", f"decoder{i}")
    if output_norm:
        x = conv_cin(x, level, 3, OUTPUT_KERNEL, 1, "sigmoid", "output")
    else:
        x = layer("output_conv", lambda: ReflectionConv2D(3, OUTPUT_KERNEL, name="output_conv"))(x)
        x = layer("output_sigmoid", lambda: keras.layers.Activation("sigmoid", name="output_sigmoid"))(x)
    # float32 output also under a mixed-precision policy: images and losses want it.
    return layer("crop", lambda: CropToMatch(name="crop", dtype="float32"))([x, image])


def style_map_levels(style_map):
    """`weights_at` for a per-pixel map at image size: padded like the image, then averaged 2x2 and 4x4.

    The padded sides are multiples of 4, so each feature map's pixel gets the
    mean weight of the image pixels it covers; a constant map stays constant.
    """
    full = MirrorPadToMultiple(multiple=4, minimum=8, name="style_map_pad")(style_map)
    levels = [full]
    for level in range(1, 3):
        levels.append(keras.layers.AveragePooling2D(2**level, name=f"style_map_level{level}")(full))
    return lambda level: levels[level]


def build_transformer(num_styles, alpha=1.0, epsilon=1e-5, name="cin_transformer", output_norm=True, spatial=False):
    """Builds the multi-style transformer network as a Keras functional model.

    Reflection-padded convolutions 9×9/32, 3×3/2 64, 3×3/2 128; five residual
    blocks at 128; two nearest-neighbour ×2 upsamplings each followed by a 3×3
    convolution (64, then 32; no transposed convolution, hence no checkerboard
    artefacts, Odena et al. 2016); a 9×9 convolution to RGB and a sigmoid.
    Every convolution is followed by conditional instance normalisation, so one
    network holds `num_styles` styles. Images of any size work: they are
    mirror-padded to a multiple of 4 (at least 8) and cropped back.

    Args:
        num_styles: Number of styles; a positive integer.
        alpha: Width multiplier applied to every convolution (0.25 gives the
            slim model). Defaults to `1.0`.
        epsilon: CIN epsilon. Defaults to `1e-5`.
        name: Model name. Defaults to `"cin_transformer"`.
        output_norm: Normalise the last convolution (RGB) with CIN, as
            Dumoulin et al. do. `False`: the RGB convolution's output goes
            straight to the sigmoid (Johnson et al.), so an output's contrast
            is not pinned per style whatever the photo. Defaults to `True`.
        spatial: Take per-pixel style weights `(batch, h, w, num_styles)` at
            the image's size instead of one row per image: each CIN layer
            gets the map averaged to its own resolution, so regions of one
            image take different styles. `spatial_transformer(model)` gives
            this view of a trained model. Defaults to `False`.

    Returns:
        A `keras.Model` with inputs `{"image": (batch, h, w, 3) float32 in
        [0, 1], "style_weights": (batch, num_styles)}` (or `(batch, h, w,
        num_styles)` when `spatial`) and output the stylised image,
        `(batch, h, w, 3)` in [0, 1].

    Raises:
        ValueError: If `num_styles` is not a positive integer or `alpha` is
            not positive.

    Example:

    >>> model = build_transformer(num_styles=4, alpha=0.25)
    >>> out = model({"image": np.random.rand(1, 64, 64, 3).astype("float32"),
    ...              "style_weights": np.eye(4, dtype="float32")[[2]]})
    """
    check_positive_integer("num_styles", num_styles)
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"`alpha` must be a positive number. Received: alpha={alpha!r}")
    image, style_weights, weights_at = _inputs(num_styles, spatial)
    stylized = _forward(image, weights_at, lambda _, make: make(), num_styles, alpha, epsilon, output_norm)
    return keras.Model({"image": image, "style_weights": style_weights}, stylized, name=name)


def _inputs(num_styles, spatial):
    image = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
    if not spatial:
        style_weights = keras.Input(shape=(num_styles,), name="style_weights", dtype="float32")
        return image, style_weights, lambda level: style_weights
    style_weights = keras.Input(shape=(None, None, num_styles), name="style_weights", dtype="float32")
    return image, style_weights, style_map_levels(style_weights)


def spatial_transformer(model):
    """The same network as `model`, sharing its layers and weights, fed per-pixel style weights.

    The returned model takes `{"image": (b, h, w, 3), "style_weights":
    (b, h, w, num_styles)}` (a map at the image's size) and holds no weights
    of its own: training or loading `model` changes it too, and exporting
    both stores each weight once. A constant map gives `model`'s output for
    that row.
    """
    image, style_weights, weights_at = _inputs(num_styles_of(model), spatial=True)
    stylized = run_layers(model, image, weights_at)
    return keras.Model({"image": image, "style_weights": style_weights}, stylized, name=f"{model.name}_spatial")


def run_layers(model, image, weights_at, wrap=None):
    """Calls `model`'s own layers on `image` in the network's order: the one wiring `build_transformer` uses.

    Args:
        model: A transformer from `build_transformer`.
        image: What the first layer (the mirror padding) takes.
        weights_at: `weights_at(level)` gives the style weights for feature
            maps at 1/2**level of the padded image's size.
        wrap: `wrap(layer)` gives what is called in the layer's place (to run
            it another way, e.g. tile by tile); `None` calls the layers.

    Returns:
        What the last layer (the crop back to the image's size) returns.
    """
    cin = cin_layers(model)[0]
    wrap = wrap or (lambda layer: layer)
    return _forward(
        image,
        weights_at,
        lambda name, _: wrap(model.get_layer(name)),
        cin.num_styles,
        alpha_of(model),
        cin.epsilon,
        output_norm_of(model),
    )


def all_layers(model):
    """Every layer of `model` and, in order, the `sublayers` of those that have some (residual blocks, convolutions)."""
    found = []

    def visit(layer):
        found.append(layer)
        for child in getattr(layer, "sublayers", ()):
            visit(child)

    for layer in model.layers:
        visit(layer)
    return found


def cin_layers(model):
    """All `ConditionalInstanceNormalization` layers of `model`, nested ones too."""
    return [layer for layer in all_layers(model) if isinstance(layer, ConditionalInstanceNormalization)]


def alpha_of(model):
    """The width multiplier a transformer was built with, read back from its layer widths.

    Widths are rounded (`scaled_width`), so several alphas build the same
    network; this returns the one with the fewest decimals among them (0.3,
    not 10/32; the nearest to the widest layer's ratio on a tie), which
    always rebuilds exactly these widths.

    Raises:
        ValueError: If no alpha builds the model's widths (not a
            `build_transformer` model).
    """
    full = [filters for filters, _, _ in ENCODER] + [filters for filters, _ in DECODER]
    names = [f"encoder{i}_conv" for i in range(1, len(ENCODER) + 1)] + [
        f"decoder{i}_conv" for i in range(1, len(DECODER) + 1)
    ]
    widths = [model.get_layer(name).filters for name in names]

    def builds(alpha):
        return alpha > 0 and [scaled_width(f, alpha) for f in full] == widths

    # Every alpha that builds the widest layer lies in this interval (rounding half to even aside).
    widest = max(range(len(full)), key=lambda i: full[i])
    low, high = (widths[widest] - 0.5) / full[widest], (widths[widest] + 0.5) / full[widest]
    centre = widths[widest] / full[widest]
    for digits in range(1, 7):
        scale = 10**digits
        fits = [k / scale for k in range(math.floor(low * scale), math.ceil(high * scale) + 1) if builds(k / scale)]
        if fits:
            return min(fits, key=lambda alpha: abs(alpha - centre))
    raise ValueError(f"Model '{model.name}' has layer widths {widths} that no alpha builds")


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Builds layers under Keras' global dtype policy `name`, then restores the old one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_dtype_policy(model, policy):
    """A copy of transformer `model` whose layers compute under Keras dtype policy `policy`, with its weights.

    For painting faster in low precision: under `"mixed_bfloat16"` the
    convolutions run in bfloat16 (on CPUs with AVX512-BF16 or AMX, TensorFlow's
    oneDNN kernels take about half the float32 time), while the variables stay
    float32, each CIN layer computes its statistics in float32, and the layers
    in `FLOAT32_OUTPUT_LAYERS` stay float32.

    Args:
        model: A transformer from `build_transformer` (not the spatial view;
            `spatial_transformer` of the copy gives that).
        policy: A Keras dtype policy name, e.g. `"mixed_bfloat16"`.

    Returns:
        A new `keras.Model`, taking and giving what `model` does.
    """
    image, style_weights, weights_at = _inputs(num_styles_of(model), spatial=False)

    def layer(name, make):
        with dtype_policy_scope("float32" if name in FLOAT32_OUTPUT_LAYERS else policy):
            return make()

    cin = cin_layers(model)[0]
    stylized = _forward(image, weights_at, layer, cin.num_styles, alpha_of(model), cin.epsilon, output_norm_of(model))
    copy = keras.Model({"image": image, "style_weights": style_weights}, stylized, name=model.name)
    copy.set_weights(model.get_weights())
    return copy


def output_norm_of(model):
    """Whether a transformer normalises its RGB output with CIN (`build_transformer(output_norm=)`)."""
    return any(layer.name == "output_cin" for layer in model.layers)


def with_more_styles(model, count, init_from=None):
    """A copy of a transformer with `count` more styles; every old weight kept bit-for-bit.

    The new γ/β rows start as γ=1, β=0, as copies of style `init_from`, or
    as the mean of the old rows (`init_from="mean"`).

    Args:
        model: A model from `build_transformer`.
        count: Number of styles to add; a positive integer.
        init_from: `None`, a style index, `"mean"`, or a list of those, one
            per new style (see `new_style_rows`).

    Returns:
        A new model with `num_styles_of(model) + count` styles.
    """
    epsilon = cin_layers(model)[0].epsilon
    grown = build_transformer(
        num_styles_of(model) + count,
        alpha=alpha_of(model),
        epsilon=epsilon,
        name=model.name,
        output_norm=output_norm_of(model),
    )
    for old, new in zip(all_layers(model), all_layers(grown)):
        if isinstance(old, ConditionalInstanceNormalization):
            # The new layer is built at its size: no growing in place (Keras runs gc.collect() per
            # deleted variable, a quarter second each once TensorFlow is loaded).
            gamma, beta = (ops.convert_to_numpy(table) for table in (old.gamma, old.beta))
            new_gamma, new_beta = new_style_rows(gamma, beta, count, init_from)
            new.set_weights([np.concatenate([gamma, new_gamma]), np.concatenate([beta, new_beta])])
        elif isinstance(old, keras.layers.Conv2D):
            new.set_weights(old.get_weights())
    return grown


def num_styles_of(model):
    """Number of styles a transformer model holds, read from its CIN layers."""
    layers = cin_layers(model)
    if not layers:
        raise ValueError(f"Model '{model.name}' has no ConditionalInstanceNormalization layer.")
    return layers[0].num_styles
