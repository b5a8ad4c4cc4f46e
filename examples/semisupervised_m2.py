"""Semi-supervised classification with the M2 model of Kingma et al. (2014): 100 labelled images and the rest of the
training set unlabelled, the missing labels summed out exactly (models.SemiSupervisedVAE); prints the test
classification error of q(y|x) after a time budget.

    python examples/semisupervised_m2.py --data path/to/fashion-mnist/ --seconds 300
    python examples/semisupervised_m2.py --data path/to/fashion-mnist/ --seconds 300 --labelled-only  # the baseline
    python examples/semisupervised_m2.py --smoke        # a synthetic labelled set, a few seconds

The command line trains the same model by epochs (one labelled batch beside each unlabelled one, checkpoints, the
validation accuracy each epoch; ``minivae eval`` then gives the test accuracy and bounds):

    minivae train --model semisupervised --data DIR --dynamic-binarization --hidden 500 --z-dim 50 --activation softplus --lr 3e-4

The data: a folder of MNIST-style IDX files with their labels (MNIST, Fashion-MNIST), grey levels binarized afresh
at every step (dynamic binarization) for the Bernoulli p(x|y, z). Without --data the example says why it cannot use
the embedded digits (they carry no labels) and runs on a synthetic labelled set instead: binary 8×8 images of four
classes, each a bar (two rows or two columns) with every pixel flipped with probability 0.1.

Each step takes one batch of the labelled images (with their labels: −L(x, y) − α·log q(y|x), α = 0.1·N/N_l, the
paper's 0.1·N per labelled image) and one batch of unlabelled ones (−U(x), the C classes enumerated), and adds the
two losses; Adam at 3e-4 as the paper's. The paper reports 11.97% (± 1.71) test error on MNIST with 100 labels for M2
alone (Table 1), after far longer training than this budget. ``--labelled-only`` trains the same model on the
labelled images alone, the baseline to compare with.

References:
    1. D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-Supervised Learning with Deep Generative Models.
       NeurIPS 2014.
"""
import argparse
import time

import numpy

import minivae as mv
from minivae.data import binarize
from minivae.models import SemiSupervisedVAE
from minivae.optim import Adam
from minivae.random import Generator
from minivae.semisupervised import balanced_labels, load_labelled

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--data", help="a folder of MNIST-style IDX files with labels (e.g. Fashion-MNIST)")
parser.add_argument("--labels", type=int, default=100, help="labelled training images, as many of each class")
parser.add_argument("--seconds", type=float, default=120.0, help="the training time budget")
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--labelled-only", action="store_true",
                    help="the baseline: train on the labelled images alone (the classifier then learns from "
                         "α·(−log q(y|x)) alone), to compare with")
parser.add_argument("--smoke", action="store_true", help="a few seconds: a small model (with no --data, 3 s)")
args = parser.parse_args()
rng = Generator(args.seed)


def synthetic(n, rng):
    """n binary 8×8 images of four classes (rows 1–2, rows 5–6, columns 1–2, columns 5–6 on), pixels flipped with
    probability 0.1, and their labels."""
    prototypes = numpy.zeros((4, 8, 8), numpy.float32)
    prototypes[0, 1:3], prototypes[1, 5:7], prototypes[2, :, 1:3], prototypes[3, :, 5:7] = 1, 1, 1, 1
    y = rng.integers(0, 4, (n,))
    flips = rng.uniform((n, 64), numpy.float64) < 0.1
    return numpy.abs(prototypes.reshape(4, 64)[y] - flips).astype(numpy.float32), y


if args.data:
    data = load_labelled(args.data)
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    grey = True
    print(f"{args.data}: {len(x_train)} training images, {len(x_test)} test images, {int(y_train.max()) + 1} classes")
else:
    print("The embedded digits carry no labels (minivae/datasets holds the images alone): pass --data with a folder "
          "of labelled IDX files (MNIST, Fashion-MNIST) for the real task. Here: a synthetic labelled set of binary "
          "8×8 bars, four classes.")
    (x_train, y_train), (x_test, y_test) = synthetic(4000, rng), synthetic(1000, rng)
    grey = False
classes = int(y_train.max()) + 1
try:  # the labelled images: the first labels/C of each class in a seeded shuffle (balanced, as the paper's)
    labelled = balanced_labels(y_train, args.labels, rng)
except ValueError as e:
    parser.error(f"--labels: {e}")
x_l, y_l = x_train[labelled], y_train[labelled]
x_u = x_train  # the unlabelled set: every training image, its label unused
hidden, z_dim = ((64,), 8) if args.smoke else ((500,), 50)
model = SemiSupervisedVAE(x_train.shape[1], classes, hidden=hidden, z_dim=z_dim, n_data=len(x_train),
                          n_labelled=len(x_l), rng=rng)
optimizer = Adam(model.parameters(), lr=3e-4 if args.data else 1e-3)
seconds = min(args.seconds, 3.0) if args.smoke else args.seconds
print(f"{len(x_l)} labelled and {0 if args.labelled_only else len(x_u)} unlabelled images; x_dim {x_train.shape[1]}, "
      f"hidden {hidden}, z {z_dim}, "
      f"α = {model.alpha:g} per labelled image")


def test_error():
    """The fraction of test images whose most probable class under q(y|x) is wrong (grey levels as they are)."""
    wrong = sum(int((model.predict(mv.tensor(x_test[i:i + 1000])).numpy() != y_test[i:i + 1000]).sum())
                for i in range(0, len(x_test), 1000))
    return wrong / len(x_test)


print(f"before training: test classification error {100 * test_error():.2f}%")
start, step, total_l, total_u = time.perf_counter(), 0, 0.0, 0.0
b = args.batch_size
while time.perf_counter() - start < seconds:
    pick = rng.integers(0, len(x_l), (min(b, len(x_l)),))
    xl, xu = x_l[pick], x_u[rng.integers(0, len(x_u), (b,))]
    if grey:
        xl, xu = binarize(xl, rng), binarize(xu, rng)
    loss_l = model.loss(mv.tensor(xl), rng, y=y_l[pick])
    loss_u = 0 * loss_l if args.labelled_only else model.loss(mv.tensor(xu), rng)
    optimizer.zero_grad()
    (loss_l + loss_u).backward()
    optimizer.step()
    step, total_l, total_u = step + 1, total_l + loss_l.item(), total_u + loss_u.item()
    if step % 500 == 0:
        unlabelled = "" if args.labelled_only else f", −U {total_u / 500:.2f}"
        print(f"step {step}: labelled loss {total_l / 500:.2f}{unlabelled} nats (means of 500 steps); test error "
              f"{100 * test_error():.2f}%")
        total_l = total_u = 0.0
print(f"{step} steps in {time.perf_counter() - start:.0f} s")
print(f"test classification error {100 * test_error():.2f}% ({len(x_test)} images, {len(x_l)} labels"
      f"{', labelled images alone' if args.labelled_only else ''})")
