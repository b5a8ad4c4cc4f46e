"""PNG files read back by a decoder written here from the PNG specification (chunk layout, CRC-32, zlib stream,
filter byte per row), and image grids against layouts built by hand."""
import struct
import zlib

import numpy as np
import pytest

from minivae.png import image_grid, write_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _crc32(data):
    """CRC-32 of the PNG specification (ISO 3309, polynomial 0xEDB88320, reflected), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def read_png(path):
    """(IHDR fields, pixels (H, W, channels)) of an 8-bit, non-interlaced grey or RGB PNG whose rows use filter 0."""
    data = open(path, "rb").read()
    assert data[:8] == SIGNATURE
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == _crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"") and at == len(data)
    header = struct.unpack(">IIBBBBB", chunks[0][1])
    width, height, depth, colour, compression, filtering, interlace = header
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0) and colour in (0, 2)
    channels = 3 if colour == 2 else 1
    raw = np.frombuffer(zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT")), np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    assert (rows[:, 0] == 0).all()  # filter type None on every row
    return header, rows[:, 1:].reshape(height, width, channels)


@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (4, 2, 1), (3, 4, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.uint16])
def test_write_png_round_trips_grey_and_rgb(tmp_path, shape, dtype):
    pixels = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
    pixels.flat[0], pixels.flat[-1] = 0, 255
    write_png(tmp_path / "a.png", pixels)
    (width, height, _, colour, *_), back = read_png(tmp_path / "a.png")
    assert (height, width) == shape[:2] and colour == (2 if shape[-1:] == (3,) and len(shape) == 3 else 0)
    np.testing.assert_array_equal(back, pixels.reshape(back.shape))


def test_write_png_of_a_transposed_view_writes_its_values(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4).T * 20
    write_png(tmp_path / "t.png", pixels)
    np.testing.assert_array_equal(read_png(tmp_path / "t.png")[1][..., 0], pixels)


@pytest.mark.parametrize("pixels,error,message", [
    (np.full((2, 2), 0.7), TypeError, "integers in \\[0, 255\\].*float64"),  # was truncated: an all-black image
    (np.eye(2, dtype=bool), TypeError, "bool"),                            # was grey levels 0 and 1: black
    (np.array([[0, 256]]), ValueError, "in \\[0, 255\\].*\\[0, 256\\]"),   # was wrapped to 0
    (np.array([[-1, 3]]), ValueError, "in \\[0, 255\\].*\\[-1, 3\\]"),     # was wrapped to 255
    (np.zeros((0, 4), np.uint8), ValueError, "no pixels"),                 # was a PNG of width 0, which the format forbids
    (np.zeros(4, np.uint8), ValueError, "\\(H, W\\), \\(H, W, 1\\) or \\(H, W, 3\\)"),
    (np.zeros((2, 2, 2), np.uint8), ValueError, "\\(H, W, 3\\), got shape \\(2, 2, 2\\)"),
])
def test_write_png_refuses_what_it_cannot_write_faithfully_and_writes_nothing(tmp_path, pixels, error, message):
    with pytest.raises(error, match=message):
        write_png(tmp_path / "bad.png", pixels)
    assert list(tmp_path.iterdir()) == []


def test_write_png_is_read_by_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    grey, rgb = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12, np.arange(36, dtype=np.uint8).reshape(3, 4, 3) * 7
    write_png(tmp_path / "g.png", grey)
    write_png(tmp_path / "c.png", rgb)
    with Image.open(tmp_path / "g.png") as g, Image.open(tmp_path / "c.png") as c:
        assert (g.mode, c.mode) == ("L", "RGB")
        np.testing.assert_array_equal(np.asarray(g), grey)
        np.testing.assert_array_equal(np.asarray(c), rgb)


def test_image_grid_lays_images_out_in_rows_with_padding():
    """Three 2×2 images, two to a row, one black pixel around each: written out by hand; values clipped to [0, 1]
    and rounded from v·255 (0.2·255 = 51, 0.5·255 = 127.5 → 128, the even neighbour)."""
    images = np.array([[1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 2.0, -1.0], [0.2, 0.2, 0.2, 0.2]])
    expected = np.array([[0, 0, 0, 0, 0, 0, 0],
                         [0, 255, 255, 0, 128, 128, 0],
                         [0, 255, 255, 0, 255, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0],
                         [0, 51, 51, 0, 0, 0, 0],
                         [0, 51, 51, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0]], np.uint8)
    grid = image_grid(images, columns=2, pad=1)
    assert grid.dtype == np.uint8
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(image_grid(images.reshape(3, 2, 2), columns=2, pad=1), expected)
    np.testing.assert_array_equal(image_grid(images, side=2, columns=2, pad=1), expected)
    np.testing.assert_array_equal(image_grid(images[0], columns=1, pad=0), np.full((2, 2), 255, np.uint8))


def test_image_grid_takes_images_of_shape_n_h_w_as_they_are():
    """(n, 16, 16) is n images of 16×16 (the last axis, 16 = 4², once made them 16·n images of 4×4), and (n, H, W)
    need not be square."""
    images = np.random.default_rng(1).random((2, 16, 16))
    grid = image_grid(images, columns=2, pad=1)
    assert grid.shape == (18, 35)
    np.testing.assert_array_equal(grid[1:17, 18:34], np.round(images[1] * 255))
    np.testing.assert_array_equal(grid, image_grid(images.reshape(2, 256), columns=2, pad=1))
    wide = image_grid(np.ones((1, 2, 3)), pad=0, columns=1)
    np.testing.assert_array_equal(wide, np.full((2, 3), 255))


@pytest.mark.parametrize("images,kwargs,message", [
    (np.ones((2, 32)), {"side": 4}, "32 pixels are not 4×4"),  # was cut into four images of 4×4 (and 8 of 4×4 merged)
    (np.ones((2, 12)), {}, "12 pixels are not square"),
    (np.ones((2, 4, 4)), {"side": 2}, "\\(4, 4\\) are not 2×2"),
    (np.full((1, 4), np.nan), {}, "NaN"),                      # was black, with a RuntimeWarning
    (np.ones((1, 4)), {"columns": 0}, "columns must be an integer >= 1"),
    (np.ones((1, 4)), {"pad": -1}, "pad must be an integer >= 0"),
    (np.ones((1, 1, 2, 2)), {}, "\\(n, pixels\\) or \\(n, H, W\\)"),
])
def test_image_grid_refuses_images_it_would_misread(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        image_grid(images, **kwargs)
