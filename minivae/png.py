"""Grey-scale (and RGB) PNG files and grids of images, written with zlib alone (no imaging library needed)."""
import math
import numbers
import struct
import zlib

import numpy

from minivae._io import write_atomic


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"image_grid: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def image_grid(images, side=None, columns=8, pad=2):
    """Images side by side, ``columns`` to a row, ``pad`` black pixels around each, as one uint8 grey-level image
    (rows·(H+pad)+pad, columns·(W+pad)+pad): values in [0, 1] (clipped) times 255, rounded.

    Args:
        images: (n, side·side) flat square images (one image: (side·side,)), ``side`` = √pixels unless given;
            or (n, H, W) images as they are.
        columns, pad: images to a row (≥ 1); black pixels between and around them (≥ 0).
    """
    images = numpy.asarray(images, dtype=numpy.float64)
    columns, pad = _count("columns", columns, 1), _count("pad", pad, 0)
    if images.ndim == 3:  # (n, H, W): a flat reading would take the last axis, W, for the pixels of an image
        if side is not None and images.shape[1:] != (side, side):
            raise ValueError(f"image_grid: images of shape {images.shape[1:]} are not {side}×{side}")
    elif images.ndim in (1, 2):
        pixels = images.shape[-1]
        if side is None:
            side = math.isqrt(pixels)
            if side * side != pixels:
                raise ValueError(f"image_grid: images of {pixels} pixels are not square: give their side")
        elif _count("side", side, 1) ** 2 != pixels:  # else each image is cut into, or merged with, others
            raise ValueError(f"image_grid: images of {pixels} pixels are not {side}×{side}")
        images = images.reshape(-1, side, side)
    else:
        raise ValueError(f"image_grid: images must be (n, pixels) or (n, H, W), got shape {images.shape}")
    if numpy.isnan(images).any():  # NaN has no grey level (its cast to uint8 is undefined)
        raise ValueError("image_grid: the images hold NaN")
    images = numpy.clip(images, 0, 1)
    height, width = images.shape[1:]
    rows = -(-len(images) // columns)
    grid = numpy.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad))
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top:top + height, left:left + width] = img
    return (grid * 255).round().astype(numpy.uint8)


def paired_rows(first, second, columns=8):
    """Images of ``first`` and ``second`` (the same count) interleaved by rows of ``columns``: a row of first's, the
    row of second's beneath it, and so on (originals above their reconstructions), for image_grid(…, columns). A last
    row short of ``columns`` is filled with black images, so that each partner stays beneath its image."""
    first, second = numpy.asarray(first), numpy.asarray(second)
    if first.shape != second.shape:
        raise ValueError(f"paired_rows: images of shapes {first.shape} and {second.shape} are not pairs")
    columns = _count("columns", columns, 1)
    fill = numpy.zeros((-len(first) % columns,) + first.shape[1:], first.dtype)
    first, second = numpy.concatenate([first, fill]), numpy.concatenate([second, fill])
    return numpy.concatenate([part for i in range(0, len(first), columns) for part in (first[i:i + columns],
                                                                                        second[i:i + columns])])


def write_png(path, pixels):
    """Write an 8-bit PNG (atomically): grey levels (H, W) or (H, W, 1), or RGB colours (H, W, 3), integers in
    [0, 255] (uint8 or another integer dtype). Floats and bools are refused rather than truncated (0.7 would be 0)
    or taken as grey levels 0 and 1 (both black): image_grid turns values in [0, 1] into grey levels."""
    pixels = numpy.asarray(pixels)
    if pixels.dtype.kind not in "iu":
        raise TypeError(f"write_png: pixels must be integers in [0, 255] (uint8), got {pixels.dtype} "
                        "(image_grid makes them from values in [0, 1])")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (1, 3))):
        raise ValueError(f"write_png: pixels must be (H, W), (H, W, 1) or (H, W, 3), got shape {pixels.shape}")
    if pixels.size == 0:  # the PNG format has no empty image (width and height ≥ 1)
        raise ValueError(f"write_png: an image of shape {pixels.shape} has no pixels")
    if pixels.min() < 0 or pixels.max() > 255:  # a cast to uint8 would wrap them (256 → 0, −1 → 255)
        raise ValueError(f"write_png: pixels must be in [0, 255], got values in [{pixels.min()}, {pixels.max()}]")
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 and pixels.shape[2] == 3 else 0  # PNG colour types: 0 grey, 2 RGB
    pixels = numpy.ascontiguousarray(pixels, dtype=numpy.uint8).reshape(height, -1)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + pixels[r].tobytes() for r in range(height))  # filter type 0 per row
    body = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    write_atomic(path, lambda f: f.write(body))
