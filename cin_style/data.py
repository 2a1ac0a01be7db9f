"""Content and style images for training, without TensorFlow.

Content photos from a folder are decoded once, at training scale (shorter
side = crop size; JPEGs decoded at reduced scale where that suffices), and
held in memory as uint8 (up to a byte budget, counted as they are decoded;
the rest are decoded per batch). `PhotoCrops`, a `keras.utils.PyDataset`,
then cuts seeded random square crops from them: batch `i` depends only on the
seed and `i`, so a resumed run sees the batches it would have seen had it not stopped,
and every backend (JAX with no TensorFlow installed too) trains from it.
tensorflow-datasets sources go through `cin_style.tf_data` instead.
"""

import collections
import concurrent.futures
import functools
import itertools
import logging
import os

import keras
import numpy as np

from cin_style.checks import check_positive_integer, is_integer
from cin_style.image_io import (
    ImageReadError,
    check_image_file,
    list_image_files,
    read_image,
    resize_shorter_side,
    to_uint8,
)

logger = logging.getLogger("cin_style")

#: Smallest training crop: VGG19 block5 needs 16 px, the network 8.
MIN_IMAGE_SIZE = 32
#: Photos are held decoded in memory up to this many bytes, counted as they
#: are decoded; the ones past it are decoded per batch instead (at reduced
#: JPEG scale, in worker threads).
DEFAULT_CACHE_BYTES = 4 * 2**30


class ContentSourceError(ValueError):
    """The content source is neither a folder of images nor a tfds dataset."""


def _workers():
    return min(8, (os.cpu_count() or 1) * 2)


def scan_image_folder(folder, max_workers=None):
    """Splits a folder's image files into readable ones and skipped ones.

    Every file is decoded once (JPEGs at 1/8 scale, which still reads the
    whole stream), so corrupt and truncated files are found before training.

    Returns:
        `(good_paths, [(bad_path, reason), ...])`.
    """
    files = list_image_files(folder)
    with concurrent.futures.ThreadPoolExecutor(max_workers or _workers()) as pool:
        reasons = list(pool.map(check_image_file, files))
    good = [f for f, r in zip(files, reasons) if r is None]
    bad = [(f, r) for f, r in zip(files, reasons) if r is not None]
    return good, bad


def check_sizes(image_size, batch_size):
    """Raises ValueError unless the crop side and batch size can train."""
    if not is_integer(image_size) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"`image_size` must be an integer of at least {MIN_IMAGE_SIZE} (VGG19's five blocks "
            f"halve it four times). Received: image_size={image_size!r}"
        )
    check_positive_integer("batch_size", batch_size)


def read_photo(path, side):
    """A photo as uint8 RGB with its shorter side resized to `side` (LANCZOS)."""
    return to_uint8(resize_shorter_side(read_image(path, min_side=side), side))


def folder_photos(folder):
    """The readable photos of `folder`, and the skipped ones, with a warning for those.

    Returns:
        `(paths, [(bad_path, reason), ...])`.

    Raises:
        ContentSourceError: If the folder is missing or holds no readable image.
    """
    try:
        good, bad = scan_image_folder(folder)
    except ImageReadError as error:
        raise ContentSourceError(str(error)) from error
    if bad:
        sample = ", ".join(f"{os.path.basename(p)} ({r})" for p, r in bad[:3])
        logger.warning(
            "Skipped %d of %d image files in %s that could not be read: %s%s",
            len(bad),
            len(bad) + len(good),
            folder,
            sample,
            ", ..." if len(bad) > 3 else "",
        )
    if not good:
        raise ContentSourceError(f"No readable images (jpg, png, webp, bmp) in folder '{folder}'")
    return good, bad


