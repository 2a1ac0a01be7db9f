"""Learning-rate schedules: their values by step, serialisation, names."""

import keras
import numpy as np
import pytest

from cin_style.schedules import WarmupCosineDecay, learning_rate_for

pytestmark = pytest.mark.no_tensorflow


def rate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_cosine_warms_up_then_decays_to_one_percent_at_the_last_step():
    schedule = learning_rate_for("cosine", 1e-3, steps=1000, warmup_steps=100)
    assert rate(schedule, 0) == pytest.approx(1e-5)  # (0 + 1) / 100 of the peak
    assert rate(schedule, 49) == pytest.approx(5e-4)
    assert rate(schedule, 100) == pytest.approx(1e-3)
    assert rate(schedule, 550) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # half-way through the decay
    assert rate(schedule, 1000) == pytest.approx(1e-5)
    assert rate(schedule, 5000) == pytest.approx(1e-5)  # stays at the floor past the end
    steps = np.arange(100, 1001, 50)
    assert np.all(np.diff([rate(schedule, s) for s in steps]) < 0)


def test_cosine_holds_the_peak_until_decay_start():
    schedule = learning_rate_for("cosine", 2e-3, steps=1000, decay_start=600)
    assert rate(schedule, 0) == rate(schedule, 600) == pytest.approx(2e-3)
    assert rate(schedule, 800) == pytest.approx(2e-3 * (0.01 + 0.99 * 0.5))


def test_constant_is_a_float_or_a_warm_up_then_flat():
    assert learning_rate_for("constant", 1e-3, steps=100) == 1e-3
    schedule = learning_rate_for("constant", 1e-3, steps=100, warmup_steps=10)
    assert rate(schedule, 4) == pytest.approx(5e-4)
    assert rate(schedule, 10) == rate(schedule, 99) == rate(schedule, 100) == pytest.approx(1e-3)


def test_schedule_round_trips_through_keras_serialisation():
    schedule = WarmupCosineDecay(1e-3, decay_end=500, warmup_steps=20, decay_start=100, final_fraction=0.05)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupCosineDecay)
    for step in (0, 50, 300, 600):
        assert rate(restored, step) == pytest.approx(rate(schedule, step))


def test_bad_schedules_are_named():
    with pytest.raises(ValueError, match="`lr_schedule` must be one of constant, cosine. Received: lr_schedule='step'"):
        learning_rate_for("step", 1e-3, steps=10)
    with pytest.raises(ValueError, match="The decay must end after it starts"):
        WarmupCosineDecay(1e-3, decay_end=50, decay_start=50)
    with pytest.raises(ValueError, match="`peak` must be positive"):
        WarmupCosineDecay(0.0, decay_end=50)
