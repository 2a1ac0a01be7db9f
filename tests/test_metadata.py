"""The plain-JSON files beside models: styles.json of a training run."""

import json

import pytest

from cin_style.metadata import read_styles_file

pytestmark = pytest.mark.no_tensorflow


def test_styles_file_is_found_from_the_folder_or_the_model_file_and_checked(tmp_path):
    assert read_styles_file(tmp_path) is None  # older runs and bare .keras files have none
    written = {"style_names": ["a", "b"], "alpha": 0.3, "training": {"style_weight": 0.3}}
    (tmp_path / "styles.json").write_text(json.dumps(written))
    assert read_styles_file(tmp_path) == written
    assert read_styles_file(tmp_path / "model.keras") == written
    (tmp_path / "styles.json").write_text('{"alpha": 1.0}')
    with pytest.raises(ValueError, match="has no list of style names"):
        read_styles_file(tmp_path)
    (tmp_path / "styles.json").write_text('{"style_names": ["a"')
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        read_styles_file(tmp_path)
