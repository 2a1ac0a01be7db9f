"""Keras layers of the style transformer; they use `keras.ops` only."""

from cin_style.layers.conditional_instance_norm import ConditionalInstanceNormalization
from cin_style.layers.padding import CropToMatch, MirrorPadToMultiple
from cin_style.layers.reflection_conv import ReflectionConv2D
from cin_style.layers.residual_block import ResidualBlock

__all__ = [
    "ConditionalInstanceNormalization",
    "CropToMatch",
    "MirrorPadToMultiple",
    "ReflectionConv2D",
    "ResidualBlock",
]
