"""Image reading: EXIF orientation, 16-bit precision, Pillow's globals, thread safety."""

import concurrent.futures
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from cin_style.data import read_photo
from cin_style.image_io import (
    ImageReadError,
    check_image_file,
    read_image,
    resize,
    resize_shorter_side,
    to_rgb_array,
)

pytestmark = pytest.mark.no_tensorflow

#: Colours of the four quadrants of the stored (unrotated) test picture.
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _quadrants(width, height):
    """A uint8 `(height, width, 3)` picture: red, green / blue, white quadrants."""
    array = np.empty((height, width, 3), np.uint8)
    array[: height // 2, : width // 2] = RED
    array[: height // 2, width // 2 :] = GREEN
    array[height // 2 :, : width // 2] = BLUE
    array[height // 2 :, width // 2 :] = WHITE
    return array


def _corners(image):
    """The colours (0-255) of the four corners, inset from the edge: TL, TR, BL, BR."""
    height, width = image.shape[:2]
    dy, dx = max(1, height // 8), max(1, width // 8)
    points = [(dy, dx), (dy, width - 1 - dx), (height - 1 - dy, dx), (height - 1 - dy, width - 1 - dx)]
    return [tuple(round(float(v)) for v in np.asarray(image[y, x], np.float32) * 255) for y, x in points]


def _assert_colours(found, expected):
    for got, want in zip(found, expected):
        assert np.abs(np.subtract(got, want)).max() <= 40, f"corners {found}, expected {expected}"


# Orientation 6: shown rotated 90° clockwise; 8: 90° anticlockwise; 3: 180°.
@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_honoured_in_every_reading_path(tmp_path, orientation, turns):
    stored = _quadrants(128, 64)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, subsampling=0, exif=exif)
    upright = np.rot90(stored, turns)
    expected = _corners(upright.astype(np.float32) / 255.0)

    image = read_image(path)
    assert image.shape == upright.shape
    _assert_colours(_corners(image), expected)

    draft = read_image(path, min_side=16)  # JPEG decoded at reduced scale
    assert draft.shape[:2] == tuple(s // 4 for s in upright.shape[:2])
    _assert_colours(_corners(draft), expected)

    photo = read_photo(path, 16)  # the training pipeline's reader
    assert min(photo.shape[:2]) == 16 and (photo.shape[0] > photo.shape[1]) == (upright.shape[0] > upright.shape[1])
    _assert_colours(_corners(photo.astype(np.float32) / 255.0), expected)

    with Image.open(path) as opened:  # a PIL image the caller opened (Stylizer, Gatys take those)
        from_pil = to_rgb_array(opened)
        assert opened.size == (128, 64)  # the caller's image is not turned
    assert from_pil.shape == upright.shape
    _assert_colours(_corners(from_pil), expected)


def test_sixteen_bit_grey_png_keeps_its_precision_through_resizing(tmp_path):
    ramp = np.linspace(0, 65535, 2048).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (16, 1))).save(tmp_path / "ramp16.png")

    small = resize_shorter_side(read_image(tmp_path / "ramp16.png"), 8)
    assert small.shape == (8, 1024, 3) and small.dtype == np.float32
    assert len(np.unique(small[4, :, 0])) > 1000  # through uint8 there would be at most 256
    # A linear ramp stays linear under LANCZOS away from the edges.
    centres = (np.arange(1024) + 0.5) * 2 - 0.5
    error = np.abs(small[4, 16:-16, 0] - centres[16:-16] / 2047)
    assert error.max() < 1e-4  # far below one 8-bit step, 1/255


def test_sixteen_bit_rgb_arrays_keep_their_precision_through_resizing():
    ramp = np.linspace(0, 65535, 1500).round().astype(np.uint16)
    rgb16 = np.stack([np.tile(ramp, (6, 1)), np.tile(ramp[::-1], (6, 1)), np.full((6, 1500), 30000, np.uint16)], -1)
    image = rgb16.astype(np.float32) / 65535.0

    out = resize(image, 1000, 4)
    assert out.shape == (4, 1000, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert len(np.unique(out[2, :, 0])) > 900 and len(np.unique(out[2, :, 1])) > 900
    np.testing.assert_allclose(out[..., 2], 30000 / 65535, atol=1e-6)


def test_eight_bit_images_resize_exactly_as_pillow_does(rng):
    u8 = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(u8).resize((20, 12), Image.LANCZOS), np.float32) / 255.0
    np.testing.assert_array_equal(resize(u8.astype(np.float32) / 255.0, 20, 12), expected)


def test_truncated_jpeg_is_refused(shared_data, tmp_path):
    data = (shared_data / "content" / "test" / "kodim05.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg' is corrupt or truncated"):
        read_image(tmp_path / "cut.jpg")
    assert check_image_file(tmp_path / "cut.jpg") is not None


def test_importing_and_reading_leave_pillow_globals_alone(shared_data, tmp_path):
    data = (shared_data / "content" / "test" / "kodim05.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    code = textwrap.dedent(
        """
        import sys, warnings
        from PIL import Image, ImageFile

        ImageFile.LOAD_TRUNCATED_IMAGES = True  # the host application's own choices
        Image.MAX_IMAGE_PIXELS = 12_345_678
        import cin_style
        from cin_style import image_io

        print("import", ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
        filters = list(warnings.filters)
        for path in sys.argv[1:]:
            try:
                image_io.read_image(path, min_side=32)
            except image_io.ImageReadError:
                pass
            image_io.check_image_file(path)
        print("read", ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, warnings.filters == filters)
        """
    )
    paths = [str(shared_data / "content" / "test" / "kodim05.jpg"), str(tmp_path / "cut.jpg")]
    result = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-3:] == ["import True 12345678", "read True 12345678 True", ""]


def test_size_limit_is_thread_safe_and_leaves_warnings_alone(tmp_path):
    Image.fromarray(_quadrants(40, 20)).save(tmp_path / "small.png")
    Image.fromarray(_quadrants(96, 64)).save(tmp_path / "small.jpg")
    Image.fromarray(_quadrants(100, 100)).save(tmp_path / "big.png")  # 10,000 pixels: over the limit
    filters, max_pixels = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    original = warnings.filters
    paths = ["small.png", "big.png", "small.jpg"]

    def work(worker):
        outcomes, untouched = [], True
        for i in range(40):
            name = paths[(worker + i) % 3]
            untouched &= warnings.filters is original
            try:
                outcomes.append((name, read_image(tmp_path / name, max_pixels=8000).shape))
            except ImageReadError as error:
                outcomes.append((name, str(error)))
            outcomes.append((name, check_image_file(tmp_path / name, max_pixels=8000)))
            untouched &= warnings.filters is original
        return outcomes, untouched

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))

    refused = "is 100x100 = 10,000 pixels, more than the limit of 8,000"
    for outcomes, untouched in results:
        assert untouched, "warnings.filters was replaced while images were read"
        for name, outcome in outcomes:
            if name == "big.png":
                assert outcome == "100x100 is over 8,000 pixels" or refused in outcome
            else:
                assert outcome in (None, (20, 40, 3), (64, 96, 3)), outcome
    assert warnings.filters is original and warnings.filters == filters
    assert Image.MAX_IMAGE_PIXELS == max_pixels and ImageFile.LOAD_TRUNCATED_IMAGES is False


