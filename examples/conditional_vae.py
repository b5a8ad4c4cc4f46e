"""A conditional VAE (Sohn, Lee & Yan 2015) beside the Gaussian VAE of the same size: both trained on the same batches,
the CVAE with each image's class y given to its encoder and decoder (conditional.ConditionalVAE). Prints the test ELBO
of both, the CVAE's bound on log p(x|y) less log C (a bound on log p(x) with p(y) = 1/C, comparable to the other's),
and how often the CVAE's samples of a class lie nearest that class's mean training image.

    python examples/conditional_vae.py --data path/to/fashion-mnist/ --epochs 5 --out samples.png
    python examples/conditional_vae.py --smoke      # a synthetic labelled set, a few seconds

The command line trains the same model with checkpoints (``minivae eval`` then gives the test bounds and log p(x|y),
``minivae sample --label 0,1,…`` a grid of a class a column):

    minivae train --model conditional --data DIR --dynamic-binarization

The data: a folder of MNIST-style IDX files with their labels (MNIST, Fashion-MNIST), grey levels binarized afresh at
every step for the Bernoulli p(x|z, y), the test images once. Without --data, binary 8×8 bars of four classes (two rows
or two columns on, every pixel flipped with probability 0.1): the embedded digits carry no labels.

References:
    1. K. Sohn, H. Lee, X. Yan. Learning Structured Output Representation using Deep Conditional Generative Models.
       NeurIPS 2015.
"""
import argparse
import math

import numpy

import minivae as mv
from minivae import objectives
from minivae.conditional import ConditionalVAE
from minivae.data import batches, binarize
from minivae.models import GaussianVAE
from minivae.optim import Adam
from minivae.png import image_grid, write_png
from minivae.random import Generator
from minivae.semisupervised import load_labelled

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--data", help="a folder of MNIST-style IDX files with labels (e.g. Fashion-MNIST)")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", help="write the CVAE's samples here, a class a column (PNG)")
parser.add_argument("--smoke", action="store_true", help="a few seconds: a small model, 3 epochs of 2000 bars")
args = parser.parse_args()
rng = Generator(args.seed)


def bars(n, rng):
    """n binary 8×8 images of four classes (rows 1–2, rows 5–6, columns 1–2, columns 5–6 on), pixels flipped with
    probability 0.1, and their labels."""
    prototypes = numpy.zeros((4, 8, 8), numpy.float32)
    prototypes[0, 1:3], prototypes[1, 5:7], prototypes[2, :, 1:3], prototypes[3, :, 5:7] = 1, 1, 1, 1
    y = rng.integers(0, 4, (n,))
    return numpy.abs(prototypes.reshape(4, 64)[y] - (rng.uniform((n, 64), numpy.float64) < 0.1)).astype(numpy.float32), y


if args.data:
    data = load_labelled(args.data)
    (x_train, y_train), (x_test, y_test), grey = data["train"], data["test"], True
    x_test = binarize(x_test, Generator(args.seed + 1))  # once, as minivae eval --dynamic-binarization
else:
    (x_train, y_train), (x_test, y_test), grey = bars(2000, rng), bars(500, rng), False
classes = int(y_train.max()) + 1
hidden, z_dim = ((32,), 2) if args.smoke and not args.data else ((512, 256), 20)
epochs = min(args.epochs, 3) if args.smoke else args.epochs
cvae = ConditionalVAE(x_train.shape[1], classes, hidden, z_dim, rng=Generator(args.seed))
vae = GaussianVAE(x_train.shape[1], hidden, z_dim, rng=Generator(args.seed))
optimizers = [Adam(m.parameters(), lr=1e-3) for m in (cvae, vae)]
print(f"{len(x_train)} training images of {classes} classes, {len(x_test)} test images; hidden {hidden}, z {z_dim}")
for epoch in range(1, epochs + 1):
    totals = numpy.zeros(2)
    for pick in batches(numpy.arange(len(x_train)), args.batch_size, rng=rng):
        x = mv.tensor(binarize(x_train[pick], rng) if grey else x_train[pick])
        losses = cvae.loss(x, y_train[pick], rng), vae.loss(x, rng)  # the same images for both
        for loss, optimizer in zip(losses, optimizers):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        totals += [loss.item() for loss in losses]
    steps = -(-len(x_train) // args.batch_size)
    print(f"epoch {epoch}: train −ELBO conditional {totals[0] / steps:.2f}, gaussian {totals[1] / steps:.2f} nats")

with mv.no_grad():
    test = [objectives.elbo(cvae.given(y_test[i:i + 1000]), mv.tensor(x_test[i:i + 1000]), rng).numpy()
            for i in range(0, len(x_test), 1000)], [objectives.elbo(vae, mv.tensor(x_test[i:i + 1000]), rng).numpy()
                                                    for i in range(0, len(x_test), 1000)]
    conditional, gaussian = (numpy.concatenate(t).mean() for t in test)
    means = numpy.stack([x_train[y_train == c].mean(axis=0) for c in range(classes)])
    samples = cvae.sample(20 * classes, rng).numpy()  # the classes in turn
    nearest = ((samples[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
print(f"test ELBO: conditional {conditional:.2f} nats (of log p(x|y)), less log {classes}: {conditional - math.log(classes):.2f} "
      f"(a bound on log p(x)); gaussian {gaussian:.2f} nats")
print(f"samples nearest their class's mean training image: {100 * (nearest == numpy.arange(len(samples)) % classes).mean():.1f}% "
      f"(chance {100 / classes:.0f}%)")
if args.out:
    write_png(args.out, image_grid(samples, columns=classes))
    print(f"wrote {len(samples)} samples, a class a column, to {args.out}")
