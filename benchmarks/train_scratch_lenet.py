"""Train the from-scratch LeNet (cnnbook.scratch.nn + cnnbook.scratch.optim, NumPy only) on Fashion-MNIST.

Issue 3's end-to-end check: at least 85% accuracy on the full 10,000-image test set after
under 2 minutes of training on the book's 2-core machine, and identical predictions from
the same weights loaded into the equivalent PyTorch model.

    .venv/bin/python benchmarks/train_scratch_lenet.py [--epochs 1] [--subset N] [--plot loss.png]

Prints the training time (wall clock, and the CPU time the process used: on a machine
shared with other work, CPU seconds divided by the threads in use estimate a quiet run),
the test accuracy and the comparison with PyTorch; exits with status 1 when a target is missed.
"""
import argparse
import sys
import time

import numpy as np

from cnnbook.pytorch import twins
from cnnbook.scratch import fast, lenet as scratch_lenet

TARGET_ACCURACY, TARGET_SECONDS = 0.85, 120.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--subset", type=int, default=None, help="train on this many images (default: all 60,000)")
    parser.add_argument("--no-batch-norm", action="store_true", help="the plain LeNet, without BatchNorm2d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="save the loss curve to this PNG file")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def plot_loss(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = np.array(history["loss"])
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(loss, alpha=0.3, label="per batch")
    ax.plot(np.arange(19, len(loss)), smooth, label="mean of 20 batches")
    ax.set(title="From-scratch LeNet on Fashion-MNIST", xlabel="training step (batch)", ylabel="cross-entropy loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    (x_train, y_train), (x_test, y_test) = scratch_lenet.load_fashion_mnist()
    rng = np.random.default_rng(args.seed)
    model = scratch_lenet.lenet(batch_norm=not args.no_batch_norm, generator=rng)
    cpu = time.process_time()
    history = scratch_lenet.train_scratch(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                                    lr=args.lr, subset=args.subset, test=(x_test, y_test), generator=rng,
                                    progress=not args.no_progress)
    cpu = time.process_time() - cpu          # includes the test-set evaluations, which the wall time does not
    acc, seconds = history["test_accuracy"][-1], history["seconds"]
    print(f"model: {'LeNet + BatchNorm2d' if not args.no_batch_norm else 'LeNet'}, "
          f"{sum(p.data.size for p in model.parameters()):,} parameters")
    print(f"training: {history['n_train']:,} images x {args.epochs} epoch(s), batch {args.batch_size}, "
          f"Adam lr {args.lr} decaying linearly to 0")
    print(f"training time: {seconds:.1f} s (target < {TARGET_SECONDS:.0f} s); per epoch: "
          + ", ".join(f"{s:.1f} s" for s in history["epoch_seconds"]))
    print(f"CPU time of training and evaluation: {cpu:.1f} s over {fast.get_num_threads()} thread(s) "
          f"(BLAS on 1): {cpu / fast.get_num_threads():.1f} s if the threads never waited")
    print(f"test accuracy (10,000 images) per epoch: " + ", ".join(f"{a:.4f}" for a in history["test_accuracy"])
          + f" (target >= {TARGET_ACCURACY})")
    print(f"final training loss (mean of last 50 batches): {np.mean(history['loss'][-50:]):.4f}")
    check = twins.compare_with_torch(model, twins.lenet_torch(batch_norm=not args.no_batch_norm), x_test)
    print(f"PyTorch with the same weights (float64): {check['n'] - check['n_different']:,}/{check['n']:,} "
          f"identical predictions, max logit difference {check['max_logit_difference']:.2e}")
    assert check["same_predictions"], check
    if args.plot:
        plot_loss(history, args.plot)
        print(f"loss curve saved to {args.plot}")
    ok = acc >= TARGET_ACCURACY and seconds < TARGET_SECONDS
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
