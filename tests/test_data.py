"""The TensorFlow-free content pipeline (PhotoCrops) and style loading."""

import logging

import numpy as np
import pytest
from PIL import Image

from cin_style.data import ContentSourceError, photo_crops, read_photo

pytestmark = pytest.mark.no_tensorflow


def test_photo_crops_skip_and_count_broken_files(photo_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="cin_style"):
        crops = photo_crops(photo_folder, image_size=48, batch_size=4, seed=3)
    assert crops.num_files == 7
    assert sorted(p.split("/")[-1] for p, _ in crops.skipped_files) == ["corrupt.jpg", "empty.png", "truncated.jpg"]
    assert "Skipped 3 of 10 image files" in caplog.text and "corrupt.jpg" in caplog.text
    batch = crops[0]["images"]
    assert batch.shape == (4, 48, 48, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_batch_depends_only_on_seed_and_its_index(photo_folder):
    first = photo_crops(photo_folder, image_size=40, batch_size=3, seed=5)
    again = photo_crops(photo_folder, image_size=40, batch_size=3, seed=5)
    resumed = photo_crops(photo_folder, image_size=40, batch_size=3, seed=5)
    resumed.start_batch = 4  # a run resumed at step 4 sees what an uninterrupted run sees at step 4
    for a, b in ((first[0], again[0]), (first[4], resumed[0]), (first[5], resumed[1])):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["style_draws"], b["style_draws"])  # styles come with the data
    other = photo_crops(photo_folder, image_size=40, batch_size=3, seed=6)
    assert not np.array_equal(first[0]["images"], other[0]["images"])
    draws = first[0]["style_draws"]
    assert draws.shape == (3,) and draws.dtype == np.float32 and 0 <= draws.min() and draws.max() < 1
    assert not np.array_equal(draws, first[1]["style_draws"]) and not np.array_equal(draws, other[0]["style_draws"])


def test_each_pass_visits_every_photo_once_in_a_new_order(photo_folder):
    crops = photo_crops(photo_folder, image_size=32, batch_size=7, seed=0)
    first_pass, second_pass = crops.photo_indices(0), crops.photo_indices(1)
    assert sorted(first_pass) == sorted(second_pass) == list(range(7))
    assert first_pass != second_pass


def test_crops_are_windows_of_the_photo_at_training_scale(photo_folder):
    crops = photo_crops(photo_folder, image_size=40, batch_size=7, seed=2)
    batch = crops[0]["images"]
    for crop, index in zip(batch, crops.photo_indices(0)):
        photo = read_photo(crops.paths[index], 40)
        assert min(photo.shape[:2]) == 40
        crop = np.round(crop * 255).astype(np.uint8)
        windows = [photo[:, i : i + 40] for i in range(photo.shape[1] - 39)] + [
            photo[i : i + 40] for i in range(photo.shape[0] - 39)
        ]
        assert any(np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows)


def test_photos_decoded_per_batch_give_the_cached_crops(photo_folder):
    cached = photo_crops(photo_folder, image_size=40, batch_size=4, seed=1)
    streamed = photo_crops(photo_folder, image_size=40, batch_size=4, seed=1, cache_bytes=0)
    assert cached.cached and not streamed.cached
    np.testing.assert_array_equal(cached[3]["images"], streamed[3]["images"])


def test_the_photo_cache_counts_the_bytes_it_holds_and_decodes_the_rest_per_batch(tmp_path, shared_data):
    """Panoramas (10:1) take 6.7x the room of the 3:2 photos the cache once assumed: it stops at its limit."""
    photo = sorted((shared_data / "content" / "train").glob("*.jpg"))[0]
    with Image.open(photo) as image:
        wide = image.convert("RGB").resize((400, 40))
    for i in range(6):
        (wide if i % 2 else wide.transpose(Image.Transpose.ROTATE_180)).save(tmp_path / f"panorama{i}.png")
    one = 32 * 320 * 3  # a panorama at 32 px on its shorter side
    limit = 3 * one + one // 2
    crops = photo_crops(tmp_path, image_size=32, batch_size=4, seed=0, cache_bytes=limit)
    assert sum(p.nbytes for p in crops._photos if p is not None) <= limit  # what it holds, not what it says
    assert (crops.cached_photos, crops.cached_bytes, crops.cached) == (3, 3 * one, False)
    streamed = photo_crops(tmp_path, image_size=32, batch_size=4, seed=0, cache_bytes=0)
    assert (streamed.cached_photos, streamed.cached_bytes) == (0, 0)
    for index in range(3):  # the photos past the limit give the crops they would have given cached
        np.testing.assert_array_equal(crops[index]["images"], streamed[index]["images"])


def test_grey_and_rgba_photos_become_rgb(tmp_path, shared_data):
    photo = sorted((shared_data / "content" / "train").glob("*.jpg"))[0]
    Image.open(photo).convert("L").save(tmp_path / "grey.png")
    batch = photo_crops(tmp_path, image_size=32, batch_size=1, seed=0)[0]["images"]
    np.testing.assert_array_equal(batch[..., 0], batch[..., 1])
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])
    rgba = Image.open(photo).convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited over white
    rgba.save(tmp_path / "grey.png")
    assert photo_crops(tmp_path, image_size=32, batch_size=1, seed=0)[0]["images"].min() == 1.0


def test_jpegs_are_decoded_at_reduced_scale_no_smaller_than_needed(shared_data):
    from cin_style.image_io import read_image

    path = sorted((shared_data / "content" / "test").glob("*.jpg"))[0]  # 768x512
    assert read_image(path).shape[:2] == (512, 768)
    assert read_image(path, min_side=200).shape[:2] == (256, 384)  # 1/2 scale: 1/4 would be 128 < 200
    assert read_image(path, min_side=64).shape[:2] == (64, 96)


def test_folder_problems_are_named(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"xx")
    with pytest.raises(ContentSourceError, match="No readable images"):
        photo_crops(tmp_path, image_size=32, batch_size=1)
    with pytest.raises(ContentSourceError, match="Image folder not found: '.*missing'"):
        photo_crops(tmp_path / "missing", image_size=32, batch_size=1)


@pytest.mark.parametrize("size", [16, 0, 31.5])
def test_too_small_image_size_is_refused(photo_folder, size):
    with pytest.raises(ValueError, match=r"`image_size` must be an integer of at least 32 .*Received: image_size="):
        photo_crops(photo_folder, image_size=size, batch_size=1)


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
