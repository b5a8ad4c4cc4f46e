"""Grey-scale PNG grids of images, written with zlib alone (no imaging library needed)."""
import math
import struct
import zlib

import numpy

from minivae._io import write_atomic


def image_grid(images, side=None, columns=8, pad=2):
    """(n, side·side) values in [0, 1] → one (rows·(side+pad)+pad, …) uint8 image; ``side`` is
    √pixels unless given."""
    images = numpy.clip(numpy.asarray(images, dtype=numpy.float64), 0, 1)
    if side is None:
        side = math.isqrt(images.shape[-1])
        if side * side != images.shape[-1]:
            raise ValueError(f"images of {images.shape[-1]} pixels are not square: give their side")
    images = images.reshape(-1, side, side)
    rows = -(-len(images) // columns)
    grid = numpy.zeros((rows * (side + pad) + pad, columns * (side + pad) + pad))
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[pad + r * (side + pad):pad + r * (side + pad) + side, pad + c * (side + pad):pad + c * (side + pad) + side] = img
    return (grid * 255).round().astype(numpy.uint8)


def write_png(path, pixels):
    """Write a 2-D uint8 array as an 8-bit grey-scale PNG (atomically)."""
    pixels = numpy.ascontiguousarray(pixels, dtype=numpy.uint8)
    height, width = pixels.shape

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + pixels[r].tobytes() for r in range(height))  # filter type 0 per row
    body = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    write_atomic(path, lambda f: f.write(body))
