import logging

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.tensorflow_only


def test_folder_pipeline_skips_and_counts_broken_files(photo_folder, caplog):
    from cin_style.tf_data import folder_dataset

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
    from cin_style.tf_data import folder_dataset

    first = next(folder_dataset(photo_folder, image_size=40, batch_size=3, seed=5).as_numpy_iterator())
    second = next(folder_dataset(photo_folder, image_size=40, batch_size=3, seed=5).as_numpy_iterator())
    np.testing.assert_array_equal(first, second)


def test_grey_images_become_three_equal_channels(tmp_path, shared_data):
    from cin_style.tf_data import folder_dataset

    photo = sorted((shared_data / "content" / "train").glob("*.jpg"))[0]
    Image.open(photo).convert("L").save(tmp_path / "grey.png")
    batch = next(folder_dataset(tmp_path, image_size=32, batch_size=1, seed=0).as_numpy_iterator())
    np.testing.assert_allclose(batch[..., 0], batch[..., 1], atol=1e-6)
    np.testing.assert_allclose(batch[..., 0], batch[..., 2], atol=1e-6)


# tfds' mock data cannot fake coco/2017 with its image left undecoded (it makes the
# "objects" sequences of unequal lengths); oxford_flowers102 has an image feature too.
MOCK_TFDS = "oxford_flowers102"


def test_tfds_pipeline_reads_the_image_feature(tmp_path):
    import tensorflow_datasets as tfds

    from cin_style.tf_data import content_dataset

    with tfds.testing.mock_data(num_examples=6):
        dataset = content_dataset(MOCK_TFDS, image_size=32, batch_size=2, seed=1, data_dir=str(tmp_path))
        batch = next(dataset.as_numpy_iterator())
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0 and batch.std() > 0.02


def test_tfds_stream_started_at_a_batch_continues_the_whole_stream(tmp_path):
    # What a resumed run reads: batches 3, 4, 5 of the stream, across an epoch boundary
    # (5 examples, batches of 2), with the same crops and the same style draws.
    import tensorflow_datasets as tfds

    from cin_style.tf_data import tfds_dataset, with_style_draws

    def stream(start_batch, count):
        batches = tfds_dataset(
            MOCK_TFDS, image_size=32, batch_size=2, seed=4, data_dir=str(tmp_path), start_batch=start_batch
        )
        return list(with_style_draws(batches, 2, seed=4, start_batch=start_batch).take(count).as_numpy_iterator())

    with tfds.testing.mock_data(num_examples=5):
        whole, later = stream(0, 6), stream(3, 3)
    for expected, got in zip(whole[3:], later):
        np.testing.assert_array_equal(got["images"], expected["images"])
        np.testing.assert_array_equal(got["style_draws"], expected["style_draws"])
    assert not np.array_equal(whole[0]["images"], whole[3]["images"])
    assert not np.array_equal(whole[0]["style_draws"], whole[3]["style_draws"])


def test_tfds_unknown_feature_lists_the_features(tmp_path):
    import tensorflow_datasets as tfds

    from cin_style.tf_data import ContentSourceError, tfds_dataset

    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ContentSourceError, match=r"has no feature 'picture'. Its features: \[.*'image'"):
            tfds_dataset(MOCK_TFDS, image_size=32, batch_size=1, image_key="picture", data_dir=str(tmp_path))


def test_unknown_content_source_is_neither_folder_nor_tfds_name():
    from cin_style.tf_data import ContentSourceError, content_dataset

    with pytest.raises(ContentSourceError, match="neither an existing folder nor a tensorflow-datasets name"):
        content_dataset("no_such_dataset_anywhere", image_size=32, batch_size=1)
    with pytest.raises(ContentSourceError, match="Content folder not found: './missing/photos'"):
        content_dataset("./missing/photos", image_size=32, batch_size=1)


def test_folder_without_readable_images_is_refused(tmp_path):
    from cin_style.tf_data import ContentSourceError, folder_dataset

    (tmp_path / "broken.jpg").write_bytes(b"xx")
    with pytest.raises(ContentSourceError, match="No readable images"):
        folder_dataset(tmp_path, image_size=32, batch_size=1)


@pytest.mark.parametrize("size", [16, 0, 31.5])
def test_too_small_image_size_is_refused(photo_folder, size):
    from cin_style.tf_data import folder_dataset

    with pytest.raises(ValueError, match=r"`image_size` must be an integer of at least 32 .*Received: image_size="):
        folder_dataset(photo_folder, image_size=size, batch_size=1)
