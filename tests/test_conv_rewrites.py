"""Convolutions rewritten wider (space-to-depth, upsampling folded in): the original's values, any shape."""

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


def _conv(x, kernel):
    import tensorflow as tf

    return tf.nn.conv2d(x, kernel, 1, "VALID").numpy()


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    side=st.sampled_from([1, 3, 5, 7, 9]),
    block=st.integers(2, 4),
    blocks=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    channels=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_conv_by_space_to_depth_gives_the_convolutions_values_for_any_kernel_block_and_size(
    side, block, blocks, channels, seed
):
    from cin_style.conv_rewrites import conv_by_space_to_depth

    rng = np.random.default_rng(seed)
    height, width = (block * count for count in blocks)
    padded = rng.normal(size=(2, height + side - 1, width + side - 1, channels[0])).astype("float32")
    kernel = rng.normal(size=(side, side, *channels)).astype("float32")
    got = conv_by_space_to_depth(padded, kernel, block).numpy()
    np.testing.assert_allclose(got, _conv(padded, kernel), atol=1e-4 * side * side * channels[0])


def test_conv_by_space_to_depth_runs_block_by_block_pixels_as_one_wider_convolution():
    from cin_style.conv_rewrites import conv_by_space_to_depth, space_to_depth_kernel

    kernel = np.arange(9 * 9 * 3 * 8, dtype="float32").reshape(9, 9, 3, 8)
    wide = space_to_depth_kernel(kernel, 2).numpy()
    assert wide.shape == (5, 5, 4 * 3, 4 * 8)  # 10x10 input pixels cover the 9x9 windows of 2x2 outputs
    # Input channels (r, c, in) and output channels (a, b, out), TensorFlow's order: output pixel (a, b) of a
    # block reads offset (r, c) of input block (t, s) as tap (2t + r - a, 2s + c - b).
    offset_0_1 = slice(3 * 1, 3 * 2)  # (r, c) = (0, 1)
    np.testing.assert_array_equal(wide[1, 2, offset_0_1, 0:8], kernel[2, 5])  # (a, b) = (0, 0)
    np.testing.assert_array_equal(wide[1, 2, offset_0_1, 24:32], kernel[1, 4])  # (a, b) = (1, 1)
    assert not wide[0, :, 0:6, 16:32].any()  # row offset 0 of the first block lies above output row 1's window
    with pytest.raises(ValueError, match="not a multiple of block=2"):
        conv_by_space_to_depth(np.zeros((1, 13, 12, 3), "float32"), kernel, 2)


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    channels=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_upsampled_conv_gives_nearest_upsampling_reflection_padding_and_3x3_convolutions_values(size, channels, seed):
    from cin_style.conv_rewrites import upsampled_conv

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *size, channels[0])).astype("float32")
    kernel = rng.normal(size=(3, 3, *channels)).astype("float32")
    upsampled = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    expected = _conv(np.pad(upsampled, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect"), kernel)
    np.testing.assert_allclose(upsampled_conv(x, kernel).numpy(), expected, atol=1e-4 * 9 * channels[0])


def test_upsampled_conv_takes_only_3x3_kernels():
    from cin_style.conv_rewrites import upsampled_conv

    with pytest.raises(ValueError, match="rewrites 3x3 kernels"):
        upsampled_conv(np.zeros((1, 4, 4, 2), "float32"), np.zeros((5, 5, 2, 2), "float32"))


def test_an_upsampling_left_to_the_next_layer_materializes_as_nearest_upsampling_bit_for_bit(rng):
    import keras

    from cin_style.conv_rewrites import Upsampled

    x = rng.random((2, 5, 7, 3), dtype=np.float32)
    expected = keras.ops.convert_to_numpy(keras.layers.UpSampling2D(2, interpolation="nearest")(x))
    np.testing.assert_array_equal(Upsampled(x).materialized().numpy(), expected)


@pytest.mark.parametrize("space_to_depth", [True, False])
def test_a_transformer_run_with_rewritten_layers_paints_as_the_model(rng, space_to_depth):
    import keras
    import tensorflow as tf
    from helpers import distinct_style_model

    from cin_style.conv_rewrites import rewritten_layers
    from cin_style.network import run_layers

    model = distinct_style_model()
    image = rng.random((2, 36, 44, 3), dtype=np.float32)
    weights = np.eye(3, dtype="float32")[[0, 2]]
    wrap = rewritten_layers(space_to_depth=lambda layer: space_to_depth and layer.kernel_size > 3)
    paint = tf.function(lambda image: run_layers(model, image, lambda level: weights, wrap=wrap))
    expected = model({"image": image, "style_weights": weights})
    np.testing.assert_allclose(paint(image).numpy(), keras.ops.convert_to_numpy(expected), atol=2e-5)
    graph = paint.get_concrete_function(tf.TensorSpec(image.shape)).graph
    filters = {tuple(op.inputs[1].shape) for op in graph.get_operations() if op.type == "Conv2D"}
    # Two upsamplings folded into their 3x3 convolutions (4x the outputs at the low size: alpha 0.25's 32 -> 16
    # and 16 -> 8); the 9x9 first and last layers 2x2 pixels at a time (5x5, 4x the channels) or whole.
    assert {(3, 3, 32, 64), (3, 3, 16, 32)} <= filters and not {(3, 3, 32, 16), (3, 3, 16, 8)} & filters
    nine = {(5, 5, 12, 32), (5, 5, 32, 12)} if space_to_depth else {(9, 9, 3, 8), (9, 9, 8, 3)}
    assert nine <= filters
    with pytest.raises(ValueError, match="x2 nearest upsampling expected"):
        rewritten_layers(space_to_depth=bool)(keras.layers.UpSampling2D(2, interpolation="bilinear"))


def test_an_upsampling_followed_by_anything_but_a_convolution_is_refused_by_name(rng):
    import keras

    from cin_style.conv_rewrites import rewritten_layers

    wrap = rewritten_layers(space_to_depth=bool)
    upsampled = wrap(keras.layers.UpSampling2D(2))(rng.random((1, 4, 4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="Cannot rewrite relu: an upsampling must be followed by a ReflectionConv2D"):
        wrap(keras.layers.Activation("relu", name="relu"))(upsampled)
