"""cnnbook's NumPy conv2d and max_pool2d against PyTorch's CPU kernels: forward + backward time.

Issue 3's speed targets, for the layers of a small Fashion-MNIST CNN (batch 128, float32):
``Conv2d`` (3x3, padding 1) forward plus backward within 1.5x of torch, ``MaxPool2d(2)``
within 2x. Both sides compute every gradient (input, weight, bias). Repetitions rotate
between the contenders and the medians are compared, so all see the same machine load.
torch runs with its default threads. cnnbook runs twice: as it comes (its stride-1
convolutions and its tiling max pool split the batch over
``cnnbook.functional.get_num_threads()`` threads, with BLAS on one thread each; the
1-channel layer's im2col product uses OpenBLAS's default threads), and on one thread
(``set_num_threads(1)`` and BLAS limited to one thread with threadpoolctl). "met" judges
cnnbook as it comes.

    .venv/bin/python benchmarks/bench_numerics.py [--repeats 15]

Prints a Markdown table (pasted into benchmarks/README.md) and the conditions of the run.
"""
import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as TF

from cnnbook import functional as F, nn

BATCH = 128
CONVS = [(28, 1, 32), (28, 32, 32), (14, 32, 64), (14, 64, 64)]   # (H = W, C_in, C_out)
POOLS = [(28, 32), (14, 64)]                                       # (H = W, C)
CONV_TARGET, POOL_TARGET = 1.5, 2.0


def conv_pair(size, c_in, c_out, rng):
    """Two callables doing one forward + backward: cnnbook's Conv2d layer and torch's conv2d."""
    layer = nn.Conv2d(c_in, c_out, 3, padding=1, generator=rng)
    x = rng.standard_normal((BATCH, c_in, size, size), dtype=np.float32)
    grad = rng.standard_normal((BATCH, c_out, size, size), dtype=np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, layer.weight.data, layer.bias.data))
    tgrad = torch.from_numpy(grad)

    def ours():
        layer(x)
        layer.backward(grad)
        layer.zero_grad()

    def theirs():
        TF.conv2d(tx, tw, tb, padding=1).backward(tgrad)
        tx.grad = tw.grad = tb.grad = None

    return ours, theirs


def pool_pair(size, channels, rng):
    layer = nn.MaxPool2d(2)
    x = rng.standard_normal((BATCH, channels, size, size), dtype=np.float32)
    grad = rng.standard_normal((BATCH, channels, size // 2, size // 2), dtype=np.float32)
    tx, tgrad = torch.tensor(x, requires_grad=True), torch.from_numpy(grad)

    def ours():
        layer(x)
        layer.backward(grad)

    def theirs():
        TF.max_pool2d(tx, 2).backward(tgrad)
        tx.grad = None

    return ours, theirs


def one_thread(fn):
    """``fn`` run by cnnbook on one thread: no batch split, BLAS on one thread (None without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None

    def limited():
        threads = F.get_num_threads()
        F.set_num_threads(1)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                fn()
        finally:
            F.set_num_threads(threads)
    return limited


def rotated_medians(contenders, repeats, warmup=2):
    """Median seconds of each callable, rotating which one runs first."""
    for _ in range(warmup):
        for fn in contenders:
            fn()
    times = [[] for _ in contenders]
    for r in range(repeats):
        for k in range(len(contenders)):
            i = (k + r) % len(contenders)
            start = time.perf_counter()
            contenders[i]()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def conditions():
    """One line about the machine, the libraries and the load."""
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()
                if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    except ImportError:
        blas = ["BLAS threads unknown (threadpoolctl missing)"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return (f"{cpu}, {os.cpu_count()} cores; NumPy {np.__version__} ({', '.join(blas)}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), cnnbook conv2d/max_pool2d {F.get_num_threads()} threads; "
            f"load average {os.getloadavg()[0]:.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"before: {conditions()}\n")
    print("| forward + backward, batch 128, float32 | torch (ms) | cnnbook, default threads (ms) | ratio "
          "| cnnbook, 1 thread (ms) | ratio | target | met |")
    print("|---|---:|---:|---:|---:|---:|---:|:---:|")
    rows = [(f"Conv2d {c_in}->{c_out}, {size}x{size}, 3x3, padding 1", conv_pair(size, c_in, c_out, rng), CONV_TARGET)
            for size, c_in, c_out in CONVS]
    rows += [(f"MaxPool2d(2), {c} channels, {size}x{size}", pool_pair(size, c, rng), POOL_TARGET) for size, c in POOLS]
    for label, (ours, theirs), target in rows:
        single = one_thread(ours)
        times = rotated_medians([theirs, ours] + ([single] if single else []), args.repeats)
        ratios = [t / times[0] for t in times[1:]]
        cells = [f"{t * 1e3:.1f} | {r:.2f}x" for t, r in zip(times[1:], ratios)] + ["–  | –"] * (2 - len(ratios))
        print(f"| {label} | {times[0] * 1e3:.1f} | {' | '.join(cells)} | {target}x | "
              f"{'yes' if ratios[0] <= target else 'no'} |", flush=True)   # as cnnbook comes
    print(f"\nafter: {conditions()}")


if __name__ == "__main__":
    main()
