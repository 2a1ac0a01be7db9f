"""TensorBoard logging callbacks: the warning when they cannot run names what is missing."""

import logging
import sys

import pytest

from cin_style.callbacks import tensorboard_callbacks


@pytest.mark.parametrize(
    "absent, message",
    [
        (["tensorboard"], "TensorBoard is not installed: no TensorBoard logs (pip install tensorboard)"),
        (["tensorflow"], "TensorFlow is not installed: no TensorBoard logs (pip install tensorflow)"),
        (
            ["tensorflow", "tensorboard"],
            "TensorFlow and TensorBoard are not installed: no TensorBoard logs (pip install tensorflow tensorboard)",
        ),
    ],
)
def test_tensorboard_warning_names_exactly_what_is_missing(absent, message, tmp_path, monkeypatch, caplog):
    for module in absent:
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with caplog.at_level(logging.WARNING, logger="cin_style"):
        assert tensorboard_callbacks(str(tmp_path), 10) == (None, [])
    assert [record.getMessage() for record in caplog.records] == [message]
    assert not (tmp_path / "logs").exists()