def _sixteen_bit_rgb_png(path, array):
    """Writes `array` (uint16 `(h, w, 3)`) as a 16-bit colour PNG, by hand: Pillow cannot write one."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = array.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_sixteen_bit_colour_png_is_read_at_eight_bits_as_the_readme_says(tmp_path):
    # The README promises 16-bit precision for grey PNGs only: Pillow decodes 16-bit colour as 8-bit RGB.
    values = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 7000 + 300).astype(np.uint16)
    _sixteen_bit_rgb_png(tmp_path / "rgb16.png", values)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), (values >> 8).astype(np.float32) / 255.0)


def _encoded(image, **options):
    import io

    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="PNG", **options)
    return stream.getvalue()


def test_png_is_written_with_zlibs_run_length_strategy_unless_the_caller_says_otherwise(tmp_path, rng):
    import zlib

    from cin_style.image_io import PNG_RLE, write_image

    assert PNG_RLE == zlib.Z_RLE
    ramp = np.linspace(0, 200, 96, dtype=np.float32)[None, :, None] + np.zeros((64, 1, 3), np.float32)
    image = (ramp + rng.integers(0, 40, (64, 96, 3))).astype(np.uint8)  # a painting's gradients and texture
    write_image(tmp_path / "fast.png", image)
    written = (tmp_path / "fast.png").read_bytes()
    assert written == _encoded(image, compress_level=1, compress_type=zlib.Z_RLE)
    # Pillow honours the undocumented compress_type: the default strategy at the same level writes other bytes.
    assert written != _encoded(image, compress_level=1)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "fast.png")), image)
    # An option of the caller's about compression replaces the defaults whole: level 9 means Pillow's own strategy.
    write_image(tmp_path / "small.png", image, compress_level=9)
    assert (tmp_path / "small.png").read_bytes() == _encoded(image, compress_level=9)
    write_image(tmp_path / "optimized.png", image, optimize=True)
    assert (tmp_path / "optimized.png").read_bytes() == _encoded(image, optimize=True)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_write_progress_is_called_per_piece_and_an_error_from_it_leaves_no_file(tmp_path, rng, suffix):
    from cin_style.image_io import write_image

    noise = rng.integers(0, 256, (512, 768, 3)).astype(np.uint8)  # 1.2 MB that hardly compress: several pieces
    pieces = []
    write_image(tmp_path / f"reported{suffix}", noise, progress=lambda: pieces.append(1))
    write_image(tmp_path / f"plain{suffix}", noise)
    assert len(pieces) >= 3
    # Written piece by piece, the same bytes as in one call to the file.
    assert (tmp_path / f"reported{suffix}").read_bytes() == (tmp_path / f"plain{suffix}").read_bytes()

    class Stop(Exception):
        pass

    def stop_at_the_third():
        pieces.append(1)
        if len(pieces) == 3:
            raise Stop

    pieces.clear()
    with pytest.raises(Stop):
        write_image(tmp_path / f"stopped{suffix}", noise, progress=stop_at_the_third)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"plain{suffix}", f"reported{suffix}"]
