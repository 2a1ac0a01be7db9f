"""Content photos through tf.data: folders and tensorflow-datasets.

Each photo is decoded to RGB, resized so its shorter side is `image_size`,
randomly cropped to a square, and batched as float32 in [0, 1]. Unreadable
files are skipped and counted. Training reads folders through
`cin_style.data.PhotoCrops` (decode once, any backend) and tfds sources here.
"""

import tensorflow as tf

from cin_style.checks import is_integer
from cin_style.data import ContentSourceError, check_content_source, check_sizes, folder_photos


def _square_crop(image, image_size, seed):
    """Resize the shorter side to `image_size`, then a seeded random square crop."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    image = image[..., :3]
    image = tf.image.convert_image_dtype(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = image_size / tf.reduce_min(shape)
    new_size = tf.maximum(tf.cast(tf.math.ceil(shape * scale), tf.int32), image_size)
    image = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    image = tf.image.stateless_random_crop(image, (image_size, image_size, 3), seed=seed)
    return tf.clip_by_value(image, 0.0, 1.0)


def _decode_file(path):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _finish(images, image_size, batch_size, seed, repeat, first_image=0):
    """Random crops, batching and prefetching shared by both sources.

    Image `i` of the stream (counted from `first_image`) is cropped with the
    seed `(seed, i)`, so a stream started part-way crops as the whole one does.
    """
    counter = tf.data.Dataset.counter(first_image)
    base_seed = tf.constant([0 if seed is None else int(seed)], tf.int64)
    dataset = tf.data.Dataset.zip((images, counter))
    dataset = dataset.map(
        lambda image, i: _square_crop(image, image_size, tf.concat([base_seed, [i]], 0)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=seed is not None,
    )
    dataset = dataset.ignore_errors(log_warning=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def folder_dataset(folder, image_size=256, batch_size=16, shuffle=True, seed=None, repeat=True):
    """Batches of random square crops from a folder of photos.

    Args:
        folder: Folder searched recursively for jpg, jpeg, png, webp and bmp.
        image_size: Side of the square crops. Defaults to `256`.
        batch_size: Defaults to `16`.
        shuffle: Reshuffle the files every pass. Defaults to `True`.
        seed: Makes file order and crops reproducible. Defaults to `None`.
        repeat: Repeat forever (training). Defaults to `True`.

    Returns:
        A `tf.data.Dataset` of float32 `(batch_size, image_size, image_size, 3)`.

    Raises:
        ContentSourceError: If the folder is missing or holds no readable image.
    """
    check_sizes(image_size, batch_size)
    good, bad = folder_photos(folder)
    files = tf.data.Dataset.from_tensor_slices(good)
    if shuffle:
        files = files.shuffle(len(good), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    images = files.map(_decode_file, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    dataset = _finish(images, image_size, batch_size, seed, repeat=False)
    dataset.skipped_files = bad
    dataset.num_files = len(good)
    return dataset


def tfds_dataset(
    name,
    image_size=256,
    batch_size=16,
    split="train",
    data_dir=None,
    image_key="image",
    shuffle=True,
    seed=None,
    repeat=True,
    download=False,
    start_batch=0,
):
    """Batches of random square crops from a tensorflow-datasets dataset.

    With a `seed`, the stream is a pure function of the seed: examples are
    read in a seeded order, and example `i` is cropped with the seed
    `(seed, i)`. `start_batch` starts it at that batch (a resumed run goes on
    with the crops an uninterrupted one would see; exact unless an image
    fails to decode before that point); the skipped examples are read but not
    decoded.

    Args:
        name: A tfds name such as `"coco/2017"`.
        split: Defaults to `"train"`.
        data_dir: tfds data folder. Defaults to tfds' own.
        image_key: Feature holding the image. Defaults to `"image"`.
        download: Let tfds download and prepare the data. Defaults to `False`
            (prepare it beforehand, e.g. with `tfds build`).
        start_batch: Index of the first batch served. Defaults to `0`.
        Others as in `folder_dataset`.

    Raises:
        ContentSourceError: If tfds does not know the dataset or it has no
            `image_key` feature.
    """
    import tensorflow_datasets as tfds

    check_sizes(image_size, batch_size)
    if not (is_integer(start_batch) and start_batch >= 0):
        raise ValueError(f"`start_batch` must be a non-negative integer. Received: start_batch={start_batch!r}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise ContentSourceError(
            f"Content source '{name}' is neither an existing folder nor a tensorflow-datasets "
            f"name tfds knows ({type(error).__name__}: {error})"
        ) from error
    features = getattr(builder.info, "features", None)
    if features is not None and image_key not in features:
        raise ContentSourceError(
            f"tfds dataset '{name}' has no feature '{image_key}'. Its features: {sorted(features.keys())}"
        )
    if download:
        builder.download_and_prepare()
    # A seeded stream must not depend on how many iterators were made over it before (tf.data
    # reshuffles per iterator): one seeded file order, and one seeded shuffle of the endless stream.
    read_config = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=seed is None)
    # Images come encoded and are decoded after the skip: skipping costs reads, not decodes.
    examples = builder.as_dataset(
        split=split,
        shuffle_files=shuffle,
        read_config=read_config,
        decoders={image_key: tfds.decode.SkipDecoding()},
    )
    if repeat:
        examples = examples.repeat()
    if shuffle:  # after the repeat: one seeded order for the whole stream, each pass differently shuffled
        examples = examples.shuffle(1024, seed=seed, reshuffle_each_iteration=seed is None)
    first_image = start_batch * batch_size
    examples = examples.skip(first_image)
    feature = builder.info.features[image_key]
    images = examples.map(
        lambda example: feature.decode_example(example[image_key]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=seed is not None,
    )
    return _finish(images, image_size, batch_size, seed, repeat=False, first_image=first_image)


def content_dataset(source, **kwargs):
    """`folder_dataset` if `source` is a folder, else `tfds_dataset`.

    Raises:
        ContentSourceError: If `source` looks like a path but no folder is there,
            or is no tfds name.
    """
    if check_content_source(source) == "folder":
        kwargs = {k: v for k, v in kwargs.items() if k not in ("split", "data_dir", "image_key", "download")}
        return folder_dataset(source, **kwargs)
    return tfds_dataset(source, **kwargs)


__all__ = ["ContentSourceError", "content_dataset", "folder_dataset", "tfds_dataset"]


def with_style_draws(dataset, batch_size, seed=None, start_batch=0):
    """`{"images": batch, "style_draws": (batch_size,) uniform in [0, 1)}` from a dataset of image batches.

    The draws pick each example's style in training (see `StyleTrainer`); they
    are seeded by `seed` and the batch's position (counted from `start_batch`,
    the position of the dataset's first batch), so they come with the data
    rather than from a per-replica random state.
    """
    base = 0 if seed is None else int(seed)
    return dataset.enumerate(start_batch).map(
        lambda i, images: {
            "images": images,
            "style_draws": tf.random.stateless_uniform([batch_size], seed=tf.stack([tf.constant(base, tf.int64), i])),
        },
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def indexed_batches(crops, start_batch=0):
    """A `PhotoCrops` as a tf.data pipeline: batches `start_batch`, `start_batch + 1`, ... in order.

    For `tf.distribute`, whose input pipeline would otherwise take a
    `PyDataset`'s batches in whatever order its workers finish them: here
    batch `i` is always the `i`-th, decoded in parallel but delivered in order,
    so a distributed run sees the same data as a single-device one.
    """
    side, size = crops.image_size, crops.batch_size

    def load(index):
        index = int(index)
        return crops.batch(index), crops.style_draws(index)

    def as_dict(index):
        images, draws = tf.numpy_function(load, [index], (tf.float32, tf.float32))
        images.set_shape((size, side, side, 3))
        draws.set_shape((size,))
        return {"images": images, "style_draws": draws}

    return (
        tf.data.Dataset.counter(start_batch)
        .map(as_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
