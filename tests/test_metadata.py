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


def _metadata_file(tmp_path, **fields):
    data = {"format": 1, "style_names": ["a", "b"], "num_styles": 2, "alpha": 1.0, "max_pixels": 64, **fields}
    (tmp_path / "cin_style.json").write_text(json.dumps(data))
    return tmp_path / "cin_style.json"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"format": "1"}, "bad metadata format: a positive integer is expected. Received: '1'"),
        ({"format": True}, "bad metadata format"),
        ({"style_names": "a,b"}, "has no list of style names"),
        ({"style_names": ["a", ""]}, "has no list of style names"),
        ({"style_names": ["a", "b", "a"], "num_styles": 3}, r"names a style more than once: \['a'\]"),
        ({"num_styles": 3}, "names 2 styles but says num_styles=3"),
        ({"max_pixels": "64"}, "bad max_pixels: a positive integer is expected. Received: '64'"),
    ],
)
def test_metadata_fields_of_the_wrong_kind_are_refused_naming_them(tmp_path, fields, message):
    from cin_style.metadata import read_metadata

    with pytest.raises(ValueError, match=message):
        read_metadata(str(_metadata_file(tmp_path, **fields)))


def test_metadata_of_the_right_kind_reads_back_and_styles_files_refuse_repeated_names(tmp_path):
    from cin_style.metadata import read_metadata

    assert read_metadata(str(_metadata_file(tmp_path)))["style_names"] == ["a", "b"]
    assert read_metadata(str(_metadata_file(tmp_path, max_pixels=None)))["max_pixels"] is None  # older exports
    (tmp_path / "styles.json").write_text(json.dumps({"style_names": ["a", "a"]}))
    with pytest.raises(ValueError, match=r"names a style more than once: \['a'\]"):
        read_styles_file(tmp_path)


def test_training_config_keeps_the_last_name_of_relative_paths_too():
    from cin_style.metadata import portable_training_config

    config = {
        "teacher": "saved_models/cin_style_default",
        "init_weights": "runs/base/model.keras",
        "content": "data/content/train",
        "styles": ["art/udnie.jpg"],
    }
    assert portable_training_config(config) == {
        "teacher": "cin_style_default",
        "init_weights": "model.keras",
        "content": "train",
        "styles": ["udnie.jpg"],
    }
    for name in ("coco/2017", "coco/2017:1.1.0", "imagenet_v2"):  # tensorflow-datasets names are kept
        assert portable_training_config({"content": name})["content"] == name
