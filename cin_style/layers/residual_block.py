"""The residual block of the transformer, conditioned on style."""

import keras

from cin_style.layers.conditional_instance_norm import ConditionalInstanceNormalization
from cin_style.layers.reflection_conv import ReflectionConv2D


@keras.saving.register_keras_serializable(package="cin_style")
class ResidualBlock(keras.layers.Layer):
    """`x + CIN(conv(relu(CIN(conv(x)))))` with 3×3 reflection-padded convolutions.

    Both normalisations are conditional, so the block's contribution changes
    with the style (Dumoulin et al. 2017, after He et al. 2016).

    Args:
        filters: Channels of `x` and of both convolutions.
        num_styles: Rows of the CIN tables.
        kernel_size: Side of both kernels. Defaults to `3`.
        epsilon: CIN epsilon. Defaults to `1e-5`.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: `[x, style_weights]`, as for `ConditionalInstanceNormalization`.

    Output shape:
        Like `x`.
    """

    def __init__(self, filters, num_styles, kernel_size=3, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_styles = num_styles
        self.kernel_size = kernel_size
        self.epsilon = epsilon
        self.conv1 = ReflectionConv2D(filters, kernel_size, name="conv1")
        self.norm1 = ConditionalInstanceNormalization(num_styles, epsilon, name="norm1")
        self.conv2 = ReflectionConv2D(filters, kernel_size, name="conv2")
        self.norm2 = ConditionalInstanceNormalization(num_styles, epsilon, name="norm2")

    @property
    def sublayers(self):
        """The block's convolutions and CIN layers, in order (`network.all_layers` walks them)."""
        return [self.conv1, self.norm1, self.conv2, self.norm2]

    def build(self, input_shape):
        x_shape, weights_shape = input_shape
        if x_shape[-1] != self.filters:
            raise ValueError(
                f"ResidualBlock '{self.name}' has filters={self.filters} and adds its "
                f"input back, so x needs {self.filters} channels. Received: x.shape={tuple(x_shape)}"
            )
        self.conv1.build(x_shape)
        self.norm1.build([x_shape, weights_shape])
        self.conv2.build(x_shape)
        self.norm2.build([x_shape, weights_shape])

    def call(self, inputs):
        x, style_weights = inputs
        y = keras.activations.relu(self.norm1([self.conv1(x), style_weights]))
        y = self.norm2([self.conv2(y), style_weights])
        return x + y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "num_styles": self.num_styles,
            "kernel_size": self.kernel_size,
            "epsilon": self.epsilon,
        }
