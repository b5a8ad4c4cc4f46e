"""Build minivae/datasets/binarized_mnist_subset.npz, the embedded default data, from the
statically binarized MNIST files (Larochelle & Murray 2011; derived from MNIST, CC BY-SA 3.0):

    python tools/make_default_data.py ../shared/data/binarized-mnist

It keeps the first 30,000 training, 5,000 validation and 5,000 test images, bit-packed
(98 bytes an image). Run once by a developer; the product never reads the source folder.
"""
import sys

import numpy

from minivae.data import read_amat

SIZES = {"train": 30_000, "valid": 5_000, "test": 5_000}


def main(folder):
    packed = {}
    for split, n in SIZES.items():
        x = read_amat(f"{folder}/binarized_mnist_{split}.amat.gz")[:n]
        packed[split] = numpy.packbits(x.astype(numpy.uint8), axis=1)
    numpy.savez_compressed("minivae/datasets/binarized_mnist_subset.npz", **packed)


if __name__ == "__main__":
    main(sys.argv[1])
