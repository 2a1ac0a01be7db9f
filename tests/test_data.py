import logging
import shutil

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.tensorflow_only


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, shared_data):
    """Six real photos, one grey, one RGBA PNG, one WebP, one BMP in a subfolder, plus broken files."""
    folder = tmp_path_factory.mktemp("photos")
    train = sorted((shared_data / "content" / "train").glob("*.jpg"))[:6]
    for path in train[:3]:
        shutil.copy(path, folder / path.name)
    Image.open(train[3]).convert("L").save(folder / "grey.png")
    Image.open(train[4]).convert("RGBA").save(folder / "rgba.png")
    (folder / "nested").mkdir()
    Image.open(train[5]).save(folder / "nested" / "photo.webp")
    Image.open(train[5]).save(folder / "nested" / "photo.bmp")
    (folder / "corrupt.jpg").write_bytes(b"not a jpeg at all" * 50)
    data = train[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


def test_folder_pipeline_skips_and_counts_broken_files(photo_folder, caplog):
    from cin_style.data import folder_dataset

    with caplog.at_level(logging.WARNING, logger="cin_style"):
        dataset = folder_dataset(photo_folder, image_size=48, batch_size=4, seed=3)
    assert dataset.num_files == 7
    assert sorted(p.split("/")[-1] for p, _ in dataset.skipped_files) == ["corrupt.jpg", "empty.png", "truncated.jpg"]
    assert "Skipped 3 of 10 image files" in caplog.text and "corrupt.jpg" in caplog.text
    batches = [b for b in dataset.take(4).as_numpy_iterator()]
    for batch in batches:
        assert batch.shape == (4, 48, 48, 3) and batch.dtype == np.float32
        assert 0.0 <= batch.min() and batch.max() <= 1.0 and batch.std() > 0.02


def test_folder_pipeline_is_reproducible_with_a_seed(photo_folder):
    from cin_style.data import folder_dataset

    first = next(folder_dataset(photo_folder, image_size=40, batch_size=3, seed=5).as_numpy_iterator())
    second = next(folder_dataset(photo_folder, image_size=40, batch_size=3, seed=5).as_numpy_iterator())
    np.testing.assert_array_equal(first, second)


def test_grey_images_become_three_equal_channels(tmp_path, shared_data):
    from cin_style.data import folder_dataset

    photo = sorted((shared_data / "content" / "train").glob("*.jpg"))[0]
    Image.open(photo).convert("L").save(tmp_path / "grey.png")
    batch = next(folder_dataset(tmp_path, image_size=32, batch_size=1, seed=0).as_numpy_iterator())
    np.testing.assert_allclose(batch[..., 0], batch[..., 1], atol=1e-6)
    np.testing.assert_allclose(batch[..., 0], batch[..., 2], atol=1e-6)


def test_tfds_pipeline_reads_the_image_feature(tmp_path):
    import tensorflow_datasets as tfds

    from cin_style.data import content_dataset

    with tfds.testing.mock_data(num_examples=6):
        dataset = content_dataset("coco/2017", image_size=32, batch_size=2, seed=1, data_dir=str(tmp_path))
        batch = next(dataset.as_numpy_iterator())
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_tfds_unknown_feature_lists_the_features(tmp_path):
    import tensorflow_datasets as tfds

    from cin_style.data import ContentSourceError, tfds_dataset

    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ContentSourceError, match=r"has no feature 'picture'. Its features: \[.*'image'"):
            tfds_dataset("coco/2017", image_size=32, batch_size=1, image_key="picture", data_dir=str(tmp_path))


def test_unknown_content_source_is_neither_folder_nor_tfds_name():
    from cin_style.data import ContentSourceError, content_dataset

    with pytest.raises(ContentSourceError, match="neither an existing folder nor a tensorflow-datasets name"):
        content_dataset("no_such_dataset_anywhere", image_size=32, batch_size=1)
    with pytest.raises(ContentSourceError, match="Content folder not found: './missing/photos'"):
        content_dataset("./missing/photos", image_size=32, batch_size=1)


def test_folder_without_readable_images_is_refused(tmp_path):
    from cin_style.data import ContentSourceError, folder_dataset

    (tmp_path / "broken.jpg").write_bytes(b"xx")
    with pytest.raises(ContentSourceError, match="No readable images"):
        folder_dataset(tmp_path, image_size=32, batch_size=1)


@pytest.mark.parametrize("size", [16, 0, 31.5])
def test_too_small_image_size_is_refused(photo_folder, size):
    from cin_style.data import folder_dataset

    with pytest.raises(ValueError, match=r"`image_size` must be an integer of at least 32 .*Received: image_size="):
        folder_dataset(photo_folder, image_size=size, batch_size=1)


def test_style_images_are_named_by_file_stem_and_resized(shared_data):
    from cin_style.data import load_style_images

    styles = shared_data / "styles"
    names, images = load_style_images(
        [styles / "hokusai_great_wave.jpg", styles / "munch_the_scream.jpg"], image_size=64
    )
    assert names == ["hokusai_great_wave", "munch_the_scream"]
    assert all(min(image.shape[:2]) == 64 and image.shape[2] == 3 for image in images)


def test_style_folder_problems_are_named(tmp_path, shared_data):
    from cin_style.data import load_style_images
    from cin_style.image_io import ImageReadError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Style folder '.*empty' holds no images"):
        load_style_images(tmp_path / "empty")
    style = shared_data / "styles" / "hokusai_great_wave.jpg"
    with pytest.raises(ValueError, match=r"Style names must be unique; repeated: \['hokusai_great_wave'\]"):
        load_style_images([style, style])
    with pytest.raises(ImageReadError, match="Image file not found: '.*nope.jpg'"):
        load_style_images([tmp_path / "nope.jpg"])