class PhotoCrops(keras.utils.PyDataset):
    """Endless batches of seeded random square crops of photos.

    Every pass over the photos visits each once, in an order shuffled per
    pass; each crop's position and horizontal flip are drawn per batch.
    Batch `i` is a pure function of `(seed, start_batch + i)`.

    Args:
        paths: Photo files (already checked readable, e.g. by `folder_photos`).
        image_size: Side of the square crops; photos are resized so their
            shorter side is this, once.
        batch_size: Crops per batch.
        seed: Seed of order, crops and flips. `None` draws one.
        start_batch: Index of the first batch served (the step a resumed run
            starts at). Can be set later through the attribute.
        cache_bytes: Hold decoded photos in memory up to this many bytes,
            counted as they are decoded (panoramas take more than 3:2
            photos): the first photos, in order, until the next would go
            over; the rest are decoded per batch, giving the same crops. A
            folder that could not fit even as square photos is not decoded
            ahead at all. Defaults to `DEFAULT_CACHE_BYTES`.
        flip: Mirror half of the crops left-right. Defaults to `True`.
        workers: Threads preparing batches ahead of the step (and decoding
            photos once). Defaults to twice the CPU count, at most 8.
        max_queue_size: Batches prepared ahead. Defaults to `8`.

    Yields:
        float32 `(batch_size, image_size, image_size, 3)` in [0, 1].
    """

    def __init__(
        self,
        paths,
        image_size=256,
        batch_size=16,
        seed=None,
        start_batch=0,
        cache_bytes=DEFAULT_CACHE_BYTES,
        flip=True,
        workers=None,
        max_queue_size=8,
    ):
        workers = workers or _workers()
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        check_sizes(image_size, batch_size)
        if not paths:
            raise ContentSourceError("No photos to crop")
        self.paths = list(paths)
        self.image_size, self.batch_size, self.flip = image_size, batch_size, flip
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
        self.start_batch = int(start_batch)
        self._orders = {}
        self._photos, self.cached_bytes = [None] * len(self.paths), 0
        if len(self.paths) * image_size * image_size * 3 <= cache_bytes:  # the least they can take: square
            self.cached_bytes = self._fill_cache(cache_bytes, workers)
        #: How many photos are held decoded (the first ones); `cached`: all of them.
        self.cached_photos = sum(photo is not None for photo in self._photos)
        self.cached = self.cached_photos == len(self.paths)

    def _fill_cache(self, cache_bytes, workers):
        """Decodes photos in order into the cache until the next would take it over `cache_bytes`; the bytes held.

        At most `2 * workers` photos are decoded ahead of the one being
        counted, so memory stays within `cache_bytes` plus those few.
        """
        read = functools.partial(read_photo, side=self.image_size)
        used = 0
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            pending = collections.deque()
            upcoming = iter(enumerate(self.paths))
            for index, path in itertools.islice(upcoming, 2 * workers):
                pending.append((index, pool.submit(read, path)))
            while pending:
                index, future = pending.popleft()
                photo = future.result()
                if used + photo.nbytes > cache_bytes:
                    for _, later in pending:
                        later.cancel()
                    logger.info(
                        "Photo cache full (%.2f GiB) at %d of %d photos; the rest are decoded per batch",
                        used / 2**30,
                        index,
                        len(self.paths),
                    )
                    break
                self._photos[index], used = photo, used + photo.nbytes
                for later, path in itertools.islice(upcoming, 1):
                    pending.append((later, pool.submit(read, path)))
        return used

    @property
    def num_batches(self):
        return None  # endless: `fit` takes `steps_per_epoch`

    def _order(self, epoch):
        order = self._orders.get(epoch)
        if order is None:  # computed twice by two threads at worst: same result
            order = np.random.default_rng([self.seed, 1, epoch]).permutation(len(self.paths))
            if len(self._orders) > 8:
                self._orders.clear()
            self._orders[epoch] = order
        return order

    def _photo(self, index):
        photo = self._photos[index]
        return read_photo(self.paths[index], self.image_size) if photo is None else photo

    def photo_indices(self, batch):
        """Which photos batch `batch` (absolute index) crops from."""
        first = batch * self.batch_size
        count = len(self.paths)
        return [int(self._order((first + j) // count)[(first + j) % count]) for j in range(self.batch_size)]

    def batch(self, index):
        """Batch number `index` counted from 0 (ignores `start_batch`)."""
        rng = np.random.default_rng([self.seed, 2, index])
        side = self.image_size
        out = np.empty((self.batch_size, side, side, 3), np.float32)
        for j, photo_index in enumerate(self.photo_indices(index)):
            photo = self._photo(photo_index)
            top = int(rng.integers(0, photo.shape[0] - side + 1))
            left = int(rng.integers(0, photo.shape[1] - side + 1))
            crop = photo[top : top + side, left : left + side]
            if self.flip and rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[j] = crop
        out *= 1.0 / 255.0
        return out

    def style_draws(self, index):
        """Batch `index`'s per-example uniform draws in [0, 1) that pick each crop's style.

        Drawn with the data, not on the device, so the choice depends only on
        the seed and the batch: the same under any number of replicas, and
        the same after a resume.
        """
        return np.random.default_rng([self.seed, 3, index]).random(self.batch_size, dtype=np.float32)

    def __getitem__(self, index):
        index += self.start_batch
        return {"images": self.batch(index), "style_draws": self.style_draws(index)}


def photo_crops(folder, image_size=256, batch_size=16, seed=None, **kwargs):
    """`PhotoCrops` over the readable photos of `folder`; skipped files are logged.

    The dataset also carries `num_files` and `skipped_files`.

    Raises:
        ContentSourceError: If the folder is missing or holds no readable image.
    """
    check_sizes(image_size, batch_size)
    good, bad = folder_photos(folder)
    crops = PhotoCrops(good, image_size, batch_size, seed=seed, **kwargs)
    crops.num_files, crops.skipped_files = len(good), bad
    return crops


def check_content_source(source):
    """`"folder"` or `"tfds"`: which kind of content source `source` names.

    Raises:
        ContentSourceError: If `source` looks like a path but no folder is there.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        return "folder"
    if os.path.exists(source):
        raise ContentSourceError(f"Content source '{source}' is a file, not a folder of images")
    if source.startswith((".", "~", os.sep)):
        raise ContentSourceError(f"Content folder not found: '{source}'")
    return "tfds"


def style_name(path):
    """A style's name: its file stem (`van_gogh_starry_night.jpg` -> `van_gogh_starry_night`)."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def load_style_images(sources, image_size=256, names=None):
    """Reads style images from paths and/or folders, resized for Gram targets.

    Args:
        sources: A folder, an image path, or a sequence of them.
        image_size: Shorter side after resizing. Defaults to `256`.
        names: Optional names, one per image; defaults to the file stems.

    Returns:
        `(names, images)`: lists of str and float32 `(h, w, 3)` arrays.

    Raises:
        ValueError: If no image is found, names repeat, or `names` has the
            wrong length. `ImageReadError` for an unreadable image.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = []
    for source in sources:
        source = os.fspath(source)
        if os.path.isdir(source):
            found = list_image_files(source)
            if not found:
                raise ValueError(f"Style folder '{source}' holds no images (jpg, png, webp, bmp)")
            paths.extend(found)
        else:
            paths.append(source)
    if not paths:
        raise ValueError("No style images given")
    if names is None:
        names = [style_name(p) for p in paths]
    names = list(names)
    if len(names) != len(paths):
        raise ValueError(f"Got {len(names)} style names for {len(paths)} style images")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Style names must be unique; repeated: {repeated}")
    images = [resize_shorter_side(read_image(p), image_size) for p in paths]
    return names, images
