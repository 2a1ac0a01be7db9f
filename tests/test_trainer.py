"""The training step under the current Keras backend (TensorFlow and JAX)."""

import keras
import numpy as np
import pytest

from cin_style import build_transformer
from cin_style.losses import PerceptualLoss
from cin_style.network import cin_layers
from cin_style.trainer import StyleTrainer

pytestmark = pytest.mark.no_tensorflow  # also runs where TensorFlow is not installed


@pytest.fixture(scope="module")
def perceptual(vgg_weights):
    return PerceptualLoss(vgg_weights=vgg_weights)


@pytest.fixture(scope="module")
def style_grams(perceptual, shared_data, load_image):
    names = ("van_gogh_starry_night", "hokusai_great_wave", "munch_the_scream")
    return perceptual.style_grams([load_image(shared_data / "styles" / f"{n}.jpg", 48) for n in names])


@pytest.fixture(scope="module")
def photos(shared_data, load_image):
    paths = sorted((shared_data / "content" / "train").glob("*.jpg"))[:4]
    return np.concatenate([load_image(p, 32) for p in paths])


def numpy_weights(weights):
    return [keras.ops.convert_to_numpy(w).copy() for w in weights]


def test_two_compiled_steps_give_finite_positive_loss_and_leave_vgg_alone(perceptual, style_grams, photos):
    keras.utils.set_random_seed(0)
    trainer = StyleTrainer(build_transformer(3, alpha=0.25), perceptual, style_grams, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    vgg_before = numpy_weights(perceptual.vgg.weights)
    transformer_before = numpy_weights(trainer.transformer.weights)
    history = trainer.fit(photos, batch_size=2, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert set(logs) == {"loss", "content_loss", "style_loss", "tv_loss"}
    assert np.isfinite(list(logs.values())).all()
    assert logs["loss"] > 0 and logs["style_loss"] > 0 and logs["content_loss"] > 0
    assert int(keras.ops.convert_to_numpy(trainer.optimizer.iterations)) == 2
    for before, after in zip(vgg_before, perceptual.vgg.weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))
    changed = [
        not np.array_equal(b, keras.ops.convert_to_numpy(a))
        for b, a in zip(transformer_before, trainer.transformer.weights)
    ]
    assert any(changed)


def test_styles_outside_train_styles_keep_their_rows_bit_for_bit(perceptual, style_grams, photos):
    keras.utils.set_random_seed(1)
    transformer = build_transformer(3, alpha=0.25)
    trainer = StyleTrainer(transformer, perceptual, style_grams, train_styles=[2], seed=1)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [
        (keras.ops.convert_to_numpy(c.gamma).copy(), keras.ops.convert_to_numpy(c.beta).copy())
        for c in cin_layers(transformer)
    ]
    trainer.fit(photos, batch_size=2, epochs=1, steps_per_epoch=2, verbose=0)
    for (gamma, beta), layer in zip(before, cin_layers(transformer)):
        new_gamma = keras.ops.convert_to_numpy(layer.gamma)
        np.testing.assert_array_equal(new_gamma[:2], gamma[:2])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.beta)[:2], beta[:2])
    assert any(
        not np.array_equal(keras.ops.convert_to_numpy(layer.gamma)[2], g[2])
        for (g, _), layer in zip(before, cin_layers(transformer))
    )


def test_each_example_gets_a_random_one_hot_style(perceptual, style_grams, photos):
    trainer = StyleTrainer(build_transformer(3, alpha=0.25), perceptual, style_grams, seed=4)
    picks = [keras.ops.convert_to_numpy(trainer(photos)["style_weights"]) for _ in range(6)]
    picks = np.concatenate(picks)
    assert np.array_equal(picks.sum(axis=1), np.ones(len(picks)))
    assert set(picks.argmax(axis=1)) == {0, 1, 2}


def test_bad_train_styles_and_gram_shapes_are_refused(perceptual, style_grams):
    with pytest.raises(ValueError, match=r"`train_styles` must be indices in \[0, 3\). Received: train_styles=\[3\]"):
        StyleTrainer(build_transformer(3, alpha=0.25), perceptual, style_grams, train_styles=[3])
    with pytest.raises(ValueError, match=r"Gram targets for block1_conv1 must have shape \(2, 64, 64\)"):
        StyleTrainer(build_transformer(2, alpha=0.25), perceptual, style_grams)


def test_style_draws_from_the_data_pick_the_styles(perceptual, style_grams, photos):
    trainer = StyleTrainer(build_transformer(3, alpha=0.25), perceptual, style_grams, train_styles=[0, 2], seed=0)
    images = np.asarray(photos[:4], "float32")
    draws = np.array([0.0, 0.49, 0.5, 0.999], "float32")  # floor(draw * 2) -> train_styles[0, 0, 1, 1]
    picks = keras.ops.convert_to_numpy(trainer({"images": images, "style_draws": draws})["style_weights"])
    np.testing.assert_array_equal(picks, np.eye(3, dtype="float32")[[0, 0, 2, 2]])
    again = keras.ops.convert_to_numpy(trainer({"images": images, "style_draws": draws})["style_weights"])
    np.testing.assert_array_equal(again, picks)  # no hidden random state when draws are given
